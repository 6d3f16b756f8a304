"""Tests of `train.py --dry-run` (resolved configuration + dataset summary) and of the one-line
errors train.py gives for bad flags and bad data.

The issue's bars: the dry-run prints the configuration and a summary (images, captions, classes,
train/test split sizes, a sample caption, problems) whose counts match what the fixture writers
generated, for both Reed variants, a captions.jsonl folder and the built-in synthetic dataset;
bad input gets exit code 2 and one line `error: ...` naming the path or flag and the fix, found
while the dataset is scanned, never a traceback.
"""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

from tests.fixtures import JSONL_SKIPS, REED_SKIPS, make_jsonl_dataset, make_reed_dataset
from tf_t2i.cli.train import main
from tf_t2i.config import get_preset
from tf_t2i.data import jsonl_dataset, reed_dataset
from tf_t2i.data.synthetic import load_synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SUMMARY = re.compile(
    r"dataset: (?P<name>.*)\n"
    r"  images: (?P<images>\d+)   captions: (?P<captions>\d+)   classes: (?P<classes>\d+)\n"
    r"  train: (?P<train_images>\d+) images in (?P<train_classes>\d+) classes\n"
    r"  test:  (?P<test_images>\d+) images in (?P<test_classes>\d+) classes\n"
    r"  sample caption: (?P<sample>.*)\n"
    r"  problems(?:: none\n| \((?P<count>\d+)\):\n(?P<problems>(?:    - .*\n)*))$")
_COUNTS = ("images", "captions", "classes", "train_images", "train_classes", "test_images",
           "test_classes")


def run_train(capsys, *argv):
    """(exit code, stdout, stderr) of `train.py argv` run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def parse_dry_run(out):
    """(config dict, summary dict) from the dry-run's stdout; fails if its layout is off."""
    assert out.startswith("configuration:\n"), out[:200]
    config_text, sep, summary_text = out[len("configuration:\n"):].partition("\ndataset: ")
    assert sep, out
    match = _SUMMARY.fullmatch("dataset: " + summary_text)
    assert match, summary_text
    summary = {key: int(match[key]) for key in _COUNTS}
    summary["name"] = match["name"]
    summary["sample"] = ast.literal_eval(match["sample"])
    summary["problems"] = [line[len("    - "):] for line in (match["problems"] or "").splitlines()]
    assert len(summary["problems"]) == int(match["count"] or 0)
    return json.loads(config_text), summary


def dry_run(capsys, *argv):
    code, out, err = run_train(capsys, *argv, "--dry-run")
    assert (code, err) == (0, ""), err
    return parse_dry_run(out)


def skip_counts(problems, kinds):
    """Problem kind -> count for the summary's skip lines; fails on a line of no known kind."""
    counts = {}
    for line in problems:
        number, phrase = re.match(r"(\d+) (.*?): ", line).groups()
        matches = [k for k, spec in kinds.items() if phrase in (spec.singular, spec.plural)]
        assert len(matches) == 1, f"unrecognised problem line: {line}"
        counts[matches[0]] = int(number)
    return counts


def assert_reed_counts(summary, expected):
    train_classes = len(expected["class_names"]) - len(expected["test_class_names"])
    # A class in allclasses.txt but in neither split file has no images, so it is not counted.
    train_classes -= expected["skipped"]["unsplit_class"]
    assert {key: summary[key] for key in _COUNTS} == {
        "images": expected["train_images"] + expected["test_images"],
        "captions": expected["train_captions"] + expected["test_captions"],
        "classes": train_classes + len(expected["test_class_names"]),
        "train_images": expected["train_images"],
        "train_classes": train_classes,
        "test_images": expected["test_images"],
        "test_classes": len(expected["test_class_names"]),
    }


@pytest.mark.parametrize("variant", ("flat", "nested"))
def test_dry_run_summarises_a_reed_dataset(tmp_path, capsys, variant):
    expected = make_reed_dataset(str(tmp_path), variant, classes=5, test_classes=2,
                                 images_per_class=4, captions_per_image=3)
    config, summary = dry_run(capsys, "--preset", "tiny", "--data", tmp_path, "--format", "reed")
    assert config["data"]["format"] == "reed" and config["data"]["path"] == str(tmp_path)
    assert_reed_counts(summary, expected)
    assert (summary["images"], summary["train_images"], summary["test_images"]) == (20, 12, 8)
    assert summary["name"] == (f"reed ({'flat jpg/' if variant == 'flat' else 'nested images/'}) "
                               f"at {tmp_path}")
    # The sample is a real caption of a train image (the fixture names stem and class in it).
    class_name = re.fullmatch(r"caption \d of \S+ in (\S+)", summary["sample"])[1]
    assert class_name in expected["class_names"]
    assert class_name not in expected["test_class_names"]
    assert summary["problems"] == []


