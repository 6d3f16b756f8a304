"""Scanner for Reed et al.'s `text_c10` datasets (Oxford-102 flowers and CUB-200-2011).

Layout (all names relative to the dataset folder)::

    allclasses.txt          class folder names, one per line; labels index into this order
    trainvalclasses.txt     classes of the train split (Reed's train+val)
    testclasses.txt         classes of the test split (zero-shot: disjoint from trainval)
    text_c10/<class>/<stem>.txt     captions of one image, one per line (blank lines dropped)
    and exactly one of
    jpg/<stem>.jpg                  flat images (Oxford-102); the class comes from text_c10
    images/<class>/<stem>.jpg       nested images (CUB-200-2011)

Images are `.jpg`, `.jpeg` or `.png` (any case) and must decode as JPEG or PNG. Images and
captions are paired by file stem (and class), never by listing order: the TensorLayer port paired
two differently ordered listings and trained on mismatched captions.

Bad data policy. Errors raise `DataError` with one sentence naming the path and the fix; skips
leave the item out and add one line per kind to `DatasetIndex.problems` (count + first 3 paths).

==============================================================  ===================================
Case                                                            Outcome
==============================================================  ===================================
dataset folder missing                                          error
`text_c10/` missing                                             error
both or neither of `jpg/` and `images/`                         error
`allclasses.txt`, `trainvalclasses.txt` or `testclasses.txt`    error
missing
`trainvalclasses.txt` lists no class                            error
a split file names a class absent from `allclasses.txt`         error (names class and file)
a split file names a class with no `text_c10/<class>/` folder   error (names class and file)
a class listed in both `trainvalclasses.txt` and                error
`testclasses.txt`
no usable image left after the skips below                      error
a split ends with zero images although its split file           error
lists classes
an image with no caption file                                   skip ("no_caption")
a caption file with no image                                    skip ("no_image")
a caption file whose stem matches several image files           skip ("ambiguous_image")
flat layout: an image with caption files in several classes     skip ("ambiguous_class")
an empty caption file (or only blank lines)                     skip ("empty_caption")
a caption file that is not UTF-8                                skip ("caption_encoding")
a corrupt or truncated image                                    skip ("corrupt")
a non-JPEG/PNG file where an image is expected                  skip ("not_image")
a `text_c10/` or `images/` class folder not in                  skip ("unlisted_class")
`allclasses.txt`
a class in `allclasses.txt` but in neither split file           skip ("unsplit_class")
==============================================================  ===================================

Files in the image folders without an image extension and without a caption file (`Thumbs.db`,
`.DS_Store`, ...) are ignored silently; hidden files and non-`.txt` files in `text_c10/` likewise.
"""
from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np

from tf_t2i.data.dataset_index import DatasetIndex, Split
from tf_t2i.data.image_check import (
    CORRUPT, ProblemKind, ProblemLog, check_images, describe_bad_image, is_image_name)
from tf_t2i.errors import DataError

ALL_CLASSES = "allclasses.txt"
TRAIN_CLASSES = "trainvalclasses.txt"
TEST_CLASSES = "testclasses.txt"
TEXT_DIR = "text_c10"
FLAT_DIR = "jpg"
NESTED_DIR = "images"

PROBLEM_KINDS = {
    "unlisted_class": ProblemKind(
        "class folder is not listed in allclasses.txt and was ignored",
        "class folders are not listed in allclasses.txt and were ignored"),
    "unsplit_class": ProblemKind(
        "class in allclasses.txt is in neither split file and was left out",
        "classes in allclasses.txt are in neither split file and were left out"),
    "no_caption": ProblemKind(
        "image has no caption file in text_c10/ and was skipped",
        "images have no caption file in text_c10/ and were skipped"),
    "no_image": ProblemKind(
        "caption file has no matching image and was skipped",
        "caption files have no matching image and were skipped"),
    "ambiguous_image": ProblemKind(
        "caption file matches several image files and was skipped (keep one image per stem)",
        "caption files match several image files and were skipped (keep one image per stem)"),
    "ambiguous_class": ProblemKind(
        "image has caption files in several text_c10 classes and was skipped",
        "images have caption files in several text_c10 classes and were skipped"),
    "empty_caption": ProblemKind(
        "caption file is empty and its image was skipped",
        "caption files are empty and their images were skipped"),
    "caption_encoding": ProblemKind(
        "caption file is not readable UTF-8 text and its image was skipped (re-save it as UTF-8)",
        "caption files are not readable UTF-8 text and their images were skipped (re-save them "
        "as UTF-8)"),
    "corrupt": ProblemKind(
        "image is corrupt or truncated and was skipped",
        "images are corrupt or truncated and were skipped"),
    "not_image": ProblemKind(
        "file where an image is expected is not a JPEG or PNG and was skipped",
        "files where images are expected are not JPEG or PNG and were skipped"),
}


