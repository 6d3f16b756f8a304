"""Tests of the Reed et al. `text_c10` scanner and the shared image check."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from tests.fixtures import (
    REED_ERRORS, REED_SKIPS, assert_one_sentence_error, make_reed_dataset, problem_counts,
    truncate_jpeg, write_image)
from tf_t2i.data import image_check
from tf_t2i.data.reed_dataset import PROBLEM_KINDS, load_reed
from tf_t2i.errors import DataError, UserInputError

VARIANTS = ("flat", "nested")


def assert_counts(index, expected):
    assert len(index.class_names) == expected["classes"]
    assert index.class_names == expected["class_names"]
    assert len(index.train) == expected["train_images"]
    assert len(index.test) == expected["test_images"]
    assert index.train.num_captions == expected["train_captions"]
    assert index.test.num_captions == expected["test_captions"]
    assert problem_counts(index, PROBLEM_KINDS) == dict(expected["skipped"])


def assert_paired_by_stem(index):
    """Every image's captions name its own stem and class (the fixture writes them so)."""
    for split in (index.train, index.test):
        for path, captions, label in zip(split.image_paths, split.captions, split.labels):
            stem = os.path.splitext(os.path.basename(path))[0]
            for caption in captions:
                expected_end = f" of {stem} in {index.class_names[label]}"
                assert caption.endswith(expected_end), (path, caption)


@pytest.mark.parametrize("variant", VARIANTS)
def test_clean_dataset_counts(tmp_path, variant):
    expected = make_reed_dataset(str(tmp_path), variant, classes=5, test_classes=2,
                                 images_per_class=4, captions_per_image=3)
    index = load_reed(str(tmp_path))
    assert_counts(index, expected)
    assert index.problems == ()
    assert variant in index.name and str(tmp_path) in index.name
    assert (expected["train_images"], expected["test_images"]) == (12, 8)
    for split in (index.train, index.test):
        assert split.labels.dtype == np.int32
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in split.image_paths)
        assert all(c == c.strip() and c for captions in split.captions for c in captions)


@pytest.mark.parametrize("variant", VARIANTS)
def test_labels_follow_allclasses_and_splits_are_class_disjoint(tmp_path, variant):
    expected = make_reed_dataset(str(tmp_path), variant)
    index = load_reed(str(tmp_path))
    # testclasses.txt is written in reverse order; labels still index allclasses.txt.
    test_ids = sorted(index.class_names.index(c) for c in expected["test_class_names"])
    assert index.test.class_ids.tolist() == test_ids
    assert not set(index.train.class_ids) & set(index.test.class_ids)
    assert list(index.train.labels) == sorted(index.train.labels)


