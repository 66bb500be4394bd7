"""Tasks as a registry: each turns a resolved config into the same :class:`PreparedTask`, whatever the modality."""

from __future__ import annotations

from collections.abc import Callable

from transformers import TrainingArguments

from ...config import IMAGE_CLASSIFICATION, MULTIMODAL_CLASSIFICATION, TEXT_CLASSIFICATION
from ...recipe import RecipeConfig
from ..run_types import PreparedTask
from .image import prepare_image_task
from .multimodal import prepare_multimodal_task
from .text import prepare_text_task

TaskPreparer = Callable[[RecipeConfig, TrainingArguments], PreparedTask]

TASKS: dict[str, TaskPreparer] = {
    IMAGE_CLASSIFICATION: prepare_image_task,
    TEXT_CLASSIFICATION: prepare_text_task,
    MULTIMODAL_CLASSIFICATION: prepare_multimodal_task,
}

__all__ = ["TASKS", "PreparedTask", "TaskPreparer"]
