"""Scanner for an image folder described by a `captions.jsonl` file.

Layout (the path given may be the folder or the `.jsonl` file itself)::

    <folder>/captions.jsonl     one JSON object per line (blank lines are ignored)
    <folder>/<file_name>        the images, anywhere below the folder (JPEG or PNG)

Each line is an object such as
`{"file_name": "birds/0001.jpg", "text": ["a red bird", "a small cardinal"], "label": "cardinal",
"split": "train"}`:

- `file_name` (required): a path relative to the folder.
- `text` (required): a caption string or a list of caption strings; captions are stripped and
  blank ones dropped.
- `label` (optional): a string or an integer; it names the image's class (`3` and `"3"` are the
  same class). Either every line has a label or none does.
- `split` (optional): `"train"` or `"test"`.
- Other keys are ignored. Lines with the same `file_name` are merged: their captions are
  concatenated (exact repeats dropped) and their labels and splits must agree.

Classes and splits:

=========================  =================================================================
Lines carry                Result
=========================  =================================================================
`split` on any line        that split; lines without `split` are train; classes = labels,
                           or one class per image (its file name) without labels; a class
                           with images in both splits is an error (splits are class-disjoint)
labels, no `split`         a deterministic class-disjoint split: with >= 5 classes, the ~20%
                           of classes (round(n / 5)) whose names have the smallest SHA-1 are
                           test; with fewer than 5 classes the test split is empty
neither                    one class per image (class name = file name); all images train,
                           the test split is empty
=========================  =================================================================

`class_names` are the classes that keep at least one image, sorted (integer labels numerically,
before string labels); labels index into them.

Bad data policy. Errors raise `DataError` with one sentence naming the path (and line) and the
fix; skips leave the image out and add one line per kind to `DatasetIndex.problems` (count + first
3 items).

==============================================================  ===================================
Case                                                            Outcome
==============================================================  ===================================
folder missing                                                  error
`captions.jsonl` missing, or empty (no non-blank line)          error
a line that is not UTF-8, not valid JSON, or not an object      error (names file and line)
`file_name` or `text` missing                                   error (names file and line)
wrong types: `file_name` not a non-empty relative path,         error (names file and line)
`text` not a string or list of strings, `label` not a
string or integer, `split` not "train" or "test"
some lines labelled and others not                              error (names file and line)
duplicate `file_name` lines with different labels or splits     error (names file and both lines)
a class with images in both splits (explicit `split`)           error
no usable image left after the skips below                      error
the train split ends empty, or the test split ends empty        error
although lines ask for it
a line whose file does not exist                                skip ("missing_file")
a file whose captions are all blank                             skip ("empty_text")
a corrupt or truncated image                                    skip ("corrupt")
a file that is not a JPEG or PNG                                skip ("not_image")
==============================================================  ===================================
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from tf_t2i.data.dataset_index import DatasetIndex, Split
from tf_t2i.data.image_check import (
    CORRUPT, ProblemKind, ProblemLog, check_images, describe_bad_image)
from tf_t2i.errors import DataError

JSONL_NAME = "captions.jsonl"
SPLITS = ("train", "test")
# Held-out share of classes when labels exist but no line names a split, and the fewest classes
# for which anything is held out (fewer would leave too little to train on).
HOLDOUT_FRACTION = 0.2
HOLDOUT_MIN_CLASSES = 5

PROBLEM_KINDS = {
    "missing_file": ProblemKind(
        f"{JSONL_NAME} line names a file that does not exist and was skipped",
        f"{JSONL_NAME} lines name files that do not exist and were skipped"),
    "empty_text": ProblemKind(
        "image has only blank captions and was skipped",
        "images have only blank captions and were skipped"),
    "corrupt": ProblemKind(
        "image is corrupt or truncated and was skipped",
        "images are corrupt or truncated and were skipped"),
    "not_image": ProblemKind(
        "file is not a JPEG or PNG image and was skipped",
        "files are not JPEG or PNG images and were skipped"),
}


@dataclasses.dataclass
class _Entry:
    """One image: the merge of every line naming its file."""

    file_name: str
    line: int
    captions: list[str]
    label: str | int | None
    split: str | None


def load_jsonl(path: str) -> DatasetIndex:
    """Scans a folder with `captions.jsonl` (see the module docstring for format and rules).

    Raises:
        DataError: for the error cases of the module docstring's bad data policy.
    """
    folder, jsonl_path = _locate(path)
    entries = _merge(jsonl_path, _parse_lines(jsonl_path))
    explicit_split = any(entry.split is not None for entry in entries)
    test_requested = any(entry.split == "test" for entry in entries)
    has_labels = entries[0].label is not None
    log = ProblemLog(PROBLEM_KINDS)
    entries = _drop_unusable(folder, entries, log)
    if not entries:
        raise DataError(f"No usable image is left in {folder} after skipping bad data "
                        f"({log.brief()}): fix those lines or files and scan again.")
    if explicit_split:
        for entry in entries:
            entry.split = entry.split or "train"
        _check_class_disjoint(jsonl_path, entries, has_labels)
    else:
        _assign_holdout(entries, has_labels)
    class_names = _class_names(entries, has_labels)
    splits = {name: _make_split(folder, entries, name, class_names, has_labels)
              for name in SPLITS}
    _check_split_sizes(jsonl_path, splits, test_requested, log)
    return DatasetIndex(name=f"jsonl at {folder}", class_names=tuple(str(c) for c in class_names),
                        train=splits["train"], test=splits["test"], problems=log.lines())


def _locate(path: str) -> tuple[str, str]:
    """(folder, captions file) for a folder path or a path to the .jsonl file itself."""
    path = os.path.abspath(path)
    if os.path.isfile(path) and path.endswith(".jsonl"):
        return os.path.dirname(path), path
    if not os.path.isdir(path):
        raise DataError(f"Dataset folder {path} does not exist: pass the folder that holds "
                        f"{JSONL_NAME} and its images.")
    jsonl_path = os.path.join(path, JSONL_NAME)
    if not os.path.isfile(jsonl_path):
        raise DataError(f"{jsonl_path} is missing: write one JSON object per image with "
                        f"'file_name' and 'text' (see the jsonl format in the docs).")
    return path, jsonl_path


def _parse_lines(jsonl_path: str) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line, in file order."""
    with open(jsonl_path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    parsed = []
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{jsonl_path} line {number}"
        try:
            # utf-8-sig drops a byte-order mark, which only the first line can carry.
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where} is not UTF-8 text: re-save the file as UTF-8.") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{where} is not valid JSON (column {error.colno}: {error.msg}): "
                            f"write one JSON object per line.") from None
        if not isinstance(record, dict):
            raise DataError(f"{where} is a JSON {type(record).__name__}, not an object: write "
                            f"one object with 'file_name' and 'text' per line.")
        parsed.append((number, record))
    if not parsed:
        raise DataError(f"{jsonl_path} is empty: write one JSON object per image with "
                        f"'file_name' and 'text'.")
    return parsed


