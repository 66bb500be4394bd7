"""The bundled `evaluate` metrics: what they compute on hand-checked cases, and that a run pays for importing
`evaluate` only when it evaluates (a few-label run with no hold-out never does)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO

PROBE = """
import json, sys
import numpy as np
from transformers import EvalPrediction
from hf_transfer.config import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from hf_transfer.training.task_metrics import metrics_for

tasks = {name: metrics_for(kind, labels) for name, kind, labels in
         (("single", SINGLE_LABEL, 12), ("multi", MULTI_LABEL, 3), ("regression", REGRESSION, 1))}
before = "evaluate" in sys.modules
# 12 classes, 4 examples: argmax 0, 1, 2, 3 against labels 0, 1, 2, 5; label 5 is 6th of example 3's logits
logits = np.full((4, 12), -1.0)
for row, top in enumerate((0, 1, 2, 3)):
    logits[row, top] = 1.0
logits[3, [4, 6, 7, 8]] = 0.5  # ranks 2-5 of example 3: label 5 (-1.0) falls outside its top 5
single = tasks["single"].compute(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 2, 5])))
multi = tasks["multi"].compute(EvalPrediction(
    predictions=np.array([[2.0, -2.0, 2.0], [-2.0, 2.0, -2.0]]), label_ids=np.array([[1, 0, 1], [0, 0, 1]])))
regression = tasks["regression"].compute(EvalPrediction(
    predictions=np.array([[1.0], [2.0], [3.0]]), label_ids=np.array([1.0, 2.0, 5.0])))
print(json.dumps({"before": before, "after": "evaluate" in sys.modules, "single": single, "multi": multi,
                  "regression": regression}))
"""


def test_metrics_load_at_the_first_evaluation_and_compute_hand_checked_values():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["before"] is False and out["after"] is True  # building the metrics imported nothing
    single = out["single"]
    assert single["accuracy"] == 0.75 and single["top5_accuracy"] == 0.75
    # classes 0, 1, 2 right (F1 1 each); 3 predicted once wrongly (F1 0); 5 missed (F1 0): macro over the 5 present
    assert abs(single["macro_f1"] - 3 / 5) < 1e-9
    multi = out["multi"]
    # predictions [1,0,1],[0,1,0] vs [1,0,1],[0,0,1]: TP 2, FP 1, FN 1 → micro-F1 2/3; exact match 1 of 2
    assert abs(multi["micro_f1"] - 2 / 3) < 1e-9 and multi["subset_accuracy"] == 0.5
    # per label: F1 1 (label 0), 0 (label 1: one FP), 2/3 (label 2: TP 1, FN 1) → macro 5/9
    assert abs(multi["macro_f1"] - 5 / 9) < 1e-9
    regression = out["regression"]
    # errors 0, 0, 2 → MSE 4/3; centred x (-1, 0, 1), y (-5/3, -2/3, 7/3): r = 4 / sqrt(2 · 78/9)
    assert abs(regression["mse"] - 4 / 3) < 1e-9 and abs(regression["pearsonr"] - 4 / (2 * 78 / 9) ** 0.5) < 1e-9
