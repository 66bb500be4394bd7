"""``wise_ft``: weight-space ensembling of the starting and the fine-tuned model (Wortsman et al., 2022).

After training, theta = (1 - alpha) * theta_0 + alpha * theta_ft for each ``--wise_alphas`` value is evaluated on the
validation split; every result is reported and the best alpha's weights are kept (and saved). Interpolating towards
the pretrained weights often recovers robustness that fine-tuning traded away, at no inference cost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .base import POST_HOC, StrategyContext, TransferStrategy
from .registry import register_strategy
from .schedules import parse_floats
from .settings import Setting

if TYPE_CHECKING:  # torch is imported where a model is touched: the registry and its table are read without it
    import torch

logger = logging.getLogger(__name__)


def _alphas_problem(text: str) -> str | None:
    try:
        alphas = parse_floats(text, "--wise_alphas")
    except ConfigError:
        return "takes comma-separated numbers"
    return None if all(0.0 <= a <= 1.0 for a in alphas) else "must lie in [0, 1]"


@register_strategy("wise_ft")
class WiseFT(TransferStrategy):
    kind = POST_HOC
    summary = (
        "after training, θ = (1−α)·θ₀ + α·θ_ft for each α is evaluated; every result is reported, the best α kept and "
        "saved"
    )
    needs_validation = True  # alpha is chosen on it
    settings = (
        Setting(
            "wise_alphas",
            str,
            "0,0.25,0.5,0.75,1",
            "comma-separated mixing weights alpha for (1-alpha)*w0 + alpha*w_ft",
            check=_alphas_problem,
        ),
    )

    def apply(self, context: StrategyContext) -> None:
        # theta_0 after the new head is attached: the head interpolates from its (zero) start too
        self.start = {k: v.detach().clone().cpu() for k, v in context.view.model.state_dict().items()}

    def after_train(self, trainer, context: StrategyContext) -> dict[str, float]:
        model = context.view.model
        finetuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
        metric = (trainer.args.metric_for_best_model or "loss").removeprefix("eval_")
        greater = trainer.args.greater_is_better if metric != "loss" else False
        results: dict[float, dict[str, float]] = {}
        for alpha in parse_floats(str(self.setting("wise_alphas")), "--wise_alphas"):
            model.load_state_dict(interpolate(self.start, finetuned, alpha))
            results[alpha] = trainer.evaluate(metric_key_prefix="wise")
        best = (max if greater else min)(results, key=lambda a: results[a][f"wise_{metric}"])
        model.load_state_dict(interpolate(self.start, finetuned, best))
        logger.info(
            "WiSE-FT %s by alpha: %s; keeping alpha=%s",
            metric,
            {a: round(r[f"wise_{metric}"], 4) for a, r in results.items()},
            best,
        )
        report = {"wise_ft_best_alpha": best}
        for alpha, values in results.items():
            report[f"wise_ft_alpha_{alpha:g}_{metric}"] = values[f"wise_{metric}"]
        return report


def interpolate(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * start + alpha * end for floating tensors; integer buffers (e.g. BN step counts) from ``end``."""
    import torch

    mixed = {}
    for key, value in end.items():
        if value.is_floating_point():
            mixed[key] = torch.lerp(start[key].to(value.device, value.dtype), value, alpha)
        else:
            mixed[key] = value
    return mixed
