"""Benchmark the closed-form linear-probe head against the SGD head it replaces as ``linear_probe``'s default.

Usage (from the repository root)::

    .venv/bin/python benchmarks/closed_form_head.py            # 2 tasks × 3 sizes × 3 seeds; ~15-30 min on 2 cores
    .venv/bin/python benchmarks/closed_form_head.py --quick    # smoke check (one size, one seed)

Each (task, labelled examples per class, seed) is one measured process (``harness.py``: a copy of the library taken
at the start, a temporary feature cache) that runs ``hf_transfer.fine_tune`` twice on the same examples and the same
held-out evaluation rows — ``--strategy linear_probe --head_solver closed_form`` (C by cross-validation on the
training features), then ``--head_solver sgd`` (the recipe's data-size budget: ≥ 100 Trainer steps at the strategy's
learning rate) — so the features are encoded once and both heads read the same cached tensors. Nothing is chosen on
the evaluation rows. Tasks: the default checkpoints on their built-in data: ``builtin:efficientnet_lite0`` on
``builtin:mnist`` (64 px) and ``builtin:all-MiniLM-L6-v2`` (mean pooling) on ``builtin:rotten_tomatoes``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

BENCH = "hf_transfer-closed-form-head-bench"
THREADS = 1  # one thread per configuration: the measured numbers are accuracies and in-process time ratios
TIMEOUT_S = 3600
EVAL_ROWS = 1000
TASKS = {"image": "image-classification", "text": "text-classification"}
SOLVERS = ("closed_form", "sgd")


def worker(result: Path, args: list[str]) -> None:
    """One (task, size, seed): both solvers, one after the other, on the same cached features."""
    harness.start_worker()
    import hf_transfer as ht
    from hf_transfer.recipe import parse_config

    part, size, seed = args[0], int(args[1]), int(args[2])
    rows = {}
    for solver in SOLVERS:
        with tempfile.TemporaryDirectory() as out:
            argv = ["--strategy", "linear_probe", "--head_solver", solver, "--train_samples_per_class", str(size),
                    "--sampling_seed", str(seed), "--seed", str(seed), "--split_seed", "0",
                    "--max_eval_samples", str(EVAL_ROWS), "--output_dir", out, "--report_to", "none"]  # fmt: skip
            metrics = ht.fine_tune(parse_config(argv, task=TASKS[part])).metrics
        rows[solver] = {
            "accuracy": metrics["eval_accuracy"],
            "train_runtime": metrics["train_runtime"],
            "head_c": metrics.get("head_c"),
            "eval_samples": metrics["eval_samples"],
            "train_samples": metrics["train_samples"],
        }
    result.write_text(json.dumps(rows))


def render(saved: dict) -> str:
    lines = [f"Command: `{saved['environment']['command']}`", ""]
    lines += harness.environment_lines(saved["environment"]) + [""]
    header = ["task", "examples/class", "closed-form accuracy", "SGD accuracy", "closed − SGD (points)",
              "closed-form fit (s)", "SGD training (s)", "SGD / closed-form time"]  # fmt: skip
    table = []
    for part in TASKS:
        for size in sorted({r["size"] for r in saved["runs"] if r["part"] == part}):
            runs = [r for r in saved["runs"] if r["part"] == part and r["size"] == size]
            closed = [r["closed_form"]["accuracy"] for r in runs]
            sgd = [r["sgd"]["accuracy"] for r in runs]
            fit = statistics.mean(r["closed_form"]["train_runtime"] for r in runs)
            trained = statistics.mean(r["sgd"]["train_runtime"] for r in runs)
            gaps = [100 * (a - b) for a, b in zip(closed, sgd)]
            table.append([part, size, _mean_sd(closed), _mean_sd(sgd), _mean_sd(gaps, 1), f"{fit:.2f}",
                          f"{trained:.1f}", f"{trained / fit:.2g}×"])  # fmt: skip
    lines += harness.markdown_table(header, table)
    seeds = sorted({r["seed"] for r in saved["runs"]})
    held_out = {part: next(r["sgd"]["eval_samples"] for r in saved["runs"] if r["part"] == part) for part in TASKS
                if any(r["part"] == part for r in saved["runs"])}  # fmt: skip
    rows = ", ".join(f"{n} {part}" for part, n in held_out.items())
    lines += ["", f"Mean ± standard deviation over seeds {seeds}; the same held-out rows for every run ({rows}; split "
              f"seed 0, at most {EVAL_ROWS})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _mean_sd(values: list[float], digits: int = 3) -> str:
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{spread}"


def main(argv: list[str] | None = None) -> None:
    parser = harness.argument_parser(
        __doc__, parts="image,text", out="output folder", out_default="outputs/benchmarks/closed_form_head"
    )
    parser.add_argument("--sizes", default="8,32,128", help="labelled examples per class")
    parser.add_argument("--seeds", default="0,1,2")
    args = harness.parse_args(parser, argv, worker=worker, render=render)
    if args is None:
        return
    parts = harness.split_choices(parser, "--parts", args.parts, list(TASKS))
    sizes = [8] if args.quick else [int(s) for s in args.sizes.split(",")]
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    out = Path(args.out).resolve()
    (out / "raw").mkdir(parents=True, exist_ok=True)
    checkpoints = [{"image": "builtin:efficientnet_lite0", "text": "builtin:all-MiniLM-L6-v2"}[p] for p in parts]
    datasets = [{"image": "builtin:mnist", "text": "builtin:rotten_tomatoes"}[p] for p in parts]
    runs = []
    with harness.session(BENCH, threads=THREADS, checkpoints=checkpoints, datasets=datasets) as bench:
        environment = bench.environment(harness.command_line(__file__, argv), ["torch", "scikit-learn"])
        for part in parts:
            for size in sizes:
                for seed in seeds:
                    name = f"{part}-n{size}-s{seed}"
                    result = out / "raw" / f"{name}.json"
                    run = bench.run(__file__, [part, str(size), str(seed)], out / "logs" / f"{name}.log", result,
                                    TIMEOUT_S)  # fmt: skip
                    runs.append({"part": part, "size": size, "seed": seed, "wall_s": run.seconds,
                                 **json.loads(result.read_text())})  # fmt: skip
                    print(f"{name}: {json.dumps(runs[-1])}", flush=True)
    saved = {"environment": environment, "runs": runs}
    harness.write_outputs(out, saved, render)


if __name__ == "__main__":
    main()
