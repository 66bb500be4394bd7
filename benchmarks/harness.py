"""What every benchmark script here shares: a frozen copy of the library, a fresh feature cache, the measured
subprocess, the record of the machine, and the markdown tables.

A benchmark opens one :func:`session` per invocation and runs each configuration through :meth:`Bench.run`: a fresh
interpreter that imports the library snapshot, writes its result to a JSON file and is timed from outside.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Every measured process: offline, one thread unless a benchmark's --threads says otherwise, quiet progress.
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "warning",
    "PYTHONUNBUFFERED": "1",
}
WORKER_FLAG = "--worker"  # a measured process: ``script --worker RESULT ARGS...`` runs the script's worker


def snapshot_library(prefix: str) -> tuple[Path, str]:
    """Copy the working tree's ``hf_transfer/`` to a temporary folder that every subprocess imports first: the library
    may be edited while a benchmark runs, and one run must measure one version throughout (half the rows would
    otherwise time another library). Returns the folder and the sha256 of the copied files' paths and contents."""
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-lib-"))
    shutil.copytree(REPO / "hf_transfer", root / "hf_transfer", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for file in sorted(p for p in (root / "hf_transfer").rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return root, digest.hexdigest()


def temporary_cache(normal: Path, prefix: str) -> Path:
    """A fresh HF_TRANSFER_CACHE whose checkpoints and datasets are the normal cache's (symlinked): no run reuses
    another benchmark's frozen features, and nothing is downloaded or converted twice."""
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    for name in ("checkpoints", "datasets"):
        (normal / name).mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(normal / name, target_is_directory=True)
    return root


def remove_temporary_cache(root: Path) -> None:
    for name in ("checkpoints", "datasets"):  # the links only, never what they point to
        if (root / name).is_symlink():
            (root / name).unlink()
    shutil.rmtree(root, ignore_errors=True)


def git_commit() -> str:
    """The short commit, and whether the working tree differs from it."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return out.stdout.strip() + (" (working tree has uncommitted changes)" if dirty.strip() else "")
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class WorkerRun:
    """One measured process, seen from outside: wall and CPU time, the 1-min load average before and after it."""

    seconds: float
    cpu_s: float
    load_1min: list[float]
    error: str | None = None  # None: it exited 0 and wrote its result file

    @property
    def ok(self) -> bool:
        return self.error is None


def failure_reason(output: str, returncode: int) -> str:
    """One line for a failed process: its last line that mentions an error, else its last line."""
    if returncode == -1:
        return "timed out"
    lines = output.strip().splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    return (errors[-1] if errors else (lines[-1] if lines else "no output")).strip()[:300]


def run_worker(
    command: list[str], env: dict[str, str], log: Path, result: Path, timeout_s: int, *, check: bool = True
) -> WorkerRun:
    """Run one measured process, keep its output in ``log`` and time it. A failure (non-zero exit, time limit, no
    ``result`` file) raises with the log's tail, so a benchmark never tabulates a run that did not finish; with
    ``check=False`` it is returned as ``error`` instead, for benchmarks whose tables report failed rows."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    load_before, cpu_before = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
        output, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        output, returncode = f"{err.stdout or ''}{err.stderr or ''}\nTIMED OUT after {timeout_s} s", -1
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = output if isinstance(output, str) else str(output)
    log.write_text(output)
    failed = returncode != 0 or not result.is_file()
    if failed and check:
        raise RuntimeError(f"{log.stem} failed; see {log}:\n{output[-3000:]}")
    return WorkerRun(
        seconds=seconds,
        cpu_s=(cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime),
        load_1min=[load_before, os.getloadavg()[0]],
        error=failure_reason(output, returncode) if failed else None,
    )


def parse_args(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    *,
    worker: Callable[[Path, list[str]], None],
    render: Callable[[dict[str, Any]], str] | None = None,
) -> argparse.Namespace | None:
    """A benchmark's command line. ``--worker RESULT ARGS...`` (a measured process, see :meth:`Bench.run`) runs
    ``worker(RESULT, ARGS)``; ``--render RESULTS_JSON`` prints ``render`` of that saved run; both return None.
    Otherwise the parsed flags of a benchmark run."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER_FLAG]:
        worker(Path(argv[1]), argv[2:])
        return None
    args = parser.parse_args(argv)
    if render is not None and args.render:
        print(render(json.loads(Path(args.render).read_text())), end="")
        return None
    return args


def split_choices(parser: argparse.ArgumentParser, flag: str, value: str, allowed: Sequence[str]) -> list[str]:
    """A comma-separated flag's values; none, or one not in ``allowed``, is a usage error that names the choices."""
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        parser.error(f"{flag}: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
    return chosen


def argument_parser(
    description: str,
    *,
    parts: str,
    out: str,
    quick: str = "tiny budgets: a smoke check of every code path",
    more_parts: str = "",
    out_default: str | None = None,
    threads: int | None = None,
    timeout: int | None = None,
    render: bool = True,
    formatter: type[argparse.HelpFormatter] = argparse.RawDescriptionHelpFormatter,
) -> argparse.ArgumentParser:
    """The flags the benchmarks share: ``--quick`` (help ``quick``), ``--parts`` (default ``parts``; ``more_parts``
    run only when named), ``--out`` (help ``out``); ``--threads`` and ``--timeout`` where given a default; with
    ``render``, ``--render`` to print the tables of an earlier run again."""
    parser = argparse.ArgumentParser(description=description, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    also = f", or also {more_parts} (default {parts})" if more_parts else ""
    parser.add_argument("--parts", default=parts, help=f"comma-separated subset of {parts}{also}")
    parser.add_argument("--out", default=out_default, help=out)
    if threads is not None:
        threads_help = f"torch/OpenMP threads per configuration (default {threads})"
        parser.add_argument("--threads", type=int, default=threads, help=threads_help)
    if timeout is not None:
        parser.add_argument("--timeout", type=int, default=timeout, help="seconds allowed per configuration")
    if render:
        render_help = "print the tables of an earlier run's results.json"
        parser.add_argument("--render", metavar="RESULTS_JSON", help=render_help)
    return parser


def command_line(script: str, argv: list[str] | None) -> str:
    """How this benchmark was started, from the repository root, for the record."""
    return shlex.join(
        [".venv/bin/python", f"benchmarks/{Path(script).name}", *(sys.argv[1:] if argv is None else argv)]
    )


def start_worker() -> None:
    """First thing in a measured process: torch uses the thread count its environment names."""
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# ------------------------------------------------------------------------------------------------------ the session


@dataclass
class Bench:
    """One benchmark invocation: the library snapshot every process imports, the temporary cache, the worker env."""

    name: str
    threads: int
    library: Path
    digest: str
    normal_cache: Path
    cache: Path
    env: dict[str, str]  # what every measured process gets on top of os.environ
    folders: dict[str, str] = field(default_factory=dict)  # built-in reference → its folder in the normal cache

    def run(
        self, script: str, args: Sequence[str], log: Path, result: Path, timeout_s: int, *, check: bool = True
    ) -> WorkerRun:
        """``python <script> --worker <result> <args>`` as one measured process on the snapshot and the temporary
        cache (see :func:`parse_args`)."""
        command = [sys.executable, str(Path(script).resolve()), WORKER_FLAG, str(result), *args]
        return run_worker(command, {**os.environ, **self.env}, log, result, timeout_s, check=check)

    def clear_features(self) -> None:
        """Empty the temporary cache's frozen features, for a run that must not reuse another run's."""
        shutil.rmtree(self.cache / "features", ignore_errors=True)

    def environment(self, command: str, packages: Sequence[str]) -> dict[str, str]:
        """The machine, the versions and the library copy, recorded with every result."""
        import psutil
        import torch

        import hf_transfer

        return {
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(),
            **{package: _version(package) for package in packages},
            "cpu": f"{os.cpu_count()} logical cores ({platform.processor() or platform.machine()}), "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"GPU: {'yes' if torch.cuda.is_available() else 'none'}",
            "threads": f"torch.set_num_threads({self.threads}) and OMP_NUM_THREADS={self.threads} in every "
            "configuration",
            "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "hf_transfer": f"{hf_transfer.__version__}: a copy of {REPO / 'hf_transfer'} taken at the start (files' "
            f"sha256 {self.digest[:16]}), imported by every configuration from {self.library}",
            "repository_commit": git_commit(),
        }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def materialise_builtins(
    env: dict[str, str], checkpoints: Sequence[str], datasets: Sequence[str], imports: Sequence[str] = ()
) -> tuple[Path, dict[str, str]]:
    """Materialise built-in checkpoints and datasets in the normal cache, untimed, in one process that also imports
    ``imports`` and reads every checkpoint file, so that no timed run pays a conversion or a first use of the page
    cache. Returns the normal cache's root and each reference's folder."""
    code = (
        "import importlib, json, sys\n"
        "from pathlib import Path\n"
        "from hf_transfer._cache import cache_dir\n"
        "from hf_transfer.models.builtin import builtin_checkpoint_dir\n"
        "from hf_transfer.data.builtin import builtin_dataset_dir\n"
        "checkpoints, datasets, modules = json.loads(sys.argv[1])\n"
        "folders = {name: str(builtin_checkpoint_dir(name)) for name in checkpoints}\n"
        "folders.update({name: str(builtin_dataset_dir(name)) for name in datasets})\n"
        "for module in modules:\n"
        "    importlib.import_module(module)\n"
        "for name in checkpoints:\n"
        "    for f in Path(folders[name]).rglob('*'):\n"
        "        f.is_file() and f.read_bytes()\n"
        "print(json.dumps({'cache': str(cache_dir()), 'folders': folders}))\n"
    )
    wanted = json.dumps([list(checkpoints), list(datasets), list(imports)])
    proc = subprocess.run(
        [sys.executable, "-c", code, wanted], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"materialising the built-ins failed:\n{proc.stderr[-3000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return Path(found["cache"]), found["folders"]


@contextmanager
def session(
    name: str,
    *,
    threads: int,
    checkpoints: Sequence[str] = (),
    datasets: Sequence[str] = (),
    imports: Sequence[str] = (),
    extra_env: dict[str, str] | None = None,
    keep_cache: bool = False,
) -> Iterator[Bench]:
    """Snapshot the library, set the workers' environment (``threads`` OpenMP/torch threads), materialise the
    built-ins, open a temporary cache; on exit remove the snapshot and the cache (``keep_cache`` keeps the cache).

    The parent sees what workers see: the worker variables it lacks are set in ``os.environ`` and the snapshot goes
    first on ``sys.path``, so the parent's own imports of ``hf_transfer`` (if not done already) use the same copy."""
    env = {**WORKER_ENV, **(extra_env or {}), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    library, digest = snapshot_library(name)
    sys.path.insert(0, str(library))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(library), os.environ.get("PYTHONPATH")]))
    cache: Path | None = None
    try:
        normal, folders = materialise_builtins(env, checkpoints, datasets, imports)
        cache = temporary_cache(normal, name)
        env["HF_TRANSFER_CACHE"] = str(cache)
        print(f"hf_transfer snapshot {digest[:16]} in {library}", flush=True)
        print(f"temporary HF_TRANSFER_CACHE {cache} (checkpoints, datasets -> {normal})", flush=True)
        yield Bench(name, threads, library, digest, normal, cache, env, folders)
    finally:
        shutil.rmtree(library, ignore_errors=True)
        if cache is not None:
            if keep_cache:
                print(f"kept {cache}", flush=True)
            else:
                remove_temporary_cache(cache)


# ------------------------------------------------------------------------------------------------------- the tables


def write_outputs(out: Path, saved: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> str:
    """``<out>/results.json`` (the raw numbers) and ``<out>/tables.md`` (their rendering), printed too."""
    (out / "results.json").write_text(json.dumps(saved, indent=2))
    tables = render(saved)
    (out / "tables.md").write_text(tables)
    print(tables)
    return tables


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table's lines; a row with another number of cells than the header raises, so that a column added
    to one side only cannot shift the rest."""
    lines = [_table_row(header), _table_row(["---"] * len(header))]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells, the header {len(header)}: {row}")
        lines.append(_table_row(row))
    return lines


def _table_row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def environment_lines(env: dict[str, str]) -> list[str]:
    """The recorded environment as a markdown list (the command as code)."""
    return [f"- {key}: `{value}`" if key == "command" else f"- {key}: {value}" for key, value in env.items()]


def load_range(runs: Iterable[dict[str, Any]], digits: int = 1, between: str = " to ") -> str:
    """The lowest and highest 1-min load average recorded before and after ``runs``, or '–' for none."""
    loads = [x for r in runs for x in r.get("load_1min", [])]
    return f"{min(loads):.{digits}f}{between}{max(loads):.{digits}f}" if loads else "–"
