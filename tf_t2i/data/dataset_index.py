"""What a scanned dataset hands to the input pipeline."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split (train or test) of a dataset, image by image.

    Exactly one of `image_paths` (files the pipeline decodes) and `images` (pixels in memory) is set.

    Attributes:
        image_paths: absolute paths of JPEG/PNG files, one per image, or None.
        images: uint8 [N, H, W, 3] pixels, or None.
        captions: per image a tuple of one or more non-empty caption strings.
        labels: int32 [N] class ids, indices into `DatasetIndex.class_names`.
        attributes: int32 [N, A] ground-truth attribute values (synthetic data), or None.
    """

    captions: tuple[tuple[str, ...], ...]
    labels: np.ndarray
    image_paths: tuple[str, ...] | None = None
    images: np.ndarray | None = None
    attributes: np.ndarray | None = None

    def __post_init__(self):
        if (self.image_paths is None) == (self.images is None):
            raise ValueError("a Split holds either image_paths or images, not both or neither.")
        n = len(self.captions)
        sizes = [len(self.labels), len(self.image_paths if self.images is None else self.images)]
        if self.attributes is not None:
            sizes.append(len(self.attributes))
        if any(size != n for size in sizes):
            raise ValueError(f"a Split's fields disagree on the number of images: {[n] + sizes}.")

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def num_captions(self) -> int:
        return sum(len(c) for c in self.captions)

    @property
    def class_ids(self) -> np.ndarray:
        """Sorted distinct class ids present in this split."""
        return np.unique(self.labels)


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetIndex:
    """A scanned dataset: its class names, splits, and what was skipped while scanning.

    Attributes:
        name: a short description, e.g. "reed (flat jpg/) at /data/flowers".
        class_names: class id -> name.
        train: the training split (Reed: trainval classes).
        test: the test split; its classes are disjoint from train's (zero-shot).
        problems: one line per kind of skipped item, with a count and the first few paths.
        attribute_names: names of the columns of `Split.attributes` (synthetic data), else ().
        attribute_values: per attribute, its value names (synthetic data), else ().
    """

    name: str
    class_names: tuple[str, ...]
    train: Split
    test: Split
    problems: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()
    attribute_values: tuple[tuple[str, ...], ...] = ()
