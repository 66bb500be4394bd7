"""Benchmark every transfer strategy: trainable parameters, peak memory, time per step and accuracy after one budget.

Usage (from the repository root)::

    .venv/bin/python benchmarks/strategies.py            # the full benchmark (~15 min on 2 idle CPU cores)
    .venv/bin/python benchmarks/strategies.py --quick    # smoke check of every code path (tiny budgets)
    .venv/bin/python benchmarks/strategies.py --parts image --strategies full,lora

Three parts, each configuration in a fresh subprocess so that memory is measured per configuration:

* ``image``: every strategy on the built-in EfficientNet-Lite0 + MNIST, through ``hf_transfer.fine_tune``;
* ``text``: every strategy on the built-in all-MiniLM-L6-v2 + Rotten Tomatoes, through ``hf_transfer.fine_tune``;
* ``vit``: the issue's memory target, LoRA vs full fine-tuning on a randomly initialised timm ViT, measured twice:
  by process RSS and, in separate processes, by the torch profiler's allocator-level memory timeline.

Markdown tables go to stdout and ``<out>/tables.md``; raw measurements to ``<out>/results.json``; one log per
configuration to ``<out>/logs/``. See ``benchmarks/README.md`` for what is measured and how.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

BENCH = "hf_transfer-strategies-bench"
REPO = harness.REPO
SEED = 0
WARMUP_STEPS = 3  # steps left out of the median step time (allocator and thread-pool warm-up, lazy optimizer state)
RSS_SAMPLE_INTERVAL_S = 0.005
MB = 1e6

FULL, HEAD = "full-model", "head/adapter"
LEARNING_RATES = {
    "image-classification": {FULL: 1e-3, HEAD: 1e-2},
    "text-classification": {FULL: 1e-4, HEAD: 3e-3},
}
NO_SOURCE_HEAD = "n/a (no source-task head)"


@dataclass(frozen=True)
class Variant:
    """One row of a strategy table: the library's ``--strategy`` value, its settings and its learning-rate family."""

    name: str  # the registered strategy this row benchmarks
    strategy: str  # what is passed as --strategy (e.g. 'full+wise_ft')
    family: str
    settings: dict[str, Any] = field(default_factory=dict)
    not_applicable: str | None = None  # why the row is expected to fail; it still runs, to quote the library's error


