"""Push to and pull from a Hub: recipes with --push_to_hub, `hf-transfer push`, `hf_transfer.push_to_hub`.

Every Hub client runs in its own process against the local Hub-protocol server (`tests/hub_server.py`), and every
pulled repo is loaded by its library's own loader in a process where `import hf_transfer` fails: what users download
must need nothing from us.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hf_transfer as ht
from hf_transfer.cli import main as cli_main
from hf_transfer.hub import IncompleteRunError, inspect_run

from .conftest import REPO, write_imagefolder
from .hub_server import HubServer
from .test_model_card import write_run_files

# Distinctive tokens: the token test searches every output and pushed file, and all process output, for their bytes.
ALICE = "hf_alice_Qx7Zt2Lm9Pw4_push_token"
BOB = "hf_bob_Kp8Wd3Rv6Ny1_push_token"
WRONG = "hf_wrong_Rn2Vb5Jc8Hs0_not_a_token"
COLOURS = ["blue", "green", "red"]
# What a timm run's repo must hold: the loadable model, the card and its figures, the run's results. Nothing else.
TIMM_REPO_FILES = {
    "README.md",
    "all_results.json",
    "config.json",
    "confusion_matrix.png",
    "eval_results.json",
    "hf_transfer_config.json",
    "model.safetensors",
    "train_results.json",
    "trainer_state.json",
    "training_curves.png",
}
TINY_TEXT_RUN = [  # full fine-tuning, given: 20 reviews per class would otherwise get the contrastive default
    "--strategy", "full", "--train_val_split", "0.25", "--num_train_epochs", "1", "--learning_rate", "5e-3",
    "--per_device_train_batch_size", "8", "--logging_steps", "1",
]  # fmt: skip


def run_client(hub: HubServer, token: str | None, args: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run a command (python, a recipe, hf-transfer) from the repo root in a process that talks to `hub` as `token`."""
    if args[0] == "hf-transfer":
        args = [str(Path(sys.executable).parent / "hf-transfer"), *args[1:]]
    elif args[0] == "python":
        args = [sys.executable, *args[1:]]
    environment = {**hub.env(token), "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run(args, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def run_python(
    hub: HubServer, token: str | None, code: str, *args: str, without_hf_transfer: bool = False, before: str = ""
) -> Any:
    """Run `before` then `code` (which sets `result`) in a fresh interpreter talking to `hub`; return `result`."""
    script = textwrap.dedent(before) + textwrap.dedent(code) + "\nimport json\nprint('RESULT=' + json.dumps(result))\n"
    if without_hf_transfer:
        script = "import sys\nsys.modules['hf_transfer'] = None  # any import of hf_transfer now fails\n" + script
    proc = run_client(hub, token, ["python", "-c", script, *args])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("RESULT="))


