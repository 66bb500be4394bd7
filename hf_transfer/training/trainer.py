"""The transformers ``Trainer``, aware of the transfer strategy that shaped its model."""

from __future__ import annotations

import logging

from transformers import Trainer

from ..models.blocks import BlockView
from ..models.vision import count_parameters
from ..strategies import TransferStrategy

logger = logging.getLogger(__name__)


class TransferTrainer(Trainer):
    """A ``Trainer`` that carries the strategy and its block view, and reports what actually trains.

    Strategies add their callbacks here; the optimizer only ever sees parameters with ``requires_grad`` (the
    Trainer's own filtering), so frozen blocks cost no optimizer state.
    """

    def __init__(self, *args, strategy: TransferStrategy, block_view: BlockView, **kwargs):
        callbacks = list(kwargs.pop("callbacks", None) or []) + strategy.callbacks()
        super().__init__(*args, callbacks=callbacks, **kwargs)
        self.strategy = strategy
        self.block_view = block_view
        # Every head here returns the *mean* loss of its local batch, never a sum over ``num_items_in_batch``. Left
        # on, the Trainer would multiply it by the number of processes for models whose forward takes **kwargs
        # (BERT does), doubling the logged loss and the gradients under 2-process DDP.
        self.model_accepts_loss_kwargs = False
        trainable, total = count_parameters(self.model)
        logger.info(
            "Strategy %r: %s of %s parameters trainable (%.2f%%)",
            strategy.name,
            f"{trainable:,}",
            f"{total:,}",
            100.0 * trainable / max(total, 1),
        )
