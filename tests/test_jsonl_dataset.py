"""Tests of the captions.jsonl scanner."""
import json
import os
import re

import pytest

from tests.fixtures import (
    JSONL_ERRORS, JSONL_SKIPS, assert_one_sentence_error, make_jsonl_dataset, problem_counts,
    write_image)
from tf_t2i.data.jsonl_dataset import PROBLEM_KINDS, load_jsonl
from tf_t2i.errors import DataError


def all_paths(index):
    return index.train.image_paths + index.test.image_paths


def assert_paired(index, root):
    """Every image's captions name its own file (the fixture writes them so)."""
    for split in (index.train, index.test):
        for path, captions in zip(split.image_paths, split.captions):
            file_name = os.path.relpath(path, root).replace(os.sep, "/")
            assert all(f" of {file_name} in " in caption for caption in captions), (path, captions)


def test_labels_without_split_hold_out_a_fifth_of_the_classes(tmp_path):
    expected = make_jsonl_dataset(str(tmp_path), images=20, labels="str", num_classes=10)
    index = load_jsonl(str(tmp_path))
    assert index.problems == ()
    assert len(index.class_names) == expected["classes"] == 10
    assert len(index.train) + len(index.test) == 20
    assert len(index.test.class_ids) == 2 and len(index.test) == 4
    assert not set(index.train.class_ids) & set(index.test.class_ids)
    # Duplicate file_name lines are merged and the repeated caption dropped.
    assert index.train.num_captions + index.test.num_captions == expected["captions"]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in all_paths(index))
    assert_paired(index, str(tmp_path))
    again = load_jsonl(str(tmp_path))
    assert again.test.image_paths == index.test.image_paths  # Deterministic.


def test_fewer_than_five_classes_hold_out_nothing(tmp_path):
    make_jsonl_dataset(str(tmp_path), images=8, labels="str", num_classes=4)
    index = load_jsonl(str(tmp_path))
    assert (len(index.train), len(index.test), len(index.class_names)) == (8, 0, 4)


def test_integer_labels_sort_numerically(tmp_path):
    make_jsonl_dataset(str(tmp_path), images=12, labels="int", num_classes=12)
    index = load_jsonl(str(tmp_path))
    assert index.class_names == tuple(str(i) for i in range(12))
    assert len(index.test.class_ids) == 2  # round(12 / 5)


def test_no_labels_no_split_makes_every_image_its_own_class(tmp_path):
    expected = make_jsonl_dataset(str(tmp_path), images=7, labels=None)
    index = load_jsonl(str(tmp_path))
    assert len(index.train) == expected["train_images"] == 7 and len(index.test) == 0
    names = sorted(os.path.relpath(p, str(tmp_path)) for p in index.train.image_paths)
    assert list(index.class_names) == names
    assert sorted(index.train.labels.tolist()) == list(range(7))
    assert_paired(index, str(tmp_path))


@pytest.mark.parametrize("labels", ["str", None])
def test_explicit_split_lines_without_split_are_train(tmp_path, labels):
    expected = make_jsonl_dataset(str(tmp_path), images=10, labels=labels, num_classes=3,
                                  split=True)
    index = load_jsonl(str(tmp_path))
    assert len(index.train) == expected["train_images"]
    assert len(index.test) == expected["test_images"] > 0
    assert len(index.class_names) == expected["classes"]
    assert not set(index.train.class_ids) & set(index.test.class_ids)
    assert_paired(index, str(tmp_path))


def test_path_may_be_the_jsonl_file(tmp_path):
    make_jsonl_dataset(str(tmp_path), images=6, labels=None)
    index = load_jsonl(str(tmp_path / "captions.jsonl"))
    assert len(index.train) == 6


@pytest.mark.parametrize("case", sorted(JSONL_SKIPS))
def test_each_bad_case_is_skipped_and_counted(tmp_path, case):
    expected = make_jsonl_dataset(str(tmp_path), images=6, labels=None, inject={case})
    index = load_jsonl(str(tmp_path))
    assert len(index.train) == expected["images"]
    assert problem_counts(index, PROBLEM_KINDS) == dict(expected["skipped"])
    assert f"bad_{case}.jpg" in index.problems[0]


def test_all_bad_cases_at_once(tmp_path):
    expected = make_jsonl_dataset(str(tmp_path), images=10, labels="str", num_classes=5,
                                  inject=set(JSONL_SKIPS))
    index = load_jsonl(str(tmp_path))
    assert len(index.train) + len(index.test) == expected["images"]
    assert problem_counts(index, PROBLEM_KINDS) == dict(expected["skipped"])
    assert_paired(index, str(tmp_path))


ERROR_MENTIONS = {
    "missing_jsonl": ["captions.jsonl is missing"],
    "empty_jsonl": ["captions.jsonl is empty"],
    "invalid_json": ["line", "not valid JSON"],
    "not_an_object": ["line", "not an object"],
    "missing_text": ["line", "'text'"],
    "missing_file_name": ["line", "'file_name'"],
    "text_wrong_type": ["line", "'text' must be"],
    "label_wrong_type": ["line", "'label' must be"],
    "bad_split": ["line", "'split' must be"],
    "partial_labels": ["line", "label every line or none"],
    "conflicting_duplicate": ["lines 1 and", "different splits"],
    "class_in_both_splits": ["class_0", "both splits"],
    "all_images_bad": ["No usable image"],
}


@pytest.mark.parametrize("case", JSONL_ERRORS)
def test_each_error_case_raises_one_sentence_naming_the_path(tmp_path, case):
    make_jsonl_dataset(str(tmp_path), images=6, labels="str", num_classes=3, inject={case})
    with pytest.raises(DataError) as info:
        load_jsonl(str(tmp_path))
    assert_one_sentence_error(str(info.value), tmp_path, ERROR_MENTIONS[case])


def test_line_errors_name_the_line_number(tmp_path):
    write_image(str(tmp_path / "a.jpg"))
    lines = [json.dumps({"file_name": "a.jpg", "text": "ok"}), "", "{oops"]
    (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'captions.jsonl'} line 3 ")):
        load_jsonl(str(tmp_path))


@pytest.mark.parametrize("empty_split", ["train", "test"])
def test_a_split_that_ends_empty_is_an_error(tmp_path, empty_split):
    write_image(str(tmp_path / "a.jpg"))
    other = "test" if empty_split == "train" else "train"
    lines = [{"file_name": "a.jpg", "text": "a", "split": other},
             {"file_name": "gone.jpg", "text": "b", "split": empty_split}]
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(DataError, match=f"{empty_split}.*missing_file, e.g. line 2"):
        load_jsonl(str(tmp_path))


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nowhere"))):
        load_jsonl(str(tmp_path / "nowhere"))
