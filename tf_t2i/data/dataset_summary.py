"""A human-readable summary of a scanned dataset, with the problems that matter for training."""
from __future__ import annotations

import dataclasses

import numpy as np

from tf_t2i.config import DataConfig
from tf_t2i.data.dataset_index import DatasetIndex, Split


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    """Counts and findings of a dataset, as `train.py --dry-run` prints them."""

    name: str
    images: int
    captions: int
    classes: int
    train_images: int
    train_classes: int
    test_images: int
    test_classes: int
    sample_caption: str
    problems: tuple[str, ...]

    @classmethod
    def of(cls, index: DatasetIndex, config: DataConfig) -> "DatasetSummary":
        splits = (index.train, index.test)
        sample = next((c[0] for s in splits for c in s.captions if c), "")
        return cls(
            name=index.name,
            images=sum(len(s) for s in splits),
            captions=sum(s.num_captions for s in splits),
            classes=len(np.unique(np.concatenate([s.labels for s in splits]))),
            train_images=len(index.train),
            train_classes=len(index.train.class_ids),
            test_images=len(index.test),
            test_classes=len(index.test.class_ids),
            sample_caption=sample,
            problems=tuple(index.problems) + _training_problems(index.train, config),
        )

    def format(self) -> str:
        lines = [
            f"dataset: {self.name}",
            f"  images: {self.images}   captions: {self.captions}   classes: {self.classes}",
            f"  train: {self.train_images} images in {self.train_classes} classes",
            f"  test:  {self.test_images} images in {self.test_classes} classes",
            f"  sample caption: {self.sample_caption!r}",
        ]
        if self.problems:
            lines.append(f"  problems ({len(self.problems)}):")
            lines += [f"    - {problem}" for problem in self.problems]
        else:
            lines.append("  problems: none")
        return "\n".join(lines)


def _training_problems(train: Split, config: DataConfig) -> tuple[str, ...]:
    """What would make training weaker or fail, found before it starts."""
    problems = []
    if len(train) < config.batch_size:
        problems.append(f"the train split has {len(train)} images, fewer than one batch of "
                        f"{config.batch_size}: training cannot start; lower --batch-size.")
    if len(train.class_ids) < 2:
        problems.append("the train split has a single class, so GAN-CLS wrong captions come from "
                        "the same class; add labels to get the mismatch signal.")
    too_long = sum(len(c) > config.caption_length for cs in train.captions for c in cs)
    if too_long:
        problems.append(f"{too_long} train captions are longer than data.caption_length="
                        f"{config.caption_length} characters and will be truncated.")
    return tuple(problems)
