"""Transfer regularisers: ``l2sp`` (Li et al., 2018) and ``lwf`` (learning without forgetting, Li & Hoiem, 2016).

Both add a term to the task loss; the Trainer logs each term as its own metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .base import REGULARISER, StrategyContext, TransferStrategy, modules_owning
from .registry import register_strategy
from .settings import Setting, non_negative, positive

if TYPE_CHECKING:  # torch is imported where a model is touched: the registry and its table are read without it
    import torch
    from torch import nn


@register_strategy("l2sp")
class L2SP(TransferStrategy):
    """loss += alpha/2 * ||w - w0||^2 over the transferred weights + beta/2 * ||w_head||^2 over the new head.

    Plain weight decay pulls weights towards zero, i.e. away from what was learnt; L2-SP pulls them towards the
    pretrained starting point w0 instead, and decays only the new head.
    """

    kind = REGULARISER
    summary = "adds α/2·‖w − w₀‖² over transferred weights + β/2·‖w_head‖²; both terms logged"
    settings = (
        Setting("l2sp_alpha", float, 0.01, "weight of alpha/2 * ||w - w0||^2 over transferred weights", non_negative),
        Setting("l2sp_beta", float, 0.01, "weight of beta/2 * ||w_head||^2 over the new head", non_negative),
    )

    def apply(self, context: StrategyContext) -> None:
        view = context.view
        params = dict(view.model.named_parameters())
        self.body = {name: params[name] for name in view.body()}
        self.head = [params[name] for name in view.head]
        self.start = {name: p.detach().clone() for name, p in self.body.items()}  # w0: the pretrained weights

    def regularisation(self, model: nn.Module, inputs: dict, outputs) -> dict[str, torch.Tensor]:
        import torch

        alpha, beta = float(self.setting("l2sp_alpha")), float(self.setting("l2sp_beta"))
        trained = [(p, self.start[n]) for n, p in self.body.items() if p.requires_grad]
        device = next(iter([*self.head, *self.body.values()])).device
        zero = torch.zeros((), device=device)
        body = sum(((p - w0.to(p.device)) ** 2).sum() for p, w0 in trained) if trained else zero
        terms = {"l2sp_body": alpha / 2 * body}
        if self.head:  # a fusion tower has none: the fusion head is outside its view
            terms["l2sp_head"] = beta / 2 * sum((p**2).sum() for p in self.head)
        return terms


@register_strategy("lwf")
class LearningWithoutForgetting(TransferStrategy):
    """loss = L_new + lambda * T^2 * KL(old-head outputs of the frozen original ‖ old head on the current body).

    The source task's head (e.g. the ImageNet classifier) is kept, frozen, on top of the body being fine-tuned; the
    frozen original model's outputs on the same inputs are the targets, so the body keeps serving the old task.
    """

    kind = REGULARISER
    needs_raw_inputs = True  # the frozen teacher reads the inputs at every step
    summary = (
        "adds λ·T²·KL(source-head outputs of the frozen original ‖ source head on the current body); needs a "
        "checkpoint with a source head (timm ImageNet classifiers have one; a text checkpoint needs a "
        "sequence-classification head)"
    )
    settings = (
        Setting("lwf_lambda", float, 1.0, "weight of the distillation term", check=non_negative),
        Setting("lwf_temperature", float, 2.0, "distillation temperature T", check=positive),
    )

    def apply(self, context: StrategyContext) -> None:
        from torch import nn

        if context.source_model_factory is None:
            raise ConfigError(f"--strategy lwf: no source head for {context.base_model_reference!r}.")
        source = context.source_model_factory()  # raises a clear ConfigError when the checkpoint has no head
        self.teacher, self.teacher_forward = source.model.eval(), source.forward
        self.old_head = source.head
        for param in [*self.teacher.parameters(), *self.old_head.parameters()]:
            param.requires_grad_(False)
        # the new head's input is the current body's features: capture it on every forward
        # batch-norm layers of student and teacher, found once: the teacher follows the student's mode every step
        self.student_bn, self.teacher_bn = (_batchnorm_layers(m) for m in (context.view.model, self.teacher))
        for layer in self.teacher_bn:
            layer.momentum = 0.0  # its running statistics never move
        linears = [m for m in modules_owning(context.view.model, set(context.view.head)) if isinstance(m, nn.Linear)]
        self.features: torch.Tensor | None = None
        linears[-1].register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.features = args[0]

    def _match_batchnorm_mode(self) -> None:
        """Normalise the teacher's activations the way the student's are normalised on this batch.

        A student whose batch-norm layers train normalises with the batch's statistics, the eval-mode teacher with its
        running ones: with identical weights the two then disagree (a KL of ~17 at step 0 on EfficientNet-Lite0) and
        the term pulls the body towards nothing. The teacher's layers follow the student's mode (with momentum 0, set
        in ``apply``, so that their running statistics never change).
        """
        training = any(layer.training for layer in self.student_bn)
        for layer in self.teacher_bn:
            layer.train(training)

    def regularisation(self, model: nn.Module, inputs: dict, outputs) -> dict[str, torch.Tensor]:
        import torch
        import torch.nn.functional as F

        temperature, weight = float(self.setting("lwf_temperature")), float(self.setting("lwf_lambda"))
        features = self.features
        self.teacher.to(features.device)
        self.old_head.to(features.device)
        self._match_batchnorm_mode()
        with torch.no_grad():
            targets = self.teacher_forward(self.teacher, inputs)
        current = self.old_head(features)
        kl = F.kl_div(
            F.log_softmax(current / temperature, dim=-1),
            F.softmax(targets / temperature, dim=-1),
            reduction="batchmean",
        )
        return {"lwf_distillation": weight * temperature**2 * kl}


def _batchnorm_layers(module: nn.Module) -> list[nn.Module]:
    from torch import nn

    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