def _validate(where: str, record: dict) -> _Entry:
    """Checks one line's keys and types; returns it as an entry."""
    for key in ("file_name", "text"):
        if key not in record:
            raise DataError(f"{where} has no '{key}': every line needs 'file_name' and 'text'.")
    file_name, text = record["file_name"], record["text"]
    if not isinstance(file_name, str) or not file_name.strip() or os.path.isabs(file_name):
        raise DataError(f"{where}: 'file_name' must be a non-empty path relative to the folder, "
                        f"not {file_name!r}.")
    if isinstance(text, str):
        text = [text]
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        raise DataError(f"{where}: 'text' must be a string or a list of strings, not "
                        f"{type(record['text']).__name__} {record['text']!r:.60}.")
    label = record.get("label")
    # bool is an int subclass, but true/false labels are almost certainly a mistake.
    if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))
                              or label == ""):
        raise DataError(f"{where}: 'label' must be a non-empty string or an integer, not "
                        f"{label!r}.")
    split = record.get("split")
    if split is not None and split not in SPLITS:
        raise DataError(f"{where}: 'split' must be \"train\" or \"test\", not {split!r}.")
    return _Entry(file_name=os.path.normpath(file_name.strip()), line=0,
                  captions=[t.strip() for t in text if t.strip()], label=label, split=split)


def _merge(jsonl_path: str, lines: list[tuple[int, dict]]) -> list[_Entry]:
    """Validates every line and merges lines naming the same file, in first-seen order."""
    entries: dict[str, _Entry] = {}
    first_line = {True: None, False: None}  # labelled? -> first line number
    for number, record in lines:
        entry = _validate(f"{jsonl_path} line {number}", record)
        entry.line = number
        labelled = entry.label is not None
        first_line[labelled] = first_line[labelled] or number
        if first_line[not labelled]:
            raise DataError(f"{jsonl_path} line {number} {'has a' if labelled else 'has no'} "
                            f"'label' but line {first_line[not labelled]} "
                            f"{'has none' if labelled else 'has one'}: label every line or none.")
        first = entries.get(entry.file_name)
        if first is None:
            entries[entry.file_name] = entry
        else:
            _merge_into(jsonl_path, first, entry)
    return list(entries.values())


