"""Tiny on-disk datasets for the scanner tests, with knobs that inject each kind of bad data.

`make_reed_dataset` writes Reed et al.'s `text_c10` layout (flat `jpg/` like Oxford-102 or
nested `images/<class>/` like CUB); `make_jsonl_dataset` writes a `captions.jsonl` folder. Both
return the counts a correct scanner must report. Every caption names its image's stem (or file)
and class so tests can check the pairing.

Images are 24x20 px and cycle through colour modes and formats the pipeline must accept:
RGB/grayscale/CMYK JPEG, RGBA/palette/RGB PNG, and upper-case and `.jpeg` extensions.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import re
import shutil

from PIL import Image

IMAGE_SIZE = (24, 20)
# (PIL mode, format, extension): cycled over the images.
IMAGE_KINDS = (
    ("RGB", "JPEG", ".jpg"),
    ("L", "JPEG", ".jpg"),
    ("RGBA", "PNG", ".png"),
    ("P", "PNG", ".png"),
    ("CMYK", "JPEG", ".jpg"),
    ("RGB", "PNG", ".PNG"),
    ("RGB", "JPEG", ".jpeg"),
)

# Bad cases for make_reed_dataset. Skips map to the problem kind they must be counted under.
REED_SKIPS = {
    "no_caption": "no_caption",            # an extra image without caption file
    "no_image": "no_image",                # an extra caption file without image
    "empty_caption": "empty_caption",      # a caption file with only blank lines
    "not_utf8": "caption_encoding",        # a Latin-1 caption file
    "truncated_image": "corrupt",          # a JPEG cut inside its compressed data
    "empty_image": "corrupt",              # a zero-byte image file
    "gif_as_jpg": "not_image",             # a GIF saved under a .jpg name
    "text_as_jpg": "not_image",            # text saved under a .jpg name
    "gif_extension": "not_image",          # the image is <stem>.gif
    "ambiguous_image": "ambiguous_image",  # <stem>.jpg and <stem>.png both exist
    "ambiguous_class": "ambiguous_class",  # flat only: the caption file is in two classes
    "unlisted_class": "unlisted_class",    # a text_c10 (and images/) folder not in allclasses
    "unsplit_class": "unsplit_class",      # a class in allclasses but in neither split file
}
# Skips that cost the dataset one of its regular images.
_REED_VICTIM_SKIPS = ("empty_caption", "not_utf8", "truncated_image", "empty_image", "gif_as_jpg",
                      "text_as_jpg", "gif_extension", "ambiguous_image", "ambiguous_class")
REED_ERRORS = (
    "missing_text_dir", "missing_split_file", "both_image_dirs", "no_image_dir",
    "split_class_not_in_allclasses", "split_class_without_folder", "class_in_both_splits",
    "empty_trainval", "test_images_all_bad", "all_images_bad",
)

JSONL_SKIPS = {
    "missing_file": "missing_file",        # a line whose file does not exist
    "blank_text": "empty_text",            # a line whose captions are all blank
    "truncated_image": "corrupt",          # a JPEG cut inside its compressed data
    "gif_as_jpg": "not_image",             # a GIF saved under a .jpg name
}
JSONL_ERRORS = (
    "missing_jsonl", "empty_jsonl", "invalid_json", "not_an_object", "missing_text",
    "missing_file_name", "text_wrong_type", "label_wrong_type", "bad_split", "partial_labels",
    "conflicting_duplicate", "class_in_both_splits", "all_images_bad",
)


@dataclasses.dataclass
class _Image:
    class_name: str
    stem: str
    kind: tuple[str, str, str]
    test: bool


def assert_one_sentence_error(message: str, path: str, fragments) -> None:
    """A data error is one sentence that names `path` and every fragment of `fragments`."""
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message and message.endswith(".")


def write_image(path: str, mode: str = "RGB", image_format: str = "JPEG", seed: int = 0) -> None:
    """Writes a tiny noisy image; noise keeps JPEG data long enough to truncate inside it."""
    rng = random.Random(seed)
    rgb = Image.frombytes("RGB", IMAGE_SIZE, bytes(rng.randrange(256) for _ in range(24 * 20 * 3)))
    image = rgb.convert(mode) if mode != "P" else rgb.quantize(16)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, format=image_format)


def truncate_jpeg(path: str) -> None:
    """Cuts a JPEG a few bytes into its compressed data: the header parses, decoding fails."""
    with open(path, "rb") as f:
        data = f.read()
    start_of_scan = data.index(b"\xff\xda")
    with open(path, "wb") as f:
        f.write(data[:start_of_scan + 20])


def _write_text(path: str, text: str | bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode("utf-8"))


def caption_lines(stem: str, class_name: str, count: int) -> list[str]:
    """Captions that name their image's stem and class, so tests can check the pairing."""
    return [f"caption {j} of {stem} in {class_name}" for j in range(count)]


