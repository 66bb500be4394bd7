"""The one container every loader returns, whatever the task: train and validation splits with encoded labels, plus
what each modality needs to read them (the image column, the text columns).

A leaf of :mod:`hf_transfer.data`: the label code (:mod:`~hf_transfer.data.labels`) builds it and the loaders complete
it, so it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from ..exceptions import DataError


@dataclass
class LabelledData:
    """Image, text or image+text examples with their labels encoded for one problem type.

    ``image_column`` is set for image and image+text data, ``text_columns`` (one column or a pair) for text and
    image+text data; every other field means the same for every task.
    """

    train: Dataset
    validation: Dataset | None  # None only while the labels are encoded, before a hold-out is taken
    label_names: list[str] | None  # None for regression
    problem_type: str
    label_column: str
    image_column: str | None = None
    text_columns: list[str] = field(default_factory=list)
    source: str = ""  # the dataset name, directory or file the splits came from
    validation_split: str | None = None  # the source's own split used for validation; None: held out from train
    # Why no validation split was held out (the small-data protocol: too few examples per class); None: one was.
    no_validation: str | None = None
    zero_shot: bool = False  # --train_samples_per_class 0: no labelled example trains (the head is built otherwise)
    skipped_images: dict[str, int] = field(default_factory=dict)  # split -> unreadable images dropped
    # split -> fingerprint of the dataset its ROW_COLUMN indexes (before hold-out, sampling and limits), so that a
    # subset of it (another size, another seed) finds the features of rows encoded by an earlier run
    row_sources: dict[str, str] = field(default_factory=dict)
    # Examples without a label, for self-training (:mod:`hf_transfer.data.unlabeled`): input columns, row ids and a
    # label the source happened to carry (reporting only); None: the run has none.
    unlabeled: Dataset | None = None
    unlabeled_source: str = ""  # where they came from, as messages and the card name it

    def splits(self) -> list[tuple[str, Dataset]]:
        return [("train", self.train), ("validation", self.validation)]

    def require_examples(self, after: str = "") -> None:
        """Fail now, naming the split, rather than with a division by zero in the Trainer."""
        for name, split in self.splits():
            if len(split) == 0 and not (self.no_validation if name == "validation" else self.zero_shot):
                raise DataError(f"The {name} split of {self.source} is empty{after}; nothing to train/evaluate on.")
