import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_transfer.config import MULTIMODAL_CLASSIFICATION, DataArguments
from hf_transfer.data import (
    MultimodalCollator,
    load_multimodal_data,
    multimodal_transform_fn,
    tokenize_multimodal,
)
from hf_transfer.data.builtin import apply_data_presets, builtin_dataset_dir
from hf_transfer.exceptions import DataError

from .conftest import COLOURS, make_image, write_text_csv

CAPTIONS = {"red": "a warm red square", "green": "a leafy green patch", "blue": "a cool blue tile"}


def write_captioned_images(root: Path, per_class: int = 6) -> list[tuple[str, str, str]]:
    """(relative image path, caption, colour) rows, with the PNGs written under ``root/<colour>/``."""
    rows = []
    for c, (name, colour) in enumerate(COLOURS.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(colour, seed=10 * c + i, size=16).save(root / name / f"{i}.png")
            rows.append((f"{name}/{i}.png", f"{CAPTIONS[name]} number {i}", name))
    return rows


@pytest.fixture
def captioned_csv(tmp_path: Path) -> Path:
    rows = write_captioned_images(tmp_path / "images")
    return write_text_csv(
        tmp_path / "data.csv", [(f"images/{p}", t, y) for p, t, y in rows], ("image", "text", "label")
    )


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from hf_transfer.models import builtin_checkpoint_dir

    return AutoTokenizer.from_pretrained(builtin_checkpoint_dir("builtin:all-MiniLM-L6-v2"))


@pytest.fixture(scope="session")
def easy_vqa_dir() -> Path:
    """Materialised once per cache (like builtin:mnist), and looked up once per session."""
    return builtin_dataset_dir("builtin:easy_vqa")


def test_csv_with_image_paths_text_and_labels(captioned_csv):
    data = load_multimodal_data(DataArguments(train_file=str(captioned_csv), train_val_split=1 / 6), seed=3)
    assert data.label_names == ["blue", "green", "red"]
    assert (len(data.train), len(data.validation)) == (15, 3)
    assert collections.Counter(data.validation["label"]) == {0: 1, 1: 1, 2: 1}  # stratified
    assert data.text_columns == ["text"] and data.image_column == "image" and data.source == str(captioned_csv)
    example = data.train[0]
    assert isinstance(example["image"], Image.Image) and example["image"].size == (16, 16)
    assert CAPTIONS[data.label_names[example["label"]]] in example["text"]  # image, text and label stay aligned


def test_imagefolder_with_metadata_text_and_class_folder_labels(tmp_path):
    root = tmp_path / "folder"
    rows = write_captioned_images(root, per_class=4)
    write_text_csv(root / "metadata.csv", [(p, t) for p, t, _ in rows], ("file_name", "caption"))
    data = load_multimodal_data(
        DataArguments(train_dir=str(root), text_column_names="caption", train_val_split=0.25, max_eval_samples=2)
    )
    assert data.label_names == ["blue", "green", "red"]
    assert len(data.train) + len(data.validation) == 12 - 1 and len(data.validation) == 2
    for example in data.train:
        assert CAPTIONS[data.label_names[example["label"]]] in example["caption"]

    write_text_csv(root / "metadata.csv", [(p, t, "warm" if y == "red" else "cold") for p, t, y in rows],
                   ("file_name", "caption", "temperature"))  # fmt: skip
    by_column = load_multimodal_data(
        DataArguments(train_dir=str(root), text_column_names="caption", label_column_name="temperature")
    )
    assert by_column.label_names == ["cold", "warm"]


def test_imagefolder_without_metadata_says_what_is_missing(tmp_path):
    root = tmp_path / "folder"
    write_captioned_images(root, per_class=2)
    with pytest.raises(DataError, match="metadata.csv"):
        load_multimodal_data(DataArguments(train_dir=str(root)))


def test_row_without_an_image_is_named(tmp_path, captioned_csv):
    lines = captioned_csv.read_text().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]  # data row 2 loses its image path
    captioned_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"row 2: column 'image'.*data\.csv|data\.csv: row 2: column 'image'"):
        load_multimodal_data(DataArguments(train_file=str(captioned_csv)))

    root = tmp_path / "folder"
    rows = write_captioned_images(root, per_class=2)
    rows[1] = ("", rows[1][1], rows[1][2])
    write_text_csv(root / "metadata.csv", rows, ("file_name", "text", "label"))
    with pytest.raises(DataError, match=r"Row 1 .*metadata\.csv.*column 'image' has no image"):
        load_multimodal_data(DataArguments(train_dir=str(root)))


