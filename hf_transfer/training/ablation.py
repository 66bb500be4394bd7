"""Single-modality ablations of a fusion run: how much of the accuracy needs both the image and the text."""

from __future__ import annotations

import dataclasses
import logging
import tempfile

from ..config import MULTIMODAL_CLASSIFICATION
from ..models.fusion import FusionConfig, FusionForClassification, fusion_block_view
from ..strategies import StrategyContext, TransferStrategy
from .run_types import PreparedRun
from .trainer import build_transfer_trainer

logger = logging.getLogger(__name__)


class HeadOnly(TransferStrategy):
    """No hooks: the towers are frozen (their features cached), only the new head trains."""

    name = "head only (ablation)"


def ablate_modalities(prepared: PreparedRun) -> dict[str, float]:
    """Train a head on each modality alone (same frozen towers, same cached features, same budget) and evaluate it
    on the same validation split: ``eval_image_only_*`` and ``eval_text_only_*``."""
    model, task = prepared.task.model, prepared.task
    results: dict[str, float] = {}
    for modality in model.config.modalities:
        config = FusionConfig.from_dict(model.config.to_dict())
        config.fusion = "concat"
        setattr(config, "text_tower" if modality == "image" else "image_tower", {})
        ablated = FusionForClassification(config, **{f"{modality}_tower": getattr(model, f"{modality}_tower")})
        view = fusion_block_view(ablated)
        run = dataclasses.replace(
            prepared,
            model=ablated,
            strategy=HeadOnly(prepared.config.strategy),
            context=StrategyContext(view=view, task=MULTIMODAL_CLASSIFICATION),
        )
        with tempfile.TemporaryDirectory() as scratch:
            args = dataclasses.replace(
                prepared.training,
                output_dir=scratch,
                eval_strategy="no",
                save_strategy="no",
                load_best_model_at_end=False,
                push_to_hub=False,
                report_to="none",
            )
            trainer = build_transfer_trainer(run, args=args, eval_dataset=None, processing_class=None)
            trainer.train()
            metrics = trainer.evaluate(task.eval_dataset, metric_key_prefix=f"eval_{modality}_only")
        kept = {k: v for k, v in metrics.items() if k.split("_only_")[-1] in task.metrics.names}
        logger.info("Ablation, %s only: %s", modality, kept)
        results.update(kept)
    return results
