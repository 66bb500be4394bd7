"""Shared fixtures. Everything runs offline: failed Hub calls must fail at once, not retry for a minute."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n 2` each worker (and every process it starts) gets one torch thread: two workers with two
    # threads each would oversubscribe a 2-core machine, and spinning OpenMP threads then slow every step several-fold.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


@pytest.fixture(autouse=True)
def _signal_dispositions_put_back(request):
    """Every test leaves SIGINT and SIGTERM as it found them. A disposition left ignored in an xdist worker is
    inherited by every process a later test starts (an ignored signal stays ignored across exec): a Ctrl-C test then
    never stops its run. Put back, and named in a warning, so the test that leaked it can be found."""
    import signal
    import warnings

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in before.items():
        if signal.getsignal(signum) is not handler:
            warnings.warn(f"{request.node.nodeid} left {signal.Signals(signum).name} changed; put back", stacklevel=1)
            signal.signal(signum, handler)


def make_image(colour: tuple[int, int, int], seed: int, size: int = 24, mode: str = "RGB") -> Image.Image:
    """A solid-colour square with a little noise: trivially learnable, so tiny runs show real learning."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB").convert(mode)


def write_imagefolder(root: Path, per_class: int = 8, classes: tuple[str, ...] = ("red", "green", "blue")) -> Path:
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(COLOURS[name], seed=100 * c + i).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "colours")


@pytest.fixture
def csv_dataset(tmp_path: Path) -> Path:
    """A csv with relative image paths and string labels, as a user's own annotations would be."""
    images = tmp_path / "images"
    images.mkdir()
    rows = ["file,category"]
    for c, name in enumerate(COLOURS):
        for i in range(6):
            make_image(COLOURS[name], seed=10 * c + i).save(images / f"{name}_{i}.png")
            rows.append(f"images/{name}_{i}.png,{name}")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


REPO = Path(__file__).resolve().parent.parent


def run_command(args: list[str], timeout: int = 600, **env: str):
    """Run a command from the repository root with the test environment; output is kept for assertion messages."""
    import subprocess
    import sys

    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    executable = args[0]
    if executable in ("accelerate", "hf-transfer"):
        args = [str(Path(sys.executable).parent / executable), *args[1:]]
    elif executable == "python":
        args = [sys.executable, *args[1:]]
    return subprocess.run(args, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)


@dataclass
class Outcome:
    """What a user sees of a command: its exit status and output (in-process, stderr includes the log)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def in_process(capsys, caplog):
    """Call an entry point (``cli.main``, ``cli.run_recipe``) in this process, as its console script would, saving an
    interpreter start (seconds of torch/transformers imports) per call. An unexpected exception propagates (a process
    would print its traceback); the global logging settings the entry points change are put back afterwards."""
    import logging

    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpx2", "httpcore")}

    def call(entry, *args) -> Outcome:
        capsys.readouterr()
        caplog.clear()
        try:
            status = entry(*args)
        except SystemExit as exit_:  # argparse's way out: the process would exit with this status
            status = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return Outcome(status, captured.out, captured.err + caplog.text)

    yield call
    hf_logging.set_verbosity(verbosity)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


POSITIVE = [
    "a wonderful, moving film",
    "brilliant acting and a great story",
    "I loved every minute",
    "superb and funny",
]
NEGATIVE = ["a dull, boring mess", "terrible acting and a weak plot", "I hated every minute", "awful and tedious"]


def write_text_csv(path: Path, rows: list[tuple], header: tuple[str, ...]) -> Path:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def sentiment_csv(tmp_path: Path) -> Path:
    """Tiny two-class sentiment data with string labels: learnable from word identity alone."""
    rows = [(text, "pos") for text in POSITIVE * 4] + [(text, "neg") for text in NEGATIVE * 4]
    return write_text_csv(tmp_path / "sentiment.csv", rows, ("text", "label"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT (no dropout) with MiniLM's real tokenizer: fast, shaped like the real thing."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hf_transfer.models import builtin_checkpoint_dir

    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,  # deterministic: runs compared across process counts must draw no masks
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)  # the same tiny model in every session: tests with loose bounds must not depend on luck
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(builtin_checkpoint_dir("builtin:all-MiniLM-L6-v2")).save_pretrained(folder)
    return folder


def apply_strategy(model, view, strategy: str, task: str = "image-classification", **strategy_args):
    """Apply a (possibly composed) strategy the way fine_tune does; returns (strategy, context, wrapped model)."""
    from hf_transfer.strategies import ComposedStrategy, StrategyArguments, StrategyContext
    from hf_transfer.training.prepare import adapt_model

    built = ComposedStrategy(StrategyArguments(strategy=strategy, **strategy_args))
    context = StrategyContext(view=view, task=task, base_model_reference="test")
    return built, context, adapt_model(built, context, model)