@dataclasses.dataclass(frozen=True)
class _ClassLists:
    """The three class list files, each de-duplicated in file order."""

    all: tuple[str, ...]
    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Example:
    """One paired image, before the image check."""

    class_name: str
    image_path: str
    captions: tuple[str, ...]


def load_reed(path: str) -> DatasetIndex:
    """Scans a Reed et al. `text_c10` dataset folder (see the module docstring for the layout).

    Raises:
        DataError: for the error cases of the module docstring's bad data policy.
    """
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise DataError(f"Dataset folder {root} does not exist: pass the folder that holds "
                        f"{TEXT_DIR}/, {ALL_CLASSES} and jpg/ or images/.")
    if not os.path.isdir(os.path.join(root, TEXT_DIR)):
        raise DataError(f"{root} has no {TEXT_DIR}/ folder: download Reed et al.'s captions "
                        f"(cvpr2016 release) and unpack {TEXT_DIR}/ into it.")
    variant = _detect_variant(root)
    classes = _read_class_lists(root)
    log = ProblemLog(PROBLEM_KINDS)
    examples = _pair(root, variant, classes, log)
    examples = _drop_bad_images(root, examples, log)
    if not examples:
        raise DataError(f"No usable image is left in {root} after skipping bad data "
                        f"({log.brief() or 'no caption files'}): fix those files and scan again.")
    return DatasetIndex(
        name=f"reed ({'flat jpg/' if variant == FLAT_DIR else 'nested images/'}) at {root}",
        class_names=classes.all,
        train=_make_split(root, TRAIN_CLASSES, classes.train, classes.all, examples, log),
        test=_make_split(root, TEST_CLASSES, classes.test, classes.all, examples, log),
        problems=log.lines(),
    )


def _detect_variant(root: str) -> str:
    """FLAT_DIR or NESTED_DIR, whichever image folder exists; an error for both or neither."""
    found = [name for name in (FLAT_DIR, NESTED_DIR) if os.path.isdir(os.path.join(root, name))]
    if len(found) != 1:
        state = "both" if found else "neither"
        raise DataError(f"{root} has {state} of jpg/ (flat, Oxford-102) and images/<class>/ "
                        f"(nested, CUB): keep exactly one image folder.")
    return found[0]


def _read_lines(file_path: str) -> list[str]:
    """Stripped non-blank lines of a UTF-8 text file."""
    with open(file_path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def _read_class_file(root: str, name: str) -> tuple[str, ...]:
    file_path = os.path.join(root, name)
    if not os.path.isfile(file_path):
        raise DataError(f"{file_path} is missing: the reed format needs {ALL_CLASSES}, "
                        f"{TRAIN_CLASSES} and {TEST_CLASSES} (one class folder per line).")
    try:
        return tuple(dict.fromkeys(_read_lines(file_path)))
    except UnicodeDecodeError:
        raise DataError(f"{file_path} is not UTF-8 text: re-save it as UTF-8.") from None


def _read_class_lists(root: str) -> _ClassLists:
    """Reads and cross-checks the three class list files."""
    classes = _ClassLists(*(_read_class_file(root, name)
                            for name in (ALL_CLASSES, TRAIN_CLASSES, TEST_CLASSES)))
    if not classes.train:
        raise DataError(f"{os.path.join(root, TRAIN_CLASSES)} lists no class: the train split "
                        f"needs at least one class folder name.")
    known = set(classes.all)
    for file_name, names in ((TRAIN_CLASSES, classes.train), (TEST_CLASSES, classes.test)):
        file_path = os.path.join(root, file_name)
        for name in names:
            if name not in known:
                raise DataError(f"{file_path} names class '{name}', which {ALL_CLASSES} does "
                                f"not list: add it to {ALL_CLASSES} or remove it.")
            if not os.path.isdir(os.path.join(root, TEXT_DIR, name)):
                raise DataError(f"{file_path} names class '{name}', but "
                                f"{os.path.join(root, TEXT_DIR, name)} does not exist: fix the "
                                f"class name or restore its caption folder.")
    overlap = [name for name in classes.train if name in set(classes.test)]
    if overlap:
        raise DataError(f"Class '{overlap[0]}' is listed in both "
                        f"{os.path.join(root, TRAIN_CLASSES)} and {TEST_CLASSES}: the splits must "
                        f"be class-disjoint, remove it from one.")
    return classes


def _list_dir(folder: str, want_dirs: bool) -> list[str]:
    """Sorted names of the non-hidden sub-folders (or files) of `folder`; [] if it is missing."""
    if not os.path.isdir(folder):
        return []
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries
                      if not e.name.startswith(".") and e.is_dir() == want_dirs)