@pytest.mark.parametrize("variant", ("flat", "nested"))
def test_dry_run_lists_skipped_reed_data_with_counts(tmp_path, capsys, variant):
    inject = set(REED_SKIPS) - ({"ambiguous_class"} if variant == "nested" else set())
    # 10 images per class: the up to 9 spoiled train images leave every class at least one.
    expected = make_reed_dataset(str(tmp_path), variant, classes=5, test_classes=2,
                                 images_per_class=10, captions_per_image=2, inject=inject)
    _, summary = dry_run(capsys, "--preset", "tiny", "--data", tmp_path, "--format", "reed")
    assert_reed_counts(summary, expected)
    counts = skip_counts(summary["problems"], reed_dataset.PROBLEM_KINDS)
    assert counts == dict(expected["skipped"])
    # One line per kind of skip, each counted (two spoiled images share the "corrupt" line).
    assert len(summary["problems"]) == len({REED_SKIPS[name] for name in inject})
    assert counts["corrupt"] == 2


@pytest.mark.parametrize("labels, split", [("str", True), ("int", True), (None, False)])
def test_dry_run_summarises_a_jsonl_folder(tmp_path, capsys, labels, split):
    expected = make_jsonl_dataset(str(tmp_path), images=12, labels=labels, num_classes=6,
                                  split=split, captions_per_image=2, inject=set(JSONL_SKIPS))
    _, summary = dry_run(capsys, "--preset", "tiny", "--data", tmp_path, "--format", "jsonl")
    test_classes = 1 if expected["test_images"] else 0
    assert {key: summary[key] for key in _COUNTS} == {
        "images": expected["images"],
        "captions": expected["captions"],
        "classes": expected["classes"],
        "train_images": expected["train_images"],
        "train_classes": expected["classes"] - test_classes,
        "test_images": expected["test_images"],
        "test_classes": test_classes,
    }
    assert summary["name"] == f"jsonl at {tmp_path}"
    assert re.fullmatch(r"caption 0 of \S+ in \S+", summary["sample"])
    assert skip_counts(summary["problems"], jsonl_dataset.PROBLEM_KINDS) == dict(
        expected["skipped"])


def test_dry_run_of_synthetic_data_matches_the_generator_and_applies_overrides(capsys):
    config, summary = dry_run(
        capsys, "--preset", "tiny", "--format", "synthetic", "--image-size", 64,
        "--batch-size", 4, "--seed", 3, "--epochs", 7, "--set", "train.learning_rate=0.001",
        "--set", "data.synthetic_images_per_class=2", "--set", "model.text_conv_filters=8,8")
    assert config["name"] == "tiny"
    assert (config["data"]["image_size"], config["data"]["batch_size"], config["data"]["seed"],
            config["data"]["synthetic_images_per_class"]) == (64, 4, 3, 2)
    assert config["train"]["learning_rate"] == 0.001
    assert (config["train"]["epochs"], config["train"]["steps"]) == (7, 0)  # --epochs wins
    assert config["model"]["text_conv_filters"] == [8, 8]
    assert config["model"]["z_dim"] == 16  # untouched fields keep the preset's value

    index = load_synthetic(image_size=64, images_per_class=2, seed=3)
    assert_matches_synthetic(summary, index, caption_length=config["data"]["caption_length"])