def _reed_class_names(variant: str, count: int) -> list[str]:
    if variant == "flat":
        return [f"class_{i + 1:05d}" for i in range(count)]
    return [f"{i + 1:03d}.Species_{chr(ord('A') + i)}" for i in range(count)]


def _reed_images(variant: str, class_names: list[str], test_ids: set[int],
                 images_per_class: int) -> list[_Image]:
    """Images with stems chosen so that sorted image and caption listings disagree."""
    total = len(class_names) * images_per_class
    numbers = list(range(1, total + 1))
    # Shuffled numbering: jpg/ sorted by stem interleaves classes, text_c10 is grouped by class.
    random.Random(0).shuffle(numbers)
    images = []
    for c, class_name in enumerate(class_names):
        for k in range(images_per_class):
            n = numbers[c * images_per_class + k]
            # CUB-like stems: counting down, with an id that sorts in yet another order.
            stem = (f"image_{n:05d}" if variant == "flat" else
                    f"{class_name.split('.')[1]}_{images_per_class - k:04d}_{n * 7919 % 100000}")
            images.append(_Image(class_name, stem, IMAGE_KINDS[len(images) % len(IMAGE_KINDS)],
                                 c in test_ids))
    return images


def _image_path(root: str, variant: str, image: _Image, ext: str | None = None) -> str:
    ext = image.kind[2] if ext is None else ext
    if variant == "flat":
        return os.path.join(root, "jpg", image.stem + ext)
    return os.path.join(root, "images", image.class_name, image.stem + ext)


def _caption_path(root: str, class_name: str, stem: str) -> str:
    return os.path.join(root, "text_c10", class_name, stem + ".txt")


def _write_reed_image(root: str, variant: str, image: _Image, captions_per_image: int,
                      seed: int) -> None:
    mode, image_format, _ = image.kind
    write_image(_image_path(root, variant, image), mode, image_format, seed)
    lines = caption_lines(image.stem, image.class_name, captions_per_image)
    # Blank lines, padding and CRLF line ends must all be tolerated.
    text = "\n\n".join(f"  {line} " for line in lines) if seed % 2 else "\r\n".join(lines) + "\r\n"
    _write_text(_caption_path(root, image.class_name, image.stem), text)


def _write_class_files(root: str, all_classes: list[str], train: list[str],
                       test: list[str]) -> None:
    for name, classes in (("allclasses.txt", all_classes), ("trainvalclasses.txt", train),
                          ("testclasses.txt", test)):
        _write_text(os.path.join(root, name), "".join(c + "\n" for c in classes))


def make_reed_dataset(root: str, variant: str = "flat", classes: int = 5, test_classes: int = 2,
                      images_per_class: int = 3, captions_per_image: int = 2,
                      inject: frozenset[str] | set[str] = frozenset()) -> dict:
    """Writes a Reed et al. `text_c10` dataset under `root` and returns the expected counts.

    Args:
        variant: "flat" (jpg/<stem>.jpg, Oxford-102) or "nested" (images/<class>/<stem>.jpg, CUB).
        classes: classes in allclasses.txt; `test_classes` of them (every other, from the
            second) go to testclasses.txt, the rest to trainvalclasses.txt.
        inject: names from REED_SKIPS and REED_ERRORS. Each skip case spoils one train image or
            adds one extra file; error cases make the scan fail.

    Returns:
        {"classes", "train_images", "test_images", "train_captions", "test_captions",
         "skipped": Counter(problem kind -> count), "class_names", "test_class_names"}.
    """
    unknown = set(inject) - set(REED_SKIPS) - set(REED_ERRORS)
    assert not unknown, f"unknown inject names {unknown}"
    class_names = _reed_class_names(variant, classes)
    test_ids = set(range(1, 2 * test_classes, 2))
    assert len(test_ids) == test_classes and max(test_ids, default=0) < classes
    images = _reed_images(variant, class_names, test_ids, images_per_class)
    for seed, image in enumerate(images):
        _write_reed_image(root, variant, image, captions_per_image, seed)
    train = [c for i, c in enumerate(class_names) if i not in test_ids]
    # testclasses.txt in reverse order: labels must follow allclasses.txt, not the split file.
    test = [c for i, c in enumerate(class_names) if i in test_ids][::-1]
    all_classes = list(class_names)
    skipped = collections.Counter()
    victims = [image for image in images if not image.test]
    for name in sorted(set(inject) & set(REED_SKIPS)):
        if name in _REED_VICTIM_SKIPS:
            victim = victims.pop()
            images.remove(victim)
            _spoil_reed_image(root, variant, victim, name, class_names)
        else:
            _add_reed_extra(root, variant, name, class_names[0], all_classes, skipped)
        skipped[REED_SKIPS[name]] += 1
    _write_class_files(root, all_classes, train, test)
    for name in set(inject) & set(REED_ERRORS):
        _inject_reed_error(root, variant, name, images, class_names, train, test)
    return _reed_counts(images, all_classes, test, captions_per_image, skipped)


