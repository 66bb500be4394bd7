"""Benchmark image+text fusion on easy-vqa: cached vs uncached frozen towers, and the two fusion heads.

Usage (from the repository root)::

    .venv/bin/python benchmarks/multimodal.py              # ~12 min on 2 CPU cores
    .venv/bin/python benchmarks/multimodal.py --parts cache
    .venv/bin/python benchmarks/multimodal.py --quick      # smoke check (tiny budgets)

Each configuration runs ``hf_transfer.fine_tune`` in a fresh subprocess (same seed, same data, same thread count),
so the timings sit side by side under the same conditions:

* ``cache``: frozen Lite0 + MiniLM towers on all of easy-vqa for one epoch, with ``--cache_frozen_features`` True vs
  False. Same model, same steps: the wall time of the whole run (data, caching, training, evaluation) and the
  accuracy, which must agree (the cached features are the frozen towers' outputs). The default recipe runs 5 epochs,
  where the uncached cost grows 5-fold and the cached one barely.
* ``fusion``: ``--fusion concat`` vs ``--fusion gated`` on all of easy-vqa (cached towers), test-split accuracy.

Every configuration goes through ``harness.py``: it imports a copy of ``hf_transfer/`` taken at the start and writes
its features to a temporary ``HF_TRANSFER_CACHE`` (removed at the end), so the cached run encodes from scratch however
often the benchmark has run before. A markdown table goes to stdout and ``<out>/tables.md``; raw numbers to
``<out>/results.json``, one log per configuration to ``<out>/<name>.log``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import markdown_table  # noqa: E402

BENCH = "hf_transfer-multimodal-bench"
TASK = "multimodal-classification"
THREADS = 2  # torch/OpenMP threads per configuration
TIMEOUT_S = 4 * 3600  # per configuration: a hung run fails instead of blocking the benchmark
COMMON = ["--seed", "0", "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False"]


def configurations(quick: bool) -> list[tuple[str, str, list[str]]]:
    """(part, name, recipe flags)."""
    data = ["--max_train_samples", "600", "--max_eval_samples", "200"] if quick else []  # quick: a subset
    one_epoch = ["--num_train_epochs", "1", "--ablations", "False"]
    return [
        ("cache", "cached", [*data, *one_epoch, "--cache_frozen_features", "True"]),
        ("cache", "uncached", [*data, *one_epoch, "--cache_frozen_features", "False"]),
        ("fusion", "concat", [*data, "--fusion", "concat"]),
        ("fusion", "gated", [*data, "--fusion", "gated"]),
    ]


def worker_main(result_path: Path, args: list[str]) -> None:
    """Runs in the subprocess (``--worker RESULT -- recipe flags...``): ``fine_tune`` on the recipe flags; its numeric
    metrics and wall time to JSON."""
    started = time.perf_counter()
    argv = args[1:] if args[:1] == ["--"] else args
    harness.start_worker()
    import hf_transfer as ht
    from hf_transfer.recipe import parse_config

    result = ht.fine_tune(parse_config(argv, task=TASK))
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["wall_s"] = time.perf_counter() - started
    result_path.write_text(json.dumps(metrics))


def run(bench: harness.Bench, name: str, flags: list[str], out: Path) -> dict:
    target = out / f"{name}.json"
    argv = [*COMMON, *flags, "--output_dir", str(out / name), "--overwrite_output_dir"]
    measured = bench.run(__file__, ["--", *argv], out / f"{name}.log", target, TIMEOUT_S)
    metrics = json.loads(target.read_text())
    metrics["process_s"] = measured.seconds
    return metrics


def render(results: dict[str, dict], quick: bool) -> str:
    """The tables of the parts that have results (``--parts`` may have run only one)."""
    lines: list[str] = []
    if "cached" in results and "uncached" in results:
        cached, uncached = results["cached"], results["uncached"]
        lines += [
            "### Frozen towers: cached vs uncached features" + (" (quick)" if quick else ""),
            "",
            *markdown_table(
                (
                    "features",
                    "train samples",
                    "epochs",
                    "run wall time (s)",
                    "train runtime (s)",
                    "eval accuracy",
                    "macro-F1",
                ),
                (
                    [
                        name,
                        int(m["train_samples"]),
                        f"{m['epoch']:.0f}",
                        f"{m['wall_s']:.1f}",
                        f"{m['train_runtime']:.1f}",
                        f"{m['eval_accuracy']:.4f}",
                        f"{m.get('eval_macro_f1', float('nan')):.4f}",
                    ]
                    for name, m in (("cached", cached), ("uncached", uncached))
                ),
            ),
            "",
            "Speed-up of the whole run (uncached / cached wall time): "
            f"**{uncached['wall_s'] / cached['wall_s']:.1f}x**; of training alone: "
            f"{uncached['train_runtime'] / cached['train_runtime']:.1f}x (the cached run's training excludes its "
            "one-off encoding, which is in its wall time).",
            "",
        ]
    if "concat" in results and "gated" in results:
        lines += [
            "### Fusion heads on easy-vqa (frozen towers, 5 epochs, test split)" + (" (quick)" if quick else ""),
            "",
            *markdown_table(
                ("fusion", "eval accuracy", "image only", "text only", "run wall time (s)"),
                (
                    [
                        name,
                        f"{results[name]['eval_accuracy']:.4f}",
                        f"{results[name].get('eval_image_only_accuracy', float('nan')):.4f}",
                        f"{results[name].get('eval_text_only_accuracy', float('nan')):.4f}",
                        f"{results[name]['wall_s']:.1f}",
                    ]
                    for name in ("concat", "gated")
                ),
            ),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = harness.argument_parser(
        __doc__,
        quick="tiny budgets: a smoke check",
        parts="cache,fusion",
        out="output folder",
        out_default="outputs/benchmarks/multimodal",
        render=False,
    )
    args = harness.parse_args(parser, None, worker=worker_main)
    if args is None:
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}  # parts not re-run are kept
    parts = harness.split_choices(parser, "--parts", args.parts, ("cache", "fusion"))
    chosen = [(part, name, flags) for part, name, flags in configurations(args.quick) if part in parts]
    with harness.session(
        BENCH,
        threads=THREADS,
        checkpoints=("builtin:efficientnet_lite0", "builtin:all-MiniLM-L6-v2"),
        datasets=("builtin:easy_vqa",),
    ) as bench:
        for part, name, flags in chosen:
            print(f"[{part}] {name} ...", flush=True)
            results[name] = run(bench, name, flags, out)
            print(f"  eval_accuracy {results[name]['eval_accuracy']:.4f}, {results[name]['wall_s']:.1f} s", flush=True)
    results_path.write_text(json.dumps(results, indent=2))
    tables = render(results, args.quick)
    (out / "tables.md").write_text(tables)
    print(tables)


if __name__ == "__main__":
    main()