def _stem_index(file_names: list[str]) -> dict[str, list[str]]:
    """Stem -> file names with that stem."""
    index = collections.defaultdict(list)
    for name in file_names:
        index[os.path.splitext(name)[0]].append(name)
    return index


def _caption_stems(root: str, class_names: list[str]) -> dict[str, list[str]]:
    """Class -> sorted stems of its `text_c10/<class>/*.txt` files."""
    stems = {}
    for name in class_names:
        files = _list_dir(os.path.join(root, TEXT_DIR, name), want_dirs=False)
        stems[name] = [f[:-4] for f in files if f.lower().endswith(".txt")]
    return stems


def _note_unlisted_and_unsplit(root: str, variant: str, classes: _ClassLists,
                               text_folders: list[str], log: ProblemLog) -> None:
    known = set(classes.all)
    image_folders = _list_dir(os.path.join(root, NESTED_DIR), want_dirs=True)
    for folder, names in ((TEXT_DIR, text_folders),
                          (NESTED_DIR, image_folders if variant == NESTED_DIR else [])):
        log.extend("unlisted_class", [f"{folder}/{name}" for name in names if name not in known])
    used = set(classes.train) | set(classes.test)
    log.extend("unsplit_class", [name for name in classes.all if name not in used])


def _pair(root: str, variant: str, classes: _ClassLists, log: ProblemLog) -> list[_Example]:
    """Pairs each caption file with its image by stem; records every unpaired file in `log`."""
    text_folders = _list_dir(os.path.join(root, TEXT_DIR), want_dirs=True)
    _note_unlisted_and_unsplit(root, variant, classes, text_folders, log)
    all_stems = _caption_stems(root, text_folders)
    # Every split class has a text_c10 folder (checked with the class lists).
    stems = {name: all_stems[name] for name in classes.train + classes.test}
    if variant == FLAT_DIR:
        # Images captioned only in classes left out of the splits (reported per class above)
        # are not "uncaptioned", so every text_c10 folder counts.
        captioned = set().union(*all_stems.values())
        images = _pair_flat(root, stems, captioned, log)
    else:
        images = _pair_nested(root, stems, log)
    examples = []
    for (class_name, stem), image_path in images.items():
        captions = _read_captions(root, class_name, stem, log)
        if captions:
            examples.append(_Example(class_name, image_path, captions))
    return examples


def _pair_flat(root: str, stems: dict[str, list[str]], captioned: set[str],
               log: ProblemLog) -> dict[tuple[str, str], str]:
    """(class, stem) -> image path for jpg/<stem>.*; the class comes from text_c10 alone."""
    image_dir = os.path.join(root, FLAT_DIR)
    by_stem = _stem_index(_list_dir(image_dir, want_dirs=False))
    classes_of = collections.defaultdict(list)
    for class_name, class_stems in stems.items():
        for stem in class_stems:
            classes_of[stem].append(class_name)
    log.extend("no_caption", [f"{FLAT_DIR}/{name}" for stem in sorted(by_stem)
                              if stem not in captioned
                              for name in by_stem[stem] if is_image_name(name)])
    pairs = {}
    for stem, class_names in sorted(classes_of.items()):
        if len(class_names) > 1:
            log.add("ambiguous_class", f"{FLAT_DIR}/{stem} (in {', '.join(class_names)})")
            continue
        image = _match_image(root, image_dir, by_stem.get(stem, []),
                             f"{TEXT_DIR}/{class_names[0]}/{stem}.txt", log)
        if image:
            pairs[(class_names[0], stem)] = image
    return pairs


