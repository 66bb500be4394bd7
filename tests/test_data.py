import collections
from pathlib import Path

import pytest
import torch
from PIL import Image

from hf_transfer.config import DataArguments
from hf_transfer.data import build_image_transforms, load_image_data, resolve_image_data_config, to_model_mode
from hf_transfer.data.builtin import apply_data_presets
from hf_transfer.exceptions import DataError

from .conftest import make_image, write_imagefolder


def data_args(**kwargs) -> DataArguments:
    args = DataArguments(**kwargs)
    apply_data_presets(args)
    return args


def test_imagefolder_labels_and_stratified_seeded_split(tmp_path):
    root = write_imagefolder(tmp_path / "d", per_class=10)
    data = load_image_data(data_args(train_dir=str(root), train_val_split=0.2), seed=1)
    assert data.label_names == ["blue", "green", "red"]
    assert len(data.train) == 24 and len(data.validation) == 6
    assert collections.Counter(data.validation["label"]) == {0: 2, 1: 2, 2: 2}  # stratified
    again = load_image_data(data_args(train_dir=str(root), train_val_split=0.2), seed=1)
    other = load_image_data(data_args(train_dir=str(root), train_val_split=0.2), seed=2)
    paths = lambda d: [img.filename for img in d.validation["image"]]  # noqa: E731
    assert paths(again) == paths(data) and paths(other) != paths(data)


def test_every_image_of_a_folder_is_read_whatever_its_name(tmp_path):
    """``datasets`` infers splits from names: a file called test_003.png went to a "test" split and left the
    training data without a word (and an unlabelled one likewise). Every file is read; a folder of split folders
    (train/, test/) is refused in one line rather than read as two classes."""
    from hf_transfer.data.unlabeled import read_image_folder

    root = write_imagefolder(tmp_path / "d", per_class=4)
    for folder in root.iterdir():
        for index, path in enumerate(sorted(folder.iterdir())[:3]):
            path.rename(folder / f"{('test', 'valid', 'train')[index]}_{path.name}")
    data = load_image_data(data_args(train_dir=str(root), train_val_split=0.25), seed=0)
    assert len(data.train) + len(data.validation) == 12
    assert len(read_image_folder(str(root), "--unlabeled_dir", "image")) == 12
    layout = tmp_path / "splits"
    write_imagefolder(layout / "train", per_class=2)
    write_imagefolder(layout / "test", per_class=2)
    with pytest.raises(DataError, match=r"split folders \['test', 'train'\].*splits/train as --train_dir"):
        load_image_data(data_args(train_dir=str(layout)))


def test_separate_validation_dir_with_a_subset_of_classes(tmp_path):
    train = write_imagefolder(tmp_path / "train", per_class=4)
    val = write_imagefolder(tmp_path / "val", per_class=2, classes=("red", "blue"))
    data = load_image_data(data_args(train_dir=str(train), validation_dir=str(val)))
    assert len(data.validation) == 4
    names = [data.label_names[i] for i in data.validation["label"]]
    assert sorted(set(names)) == ["blue", "red"]  # mapped by name, not by folder position
    red = [img for img, name in zip(data.validation["image"], names) if name == "red"][0]
    assert red.convert("RGB").getpixel((5, 5))[0] > 150


def test_csv_with_relative_paths_and_string_labels(csv_dataset):
    data = load_image_data(
        data_args(train_file=str(csv_dataset), image_column_name="file", label_column_name="category")
    )
    assert data.label_names == ["blue", "green", "red"]
    assert len(data.train) + len(data.validation) == 18
    assert isinstance(data.train[0]["file"], Image.Image)


def test_max_samples(tmp_path):
    root = write_imagefolder(tmp_path / "d", per_class=10)
    data = load_image_data(
        data_args(train_dir=str(root), max_train_samples=7, max_eval_samples=2, train_val_split=0.2)
    )
    assert (len(data.train), len(data.validation)) == (7, 2)


def test_missing_column_lists_the_columns(csv_dataset):
    with pytest.raises(DataError, match=r"'category'.*\['file', 'category'\]|columns are \['file', 'category'\]"):
        load_image_data(data_args(train_file=str(csv_dataset), image_column_name="file"))
    with pytest.raises(DataError, match="--image_column_name"):
        load_image_data(data_args(train_file=str(csv_dataset), label_column_name="category"))


def test_one_class_only(tmp_path):
    root = write_imagefolder(tmp_path / "d", classes=("red",))
    with pytest.raises(DataError, match="single class"):  # a one-folder imagefolder has no label column
        load_image_data(data_args(train_dir=str(root)))


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_image_data(data_args(train_dir=str(tmp_path / "empty")))


def test_nonexistent_directory():
    with pytest.raises(DataError, match="does not exist"):
        load_image_data(data_args(train_dir="/no/such/dir"))


def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path):
    root = write_imagefolder(tmp_path / "d", per_class=6)
    bad = root / "red" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(DataError, match=r"broken\.png.*--skip_bad_images"):
        load_image_data(data_args(train_dir=str(root)))
    data = load_image_data(data_args(train_dir=str(root), skip_bad_images=True))
    assert sum(data.skipped_images.values()) == 1
    assert len(data.train) + len(data.validation) == 18


def test_validation_label_unknown_to_training(tmp_path):
    train = write_imagefolder(tmp_path / "train", classes=("red", "blue"))
    val = write_imagefolder(tmp_path / "val", classes=("green",))
    with pytest.raises(DataError, match="green"):
        load_image_data(data_args(train_dir=str(train), validation_dir=str(val)))


