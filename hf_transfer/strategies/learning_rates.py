"""``llrd``: discriminative / layer-wise learning-rate decay (ULMFiT, BEiT/ELECTRA-style fine-tuning).

Block i from the top learns at ``lr * decay**i`` (the head at ``lr * head_lr_multiplier``, the stem decays one step
below the bottom block), the same scaling timm's ``param_groups_layer_decay`` applies — computed here over the block
view so that BERT-family encoders get it too. The groups carry an ``lr`` the Trainer's scheduler then scales, so any
``--lr_scheduler_type`` composes with it.
"""

from __future__ import annotations

import logging

from torch import nn

from ..config import StrategyArguments
from ..exceptions import ConfigError
from .base import LEARNING_RATE, StrategyContext, TransferStrategy
from .registry import register_strategy

logger = logging.getLogger(__name__)


@register_strategy("llrd")
class LayerwiseLearningRateDecay(TransferStrategy):
    kind = LEARNING_RATE
    flags = {"layer_lr_decay": 0.75, "head_lr_multiplier": 1.0}
    incompatible = {
        "linear_probe": "only the head trains, so there are no layers to give different learning rates",
        "lora": "adapter parameters are not the backbone's blocks",
        "ia3": "adapter parameters are not the backbone's blocks",
    }

    @classmethod
    def validate_args(cls, args: StrategyArguments) -> None:
        if args.layer_lr_decay is not None and not 0.0 < args.layer_lr_decay <= 1.0:
            raise ConfigError(f"--layer_lr_decay must be in (0, 1], got {args.layer_lr_decay}.")
        if args.head_lr_multiplier is not None and args.head_lr_multiplier <= 0:
            raise ConfigError(f"--head_lr_multiplier must be > 0, got {args.head_lr_multiplier}.")

    def scales(self, context: StrategyContext) -> list[tuple[str, list[str], float]]:
        """(group name, parameter names, lr multiplier) from head to stem."""
        view, decay = context.view, float(self.setting("layer_lr_decay"))
        groups = [("head", view.head, float(self.setting("head_lr_multiplier")))]
        for depth, (name, block) in enumerate(zip(reversed(view.block_names), reversed(view.blocks)), start=1):
            groups.append((name, block, decay**depth))
        groups.append(("stem", view.stem, decay ** (len(view.blocks) + 1)))
        return groups

    def optimizer_groups(self, model: nn.Module, context: StrategyContext, learning_rate: float, weight_decay: float):
        from transformers.trainer_pt_utils import get_parameter_names

        decay_names = set(get_parameter_names(model, [nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm]))
        params = dict(model.named_parameters())
        groups, table = [], []
        for group_name, names, scale in self.scales(context):
            trainable = [n for n in names if params[n].requires_grad]
            for decayed in (True, False):
                members = [params[n] for n in trainable if (n in decay_names and not n.endswith("bias")) == decayed]
                if members:
                    groups.append(
                        {
                            "params": members,
                            "lr": learning_rate * scale,
                            "weight_decay": weight_decay if decayed else 0.0,
                            "group_name": group_name,
                        }
                    )
            if trainable:
                table.append((group_name, len(trainable), scale, learning_rate * scale))
        logger.info(
            "Layer-wise learning rates (group, tensors, multiplier, lr):\n%s",
            "\n".join(f"  {g:<40} {n:>4}  x{s:.4f}  {lr:.3e}" for g, n, s, lr in table),
        )
        self.table = table
        return groups