def _pair_nested(root: str, stems: dict[str, list[str]],
                 log: ProblemLog) -> dict[tuple[str, str], str]:
    """(class, stem) -> image path for images/<class>/<stem>.*."""
    pairs = {}
    for class_name, class_stems in stems.items():
        image_dir = os.path.join(root, NESTED_DIR, class_name)
        by_stem = _stem_index(_list_dir(image_dir, want_dirs=False))
        captioned = set(class_stems)
        log.extend("no_caption", [f"{NESTED_DIR}/{class_name}/{name}" for stem in sorted(by_stem)
                                  if stem not in captioned
                                  for name in by_stem[stem] if is_image_name(name)])
        for stem in class_stems:
            image = _match_image(root, image_dir, by_stem.get(stem, []),
                                 f"{TEXT_DIR}/{class_name}/{stem}.txt", log)
            if image:
                pairs[(class_name, stem)] = image
    return pairs


def _match_image(root: str, image_dir: str, names: list[str], caption: str,
                 log: ProblemLog) -> str | None:
    """The one image among the files sharing a caption's stem, or None after logging why not."""
    images = [name for name in names if is_image_name(name)]
    if len(images) == 1:
        return os.path.join(image_dir, images[0])
    if len(images) > 1:
        log.add("ambiguous_image", f"{caption} ({', '.join(images)})")
    elif names:
        # A file is there under the caption's stem, but not with a JPEG/PNG extension.
        log.add("not_image", f"{os.path.relpath(os.path.join(image_dir, names[0]), root)} "
                             f"(not a .jpg, .jpeg or .png file)")
    else:
        log.add("no_image", caption)
    return None


def _read_captions(root: str, class_name: str, stem: str, log: ProblemLog) -> tuple[str, ...]:
    """The caption file's non-blank lines, or () after logging why there are none."""
    relative = f"{TEXT_DIR}/{class_name}/{stem}.txt"
    try:
        captions = tuple(_read_lines(os.path.join(root, relative)))
    except (UnicodeDecodeError, OSError):
        log.add("caption_encoding", relative)
        return ()
    if not captions:
        log.add("empty_caption", relative)
    return captions


def _drop_bad_images(root: str, examples: list[_Example], log: ProblemLog) -> list[_Example]:
    """Decodes every image (in parallel) and drops the ones the pipeline could not read."""
    bad_images = check_images([e.image_path for e in examples])
    for bad in bad_images:
        log.add("corrupt" if bad.kind == CORRUPT else "not_image", describe_bad_image(bad, root))
    bad_paths = {bad.path for bad in bad_images}
    return [e for e in examples if e.image_path not in bad_paths]


def _make_split(root: str, file_name: str, split_classes: tuple[str, ...],
                all_classes: tuple[str, ...], examples: list[_Example], log: ProblemLog) -> Split:
    """The examples of `split_classes`, ordered by class (allclasses order) then image path."""
    class_ids = {name: i for i, name in enumerate(all_classes)}
    wanted = set(split_classes)
    chosen = sorted((e for e in examples if e.class_name in wanted),
                    key=lambda e: (class_ids[e.class_name], e.image_path))
    if split_classes and not chosen:
        raise DataError(f"{os.path.join(root, file_name)} lists {len(split_classes)} classes but "
                        f"none of their images is usable ({log.brief()}): fix those files or "
                        f"move the classes.")
    return Split(
        captions=tuple(e.captions for e in chosen),
        labels=np.array([class_ids[e.class_name] for e in chosen], dtype=np.int32),
        image_paths=tuple(e.image_path for e in chosen),
    )
