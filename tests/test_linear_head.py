"""The closed-form head: the same optimum as an independent solve of the same problem, C chosen by cross-validation
on the training features when none is given, and every class kept (a class without examples is never predicted)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_transfer.training.linear_head import C_GRID, fit_linear_head


def blobs(per_class: int, classes: int, dim: int = 6, seed: int = 0, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3
    features = np.concatenate([centres[k] + spread * rng.normal(size=(per_class, dim)) for k in range(classes)])
    return features.astype(np.float32), np.repeat(np.arange(classes), per_class)


def independent_solve(features, labels, classes: int, c: float) -> torch.Tensor:
    """The same objective, C·Σ cross-entropy + ½‖W‖² (bias unpenalised), minimised by torch's own L-BFGS."""
    x, y = torch.tensor(features, dtype=torch.float64), torch.tensor(labels)
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = c * torch.nn.functional.cross_entropy(x @ weight.T + bias, y, reduction="sum") + 0.5 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return torch.softmax(x @ weight.T + bias, -1).detach()


def test_the_head_matches_an_independent_solve():
    features, labels = blobs(10, 3, spread=3.0)  # overlapping classes: the penalty matters
    head = fit_linear_head(features, labels, 3, c=0.05)
    ours = torch.softmax(torch.tensor(features @ head.weight.T + head.bias, dtype=torch.float64), -1)
    assert torch.allclose(ours, independent_solve(features, labels, 3, 0.05), atol=2e-3)
    assert head.chosen_by == "given" and head.cv_accuracy is None


def test_two_classes_become_two_logits_with_the_same_probabilities():
    from sklearn.linear_model import LogisticRegression

    features, labels = blobs(12, 2, spread=2.0)
    head = fit_linear_head(features, labels, 2, c=1.0)
    probabilities = torch.softmax(torch.tensor(features @ head.weight.T + head.bias), -1)[:, 1].numpy()
    expected = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels).predict_proba(features)[:, 1]
    assert np.allclose(probabilities, expected, atol=1e-4)


def test_c_is_chosen_by_cross_validation_when_not_given():
    features, labels = blobs(8, 4, spread=2.5)
    head = fit_linear_head(features, labels, 4)
    assert head.c in C_GRID and "cross-validation" in head.chosen_by
    assert 0.0 <= head.cv_accuracy <= 1.0
    assert "C=" in head.describe()


def test_a_class_without_examples_is_kept_and_never_predicted():
    features, labels = blobs(6, 3)
    head = fit_linear_head(features, labels, 5)  # classes 3 and 4 have no example
    assert head.weight.shape == (5, features.shape[1])
    assert set(np.argmax(features @ head.weight.T + head.bias, axis=1)) <= {0, 1, 2}


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="two classes"):
        fit_linear_head(np.ones((4, 3)), np.zeros(4, dtype=int), 2)


def test_a_linear_probe_fits_its_head_in_closed_form_into_the_native_model(tmp_path, monkeypatch):
    """`--strategy linear_probe --head_solver closed_form` on cached features: no SGD step, the head lands in the
    model's own classifier (timm loads the saved run and predicts what the run evaluated), and the record, config and
    card say how it was fitted."""
    import json

    import timm

    import hf_transfer as ht
    from hf_transfer.recipe import parse_config

    from .conftest import write_imagefolder

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_imagefolder(tmp_path / "colours", per_class=10)
    out = tmp_path / "run"
    argv = ["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32", "--train_dir",
            str(data), "--train_val_split", "0.3", "--strategy", "linear_probe", "--head_solver", "closed_form",
            "--output_dir", str(out)]  # fmt: skip
    result = ht.fine_tune(parse_config(argv))
    assert result.trainer.state.global_step == 0  # no optimizer step: one solve
    assert result.metrics["head_c"] > 0 and 0.0 <= result.metrics["head_cv_accuracy"] <= 1.0
    record = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]
    assert "cross-validation" in record["head_fit"] and "closed form" in record["chosen_automatically_line"]
    card = (out / "README.md").read_text()
    assert "fitted in closed form" in card

    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    evaluated = json.loads((out / "eval_predictions.json").read_text())["predictions"]
    validation = result.trainer.eval_dataset
    assert len(evaluated) == len(validation) > 0
    # the same numbers through the saved native model: the head that was fitted is the head that was saved
    features = validation.tensors["features"].float()
    with torch.no_grad():
        logits = model.get_classifier()(features)
    assert logits.argmax(-1).tolist() == evaluated