def test_dry_run_with_hard_negatives_shows_the_attribute_words(capsys, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("petals\n", encoding="utf-8")
    code, out, err = run_train(capsys, "--preset", "tiny", "--dry-run", "--set",
                               "train.hard_negative_weight=1", "--set",
                               f"data.attribute_words={words}")
    assert (code, err) == (0, "")
    summary, sep, last = out.rstrip("\n").rpartition("\n")
    assert parse_dry_run(summary + "\n")[0]["train"]["hard_negative_weight"] == 1.0
    assert last.startswith("attribute words: ") and " discovered (score in nats): " in last
    assert "red (" in last and last.endswith("; 1 given: petals")


def assert_matches_synthetic(summary, index, caption_length):
    train, test = index.train, index.test
    assert {key: summary[key] for key in _COUNTS} == {
        "images": len(train) + len(test),
        "captions": train.num_captions + test.num_captions,
        "classes": len(index.class_names),
        "train_images": len(train),
        "train_classes": len(set(train.labels)),
        "test_images": len(test),
        "test_classes": len(set(test.labels)),
    }
    assert (summary["classes"], summary["train_classes"], summary["test_classes"]) == (168, 140, 28)
    assert summary["name"] == "synthetic"
    assert summary["sample"] == train.captions[0][0]
    too_long = sum(len(c) > caption_length for captions in train.captions for c in captions)
    assert too_long > 0
    assert summary["problems"] == [
        f"{too_long} train captions are longer than data.caption_length={caption_length} "
        f"characters and will be truncated."]


def test_dry_run_reports_a_batch_larger_than_the_train_split(tmp_path, capsys):
    expected = make_reed_dataset(str(tmp_path), "flat")
    _, summary = dry_run(capsys, "--preset", "tiny", "--data", tmp_path, "--format", "reed",
                         "--batch-size", 64)
    assert summary["problems"] == [
        f"the train split has {expected['train_images']} images, fewer than one batch of 64: "
        f"training cannot start; lower --batch-size."]


def test_train_script_dry_run_in_a_subprocess():
    """`python train.py --preset tiny --dry-run` from the repository root, as a user runs it."""
    result = subprocess.run([sys.executable, "train.py", "--preset", "tiny", "--dry-run"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    config, summary = parse_dry_run(result.stdout)
    assert (config["name"], config["data"]["format"], config["data"]["image_size"]) == (
        "tiny", "synthetic", 32)
    index = load_synthetic(image_size=32, images_per_class=config["data"][
        "synthetic_images_per_class"], seed=config["data"]["seed"])
    assert_matches_synthetic(summary, index, caption_length=config["data"]["caption_length"])


def test_train_script_bad_data_is_the_only_line_on_stderr(tmp_path):
    """The real script: no TensorFlow start-up notice or traceback around the error line.

    (--dry-run scans before TensorFlow is imported. A training run scans inside run_training,
    after the import, so there TensorFlow 2.21's oneDNN notice still precedes the line.)
    """
    make_reed_dataset(str(tmp_path), "nested", inject={"missing_split_file"})
    result = subprocess.run(
        [sys.executable, "train.py", "--data", str(tmp_path), "--format", "reed", "--dry-run"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'testclasses.txt'} is missing: the reed format needs "
        f"allclasses.txt, trainvalclasses.txt and testclasses.txt (one class folder per line)."]


def _reed(tmp_path, inject=()):
    make_reed_dataset(str(tmp_path), "flat", inject=set(inject))
    return ["--data", tmp_path, "--format", "reed"]


def _jsonl(tmp_path, inject=()):
    make_jsonl_dataset(str(tmp_path), inject=set(inject))
    return ["--data", tmp_path, "--format", "jsonl"]


def _run_folder(tmp_path, config_text=None):
    if config_text is not None:
        (tmp_path / "config.json").write_text(config_text)
    return ["--resume", tmp_path]


# (case, argv builder, fragments the one error line must contain: what is wrong and what to do).
BAD_INPUT = [
    ("missing reed folder", lambda t: ["--data", t / "nope", "--format", "reed"],
     ["{t}/nope does not exist", "text_c10/"]),
    ("missing jsonl folder", lambda t: ["--data", t / "nope", "--format", "jsonl"],
     ["{t}/nope does not exist", "captions.jsonl"]),
    ("missing split file", lambda t: _reed(t, {"missing_split_file"}),
     ["{t}/testclasses.txt is missing", "needs allclasses.txt"]),
    ("split class without folder", lambda t: _reed(t, {"split_class_without_folder"}),
     ["{t}/testclasses.txt names class 'class_77777'", "{t}/text_c10/class_77777 does not exist",
      "fix the class name"]),
    ("no image folder", lambda t: _reed(t, {"no_image_dir"}),
     ["{t} has neither of jpg/", "keep exactly one image folder"]),
    ("every image bad", lambda t: _reed(t, {"all_images_bad"}),
     ["No usable image is left in {t}", "fix those files"]),
    ("jsonl file missing", lambda t: _jsonl(t, {"missing_jsonl"}),
     ["{t}/captions.jsonl is missing", "write one JSON object per image"]),
    ("empty captions.jsonl", lambda t: _jsonl(t, {"empty_jsonl"}),
     ["{t}/captions.jsonl is empty", "write one JSON object per image"]),
    ("invalid json line", lambda t: _jsonl(t, {"invalid_json"}),
     ["{t}/captions.jsonl line ", "is not valid JSON"]),
    ("reed without --data", lambda t: ["--format", "reed"],
     ["--data is required for --format reed", "pass the dataset folder"]),
    ("--data without --format", lambda t: ["--data", t],
     ["--data was given without --format", "add --format reed or --format jsonl"]),
    ("bad --set key", lambda t: ["--set", "train.nope=1"],
     ["--set 'train.nope=1'", "train has no field 'nope'", "learning_rate"]),
    ("bad --set section", lambda t: ["--set", "learning_rate=1"],
     ["--set 'learning_rate=1'", "write section.field=value"]),
    ("bad --set value", lambda t: ["--set", "train.learning_rate=fast"],
     ["--set train.learning_rate=fast", "expected a value like 0.0002"]),
    ("out-of-range --set value", lambda t: ["--set", "data.image_size=48"],
     ["data.image_size must be 32, 64 or 128"]),
    ("batch size too small", lambda t: ["--batch-size", 1], ["data.batch_size must be >= 2"]),
    ("missing attribute words file", lambda t: [
        "--set", "train.hard_negative_weight=1", "--set", f"data.attribute_words={t}/words.txt"],
     ["data.attribute_words={t}/words.txt: no such file", "one word per line"]),
    ("hard negative fraction above 1", lambda t: [
        "--set", "train.hard_negative_wrong_fraction=1.5"],
     ["train.hard_negative_wrong_fraction must be in [0, 1]"]),
    ("--resume without config.json", lambda t: _run_folder(t),
     ["{t} has no config.json", "pass a run folder written by train.py"]),
    ("--resume with a corrupt config.json", lambda t: _run_folder(t, "{not json"),
     ["{t}/config.json is not a configuration", "pass a run folder written by train.py"]),
    ("--resume with an unknown field", lambda t: _run_folder(t, '{"data": {"colour": 1}}'),
     ["{t}/config.json is not a configuration", "unknown fields ['colour']"]),
]


@pytest.mark.parametrize("case, argv, fragments", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_error_line_and_exit_code_2(tmp_path, capsys, case, argv, fragments):
    code, out, err = run_train(capsys, "--preset", "tiny", *argv(tmp_path), "--dry-run")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and lines[0].endswith("."), lines[0]
    for fragment in fragments:
        assert fragment.format(t=tmp_path) in lines[0]


def test_unknown_preset_is_an_argparse_error(capsys):
    code, out, err = run_train(capsys, "--preset", "huge", "--dry-run")
    assert (code, out) == (2, "")
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(
        "train.py: error: argument --preset: invalid choice: 'huge'")



def test_data_a_dry_run_accepts_feeds_the_training_pipeline(tmp_path, capsys):
    """Images with fewer captions than captions_per_image (k=4) still make training batches."""
    from tf_t2i.config import Config
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.data.load_dataset import load_dataset
    from tf_t2i.data.pipeline import make_train_dataset

    make_jsonl_dataset(str(tmp_path), images=12, captions_per_image=2, split=True)
    config, summary = dry_run(capsys, "--preset", "tiny", "--data", tmp_path, "--format", "jsonl")
    assert summary["problems"] == []
    data = Config.from_dict(config).data
    assert data.captions_per_image == 4
    encoder = CaptionEncoder(data.alphabet, data.caption_length)
    batch = next(iter(make_train_dataset(load_dataset(data).train, data, encoder)))
    assert batch["images"].shape == (8, 32, 32, 3)
    assert batch["captions"].shape == (8, 4, data.caption_length)


def test_flowers64_plus_trains_on_a_reed_folder_with_its_options(tmp_path, capsys):
    """The GPU preset with the quality options runs end to end (warm-up with hard negative
    captions, GAN steps, style step) at the tiny preset's sizes."""
    data, run = tmp_path / "data", tmp_path / "run"
    expected = make_reed_dataset(str(data), "flat", classes=5, test_classes=2,
                                 images_per_class=4, captions_per_image=3)
    # The fixture's captions ("caption 0 of image_00013 in class_00005") have no attribute
    # words to discover: the class names, given as attribute words, make the hard negatives.
    given = ",".join(expected["class_names"])
    tiny = get_preset("tiny").model
    sizes = [f"model.{name}="
             + (",".join(map(str, value)) if isinstance(value, tuple) else str(value))
             for name in ("z_dim", "embedding_dim", "text_projection_dim", "ngf", "ndf",
                          "char_embedding_dim", "text_conv_filters", "text_rnn_units",
                          "image_encoder_filters", "style_encoder_filters")
             for value in [getattr(tiny, name)]]
    sizes += [f"data.attribute_words={given}", "data.caption_length=64",
              "train.encoder_warmup_steps=2", "train.style_steps=1", "train.sample_every=2",
              "train.checkpoint_every=2", "train.log_every=1", "train.steps_per_execution=1"]
    overrides = [arg for size in sizes for arg in ("--set", size)]
    code, out, err = run_train(capsys, "--preset", "flowers64-plus", "--data", data, "--format",
                               "reed", "--image-size", "32", "--batch-size", "4", "--steps", "2",
                               "--no-export", "--out", run, *overrides)
    assert code == 0, err
    assert f"attribute words: 0 discovered; 5 given: {given.replace(',', ', ')}" in out, out
    with open(run / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    assert config["name"] == "flowers64-plus"
    assert (config["model"]["generator_conditioning"], config["model"]["upsampling"],
            config["train"]["gan_loss"], config["train"]["hard_negative_weight"]) == (
        "attention", "nearest", "hinge", 5.0)
    with open(run / "checkpoints" / "latest.json", encoding="utf-8") as f:
        record = json.load(f)
    assert (record["encoder_step"], record["step"], record["style_step"]) == (2, 2, 1)
