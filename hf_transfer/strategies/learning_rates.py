"""``llrd``: discriminative / layer-wise learning-rate decay (ULMFiT, BEiT/ELECTRA-style fine-tuning).

Block i from the top learns at ``lr * decay**i`` (the head at ``lr * head_lr_multiplier``, the stem decays one step
below the bottom block), the same scaling timm's ``param_groups_layer_decay`` applies — computed here over the block
view so that BERT-family encoders get it too. The groups carry an ``lr`` the Trainer's scheduler then scales, so any
``--lr_scheduler_type`` composes with it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .base import LEARNING_RATE, OptimizerSettings, StrategyContext, TransferStrategy
from .registry import register_strategy
from .settings import Setting, in_half_open_unit, positive

if TYPE_CHECKING:  # torch is imported where a model is touched: the registry and its table are read without it
    from torch import nn

logger = logging.getLogger(__name__)


@register_strategy("llrd")
class LayerwiseLearningRateDecay(TransferStrategy):
    kind = LEARNING_RATE
    summary = (
        "layer-wise learning-rate decay: block i from the top learns at lr·decay^i, the head at lr·multiplier; a "
        "table of groups is logged at the start; any `--lr_scheduler_type` scales every group"
    )
    settings = (
        Setting("layer_lr_decay", float, 0.75, "block i from the top learns at lr * decay^i", check=in_half_open_unit),
        Setting("head_lr_multiplier", float, 1.0, "the head learns at lr * this", check=positive),
    )
    incompatible = {
        "linear_probe": "only the head trains, so there are no layers to give different learning rates",
        "lora": "adapter parameters are not the backbone's blocks",
        "ia3": "adapter parameters are not the backbone's blocks",
    }

    def scales(self, context: StrategyContext) -> list[tuple[str, list[str], float]]:
        """(group name, parameter names, lr multiplier) from head to stem."""
        view, decay = context.view, float(self.setting("layer_lr_decay"))
        groups = [("head", view.head, float(self.setting("head_lr_multiplier")))]
        for depth, (name, block) in enumerate(zip(reversed(view.block_names), reversed(view.blocks)), start=1):
            groups.append((name, block, decay**depth))
        groups.append(("stem", view.stem, decay ** (len(view.blocks) + 1)))
        return groups

    def optimizer_groups(self, model: nn.Module, context: StrategyContext, optimizer: OptimizerSettings):
        params = dict(model.named_parameters())
        groups, table = [], []
        for group_name, names, scale in self.scales(context):
            trainable = [(n, params[n]) for n in names if params[n].requires_grad]
            groups += optimizer.groups(trainable, group_name, lr_scale=scale)
            if trainable:
                table.append((group_name, len(trainable), scale, optimizer.learning_rate * scale))
        logger.info(
            "Layer-wise learning rates (group, tensors, multiplier, lr):\n%s",
            "\n".join(f"  {g:<40} {n:>4}  x{s:.4f}  {lr:.3e}" for g, n, s, lr in table),
        )
        return groups