def variants(task: str, num_blocks: int) -> list[Variant]:
    """The twelve strategies in the issue's order, with settings that make each one do its thing within one epoch."""
    text = task == "text-classification"
    return [
        Variant("linear_probe", "linear_probe", HEAD),
        Variant("freeze", "freeze", FULL, {"freeze_blocks": num_blocks // 2}),
        Variant("full", "full", FULL),
        Variant("gradual_unfreeze", "gradual_unfreeze", FULL, {"unfreeze_every": 0.1}),
        Variant("llrd", "llrd", FULL),
        Variant("lora", "lora", HEAD),
        Variant("ia3", "ia3", HEAD),
        Variant("bitfit", "bitfit", HEAD),
        Variant("l2sp", "l2sp", FULL),
        Variant("lwf", "lwf", FULL, not_applicable=NO_SOURCE_HEAD if text else None),
        Variant("lp_ft", "lp_ft", FULL, {"lp_epochs": 0.3}),
        Variant("wise_ft", "full+wise_ft", FULL),
    ]


@dataclass(frozen=True)
class Budget:
    """The same data and steps for every strategy of a task."""

    train_samples: int
    eval_samples: int
    epochs: float
    batch_size: int
    image_size: int | None = None
    max_seq_length: int | None = None
    no_augment: bool = False  # one epoch is too short for augmentation to pay off; it would only slow learning


@dataclass(frozen=True)
class VitBudget:
    """The memory-target setting: a timm ViT, random init, a few steps on synthetic images."""

    model: str
    batch_size: int
    steps: int
    image_size: int = 224

    @property
    def key(self) -> str:
        return f"b{self.batch_size}"


BUDGETS = {
    "full": {
        "image-classification": Budget(600, 600, 1.0, 16, image_size=64, no_augment=True),
        # 600 reviews (38 steps) left freeze, gradual_unfreeze, llrd and lp_ft at chance at lr 1e-4: too few steps
        "text-classification": Budget(1200, 600, 1.0, 16, max_seq_length=48),
        # batch 16 is the realistic setting the target is judged on; batch 4 shows how the ratio moves with batch size
        "vit": (VitBudget("vit_small_patch16_224", 16, steps=3), VitBudget("vit_small_patch16_224", 4, steps=3)),
    },
    "quick": {
        "image-classification": Budget(32, 16, 1.0, 16, image_size=32, no_augment=True),
        "text-classification": Budget(32, 16, 1.0, 16, max_seq_length=16),
        "vit": (VitBudget("vit_small_patch16_224", 2, steps=2),),
    },
}
BLOCKS = {"image-classification": 16, "text-classification": 6}  # Lite0's and MiniLM's block-view block counts
MODELS = {"image-classification": "builtin:efficientnet_lite0", "text-classification": "builtin:all-MiniLM-L6-v2"}
DATASETS = {"image-classification": "builtin:mnist", "text-classification": "builtin:rotten_tomatoes"}


@dataclass
class Job:
    """What one subprocess runs; serialised to JSON between the parent and the worker."""

    kind: str  # 'transfer' (fine_tune on a task) | 'vit-rss' | 'vit-profile'
    name: str
    task: str = "image-classification"
    strategy: str = "full"
    settings: dict[str, Any] = field(default_factory=dict)
    family: str = FULL
    learning_rate: float = 1e-3
    budget: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- measurement


class Probe:
    """Trainer callback: RSS at train begin, peak RSS during training, wall time of every optimisation step.

    The peak is the kernel's exact high-water mark (``ru_maxrss``) when that rose during training, else the maximum of
    RSS sampled every 5 ms by a background thread (torch kernels release the GIL, so the thread keeps sampling).
    Step time runs from ``on_step_begin`` to ``on_step_end``: forward, backward, clipping and the optimizer step of an
    already-collated batch (the Trainer fetches the batch before ``on_step_begin``). On a shared machine contention
    only ever adds time, so the fastest step is kept beside the median; process CPU time is recorded too.
    """

    def __init__(self) -> None:
        import psutil
        from transformers import TrainerCallback

        self.process = psutil.Process()
        self.step_times: list[float] = []
        self.step_cpu_times: list[float] = []
        self.rss_begin = 0
        self.maxrss_begin = 0
        self.maxrss_end = 0
        self.sampled_peak = 0
        self.anon_begin = self.anon_peak = self.file_begin = self.file_end = 0
        self.trainable_at_end: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._cpu_started = 0.0
        self._model: Any = None
        probe = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                probe.train_begin(model)

            def on_step_begin(self, args, state, control, **kwargs):
                probe._started, probe._cpu_started = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kwargs):
                probe.step_times.append(time.perf_counter() - probe._started)
                probe.step_cpu_times.append(time.process_time() - probe._cpu_started)

            def on_train_end(self, args, state, control, model=None, **kwargs):
                probe.train_end()

        self.callback = Callback()

    def train_begin(self, model: Any) -> None:
        gc.collect()
        self._model = model
        self.rss_begin = self.process.memory_info().rss
        self.maxrss_begin = _maxrss_bytes()
        self.sampled_peak = self.rss_begin
        self.anon_begin, self.file_begin = _rss_parts()
        self.anon_peak = self.anon_begin
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.sampled_peak = max(self.sampled_peak, self.process.memory_info().rss)
            self.anon_peak = max(self.anon_peak, _rss_parts()[0])
            time.sleep(RSS_SAMPLE_INTERVAL_S)

    def train_end(self) -> None:
        self.maxrss_end = _maxrss_bytes()  # now: evaluation and WiSE-FT's sweep come after training
        self.file_end = _rss_parts()[1]
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._model is not None:
            self.trainable_at_end = sum(p.numel() for p in self._model.parameters() if p.requires_grad)

    def report(self) -> dict[str, Any]:
        exact = self.maxrss_end > self.maxrss_begin
        peak = self.maxrss_end if exact else self.sampled_peak
        skip = WARMUP_STEPS if len(self.step_times) > WARMUP_STEPS else 0
        timed, cpu = self.step_times[skip:], self.step_cpu_times[skip:]
        return {
            "rss_train_begin_mb": self.rss_begin / MB,
            "peak_rss_mb": peak / MB,
            "peak_rss_growth_mb": (peak - self.rss_begin) / MB,
            "peak_source": "ru_maxrss" if exact else "sampled",
            # RSS counts file-backed pages too (the memory-mapped dataset, shared libraries): the anonymous part alone
            "peak_anon_growth_mb": (self.anon_peak - self.anon_begin) / MB,
            "file_backed_growth_mb": (self.file_end - self.file_begin) / MB,
            "steps": len(self.step_times),
            "median_step_s": statistics.median(timed) if timed else None,
            "min_step_s": min(timed) if timed else None,
            "median_step_cpu_s": statistics.median(cpu) if cpu else None,
            "step_times_s": [round(t, 4) for t in self.step_times],
            "step_cpu_times_s": [round(t, 4) for t in self.step_cpu_times],
            "trainable_at_end": self.trainable_at_end,
        }


def _rss_parts() -> tuple[int, int]:
    """(anonymous, file-backed) resident bytes of this process, from /proc/self/status (Linux)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("RssAnon:", "RssFile:")):
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0]) * 1024
    return fields.get("RssAnon", 0), fields.get("RssFile", 0)


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def _quiet_training_arguments(task: str, output_dir: str, **overrides: Any):
    import hf_transfer as ht

    return ht.default_training_arguments(
        task,
        output_dir=output_dir,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        logging_steps=5,
        disable_tqdm=True,
        seed=SEED,
        data_seed=SEED,
        dataloader_num_workers=0,
        **overrides,
    )


# --------------------------------------------------------------------------------------------------- workers


def run_transfer(job: Job) -> dict[str, Any]:
    """One strategy on one task through the public API (``fine_tune``), with the probe on its Trainer."""
    import hf_transfer as ht

    budget = Budget(**job.budget)
    probe = Probe()
    with tempfile.TemporaryDirectory(prefix="bench-") as output_dir:
        config = ht.RecipeConfig(
            task=job.task,
            model=ht.ModelArguments(model_name_or_path=MODELS[job.task]),
            data=ht.DataArguments(
                dataset_name=DATASETS[job.task],
                max_train_samples=budget.train_samples,
                max_eval_samples=budget.eval_samples,
                image_size=budget.image_size,
                max_seq_length=budget.max_seq_length,
                no_augment=budget.no_augment,
            ),
            strategy=ht.StrategyArguments(strategy=job.strategy, **job.settings),
            training=_quiet_training_arguments(
                job.task,
                output_dir,
                num_train_epochs=budget.epochs,
                learning_rate=job.learning_rate,
                per_device_train_batch_size=budget.batch_size,
            ),
        )
        result = ht.fine_tune(config, callbacks=[probe.callback])
        resolved = json.loads(Path(output_dir, "hf_transfer_config.json").read_text())
    metrics = result.metrics
    return {
        **probe.report(),
        "trainable_parameters": result.trainable_parameters,
        "total_parameters": result.total_parameters,
        "eval_accuracy": metrics.get("eval_accuracy"),
        "train_loss": metrics.get("train_loss"),
        "train_runtime_s": metrics.get("train_runtime"),
        "train_samples": metrics.get("train_samples"),
        "eval_samples": metrics.get("eval_samples"),
        "pooling": resolved["model"].get("pooling"),
        "extra": {k: v for k, v in metrics.items() if k.startswith(("wise_ft_", "l2sp_", "lwf_"))},
        "log_history": [e for e in result.trainer.state.log_history if "loss" in e],
    }


def _vit_trainer(job: Job, output_dir: str, probe: Probe | None):
    """The library's own Trainer (``prepare`` → ``build_transfer_trainer``, as ``fine_tune`` builds it) on a randomly
    initialised timm ViT and an imagefolder of synthetic images (memory does not depend on the weights)."""
    import numpy as np
    from PIL import Image

    import hf_transfer as ht

    budget = VitBudget(**job.budget)
    images = Path(output_dir, "images")
    rng = np.random.default_rng(SEED)
    count = budget.batch_size * budget.steps + 20  # enough for the steps after the 15 % validation hold-out
    for index in range(count):
        folder = images / str(index % 10)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (budget.image_size, budget.image_size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
    config = ht.RecipeConfig(
        model=ht.ModelArguments(model_name_or_path=budget.model, from_scratch=True),
        data=ht.DataArguments(train_dir=str(images), image_size=budget.image_size, no_augment=True),
        strategy=ht.StrategyArguments(strategy=job.strategy, **job.settings),
        training=_quiet_training_arguments(
            "image-classification",
            str(Path(output_dir, "run")),
            max_steps=budget.steps,
            learning_rate=job.learning_rate,
            per_device_train_batch_size=budget.batch_size,
        ),
    )
    prepared = ht.prepare(config)
    return ht.build_transfer_trainer(prepared, callbacks=[probe.callback] if probe else [], eval_dataset=None)


def run_vit_rss(job: Job) -> dict[str, Any]:
    """Peak RSS growth over a few training steps of the ViT, relative to the process right before the first step."""
    from hf_transfer.training.trainer import parameter_counts

    probe = Probe()
    with tempfile.TemporaryDirectory(prefix="bench-vit-") as output_dir:
        trainer = _vit_trainer(job, output_dir, probe)
        trainable, total = parameter_counts(trainer.model)
        trainer.train()
        optimizer = trainer.args.optim
    return {
        **probe.report(),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "optimizer": str(getattr(optimizer, "value", optimizer)),
    }


# torch.profiler._memory_profiler's column order in export_memory_timeline (index 0 is unused)
PROFILER_CATEGORIES = [
    "unused",
    "parameter",
    "optimizer_state",
    "input",
    "temporary",
    "activation",
    "gradient",
    "autograd_detail",
    "unknown",
]


def run_vit_profile(job: Job) -> dict[str, Any]:
    """The same steps under ``torch.profiler`` (``profile_memory``): live tensor bytes by category at their peak.

    A separate process from the RSS run: the profiler's own event buffers would inflate RSS.
    """
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory(prefix="bench-vit-") as output_dir:
        trainer = _vit_trainer(job, output_dir, None)
        gc.collect()
        with profile(
            activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
        ) as prof:
            trainer.train()
        timeline_path = Path(output_dir, "memory_timeline.json")
        prof.export_memory_timeline(str(timeline_path), device="cpu")
        _, sizes = json.loads(timeline_path.read_text())
    totals = [sum(row) for row in sizes]
    peak_index = max(range(len(totals)), key=totals.__getitem__)
    before = sizes[0]  # tensors that existed before training (weights, the synthetic data): the baseline
    at_peak = {name: (sizes[peak_index][i] - before[i]) / MB for i, name in enumerate(PROFILER_CATEGORIES) if i}
    return {
        "tensors_before_mb": totals[0] / MB,
        "peak_tensors_mb": totals[peak_index] / MB,
        "peak_growth_mb": (totals[peak_index] - totals[0]) / MB,
        "growth_at_peak_by_category_mb": at_peak,
        "weights_mb": before[PROFILER_CATEGORIES.index("parameter")] / MB,
    }


WORKERS = {"transfer": run_transfer, "vit-rss": run_vit_rss, "vit-profile": run_vit_profile}


def worker_main(result_path: Path, args: list[str]) -> None:
    """Runs in the subprocess (``--worker RESULT JOB``): the job its JSON file describes."""
    harness.start_worker()
    job = Job(**json.loads(Path(args[0]).read_text()))
    started = time.perf_counter()
    result = WORKERS[job.kind](job)
    result["wall_s"] = time.perf_counter() - started
    Path(result_path).write_text(json.dumps(result, indent=2, default=str))


# --------------------------------------------------------------------------------------------------- the parent


def build_jobs(mode: str, parts: list[str], only: set[str] | None) -> tuple[list[Job], dict[str, list[Variant]]]:
    """Every configuration to run, and the strategy rows per task."""
    import hf_transfer as ht

    jobs: list[Job] = []
    rows: dict[str, list[Variant]] = {}
    budgets = BUDGETS[mode]
    for task in ("image-classification", "text-classification"):
        if task.split("-")[0] not in parts:
            continue
        table = variants(task, BLOCKS[task])
        missing = set(ht.list_strategies()) - {v.name for v in table}
        if missing:
            raise SystemExit(f"registered strategies without a benchmark row: {sorted(missing)}; add to variants()")
        rows[task] = [v for v in table if only is None or v.name in only]
        for v in rows[task]:
            jobs.append(
                Job(
                    kind="transfer",
                    name=f"{task.split('-')[0]}-{v.name}",
                    task=task,
                    strategy=v.strategy,
                    settings=v.settings,
                    family=v.family,
                    learning_rate=LEARNING_RATES[task][v.family],
                    budget=dataclasses.asdict(budgets[task]),
                )
            )
    if "vit" in parts:
        for vit in budgets["vit"]:
            for kind in ("vit-rss", "vit-profile"):
                for strategy in ("full", "lora"):
                    name = f"{kind}-{strategy}-{vit.key}"
                    budget = dataclasses.asdict(vit)
                    jobs.append(Job(kind=kind, name=name, strategy=strategy, learning_rate=1e-3, budget=budget))
    return jobs, rows


def run_job(bench: harness.Bench, job: Job, out_dir: Path, timeout_s: int) -> dict[str, Any]:
    """Run one job in a fresh interpreter; a failure is recorded (with its last error line), not raised."""
    job_path, result_path = out_dir / "jobs" / f"{job.name}.json", out_dir / "jobs" / f"{job.name}.result.json"
    job_path.parent.mkdir(parents=True, exist_ok=True)
    job_path.write_text(json.dumps(dataclasses.asdict(job)))
    log = out_dir / "logs" / f"{job.name}.log"
    run = bench.run(__file__, [str(job_path)], log, result_path, timeout_s, check=False)
    timing = {"process_s": run.seconds, "load_1min": run.load_1min}
    if run.ok:
        return {"ok": True, **timing, **json.loads(result_path.read_text())}
    return {"ok": False, **timing, "error": run.error}


def _fmt_params(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def _settings_text(v: Variant) -> str:
    text = f"`{v.strategy}`"
    if v.settings:
        text += " " + " ".join(f"`--{k} {val}`" for k, val in v.settings.items())
    return text


STRATEGY_COLUMNS = (
    "strategy",
    "lr",
    "trainable params",
    "RSS at train begin (MB)",
    "peak RSS growth (MB) (anonymous only)",
    "step ms: median (fastest)",
    "train loss",
    "val accuracy",
    "notes",
)


def strategy_table(task: str, rows: list[Variant], results: dict[str, dict[str, Any]]) -> str:
    return "\n".join(harness.markdown_table(STRATEGY_COLUMNS, (_strategy_row(task, v, results) for v in rows)))


def _strategy_row(task: str, v: Variant, results: dict[str, dict[str, Any]]) -> list[str]:
    lr = LEARNING_RATES[task][v.family]
    r = results.get(f"{task.split('-')[0]}-{v.name}", {"ok": False, "error": "not run"})
    if v.not_applicable and not r["ok"]:
        return [_settings_text(v), *["–"] * 7, f"{v.not_applicable}; the library says: {r['error']}"]
    if not r["ok"]:
        return [_settings_text(v), f"{lr:g}", *["–"] * 5, "**failed**", r["error"]]
    share = 100.0 * r["trainable_parameters"] / r["total_parameters"]
    notes = []
    if r.get("trainable_at_end") is not None and r["trainable_at_end"] != r["trainable_parameters"]:
        notes.append(f"{_fmt_params(r['trainable_at_end'])} trainable at the last step")
    if task == "text-classification":
        notes.append(f"{r['pooling']} pooling")
    sweep = {k: val for k, val in r["extra"].items() if k.startswith("wise_ft_alpha_")}
    if sweep:
        parts = ", ".join(f"α={k.split('_')[3]}: {val:.3f}" for k, val in sweep.items())
        notes.append(f"best α={r['extra']['wise_ft_best_alpha']:g} of {parts}")
    return [
        _settings_text(v),
        f"{lr:g}",
        f"{_fmt_params(r['trainable_parameters'])} ({share:.2f} %)",
        f"{r['rss_train_begin_mb']:.0f}",
        f"{r['peak_rss_growth_mb']:.0f} ({r['peak_anon_growth_mb']:.0f})",
        f"{r['median_step_s'] * 1000:.0f} ({r['min_step_s'] * 1000:.0f})",
        f"{r['train_loss']:.3f}",
        f"{r['eval_accuracy']:.3f}",
        "; ".join(notes),
    ]


VIT_COLUMNS = (
    "strategy",
    "batch",
    "trainable params",
    "RSS before step 1 (MB)",
    "peak RSS growth (MB) (anonymous only)",
    "RSS ratio vs full",
    "tensor peak growth (MB)",
    "tensor ratio vs full",
    "at the tensor peak: optimizer state / gradients / activations+autograd / other (MB)",
    "step s: median (fastest)",
)


def vit_table(budgets: tuple[VitBudget, ...], results: dict[str, dict[str, Any]]) -> str:
    rows = (_vit_row(b, s, results) for b in budgets for s in ("full", "lora"))
    return "\n".join(harness.markdown_table(VIT_COLUMNS, rows))


def _vit_row(budget: VitBudget, strategy: str, results: dict[str, dict[str, Any]]) -> list[str]:
    rss_full = results.get(f"vit-rss-full-{budget.key}", {})
    prof_full = results.get(f"vit-profile-full-{budget.key}", {})
    rss = results.get(f"vit-rss-{strategy}-{budget.key}", {})
    prof = results.get(f"vit-profile-{strategy}-{budget.key}", {})
    cells = [f"`{strategy}`", str(budget.batch_size)]
    if rss.get("ok"):
        ratio = rss["peak_rss_growth_mb"] / rss_full["peak_rss_growth_mb"] if rss_full.get("ok") else None
        cells += [
            _fmt_params(rss["trainable_parameters"]),
            f"{rss['rss_train_begin_mb']:.0f}",
            f"{rss['peak_rss_growth_mb']:.0f} ({rss['peak_anon_growth_mb']:.0f})",
            f"{ratio:.2f}" if ratio is not None else "–",
        ]
    else:
        cells += ["–", "–", f"failed: {rss.get('error', 'not run')}", "–"]
    if prof.get("ok"):
        ratio = prof["peak_growth_mb"] / prof_full["peak_growth_mb"] if prof_full.get("ok") else None
        c = prof["growth_at_peak_by_category_mb"]
        other = c["input"] + c["temporary"] + c["unknown"] + c["parameter"]
        cells += [
            f"{prof['peak_growth_mb']:.0f}",
            f"{ratio:.2f}" if ratio is not None else "–",
            f"{c['optimizer_state']:.0f} / {c['gradient']:.0f} / {c['activation'] + c['autograd_detail']:.0f} "
            f"/ {other:.0f}",
        ]
    else:
        cells += [f"failed: {prof.get('error', 'not run')}", "–", "–"]
    if rss.get("ok") and rss["median_step_s"]:
        cells.append(f"{rss['median_step_s']:.1f} ({rss['min_step_s']:.1f})")
    else:
        cells.append("–")
    return cells


def render(mode: str, env: dict[str, str], rows: dict[str, list[Variant]], results: dict, total_s: float) -> str:
    budgets = BUDGETS[mode]
    measured_load = any(r.get("load_1min") for r in results.values())
    out = [f"Mode: {mode}. Total wall time: {total_s / 60:.1f} min.", ""]
    out += harness.environment_lines(env)
    if measured_load:
        out.append(f"- 1-min load average before/after each configuration: {harness.load_range(results.values())}")
    for task, title in (("image-classification", "EfficientNet-Lite0 on MNIST"), ("text-classification", "MiniLM")):
        if task not in rows:
            continue
        b = budgets[task]
        size = f"{b.image_size} px" if b.image_size else f"max_seq_length {b.max_seq_length}"
        steps = math.ceil(b.train_samples / b.batch_size) * math.ceil(b.epochs)
        lrs = ", ".join(f"{family} {lr:g}" for family, lr in LEARNING_RATES[task].items())
        out += [
            "",
            f"### {title} (`{MODELS[task]}` on `{DATASETS[task]}`)",
            "",
            f"Budget: {b.train_samples} train / {b.eval_samples} validation samples, {b.epochs:g} epoch, batch "
            f"{b.batch_size} ({steps} steps), {size}{', no augmentation' if b.no_augment else ''}, seed {SEED}. "
            f"Learning rates: {lrs}.",
            "",
            strategy_table(task, rows[task], results),
        ]
    if any(k.startswith("vit-") for k in results):
        v = budgets["vit"][0]
        sizes = " and ".join(str(b.batch_size) for b in budgets["vit"])
        out += [
            "",
            f"### Memory target: LoRA vs full fine-tuning on `{v.model}` (random init)",
            "",
            f"Batch {sizes} at {v.image_size} px, {v.steps} training steps each, 10 classes, synthetic data; ratios "
            "are against `full` at the same batch size.",
            "",
            vit_table(budgets["vit"], results),
        ]
    return "\n".join(out) + "\n"


def render_saved(saved: dict[str, Any]) -> str:
    """The tables of an earlier run's results.json."""
    _, rows = build_jobs(saved["mode"], ["image", "text"], None)
    rows = {task: r for task, r in rows.items() if any(k.startswith(task.split("-")[0]) for k in saved["results"])}
    return render(saved["mode"], saved["environment"], rows, saved["results"], saved["total_s"])


def main(argv: list[str] | None = None) -> None:
    parser = harness.argument_parser(
        __doc__.split("\n\n")[0],
        parts="image,text,vit",
        out="output folder (default: outputs/benchmarks[-quick])",
        formatter=argparse.HelpFormatter,
        threads=2,
        timeout=1200,
    )
    parser.add_argument("--strategies", default=None, help="comma-separated subset of the strategy rows")
    args = harness.parse_args(parser, argv, worker=worker_main, render=render_saved)
    if args is None:
        return
    mode = "quick" if args.quick else "full"
    out_dir = Path(args.out or REPO / "outputs" / ("benchmarks-quick" if args.quick else "benchmarks"))
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    only = {s.strip() for s in args.strategies.split(",")} if args.strategies else None
    tasks = [task for task in MODELS if task.split("-")[0] in parts]
    command = harness.command_line(__file__, argv)
    with harness.session(
        BENCH,
        threads=args.threads,
        checkpoints=[MODELS[task] for task in tasks],
        datasets=[DATASETS[task] for task in tasks],
    ) as bench:
        jobs, rows = build_jobs(mode, parts, only)
        env = bench.environment(command, ("torch", "transformers", "timm", "peft"))
        started = time.perf_counter()
        results: dict[str, dict[str, Any]] = {}
        for number, job in enumerate(jobs, start=1):
            result = run_job(bench, job, out_dir, args.timeout)
            results[job.name] = result
            status = f"{result['process_s']:.0f} s" if result["ok"] else f"FAILED: {result['error']}"
            print(f"[{number}/{len(jobs)}] {job.name}: {status}", flush=True)
        total = time.perf_counter() - started
    (out_dir / "results.json").write_text(
        json.dumps({"mode": mode, "environment": env, "total_s": total, "results": results}, indent=2, default=str)
    )
    tables = render(mode, env, rows, results, total)
    (out_dir / "tables.md").write_text(tables)
    print("\n" + tables)


if __name__ == "__main__":
    main()
