"""The study report as a pure function of hand-written cell records: no training, known numbers in, known numbers out.

The main study is 2 checkpoints x {linear_probe, full} + scratch x sizes {5, 20, all} x seeds {0, 1}. Seed 0 scores
0.01 below a configuration's mean and seed 1 0.01 above, so every mean is the number in the table below and every
std is 0.01 * sqrt(2); the pool has 499 examples per class (not a round 500), so the label-saving factor must come
from the cells' actual training examples.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from PIL import Image

from hf_transfer.study.report import (
    CSV_FILENAME,
    EFFICIENCY_FIGURE,
    JSON_FILENAME,
    README_FILENAME,
    TIME_FIGURE,
    write_report,
)
from hf_transfer.study.summary import ALL, SCRATCH, CellResult, StudyFacts, format_duration, format_metric, summarize
from hf_transfer.study.transferability import RankingScore

A, B, C = "builtin:efficientnet_lite0", "timm/resnet50.a1_in1k", "timm/vit_tiny_patch16_224.augreg_in21k"
N_CLASSES = 10
POOL_PER_CLASS = 499
SEED_OFFSET = {0: -0.01, 1: 0.01}
SEED_STD = 0.01 * math.sqrt(2)

# (model, strategy label, size) -> (mean accuracy, train seconds of seed 0; seed 1 takes 10 % longer)
TABLE: dict[tuple[str, str, int | None], tuple[float, float]] = {
    (A, "linear_probe", 5): (0.85, 2.0),  # already beats A's scratch at all (0.80): 499 / 5 = 99.8x fewer labels
    (A, "linear_probe", 20): (0.880, 3.0),
    (A, "linear_probe", None): (0.90, 20.0),
    (A, "full", 5): (0.60, 30.0),
    (A, "full", 20): (0.882, 40.0),  # better than linear_probe by 0.002 < 0.5 % of the range: a tie, and slower
    (A, "full", None): (0.93, 300.0),
    (A, SCRATCH, 5): (0.30, 28.0),
    (A, SCRATCH, 20): (0.50, 38.0),
    (A, SCRATCH, None): (0.80, 280.0),
    (B, "linear_probe", 5): (0.70, 2.5),  # never reaches B's scratch at all (0.90)
    (B, "linear_probe", 20): (0.80, 3.5),
    (B, "linear_probe", None): (0.85, 25.0),
    (B, "full", 5): (0.55, 35.0),
    (B, "full", 20): (0.75, 45.0),
    (B, "full", None): (0.95, 350.0),  # matches only with every label: factor 1
    (B, SCRATCH, 5): (0.35, 33.0),
    (B, SCRATCH, 20): (0.60, 43.0),
    (B, SCRATCH, None): (0.90, 330.0),
}


def cell(model: str, label: str, size: int | None, seed: int, value: float, seconds: float, metric="accuracy"):
    """One cell as the runner would read it back; the metric is also written as macro F1 and loss, as the Trainer
    reports several."""
    strategy = "full" if label == SCRATCH else label
    per_class = POOL_PER_CLASS if size is None else size
    name = model.split("/")[-1].removeprefix("builtin:")
    return CellResult(
        model=model,
        strategy=strategy,
        from_scratch=label == SCRATCH,
        train_size=size,
        seed=seed,
        train_examples=per_class * N_CLASSES,
        metrics={
            f"eval_{metric}": value,
            "eval_macro_f1": value - 0.05,
            "eval_loss": 1.5 - value,
            "eval_runtime": 0.7,
        },
        train_runtime=seconds * (1 + 0.1 * seed),
        wall_time=seconds * (1 + 0.1 * seed) + 4.0,
        trainable_parameters=12_810 if label == "linear_probe" else 3_384_010,
        run_dir=f"runs/{name}/{label}/n{'all' if size is None else size}-s{seed}",
        frozen_features_encoded=1 if label == "linear_probe" and seed == 0 else 0,
        frozen_features_reused=1 if label == "linear_probe" and seed == 1 else 0,
    )


def make_cells(table=TABLE, metric: str = "accuracy") -> list[CellResult]:
    return [
        cell(model, label, size, seed, value + offset, seconds, metric)
        for (model, label, size), (value, seconds) in table.items()
        for seed, offset in SEED_OFFSET.items()
    ]


def make_facts(metric: str = "accuracy", greater_is_better: bool = True) -> StudyFacts:
    return StudyFacts(
        task="image-classification",
        metric=metric,
        greater_is_better=greater_is_better,
        eval_examples=750,
        eval_set="the 750 held-out digits (split seed 42), the same for every cell",
        dataset="the sklearn digits (10 classes)",
        command="hf-transfer study --dataset digits --models builtin:efficientnet_lite0 timm/resnet50.a1_in1k",
        total_wall_time=5432.1,
        n_classes=N_CLASSES,
    )


RANKING = [RankingScore(A, 1.5, 0.91, 500, 1280, 0.4), RankingScore(B, 0.9, 0.84, 500, 2048, 0.6)]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("study")
    return root, write_report(root, make_cells(), RANKING, make_facts())


def test_means_and_stds_equal_hand_computed_numbers(report):
    _, summary = report
    assert len(summary.groups) == len(TABLE)
    for (model, label, size), (value, seconds) in TABLE.items():
        group = summary.group(model, label, ALL if size is None else size)
        assert group.n_seeds == 2 and group.seeds == [0, 1]
        assert group.metric_mean == pytest.approx(value)
        assert group.metric_std == pytest.approx(SEED_STD)
        assert group.train_runtime_mean == pytest.approx(seconds * 1.05)
        assert group.train_runtime_std == pytest.approx(seconds * 0.1 / math.sqrt(2))
        assert group.best_seed == 1 and group.best_run_dir.endswith("-s1")
    assert summary.sizes == [5, 20, ALL] and summary.largest_size == ALL


def test_the_files_hold_the_same_numbers_as_the_cells(report):
    root, summary = report
    rows = list(csv.DictReader((root / CSV_FILENAME).open(encoding="utf-8")))
    assert len(rows) == len(make_cells())
    assert {"eval_accuracy", "eval_macro_f1", "eval_loss", "eval_runtime", "run_dir", "seed"} <= set(rows[0])
    document = json.loads((root / JSON_FILENAME).read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN
    assert len(document["cells"]) == len(rows) and document["facts"]["metric"] == "accuracy"
    assert document["cells"][0]["metrics"].keys() == {"eval_accuracy", "eval_macro_f1", "eval_loss", "eval_runtime"}
    for group in document["summary"]["groups"]:
        label = "scratch" if group["from_scratch"] else group["strategy"]
        seeds = [
            r
            for r in rows
            if (r["model"], r["run_dir"].split("/")[2], r["size"]) == (group["model"], label, str(group["size"]))
        ]
        assert len(seeds) == group["n_seeds"] == 2
        assert group["metric_mean"] == pytest.approx(statistics.fmean(float(r["eval_accuracy"]) for r in seeds))
        assert group["metric_std"] == pytest.approx(statistics.stdev(float(r["eval_accuracy"]) for r in seeds))
    assert document["summary"]["time"]["cells"] == len(rows)
    assert document["summary"]["time"]["frozen_features_reused"] == 6


def test_gain_over_scratch(report):
    _, summary = report
    gains = {(g.model, g.strategy, g.size): g.gain for g in summary.gains}
    assert len(gains) == 12  # every transfer group, none for scratch itself
    assert gains[(A, "linear_probe", 5)] == pytest.approx(0.85 - 0.30)
    assert gains[(B, "linear_probe", ALL)] == pytest.approx(0.85 - 0.90)  # transfer can lose


def test_data_efficiency_size_and_factor(report):
    _, summary = report
    rows = {(r.model, r.strategy): r for r in summary.data_efficiency}
    probe = rows[(A, "linear_probe")]
    assert probe.matching_size == 5 and probe.reference_size == ALL
    assert probe.label_saving_factor == pytest.approx(POOL_PER_CLASS / 5)  # the actual examples, not a nominal 500
    assert rows[(A, "full")].matching_size == 20
    assert rows[(A, "full")].label_saving_factor == pytest.approx(POOL_PER_CLASS / 20)
    assert rows[(B, "full")].matching_size == ALL and rows[(B, "full")].label_saving_factor == pytest.approx(1.0)


def test_a_strategy_that_never_matches_scratch_says_so(report):
    root, summary = report
    never = next(r for r in summary.data_efficiency if (r.model, r.strategy) == (B, "linear_probe"))
    assert never.matching_size is None and never.label_saving_factor is None
    assert (
        "`linear_probe` on `resnet50.a1_in1k` never matches scratch's accuracy" in (root / README_FILENAME).read_text()
    )


def test_recommendation_breaks_near_ties_by_training_time(report):
    _, summary = report
    chosen = {r.size: r for r in summary.recommendations}
    assert chosen[20].model == A and chosen[20].strategy == "linear_probe"  # full is 0.002 better but 13x slower
    assert chosen[20].tie_tolerance == pytest.approx(0.005 * (0.95 - 0.30))
    assert chosen[5].strategy == "linear_probe" and chosen[5].run_dir == "runs/efficientnet_lite0/linear_probe/n5-s1"
    assert (chosen[ALL].model, chosen[ALL].strategy) == (B, "full")


def test_a_clear_winner_is_kept_even_when_slower():
    table = {(A, "linear_probe", 20): (0.80, 1.0), (A, "full", 20): (0.90, 100.0), (A, SCRATCH, 20): (0.50, 90.0)}
    (recommendation,) = summarize(make_cells(table), [], make_facts()).recommendations
    assert recommendation.strategy == "full"


def test_kendall_tau_between_logme_and_fine_tuned_order(report):
    _, summary = report
    # LogME puts A first; fine-tuned at "all" A's best is 0.93 and B's 0.95: the two orders disagree.
    assert [(r.score.model, r.fine_tuned_best, r.fine_tuned_strategy) for r in summary.ranking] == [
        (A, pytest.approx(0.93), "full"),
        (B, pytest.approx(0.95), "full"),
    ]
    assert summary.kendall_tau == pytest.approx(-1.0)
    assert summary.kendall_tau_linear_probe == pytest.approx(-1.0)

    table = {**TABLE, (C, "full", None): (0.70, 100.0)}
    ranking = [*RANKING, RankingScore(C, 0.2, 0.5, 500, 192, 0.3)]
    three = summarize(make_cells(table), ranking, make_facts())
    assert three.kendall_tau == pytest.approx(1 / 3)  # (A,B) discordant, (A,C) and (B,C) concordant

    assert summarize(make_cells(), RANKING[:1], make_facts()).kendall_tau is None
    assert summarize(make_cells(), [], make_facts()).kendall_tau is None


def test_lower_is_better_flips_the_gain_and_the_choice(tmp_path):
    table = {
        (A, "linear_probe", 5): (0.50, 2.0),
        (A, "full", 5): (0.30, 30.0),
        (A, SCRATCH, 5): (0.80, 28.0),
        (A, "linear_probe", None): (0.40, 20.0),
        (A, "full", None): (0.10, 300.0),
        (A, SCRATCH, None): (0.45, 280.0),
    }
    summary = write_report(tmp_path, make_cells(table, "mse"), [], make_facts("mse", greater_is_better=False))
    gains = {(g.strategy, g.size): g.gain for g in summary.gains}
    assert gains[("linear_probe", 5)] == pytest.approx(0.80 - 0.50)  # lower mse than scratch: a positive gain
    assert gains[("full", ALL)] == pytest.approx(0.45 - 0.10)
    assert [(r.size, r.strategy) for r in summary.recommendations] == [(5, "full"), (ALL, "full")]
    assert summary.group(A, SCRATCH, 5).best_seed == 0  # the lower value is the better seed
    efficiency = {r.strategy: r.matching_size for r in summary.data_efficiency}
    assert efficiency == {"full": 5, "linear_probe": ALL}
    readme = (tmp_path / README_FILENAME).read_text()
    assert "MSE" in readme and "lower is better" in readme and "## Checkpoint ranking" not in readme


def test_readme_has_every_section_and_no_missing_values(report):
    root, _ = report
    text = (root / README_FILENAME).read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == [
        "Results",
        "Transfer gain over scratch",
        "Data efficiency",
        "Time",
        "Recommended configuration",
        "Checkpoint ranking",
        "Figures",
        "How it was run",
    ]
    assert not re.search(r"\b(None|nan|NaN|inf)\b", text)
    assert "| `efficientnet_lite0` | `linear_probe` | 0.850 ± 0.014 | 0.880 ± 0.014 | 0.900 ± 0.014 |" in text
    assert "*from scratch*" in text and "all (499/class)" in text
    assert "with 5 labels per class: 100× fewer labels" in text
    assert "Kendall τ between the LogME order and the fine-tuned order: -1.00" in text
    assert f"]({EFFICIENCY_FIGURE})" in text and f"]({TIME_FIGURE})" in text
    assert "runs/efficientnet_lite0/linear_probe/n5-s1" in text and make_facts().command in text
    card = ModelCard(text)
    assert "transfer-study" in card.data.tags


def test_a_seed_without_the_metric_is_left_out_not_shown_as_nan(tmp_path):
    cells = make_cells({(A, "linear_probe", 5): (0.8, 2.0), (A, SCRATCH, 5): (0.5, 20.0)})
    cells[0] = CellResult(**{**cells[0].__dict__, "metrics": {"eval_accuracy": math.nan}})
    summary = write_report(tmp_path, cells, [], make_facts())
    probe = summary.group(A, "linear_probe", 5)
    assert probe.n_seeds == 1 and probe.metric_mean == pytest.approx(0.81) and probe.metric_std is None
    text = (tmp_path / README_FILENAME).read_text()
    assert not re.search(r"\b(None|nan)\b", text)
    json.loads((tmp_path / JSON_FILENAME).read_text(), parse_constant=pytest.fail)


def test_figures_are_readable_pngs_and_rewrite_byte_identically(report, tmp_path):
    root, _ = report
    write_report(tmp_path, make_cells(), RANKING, make_facts())
    for name in (EFFICIENCY_FIGURE, TIME_FIGURE):
        with Image.open(root / name) as image:
            assert image.format == "PNG" and image.width >= 800 and image.height >= 400
        assert (root / name).read_bytes() == (tmp_path / name).read_bytes()
    assert (root / README_FILENAME).read_bytes() == (tmp_path / README_FILENAME).read_bytes()


def test_facts_as_the_runner_passes_them_and_failed_cells(tmp_path):
    """A dict is accepted, ``eval_accuracy`` means the metric ``accuracy``, and failures are reported, not hidden."""
    facts = {**make_facts().__dict__, "metric": "eval_accuracy", "failed_cells": ["resnet50 full n5 s2: CUDA OOM"]}
    summary = write_report(tmp_path, make_cells(), RANKING, facts)
    assert summary.metric == "accuracy" and summary.failed_cells == ["resnet50 full n5 s2: CUDA OOM"]
    text = (tmp_path / README_FILENAME).read_text()
    assert "**1 cell failed**" in text and "## Failed cells" in text and "- resnet50 full n5 s2: CUDA OOM" in text
    headline = summary.headline()
    assert "Recommended configuration at each size (Accuracy, higher is better)" in headline
    assert "runs/efficientnet_lite0/linear_probe/n5-s1" in headline and "+0.550" in headline
    assert "linear_probe on builtin:efficientnet_lite0 matches scratch at all with 5 labels per class" in headline
    assert "CUDA OOM" in headline
    with pytest.raises(TypeError, match="unknown study facts: metrc"):
        summarize(make_cells(), [], {**facts, "metrc": "accuracy"})


def test_numbers_are_written_for_humans():
    assert format_metric(0.91234567) == "0.912"
    assert format_metric(None) == format_metric(math.nan) == "—"
    assert [format_duration(s) for s in (0.25, 4.26, 42.0, 90.0, 7200.0)] == [
        "0.25 s",
        "4.3 s",
        "42 s",
        "1.5 min",
        "2.0 h",
    ]


def test_a_study_without_cells_is_refused():
    with pytest.raises(ValueError, match="at least one finished cell"):
        summarize([], [], make_facts())
