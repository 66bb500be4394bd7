"""Benchmark a study of tiny cells: the study's wall time against the sum of its cells' own times (issue 19).

Usage (from the repository root)::

    .venv/bin/python benchmarks/study_workers.py                        # this tree's library; ~2 min on 2 cores
    .venv/bin/python benchmarks/study_workers.py --baseline d1ecd15     # the same study on another commit first
    .venv/bin/python benchmarks/study_workers.py --quick                # 2 cells: a smoke check
    .venv/bin/python benchmarks/study_workers.py --backend ray          # the same on a local Ray instance

Each library (``--baseline REF``'s ``hf_transfer/``, taken with ``git archive``, then this tree's snapshot) runs the
same ``hf-transfer study`` in one measured process (``harness.py``): ``builtin:all-MiniLM-L6-v2`` on
``builtin:rotten_tomatoes``, ``--strategies linear_probe --train_sizes 8,16,32 --seeds 0,1,2 --scratch false``
(9 cells), 200 held-out reviews, on an emptied feature cache. A cell's own time is the ``wall_time`` its
``study_cell.json`` records: from just before ``fine_tune`` to just after it (data, model, frozen-feature encoding,
training, evaluation, saving), without the process start and the imports a cell worker pays before it. The study's
time is ``hf_transfer.study.study`` timed around the call inside the measured process (enumerating the cells, the
data check, every cell, the report and its plots; with ``--backend ray`` also starting the local Ray instance); the
process's whole wall time is also given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

BENCH = "hf_transfer-study-workers-bench"
THREADS = 1
TIMEOUT_S = 1800
MODEL = "builtin:all-MiniLM-L6-v2"
DATASET = "builtin:rotten_tomatoes"


def worker(result: Path, args: list[str]) -> None:
    """One study in this process: its wall time and every cell's own recorded time."""
    harness.start_worker()
    import hf_transfer
    from hf_transfer.study.study import study_from_argv

    out, sizes, seeds, max_parallel, backend = Path(args[0]), args[1], args[2], args[3], args[4]
    argv = ["--task", "text-classification", "--model_name_or_path", MODEL, "--dataset_name", DATASET,
            "--strategies", "linear_probe", "--train_sizes", sizes, "--seeds", seeds, "--scratch", "false",
            "--max_eval_samples", "200", "--max_parallel", max_parallel, "--backend", backend,
            "--report_to", "none", "--output_dir", str(out)]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    os.chdir(out.parent)  # Ray puts the driver's working directory first on its workers' path: not the repository's
    started = time.perf_counter()
    study_from_argv(argv)
    study_s = time.perf_counter() - started
    cells = {
        str(path.parent.relative_to(out)): {
            "wall_time": json.loads(path.read_text())["wall_time"],
            "train_runtime": json.loads((path.parent / "all_results.json").read_text()).get("train_runtime"),
        }
        for path in sorted(out.glob("runs/*/*/*/study_cell.json"))
    }
    result.write_text(json.dumps({"study_s": study_s, "cells": cells, "library": hf_transfer.__file__}))


def render(saved: dict) -> str:
    lines = [f"Command: `{saved['environment']['command']}`", ""]
    lines += harness.environment_lines(saved["environment"]) + [""]
    header = ["library", "cells", "study wall time", "sum of cells' own time", "study / sum", "process wall time",
              "slowest cell", "fastest cell", "load (1 min)"]  # fmt: skip
    table = []
    for run in saved["runs"]:
        times = [cell["wall_time"] for cell in run["cells"].values()]
        total = sum(times)
        table.append([run["label"], len(times), f"{run['study_s']:.1f} s", f"{total:.1f} s",
                      f"**{run['study_s'] / total:.2f}×**", f"{run['wall_s']:.1f} s", f"{max(times):.2f} s",
                      f"{min(times):.2f} s", harness.load_range([run])])  # fmt: skip
    lines += harness.markdown_table(header, table)
    return "\n".join(lines) + "\n"


def library_at(ref: str, into: Path) -> Path:
    """``hf_transfer/`` as it is at git ``ref``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "hf_transfer"], cwd=harness.REPO, capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    tar_path = into / "library.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    tar_path.unlink()
    return into


def main(argv: list[str] | None = None) -> None:
    parser = harness.argument_parser(
        __doc__, parts="study", out="output folder", out_default="outputs/benchmarks/study_workers"
    )
    parser.add_argument("--baseline", metavar="REF", help="also run the study on hf_transfer/ at this git commit")
    parser.add_argument("--sizes", default="8,16,32", help="--train_sizes of the study")
    parser.add_argument("--seeds", default="0,1,2", help="--seeds of the study")
    parser.add_argument("--max_parallel", default="1", help="--max_parallel of the study")
    parser.add_argument("--backend", default="local", help="--backend of the study (ray: a local Ray instance)")
    args = harness.parse_args(parser, argv, worker=worker, render=render)
    if args is None:
        return
    sizes, seeds = ("8", "0,1") if args.quick else (args.sizes, args.seeds)
    out = Path(args.out).resolve()
    shutil.rmtree(out / "studies", ignore_errors=True)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    runs = []
    with harness.session(BENCH, threads=THREADS, checkpoints=[MODEL], datasets=[DATASET]) as bench:
        environment = bench.environment(harness.command_line(__file__, argv), ["torch", "transformers"])
        libraries = []
        old_root = Path(tempfile.mkdtemp(prefix=f"{BENCH}-baseline-"))
        try:
            if args.baseline:
                libraries.append((f"`{args.baseline}` (baseline)", library_at(args.baseline, old_root)))
            libraries.append(("this tree", bench.library))
            for label, library in libraries:
                bench.clear_features()  # every study encodes its own features
                name = "baseline" if library != bench.library else "current"
                env = {**os.environ, **bench.env, "PYTHONPATH": str(library)}
                command = [sys.executable, str(Path(__file__).resolve()), harness.WORKER_FLAG,
                           str(out / "raw" / f"{name}.json"), str(out / "studies" / name), sizes, seeds,
                           args.max_parallel, args.backend]  # fmt: skip
                run = harness.run_worker(command, env, out / "logs" / f"{name}.log", out / "raw" / f"{name}.json",
                                         TIMEOUT_S)  # fmt: skip
                found = json.loads((out / "raw" / f"{name}.json").read_text())
                if not found["library"].startswith(str(library)):
                    raise RuntimeError(f"{name} imported {found['library']}, not {library}")
                runs.append({"label": label, "wall_s": run.seconds, "load_1min": run.load_1min, **found})
                print(f"{label}: study {found['study_s']:.1f} s, cells {len(found['cells'])}", flush=True)
        finally:
            shutil.rmtree(old_root, ignore_errors=True)
    saved = {"environment": environment, "runs": runs}
    harness.write_outputs(out, saved, render)


if __name__ == "__main__":
    main()