def _spoil_reed_image(root: str, variant: str, image: _Image, name: str,
                      class_names: list[str]) -> None:
    """Applies one skip case to an existing image or its caption file."""
    image_path = _image_path(root, variant, image)
    caption_path = _caption_path(root, image.class_name, image.stem)
    if name == "empty_caption":
        _write_text(caption_path, "\n   \n\n")
    elif name == "not_utf8":
        _write_text(caption_path, "a caf\xe9 flower\n".encode("latin-1"))
    elif name == "truncated_image":
        os.remove(image_path)
        image_path = _image_path(root, variant, image, ".jpg")
        write_image(image_path, seed=1)
        truncate_jpeg(image_path)
    elif name == "empty_image":
        _write_text(image_path, b"")
    elif name == "gif_as_jpg":
        os.remove(image_path)
        write_image(_image_path(root, variant, image, ".jpg"), "P", "GIF")
    elif name == "text_as_jpg":
        _write_text(image_path, "this is not an image\n")
    elif name == "gif_extension":
        os.remove(image_path)
        write_image(_image_path(root, variant, image, ".gif"), "P", "GIF")
    elif name == "ambiguous_image":
        other = (".png", "PNG") if image.kind[1] == "JPEG" else (".jpg", "JPEG")
        write_image(_image_path(root, variant, image, other[0]), "RGB", other[1])
    elif name == "ambiguous_class":
        assert variant == "flat", "ambiguous_class exists only in the flat layout"
        other_class = next(c for c in class_names if c != image.class_name)
        shutil.copy(caption_path, _caption_path(root, other_class, image.stem))


def _add_reed_extra(root: str, variant: str, name: str, first_class: str, all_classes: list[str],
                    skipped: collections.Counter) -> None:
    """Applies one skip case that adds files rather than spoiling an image."""
    if name == "no_caption":
        # Stem "image_00000" / "Aaa_0000" sorts first: index-based pairing would shift by one.
        extra = _Image(first_class, "image_00000" if variant == "flat" else "Aaa_0000",
                       IMAGE_KINDS[0], False)
        write_image(_image_path(root, variant, extra))
    elif name == "no_image":
        _write_text(_caption_path(root, first_class, "image_99999"), "a caption without image\n")
    elif name in ("unlisted_class", "unsplit_class"):
        number = 99999 if name == "unlisted_class" else 99998
        class_name = f"class_{number}" if variant == "flat" else f"{number % 1000}.Extra_Species"
        extra = _Image(class_name, f"image_{number - 11111}" if variant == "flat" else
                       f"Extra_{number}", IMAGE_KINDS[0], False)
        write_image(_image_path(root, variant, extra))
        _write_text(_caption_path(root, class_name, extra.stem), "an extra class\n")
        if name == "unsplit_class":
            all_classes.append(class_name)
        elif variant == "nested":
            skipped["unlisted_class"] += 1  # Both text_c10/<class> and images/<class>.


def _inject_reed_error(root: str, variant: str, name: str, images: list[_Image],
                       class_names: list[str], train: list[str], test: list[str]) -> None:
    """Applies one error case after the dataset is written."""
    if name == "missing_text_dir":
        shutil.rmtree(os.path.join(root, "text_c10"))
    elif name == "missing_split_file":
        os.remove(os.path.join(root, "testclasses.txt"))
    elif name == "both_image_dirs":
        os.makedirs(os.path.join(root, "images" if variant == "flat" else "jpg"))
    elif name == "no_image_dir":
        shutil.rmtree(os.path.join(root, "jpg" if variant == "flat" else "images"))
    elif name == "split_class_not_in_allclasses":
        _write_class_files(root, class_names, train, test + ["class_77777"])
    elif name == "split_class_without_folder":
        _write_class_files(root, class_names + ["class_77777"], train, test + ["class_77777"])
    elif name == "class_in_both_splits":
        _write_class_files(root, class_names, train, test + [train[0]])
    elif name == "empty_trainval":
        _write_class_files(root, class_names, [], test)
    elif name in ("test_images_all_bad", "all_images_bad"):
        for image in images:
            if image.test or name == "all_images_bad":
                _write_text(_image_path(root, variant, image), b"\xff\xd8 broken")