def _merge_into(jsonl_path: str, first: _Entry, entry: _Entry) -> None:
    """Adds a repeated line's captions to the first line for its file; labels and splits agree."""
    for field in ("label", "split"):
        mine, theirs = getattr(first, field), getattr(entry, field)
        # str(): label 3 and label "3" are the same class.
        if (mine is None) != (theirs is None) or str(mine) != str(theirs):
            shown = " and ".join("none" if v is None else repr(v) for v in (mine, theirs))
            raise DataError(f"{jsonl_path} lines {first.line} and {entry.line} give "
                            f"{entry.file_name} different {field}s ({shown}): an image has one "
                            f"{field}, make them agree.")
    first.captions.extend(c for c in entry.captions if c not in first.captions)


def _drop_unusable(folder: str, entries: list[_Entry], log: ProblemLog) -> list[_Entry]:
    """Skips entries whose file is missing, whose captions are blank, or that do not decode."""
    kept = []
    for entry in entries:
        if not os.path.isfile(os.path.join(folder, entry.file_name)):
            log.add("missing_file", f"line {entry.line} ({entry.file_name})")
        elif not entry.captions:
            log.add("empty_text", f"line {entry.line} ({entry.file_name})")
        else:
            kept.append(entry)
    bad_images = check_images([os.path.join(folder, entry.file_name) for entry in kept])
    for bad in bad_images:
        log.add("corrupt" if bad.kind == CORRUPT else "not_image", describe_bad_image(bad, folder))
    bad_paths = {os.path.relpath(bad.path, folder) for bad in bad_images}
    return [entry for entry in kept if entry.file_name not in bad_paths]


def _class_of(entry: _Entry, has_labels: bool) -> str | int:
    return entry.label if has_labels else entry.file_name


def _check_class_disjoint(jsonl_path: str, entries: list[_Entry], has_labels: bool) -> None:
    """Errors if a class has images in both splits (only labels can make that happen)."""
    if not has_labels:
        return
    first_line = {}
    for entry in entries:
        key = (str(entry.label), entry.split)
        first_line.setdefault(key, entry.line)
        other = (str(entry.label), "test" if entry.split == "train" else "train")
        if other in first_line:
            raise DataError(f"{jsonl_path} puts class {entry.label!r} in both splits (lines "
                            f"{first_line[other]} and {entry.line}): the test split holds unseen "
                            f"classes, so give all of a class's lines the same split.")


def _holdout_classes(class_names: list[str]) -> set[str]:
    """The classes held out as test: a deterministic ~20% by SHA-1 of the class name."""
    if len(class_names) < HOLDOUT_MIN_CLASSES:
        return set()
    count = int(len(class_names) * HOLDOUT_FRACTION + 0.5)
    # Ranking by hash rather than by name or a seeded shuffle: adding or removing a class moves
    # few other classes between splits, and no class's name decides its split by alphabet.
    ranked = sorted(class_names, key=lambda name: hashlib.sha1(name.encode()).hexdigest())
    return set(ranked[:count])


def _assign_holdout(entries: list[_Entry], has_labels: bool) -> None:
    labels = sorted({str(entry.label) for entry in entries}) if has_labels else []
    test = _holdout_classes(labels)
    for entry in entries:
        entry.split = "test" if has_labels and str(entry.label) in test else "train"


def _class_names(entries: list[_Entry], has_labels: bool) -> list[str | int]:
    """Distinct classes, sorted: integers numerically first, then strings."""
    classes = {_class_of(entry, has_labels) for entry in entries}
    # Integer label 3 and string label "3" name the same class.
    by_name = {}
    for value in classes:
        by_name.setdefault(str(value), value)
    return sorted(by_name.values(), key=lambda c: (0, c, "") if isinstance(c, int) else (1, 0, c))


def _make_split(folder: str, entries: list[_Entry], split: str, class_names: list[str | int],
                has_labels: bool) -> Split:
    """The entries of one split, ordered by class then file name."""
    class_ids = {str(name): i for i, name in enumerate(class_names)}
    chosen = sorted((e for e in entries if e.split == split),
                    key=lambda e: (class_ids[str(_class_of(e, has_labels))], e.file_name))
    return Split(
        captions=tuple(tuple(e.captions) for e in chosen),
        labels=np.array([class_ids[str(_class_of(e, has_labels))] for e in chosen],
                        dtype=np.int32),
        image_paths=tuple(os.path.join(folder, e.file_name) for e in chosen),
    )


def _check_split_sizes(jsonl_path: str, splits: dict[str, Split], test_requested: bool,
                       log: ProblemLog) -> None:
    """Errors if the train split, or a test split some line asked for, ended up empty."""
    skipped = f" ({log.brief()})" if log.brief() else ""
    if not len(splits["train"]):
        raise DataError(f"{jsonl_path} leaves no usable image in the train split{skipped}: mark "
                        f"some lines \"split\": \"train\" or fix the skipped files.")
    if test_requested and not len(splits["test"]):
        raise DataError(f"{jsonl_path} marks lines \"split\": \"test\" but none of their "
                        f"images is usable{skipped}: fix those files or drop the test lines.")