def card_code(repo_id: str, revision: str | None = None) -> str:
    """Code that runs every ```python block of a repo's card as a user would paste it, in a folder holding an
    example.jpg; the blocks are left in `card_blocks`."""
    return f"""
        import os, re, tempfile
        from huggingface_hub import ModelCard, hf_hub_download
        from PIL import Image

        os.chdir(tempfile.mkdtemp())
        Image.new("RGB", (40, 40), (30, 200, 30)).save("example.jpg")
        card = ModelCard.load(hf_hub_download("{repo_id}", "README.md", revision={revision!r}))
        card_blocks = re.findall(r"```python\\n(.*?)```", card.text, re.S)
        for block in card_blocks:
            exec(block, {{}})
    """


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def files_holding(root: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub-data"), {"alice": ALICE, "bob": BOB}) as server:
        yield server


@pytest.fixture(scope="module")
def timm_run(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The image recipe, pushing with --hub_token (no HF_TOKEN in its environment) to alice/colours."""
    root = tmp_path_factory.mktemp("timm-run")
    data = write_imagefolder(root / "colours", per_class=6)
    out = root / "out"
    args = [
        "python", "recipes/image_cls.py", "--model_name_or_path", "test_convnext", "--from_scratch",
        "--train_dir", str(data), "--train_val_split", "0.3", "--image_size", "32", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "8", "--logging_steps", "1", "--output_dir", str(out),
        "--push_to_hub", "--hub_model_id", "alice/colours", "--hub_token", ALICE,
    ]  # fmt: skip
    proc = run_client(hub, None, args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def copy_run(run: Path, destination: Path) -> Path:
    """A copy without Trainer checkpoints, for tests that push the run elsewhere or change it."""
    return shutil.copytree(run, destination, ignore=shutil.ignore_patterns("checkpoint-*"))


def test_timm_repo_loads_in_timm_and_transformers_with_labels(hub, timm_run):
    out, _ = timm_run
    assert list(out.glob("checkpoint-*/training_args.bin"))  # present locally, so leaving them out means something
    code = """
        import timm, torch
        from huggingface_hub import HfApi, ModelCard
        from PIL import Image
        from transformers import AutoModelForImageClassification, pipeline

        model = timm.create_model("hf-hub:alice/colours", pretrained=True).eval()
        wrapper = AutoModelForImageClassification.from_pretrained("alice/colours").eval()
        classifier = pipeline("image-classification", model="alice/colours")
        pixels = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            same = torch.allclose(model(pixels), wrapper(pixel_values=pixels).logits, atol=1e-5)
        card = ModelCard.load("alice/colours")
        result = {
            "timm_labels": model.pretrained_cfg["label_names"],
            "transformers_labels": [wrapper.config.id2label[i] for i in range(3)],
            "pipeline_labels": sorted(p["label"] for p in classifier(Image.new("RGB", (32, 32), (220, 30, 30)))),
            "same_logits": same,
            "files": HfApi().list_repo_files("alice/colours"),
            "metadata": card.data.to_dict(),
            "accuracy": [r.metric_value for r in card.data.eval_results if r.metric_type == "accuracy"],
            "text": card.text,
            "card_blocks": len(card_blocks),
        }
    """
    result = run_python(hub, None, code, without_hf_transfer=True, before=card_code("alice/colours"))  # anonymous
    assert result["card_blocks"] == 2  # the timm and the transformers snippets both ran
    assert result["timm_labels"] == result["transformers_labels"] == result["pipeline_labels"] == COLOURS
    assert result["same_logits"]  # both loaders built the same network with the same weights
    assert set(result["files"]) == TIMM_REPO_FILES
    metadata = result["metadata"]
    assert (metadata["library_name"], metadata["pipeline_tag"]) == ("timm", "image-classification")
    assert "datasets" not in metadata and "base_model" not in metadata  # local data, trained from scratch
    accuracy = json.loads((out / "eval_results.json").read_text())["eval_accuracy"]
    assert result["accuracy"] == [round(accuracy, 4)]
    assert 'timm.create_model("hf-hub:alice/colours", pretrained=True)' in result["text"]


def test_token_is_never_printed_logged_or_written(hub, timm_run):
    out, proc = timm_run
    code = "from huggingface_hub import snapshot_download\nresult = snapshot_download('alice/colours')"
    pushed = Path(run_python(hub, None, code))
    assert {p.name for p in pushed.iterdir()} == TIMM_REPO_FILES
    assert ALICE not in proc.stdout + proc.stderr
    assert files_holding(out, ALICE) == []  # checkpoints' training_args.bin, configs, card, results
    assert files_holding(pushed, ALICE) == []
    resolved = json.loads((out / "hf_transfer_config.json").read_text())["training"]
    assert "hub_token" not in resolved and resolved["hub_model_id"] == "alice/colours"


@pytest.mark.slow
def test_failed_push_keeps_the_run_and_hf_transfer_push_retries_it(hub, tmp_path, sentiment_csv, tiny_bert_dir):
    """A recipe whose push to a private branch is refused (wrong --hub_token) exits 1 with one line; the command that
    line gives, run with HF_TOKEN set, pushes the same run; only its owner can then load it, from the branch."""
    out = tmp_path / "out"
    hub_flags = ["--push_to_hub", "--hub_model_id", "alice/reviews", "--hub_private_repo", "True"]
    hub_flags += ["--hub_revision", "dev"]
    data = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(sentiment_csv), *TINY_TEXT_RUN]
    args = ["python", "recipes/text_cls.py", *data, "--output_dir", str(out), *hub_flags, "--hub_token", WRONG]
    failed = run_client(hub, None, args)
    assert failed.returncode == 1, failed.stderr[-3000:]
    (line,) = error_lines(failed)
    assert line.startswith("error: push to alice/reviews failed: the Hub refused the token (401 Unauthorized)")
    retry = f"hf-transfer push {out} --repo-id alice/reviews --revision dev --private"
    assert line.endswith(f"retry with: {retry}")
    assert "Traceback" not in failed.stderr and WRONG not in failed.stdout + failed.stderr
    assert inspect_run(out).kind == "transformers"  # the run is complete on disk
    assert files_holding(out, WRONG) == []  # nor in the checkpoints' training_args.bin

    retried = run_client(hub, ALICE, retry.split())
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert json.loads(retried.stdout)["revision"] == "dev"
    code = """
        from huggingface_hub import HfApi
        from transformers import pipeline
        classifier = pipeline("text-classification", model="alice/reviews", revision="dev")
        api = HfApi()
        result = {
            "label": classifier("brilliant acting and a great story")[0]["label"],
            "id2label": classifier.model.config.id2label,
            "private": api.model_info("alice/reviews").private,
            "main": api.list_repo_files("alice/reviews"),
            "card_blocks": card_blocks,
        }
    """
    owner = run_python(hub, ALICE, code, without_hf_transfer=True, before=card_code("alice/reviews", "dev"))
    assert owner["label"] in {"neg", "pos"} and owner["id2label"] == {"0": "neg", "1": "pos"}
    assert owner["private"] and "model.safetensors" not in owner["main"]  # pushed to the branch only
    assert len(owner["card_blocks"]) == 1 and 'revision="dev"' in owner["card_blocks"][0]  # ...and it ran
    code = """
        from huggingface_hub import HfApi, hf_hub_download
        try:  # what every loader does first: timm, transformers and peft all fetch files with hf_hub_download
            hf_hub_download("alice/reviews", "model.safetensors", revision="dev")
            result = "downloaded"
        except Exception as err:
            result = [type(err).__name__, HfApi().repo_exists("alice/reviews")]
    """
    for token in (BOB, None):  # another user, and anonymous
        assert run_python(hub, token, code) == ["RepositoryNotFoundError", False], token


@pytest.mark.slow
def test_mean_pooled_text_model_pushed_by_the_library_call_loads_with_remote_code(
    hub, tmp_path, sentiment_csv, tiny_bert_dir
):
    config = ht.RecipeConfig(
        task="text-classification",
        model=ht.ModelArguments(model_name_or_path=str(tiny_bert_dir), pooling="mean"),
        data=ht.DataArguments(train_file=str(sentiment_csv), train_val_split=0.25),
        training=ht.default_training_arguments(
            "text-classification", output_dir=str(tmp_path / "out"), num_train_epochs=1, learning_rate=5e-3
        ),
    )
    out = Path(ht.fine_tune(config).output_dir)
    code = "import sys, hf_transfer\nresult = hf_transfer.push_to_hub(sys.argv[1], 'alice/reviews-mean').files"
    pushed = run_python(hub, ALICE, code, str(out))
    assert "pooled_text.py" in pushed and "tokenizer.json" in pushed
    code = """
        from transformers import pipeline
        classifier = pipeline("text-classification", model="alice/reviews-mean", trust_remote_code=True)
        result = [type(classifier.model).__name__, classifier("a dull, boring mess")[0]["label"], card_blocks]
    """
    before = card_code("alice/reviews-mean")
    architecture, label, blocks = run_python(hub, None, code, without_hf_transfer=True, before=before)
    assert architecture == "MeanPooledClassifier" and label in {"neg", "pos"}
    assert len(blocks) == 1 and "trust_remote_code=True" in blocks[0]  # ...and the card's snippet ran


def test_identical_repush_makes_no_commit_and_changed_weights_make_one(hub, timm_run, tmp_path):
    run = copy_run(timm_run[0], tmp_path / "run")
    code = """
        import sys
        import hf_transfer
        from huggingface_hub import HfApi
        from safetensors.torch import load_file, save_file

        run, api = sys.argv[1], HfApi()
        first = hf_transfer.push_to_hub(run, "alice/repush").commit
        again = hf_transfer.push_to_hub(run, "alice/repush").commit
        head_after_again = api.model_info("alice/repush").sha
        # as if an adapter had been pushed here before: transformers would then load the repo as an adapter
        stale = api.upload_file(path_or_fileobj=b"{}", path_in_repo="adapter_config.json", repo_id="alice/repush").oid
        weights = load_file(run + "/model.safetensors")
        name = sorted(weights)[0]
        weights[name] = weights[name] + 1.0
        save_file(weights, run + "/model.safetensors", metadata={"format": "pt"})
        changed = hf_transfer.push_to_hub(run, "alice/repush").commit
        result = {
            "shas": [first, again, head_after_again, stale, changed],
            "history": [c.commit_id for c in api.list_repo_commits("alice/repush")],
            "files": api.list_repo_files("alice/repush"),
        }
    """
    result = run_python(hub, ALICE, code, str(run))
    first, again, head_after_again, stale, changed = result["shas"]
    assert first == again == head_after_again  # the card and figures re-rendered byte for byte: nothing to commit
    assert result["history"][:3] == [changed, stale, first] and len(result["history"]) == 4  # + the initial commit
    assert set(result["files"]) == TIMM_REPO_FILES  # the stale adapter file went in the same commit


def test_unreachable_hub_fails_fast_with_one_line(hub, timm_run, tmp_path):
    run = copy_run(timm_run[0], tmp_path / "run")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    args = ["hf-transfer", "push", str(run), "--repo-id", "alice/down", "--token", ALICE]
    proc = run_client(hub, None, args, HF_ENDPOINT=dead)
    assert proc.returncode == 1
    (line,) = error_lines(proc)
    assert line.startswith(f"error: push to alice/down failed: could not reach the Hub at {dead}")
    assert "Traceback" not in proc.stderr and ALICE not in proc.stderr
    inspect_run(run)  # still complete


@pytest.mark.parametrize("missing", ["model.safetensors", "hf_transfer_config.json"])
def test_push_refuses_an_incomplete_run_before_any_network(tmp_path, capsys, missing):
    """In this process HF_HUB_OFFLINE=1: reaching the network would raise PushError, not IncompleteRunError."""
    run = write_run_files(tmp_path / "run")
    (run / missing).unlink()
    with pytest.raises(IncompleteRunError, match=f"{missing} is missing"):
        ht.push_to_hub(run, "alice/incomplete")
    assert cli_main(["push", str(run), "--repo-id", "alice/incomplete"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and f"{missing} is missing" in line
    assert not (run / "README.md").exists()  # refused before anything was written


def test_recipe_push_flags_are_checked_before_training(tmp_path):
    training = ht.default_training_arguments(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="not a/repo id")
    with pytest.raises(ht.ConfigError, match="--hub_model_id 'not a/repo id' is not a valid Hub repo id"):
        ht.fine_tune(ht.RecipeConfig(training=training))
    training = ht.default_training_arguments(output_dir=str(tmp_path), push_to_hub=True, hub_token=WRONG)
    with pytest.raises(ht.ConfigError, match="HF_HUB_OFFLINE is set"):  # as in this process
        ht.fine_tune(ht.RecipeConfig(training=training))
    assert (training.push_to_hub, training.hub_token) == (False, None)  # moved out of the Trainer's reach


def test_recipe_hub_flags_become_push_settings(monkeypatch):
    from huggingface_hub import constants

    from hf_transfer.hub import HubPushSettings
    from hf_transfer.recipe import parse_config

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as in a process that may reach the Hub
    flags = ["--push_to_hub", "--hub_model_id", "alice/x", "--hub_private_repo", "True", "--hub_revision", "dev"]
    training = parse_config([*flags, "--hub_token", WRONG, "--output_dir", "runs/x"]).training
    settings = HubPushSettings.take_from(training)
    assert settings == HubPushSettings("alice/x", private=True, revision="dev", token=WRONG)
    assert WRONG not in repr(settings) and training.hub_token is None and not training.push_to_hub
    training = parse_config(["--push_to_hub", "--output_dir", "runs/photos"]).training
    assert HubPushSettings.take_from(training).repo_id == "photos"  # as the Trainer names it: the output dir's name


@pytest.mark.slow
def test_lora_adapter_repo_loads_with_peft_on_its_base(hub, tmp_path, sentiment_csv, tiny_bert_dir):
    import torch
    from transformers import AutoTokenizer

    config = ht.RecipeConfig(
        task="text-classification",
        model=ht.ModelArguments(model_name_or_path=str(tiny_bert_dir)),
        data=ht.DataArguments(train_file=str(sentiment_csv), train_val_split=0.25),
        strategy=ht.StrategyArguments(strategy="lora", lora_r=4),
        training=ht.default_training_arguments(
            "text-classification", output_dir=str(tmp_path / "out"), num_train_epochs=2, learning_rate=5e-2
        ),
    )
    result = ht.fine_tune(config)
    out = Path(result.output_dir)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_bert_dir)
    text = "brilliant acting and a great story"
    inputs = AutoTokenizer.from_pretrained(out)(text, return_tensors="pt")
    result.model.eval()
    with torch.no_grad():
        expected = result.model(**inputs).logits[0].tolist()
    pushed = run_python(hub, ALICE, "import sys, hf_transfer\nresult = hf_transfer.push_to_hub(*sys.argv[1:]).files",
                        str(out), "alice/reviews-lora")  # fmt: skip
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(pushed)
    code = """
        import sys, torch
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        base = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], num_labels=2)
        model = PeftModel.from_pretrained(base, "alice/reviews-lora").eval()
        inputs = AutoTokenizer.from_pretrained(sys.argv[1])(sys.argv[2], return_tensors="pt")
        with torch.no_grad():
            result = model(**inputs).logits[0].tolist()
    """
    loaded = run_python(hub, None, code, str(tiny_bert_dir), text, without_hf_transfer=True)
    assert loaded == pytest.approx(expected, abs=1e-5)