def _reed_counts(images: list[_Image], all_classes: list[str], test_classes: list[str],
                 captions_per_image: int, skipped: collections.Counter) -> dict:
    train_images = sum(not image.test for image in images)
    test_images = len(images) - train_images
    return {
        "classes": len(all_classes),
        "class_names": tuple(all_classes),
        "test_class_names": tuple(test_classes),
        "train_images": train_images,
        "test_images": test_images,
        "train_captions": train_images * captions_per_image,
        "test_captions": test_images * captions_per_image,
        "skipped": skipped,
    }


def make_jsonl_dataset(root: str, images: int = 12, labels: str | None = "str",
                       num_classes: int = 6, split: bool = False, captions_per_image: int = 2,
                       inject: frozenset[str] | set[str] = frozenset()) -> dict:
    """Writes a `captions.jsonl` folder under `root` and returns the expected counts.

    Args:
        images: regular images, spread over `num_classes` classes round-robin; half sit in a
            sub-folder. Odd images give `text` as a list, even ones as a string plus a second
            (duplicate `file_name`) line, which the scanner must merge.
        labels: "str" (label "class_<i>"), "int" (label i) or None (no label key).
        split: if True, the last class (or, without labels, the last image) gets "split": "test"
            and other lines carry no split key (so they are train).
        inject: names from JSONL_SKIPS and JSONL_ERRORS.

    Returns:
        {"images", "captions", "classes", "train_images", "test_images" (None when the scanner's
         holdout decides), "skipped": Counter(problem kind -> count), "lines": [dict, ...]}.
    """
    unknown = set(inject) - set(JSONL_SKIPS) - set(JSONL_ERRORS)
    assert not unknown, f"unknown inject names {unknown}"
    lines = []
    classes_used = set()
    test_images = 0
    for i in range(images):
        file_name = f"{'sub/' if i % 2 else ''}img_{(i * 37) % 101:03d}{IMAGE_KINDS[i % 7][2]}"
        mode, image_format, _ = IMAGE_KINDS[i % len(IMAGE_KINDS)]
        write_image(os.path.join(root, file_name), mode, image_format, seed=i)
        class_id = i % num_classes
        record = _jsonl_record(file_name, class_id, labels, captions_per_image, i)
        is_test = split and (class_id == num_classes - 1 if labels else i == images - 1)
        if is_test:
            record["split"] = "test"
            test_images += 1
        classes_used.add(class_id if labels else file_name)
        lines.extend(_maybe_duplicate(record))
    skipped = collections.Counter()
    for name in sorted(set(inject) & set(JSONL_SKIPS)):
        lines.append(_jsonl_skip_line(root, name, labels))
        skipped[JSONL_SKIPS[name]] += 1
    text = "".join(json.dumps(line) + "\n" for line in lines)
    text = _inject_jsonl_error(root, text, set(inject) & set(JSONL_ERRORS), lines, labels)
    if text is not None:
        _write_text(os.path.join(root, "captions.jsonl"), text)
    return {
        "images": images,
        "captions": images * captions_per_image,
        "classes": len(classes_used),
        "train_images": images - test_images if split or not labels else None,
        "test_images": test_images if split or not labels else None,
        "skipped": skipped,
        "lines": lines,
    }


def _jsonl_record(file_name: str, class_id: int, labels: str | None, captions_per_image: int,
                  i: int) -> dict:
    class_name = f"class_{class_id}"
    captions = caption_lines(file_name, class_name if labels else file_name, captions_per_image)
    record = {"file_name": file_name, "text": captions if i % 2 else captions[0]}
    if i % 2 == 0:
        record["_rest"] = captions[1:]  # Moved to a duplicate line by _maybe_duplicate.
    if labels == "str":
        record["label"] = class_name
    elif labels == "int":
        record["label"] = class_id
    return record


