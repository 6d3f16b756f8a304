"""Checks shared by the dataset scanners: image files that decode, and counted skips.

The input pipeline decodes images with `tf.io.decode_image(channels=3)`, which accepts JPEG
(including MPO, a JPEG with extra frames) and PNG in any colour mode (grayscale, RGBA, palette,
CMYK: all come out as RGB). Anything it would choke on mid-training - a truncated or corrupt file,
a GIF/BMP/WebP/text file under an image name - is found here with PIL before training starts.

`check_images` decodes every file fully (`Image.open(p).load()`, which raises on truncation) in a
thread pool: PIL releases the GIL while decoding, so threads use all cores without the start-up
cost of processes.

`ProblemLog` collects skipped items by kind and renders each kind as one line for
`DatasetIndex.problems`: a count, the first few paths and what the skip means.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
from typing import Iterable, Sequence

from PIL import Image, UnidentifiedImageError

# Extensions the scanners treat as image files (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# PIL format names that `tf.io.decode_image` decodes; MPO is a multi-frame JPEG.
DECODABLE_FORMATS = frozenset({"JPEG", "PNG", "MPO"})

CORRUPT = "corrupt"
NOT_IMAGE = "not_image"

# Paths shown per kind of problem; the count says how many more there are.
_SHOWN_PATHS = 3


@dataclasses.dataclass(frozen=True)
class BadImage:
    """An image file the pipeline could not decode.

    Attributes:
        path: the file, as given to `check_images`.
        kind: CORRUPT (unreadable, empty, truncated or corrupt data) or NOT_IMAGE (readable but
            not a JPEG or PNG).
        reason: a few words from the check, e.g. "GIF, not JPEG or PNG".
    """

    path: str
    kind: str
    reason: str


def check_image(path: str) -> BadImage | None:
    """Returns None if `path` is a JPEG or PNG that decodes fully, else what is wrong with it."""
    try:
        if os.path.getsize(path) == 0:
            return BadImage(path, CORRUPT, "empty file")
        with Image.open(path) as image:
            if image.format not in DECODABLE_FORMATS:
                return BadImage(path, NOT_IMAGE, f"{image.format}, not JPEG or PNG")
            image.load()  # Decodes all pixel data: raises on truncated or corrupt files.
    except UnidentifiedImageError:
        return BadImage(path, NOT_IMAGE, "not an image PIL recognises")
    except Exception as error:  # noqa: BLE001 - any decoder failure means the file is unusable.
        return BadImage(path, CORRUPT, f"{type(error).__name__}: {error}")
    return None


def check_images(paths: Sequence[str], max_workers: int | None = None) -> list[BadImage]:
    """Decodes every file in `paths` in a thread pool; returns the bad ones in the input order."""
    if not paths:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
        results = pool.map(check_image, paths)
        return [bad for bad in results if bad is not None]


def is_image_name(name: str) -> bool:
    """True if the file name has a JPEG or PNG extension (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class ProblemKind:
    """How one kind of skipped item is reported: "<count> <phrase>: <first paths>".

    Attributes:
        singular: the phrase after a count of 1, e.g. "image has no caption file and was skipped".
        plural: the phrase after any other count, e.g. "images have no caption file and were
            skipped".
    """

    singular: str
    plural: str


class ProblemLog:
    """Skipped items grouped by kind, rendered as one line per kind (in the order first seen)."""

    def __init__(self, kinds: dict[str, ProblemKind]):
        self._kinds = kinds
        self._items: dict[str, list[str]] = collections.defaultdict(list)

    def add(self, kind: str, item: str) -> None:
        """Records one skipped item (a path relative to the dataset, maybe with a reason)."""
        if kind not in self._kinds:
            raise KeyError(f"unknown problem kind {kind!r}")
        self._items[kind].append(item)

    def extend(self, kind: str, items: Iterable[str]) -> None:
        for item in items:
            self.add(kind, item)

    def count(self, kind: str) -> int:
        return len(self._items.get(kind, ()))

    def brief(self) -> str:
        """Counts per kind with one example each, for a one-sentence error; "" if none."""
        return "; ".join(f"{len(items)} {kind}, e.g. {items[0]}"
                         for kind, items in self._items.items() if items)

    def lines(self) -> tuple[str, ...]:
        return tuple(self._line(kind, items) for kind, items in self._items.items() if items)

    def _line(self, kind: str, items: list[str]) -> str:
        spec = self._kinds[kind]
        count = len(items)
        phrase = spec.singular if count == 1 else spec.plural
        shown = ", ".join(items[:_SHOWN_PATHS])
        more = f" and {count - _SHOWN_PATHS} more" if count > _SHOWN_PATHS else ""
        return f"{count} {phrase}: {shown}{more}."


def describe_bad_image(bad: BadImage, relative_to: str) -> str:
    """Returns "path (reason)" with the path relative to the dataset root, for a problems line."""
    return f"{os.path.relpath(bad.path, relative_to)} ({bad.reason})"