def test_split_too_small_to_stratify(tmp_path):
    root = write_imagefolder(tmp_path / "d", per_class=1)
    with pytest.raises(DataError, match="stratified"):
        load_image_data(data_args(train_dir=str(root), train_val_split=0.1))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_image_modes_become_rgb(mode):
    image = make_image((200, 40, 40), seed=0).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = image.convert("I;16")
    converted = to_model_mode(image, channels=3)
    assert converted.mode == "RGB" and converted.size == image.size
    assert to_model_mode(image, channels=1).mode == "L"


def test_transparent_pixels_become_white_not_black():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert to_model_mode(image).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("arch", "mean"), [("tf_efficientnet_lite0", (0.5, 0.5, 0.5)), ("resnet18", (0.485, 0.456, 0.406))]
)
def test_transforms_follow_the_models_own_data_config(arch, mean):
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=2)
    config = resolve_image_data_config(model, image_size=48)
    assert tuple(config["mean"]) == pytest.approx(mean) and config["input_size"] == (3, 48, 48)
    train_tf, eval_tf = build_image_transforms(config, data_args(hflip=0.0))
    image = make_image((255, 255, 255), seed=0, size=100)
    for tf in (train_tf, eval_tf):
        out = tf(image)
        assert out.shape == (3, 48, 48)
    # white normalises to (1 - mean) / std: checks the model's own normalisation was used
    expected = (1.0 - torch.tensor(config["mean"])) / torch.tensor(config["std"])
    assert torch.allclose(eval_tf(Image.new("RGB", (60, 60), (255, 255, 255)))[:, 24, 24], expected, atol=1e-3)


def test_builtin_mnist_is_an_imagefolder_of_real_digits():
    data = load_image_data(data_args(max_train_samples=20, max_eval_samples=10))
    assert data.source == "builtin:mnist" and data.label_names == [str(d) for d in range(10)]
    assert len(data.train) + len(data.validation) == 30
    assert Path(data.train[0]["image"].filename).parent.name in data.label_names


def test_class_labels_numbers_in_numeric_order_and_validation_matched_by_name():
    """Label encoding through ``datasets`` (class_encode_column, align_labels_with_mapping) keeps our conventions:
    integer labels are named in numeric order (2 before 10), and a validation split is matched by name."""
    from datasets import ClassLabel, Dataset, Features, Value

    from hf_transfer.data.labels import encode_class_labels

    train = Dataset.from_dict({"y": [10, 2, 33, 2, 10]})
    validation = Dataset.from_dict({"y": [33, 2]})
    train, validation, names = encode_class_labels(train, validation, "y")
    assert names == ["2", "10", "33"] == train.features["y"].names == validation.features["y"].names
    assert train["y"] == [1, 0, 2, 0, 1] and validation["y"] == [2, 0]

    strings = Dataset.from_dict({"y": ["pos", "neg", "Neg"]})  # case matters: three classes, sorted as strings
    assert encode_class_labels(strings, None, "y")[2] == ["Neg", "neg", "pos"]

    reordered = Dataset.from_dict({"y": [0, 1, 1]}, features=Features({"y": ClassLabel(names=["c", "a"])}))
    trained = Dataset.from_dict({"y": [0, 1, 2]}, features=Features({"y": ClassLabel(names=["a", "b", "c"])}))
    _, aligned, names = encode_class_labels(trained, reordered, "y")
    assert aligned.features["y"].names == names == ["a", "b", "c"] and aligned["y"] == [2, 0, 0]

    cased = Dataset.from_dict({"y": [0, 1, 2]}, features=Features({"y": ClassLabel(names=["Cat", "cat", "dog"])}))
    other_order = Dataset.from_dict({"y": [0]}, features=Features({"y": ClassLabel(names=["dog", "cat"])}))
    with pytest.raises(DataError, match="'Cat' and 'cat' differ only in case"):
        encode_class_labels(cased, other_order, "y")
    unknown = Dataset.from_dict({"y": ["7"]}, features=Features({"y": Value("string")}))
    with pytest.raises(DataError, match=r"\['7'\].*outside the training label set"):
        encode_class_labels(Dataset.from_dict({"y": [1, 2]}), unknown, "y")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_labels_mixing_numbers_and_names_are_one_line(tmp_path, suffix):
    """`0, 1, neg, pos` in one column is two label sets written together: four classes would be wrong (csv), and the
    json reader's arrow error was a traceback; both are one line naming the column and both kinds."""
    import json

    from hf_transfer.data.text import load_text_data

    rows = [("good film", 1), ("bad film", 0), ("great", "pos"), ("awful", "neg")] * 5
    path = tmp_path / f"mixed{suffix}"
    if suffix == ".csv":
        path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    else:
        path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    with pytest.raises(DataError, match="'label' mixes") as refused:
        load_text_data(data_args(train_file=str(path)), seed=0)
    assert "\n" not in str(refused.value)


def test_an_empty_class_folder_is_refused_and_broken_links_are_named(tmp_path, caplog):
    """The imagefolder reader drops both without a word: an empty class folder would cost the model a class (an
    error), a broken link is only one unreadable example (a warning naming it)."""
    import logging

    data = write_imagefolder(tmp_path / "colours", per_class=8)
    (data / "purple").mkdir()
    with pytest.raises(DataError, match=r"\['purple'\] hold no images"):
        load_image_data(data_args(train_dir=str(data)), seed=0)
    (data / "purple").rmdir()
    (data / "red" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with caplog.at_level(logging.WARNING):
        loaded = load_image_data(data_args(train_dir=str(data)), seed=0)
    assert loaded.label_names == ["blue", "green", "red"]
    assert any("broken link" in r.getMessage() and "gone.png" in r.getMessage() for r in caplog.records)