def _maybe_duplicate(record: dict) -> list[dict]:
    """The record, plus a second line for the same file holding its remaining captions."""
    rest = record.pop("_rest", None)
    if not rest:
        return [record]
    duplicate = {k: v for k, v in record.items() if k != "text"}
    # The first caption repeats: merging must drop exact repeats.
    duplicate["text"] = [record["text"]] + rest
    return [record, duplicate]


def _jsonl_skip_line(root: str, name: str, labels: str | None) -> dict:
    """A line (and file) for one skip case."""
    file_name = f"bad_{name}.jpg"
    if name == "truncated_image":
        write_image(os.path.join(root, file_name), seed=3)
        truncate_jpeg(os.path.join(root, file_name))
    elif name == "gif_as_jpg":
        write_image(os.path.join(root, file_name), "P", "GIF")
    elif name == "blank_text":
        write_image(os.path.join(root, file_name))
    record = {"file_name": file_name, "text": ["  ", ""] if name == "blank_text" else "a caption"}
    if labels:
        record["label"] = "class_0" if labels == "str" else 0
    return record


def _inject_jsonl_error(root: str, text: str, names: set[str], lines: list[dict],
                        labels: str | None) -> str | None:
    """Returns the captions.jsonl text with error cases applied (None: do not write it)."""
    label = {"label": "class_0" if labels == "str" else 0} if labels else {}
    extra = {
        "invalid_json": '{"file_name": "x.jpg", "text": "unterminated\n',
        "not_an_object": '["x.jpg", "a caption"]\n',
        "missing_text": json.dumps({"file_name": lines[0]["file_name"], **label}) + "\n",
        "missing_file_name": json.dumps({"text": "a caption", **label}) + "\n",
        "text_wrong_type": json.dumps({"file_name": "x.jpg", "text": 5, **label}) + "\n",
        "label_wrong_type": json.dumps({"file_name": "x.jpg", "text": "a", "label": 1.5}) + "\n",
        "bad_split": json.dumps({"file_name": "x.jpg", "text": "a", "split": "valid", **label})
                     + "\n",
        "partial_labels": json.dumps({"file_name": "x.jpg", "text": "a",
                                      **({} if labels else {"label": "c"})}) + "\n",
        "conflicting_duplicate": json.dumps({**lines[0], "split": "test"}) + "\n",
        # Needs labels: a test image in class_0, whose other images are train.
        "class_in_both_splits": json.dumps({"file_name": "both.jpg", "text": "a", **label,
                                            "split": "test"}) + "\n",
    }
    for name in sorted(names):
        if name == "missing_jsonl":
            return None
        if name == "empty_jsonl":
            text = "\n  \n"
        elif name == "class_in_both_splits":
            write_image(os.path.join(root, "both.jpg"))
            text += extra[name]
        elif name == "all_images_bad":
            for line in lines:
                _write_text(os.path.join(root, line["file_name"]), b"\x89PNG broken")
        else:
            text += extra[name]
    return text


def problem_counts(index, kinds: dict) -> dict:
    """Problem kind -> count, read back from `index.problems` using the scanner's `kinds`."""
    counts = {}
    for line in index.problems:
        number, phrase = re.match(r"(\d+) (.*?): ", line).groups()
        matches = [k for k, spec in kinds.items() if phrase in (spec.singular, spec.plural)]
        assert len(matches) == 1, f"unrecognised problem line: {line}"
        counts[matches[0]] = int(number)
    return counts


def write_untrained_run(path: str, config) -> tuple:
    """A run folder as train.py leaves it (config.json, a checkpoint) with untrained weights, in
    a second instead of a training run's ~20 s; returns (path, its LoadedRun)."""
    from tf_t2i.checkpoints import RunCheckpoints
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.runs import LoadedRun, build_gan

    import keras

    # A run folder records a resolved precision; these models are built and saved in float32,
    # so loading the folder again draws the same images on any CPU.
    config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                   precision="float32"))
    keras.mixed_precision.set_global_policy("float32")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        f.write(config.to_json())
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=1)
    record = {"stage": "gan", "step": 0, "style_step": 0, "noise_state": [0, 0]}
    RunCheckpoints(path).save(gan, record)
    return path, LoadedRun(config, encoder, gan, record)


def run_evaluate(*argv) -> tuple:
    """(exit code, stdout, stderr) of `evaluate.py argv`, run in this process."""
    import contextlib
    import io

    import pytest

    from tf_t2i.cli.evaluate import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
    return exit_info.value.code, out.getvalue(), err.getvalue()