def test_empty_text_names_row_and_column(captioned_csv):
    lines = captioned_csv.read_text().splitlines()
    path, _, label = lines[5].split(",")
    lines[5] = f"{path},   ,{label}"
    captioned_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"Row 4 of the train data: column 'text' is empty"):
        load_multimodal_data(DataArguments(train_file=str(captioned_csv)))


def test_missing_text_column_names_the_flag(captioned_csv):
    with pytest.raises(DataError, match=r"--text_column_names: column 'question'.*\['image', 'text', 'label'\]"):
        load_multimodal_data(DataArguments(train_file=str(captioned_csv), text_column_names="question"))


def test_regression_or_label_lists_are_refused(tmp_path):
    rows = write_captioned_images(tmp_path / "images", per_class=2)
    scores = write_text_csv(
        tmp_path / "scores.csv",
        [(f"images/{p}", t, 0.5 + i) for i, (p, t, _) in enumerate(rows)],
        ("image", "text", "label"),
    )
    with pytest.raises(DataError, match="single-label classification only"):
        load_multimodal_data(DataArguments(train_file=str(scores)))
    import json

    lists = tmp_path / "lists.jsonl"
    lists.write_text(
        "".join(json.dumps({"image": f"images/{p}", "text": t, "label": [y, "x"]}) + "\n" for p, t, y in rows)
    )
    with pytest.raises(DataError, match="single-label classification only"):
        load_multimodal_data(DataArguments(train_file=str(lists)))


def test_tokenize_transform_and_collate(captioned_csv, tokenizer):
    data = load_multimodal_data(DataArguments(train_file=str(captioned_csv)))
    tokens = tokenize_multimodal(data.train, tokenizer, data.text_columns, max_length=6, desc="tokenising")
    assert (
        set(tokens.column_names) >= {"image", "label", "input_ids", "attention_mask"}
        and "text" not in tokens.column_names
    )
    assert max(len(ids) for ids in tokens["input_ids"]) == 6  # truncated

    def to_tensor(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)

    fn = multimodal_transform_fn(to_tensor, data.image_column, data.label_column, passthrough=["row_id"])
    ready = tokens.add_column("row_id", list(range(len(tokens)))).with_transform(fn)
    examples = [ready[i] for i in range(4)]
    assert set(examples[0]) == {"pixel_values", "labels", "input_ids", "attention_mask", "token_type_ids", "row_id"}
    examples[0]["input_ids"] = examples[0]["input_ids"][:3]  # a shorter one, to make padding visible
    examples[0]["attention_mask"] = examples[0]["attention_mask"][:3]
    examples[0]["token_type_ids"] = examples[0]["token_type_ids"][:3]
    batch = MultimodalCollator(tokenizer)(examples)
    assert batch["pixel_values"].shape == (4, 3, 8, 8)
    assert batch["input_ids"].shape == (4, 6) and batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0]
    assert batch["input_ids"][0, 3:].eq(tokenizer.pad_token_id).all()
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [e["labels"] for e in examples]
    assert batch["row_id"].tolist() == [0, 1, 2, 3]


def test_collator_stacks_embeddings_and_rejects_a_mixed_batch(tokenizer):
    collate = MultimodalCollator(tokenizer)
    features = [
        {"image_embeds": torch.full((5,), float(i)), "input_ids": [101, 7, 102][: i + 2], "labels": i}
        for i in range(2)
    ]
    batch = collate(features)
    assert batch["image_embeds"].shape == (2, 5) and batch["input_ids"].shape == (2, 3)
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    mixed = [{"pixel_values": torch.zeros(3, 4, 4), "labels": 0}, {"image_embeds": torch.zeros(5), "labels": 1}]
    with pytest.raises(ValueError, match="pixel_values"):
        collate(mixed)


def test_builtin_easy_vqa_is_real_vqa_data(easy_vqa_dir):
    assert (easy_vqa_dir / "images" / "train" / "0.png").is_file() and (easy_vqa_dir / "test.csv").is_file()
    args = DataArguments(max_train_samples=200, max_eval_samples=100)
    apply_data_presets(args, MULTIMODAL_CLASSIFICATION)  # what the recipe's resolution step does before loading
    data = load_multimodal_data(args)
    assert data.source == "builtin:easy_vqa" and data.text_columns == ["question"]
    assert args.no_augment is True and args.image_size == 64 and args.max_seq_length == 32  # the built-in's presets
    assert len(data.label_names) == 13 and {"yes", "no", "circle", "red"} <= set(data.label_names)
    assert (len(data.train), len(data.validation)) == (200, 100)
    assert len(set(data.train["label"])) >= 8
    assert all(q.endswith("?") for q in data.train["question"])
    image = data.validation[0]["image"]
    assert image.size == (64, 64) and "images/test/" in image.filename  # validation is the official test split