@pytest.mark.parametrize("variant", VARIANTS)
def test_pairs_images_and_captions_by_stem(tmp_path, variant):
    # An extra uncaptioned image that sorts first and an extra image-less caption file shift any
    # pairing by listing position; the shuffled numbering already makes the orders disagree.
    make_reed_dataset(str(tmp_path), variant, inject={"no_caption", "no_image"})
    image_stems = sorted(os.path.splitext(name)[0] for _, _, names in os.walk(tmp_path / (
        "jpg" if variant == "flat" else "images")) for name in names)
    caption_stems = [name[:-4] for _, _, names in sorted(os.walk(tmp_path / "text_c10"))
                     for name in sorted(names)]
    assert image_stems != caption_stems  # The fixture does exercise stem pairing.
    index = load_reed(str(tmp_path))
    assert_paired_by_stem(index)
    assert len(index.train) + len(index.test) == len(caption_stems) - 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_grayscale_rgba_palette_and_cmyk_images_are_accepted(tmp_path, variant):
    make_reed_dataset(str(tmp_path), variant, images_per_class=3)
    index = load_reed(str(tmp_path))
    assert index.problems == ()
    paths = index.train.image_paths + index.test.image_paths
    modes = set()
    for path in paths:
        with Image.open(path) as image:
            modes.add((image.mode, image.format))
    assert {("L", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"),
            ("RGB", "JPEG"), ("RGB", "PNG")} <= modes
    assert {os.path.splitext(p)[1] for p in paths} >= {".jpg", ".jpeg", ".png", ".PNG"}


def test_accepted_images_decode_in_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow")
    make_reed_dataset(str(tmp_path), "flat", images_per_class=3)
    index = load_reed(str(tmp_path))
    for path in index.train.image_paths + index.test.image_paths:
        pixels = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        assert tuple(pixels.shape) == (20, 24, 3) and pixels.dtype == tf.uint8


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", sorted(REED_SKIPS))
def test_each_bad_case_is_skipped_and_counted(tmp_path, variant, case):
    if case == "ambiguous_class" and variant == "nested":
        pytest.skip("a nested image's class is its folder, so it cannot be in two classes")
    expected = make_reed_dataset(str(tmp_path), variant, inject={case})
    index = load_reed(str(tmp_path))
    assert_counts(index, expected)
    assert_paired_by_stem(index)
    kind = REED_SKIPS[case]
    line, = [line for line in index.problems
             if PROBLEM_KINDS[kind].singular in line or PROBLEM_KINDS[kind].plural in line]
    # The line names the offending path relative to the dataset root.
    assert re.search(r"(jpg|images|text_c10)/", line) or kind == "unsplit_class", line
    assert str(tmp_path) not in line


@pytest.mark.parametrize("variant", VARIANTS)
def test_all_bad_cases_at_once(tmp_path, variant):
    cases = set(REED_SKIPS) - ({"ambiguous_class"} if variant == "nested" else set())
    expected = make_reed_dataset(str(tmp_path), variant, images_per_class=5, inject=cases)
    index = load_reed(str(tmp_path))
    assert_counts(index, expected)
    assert_paired_by_stem(index)


def test_problem_line_shows_first_three_paths_and_a_count(tmp_path):
    make_reed_dataset(str(tmp_path), "flat")
    for number in range(5):
        write_image(str(tmp_path / "jpg" / f"image_{90000 + number}.jpg"))
    index = load_reed(str(tmp_path))
    assert index.problems == (
        "5 images have no caption file in text_c10/ and were skipped: jpg/image_90000.jpg, "
        "jpg/image_90001.jpg, jpg/image_90002.jpg and 2 more.",)


def test_hidden_and_non_image_files_are_ignored_silently(tmp_path):
    expected = make_reed_dataset(str(tmp_path), "flat")
    for junk in ("jpg/.DS_Store", "jpg/Thumbs.db", "text_c10/class_00001/.hidden.txt",
                 "text_c10/class_00001/image_00001.h5", "text_c10/.DS_Store"):
        (tmp_path / junk).write_bytes(b"junk")
    index = load_reed(str(tmp_path))
    assert index.problems == ()
    assert_counts(index, expected)


ERROR_MENTIONS = {
    "missing_text_dir": ["text_c10"],
    "missing_split_file": ["testclasses.txt"],
    "both_image_dirs": ["both", "jpg/"],
    "no_image_dir": ["neither", "jpg/"],
    "split_class_not_in_allclasses": ["testclasses.txt", "class_77777", "allclasses.txt"],
    "split_class_without_folder": ["testclasses.txt", "class_77777", "text_c10"],
    "class_in_both_splits": ["trainvalclasses.txt", "testclasses.txt"],
    "empty_trainval": ["trainvalclasses.txt"],
    "test_images_all_bad": ["testclasses.txt", "not_image"],
    "all_images_bad": ["No usable image"],
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", REED_ERRORS)
def test_each_error_case_raises_one_sentence_naming_the_path(tmp_path, variant, case):
    make_reed_dataset(str(tmp_path), variant, inject={case})
    with pytest.raises(DataError) as info:
        load_reed(str(tmp_path))
    assert_one_sentence_error(str(info.value), tmp_path, ERROR_MENTIONS[case])


def test_missing_dataset_folder_is_an_error(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(UserInputError, match=re.escape(missing)):
        load_reed(missing)


def test_check_images_reports_bad_files_in_input_order(tmp_path):
    good = str(tmp_path / "good.png")
    truncated = str(tmp_path / "truncated.jpg")
    gif = str(tmp_path / "anim.jpg")
    text = str(tmp_path / "notes.png")
    write_image(good, "RGBA", "PNG")
    write_image(truncated)
    truncate_jpeg(truncated)
    write_image(gif, "P", "GIF")
    (tmp_path / "notes.png").write_text("hello")
    bad = image_check.check_images([text, good, truncated, gif], max_workers=2)
    assert [(b.path, b.kind) for b in bad] == [
        (text, image_check.NOT_IMAGE), (truncated, image_check.CORRUPT),
        (gif, image_check.NOT_IMAGE)]
    assert "truncated" in bad[1].reason and "GIF" in bad[2].reason
    assert image_check.check_images([]) == []
