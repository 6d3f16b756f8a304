"""`evaluate.py metrics`, `train-evaluator` and `plot` end to end, and metrics during training.

One tiny run is trained for the module, on a Reed-layout dataset, with metrics every 2 steps
during training (metrics.jsonl, the best checkpoint, curves.png). Run folders on a captions.jsonl
folder and on the built-in dataset hold untrained checkpoints (seconds instead of a training run
each); the slow test trains the jsonl one and compares it with its export. Bad input must be one
`error:` line and exit code 2.
"""
import contextlib
import dataclasses
import io
import json
import os
import re

import pytest
from PIL import Image

from tests.fixtures import make_jsonl_dataset, make_reed_dataset, write_untrained_run
from tests.fixtures import run_evaluate as evaluate
from tf_t2i.config import get_preset
from tf_t2i.training import run_training


def notes(err):
    return [line for line in err.splitlines() if line.startswith("note: ")]


def _train(path, data_format, data_path, export=True, **train_fields):
    """Trains 2 GAN steps and 1 style step; without `export`, skips the SavedModel export at
    the end (seconds; it reads the weights, never writes them)."""
    config = _config(data_format, data_path)
    config = dataclasses.replace(
        config, train=dataclasses.replace(config.train, steps=2, style_steps=1, **train_fields))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        run_training(config, str(path), export=export)
    return str(path), err.getvalue()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def reed(work):
    """(dataset folder, run folder trained with metrics every 2 steps, best by diversity, its
    stderr)."""
    data = work / "reed"
    make_reed_dataset(str(data), "flat")
    run, err = _train(work / "reed-run", "reed", data, export=False, eval_every=2,
                      eval_images=6, best_metric="diversity", diversity_warning=1.0)
    return str(data), run, err


def _config(data_format, data_path):
    config = get_preset("tiny")
    return dataclasses.replace(config, data=dataclasses.replace(
        config.data, format=data_format, path=None if data_path is None else str(data_path)))


@pytest.fixture(scope="module")
def jsonl(work):
    """(dataset folder, untrained run folder on it)."""
    data = work / "jsonl"
    make_jsonl_dataset(str(data))
    return str(data), write_untrained_run(str(work / "jsonl-run"), _config("jsonl", data))[0]


@pytest.fixture(scope="module")
def evaluator(reed, work):
    path = work / "evaluator"
    code, out, err = evaluate("train-evaluator", "--data", reed[0], "--format", "reed",
                              "--steps", 3, "--image-size", 16, "--batch-size", 4,
                              "--out", path)
    assert code == 0, err
    assert out.splitlines()[-1].startswith("wrote evaluator (16 px, 3 steps on reed")
    assert sorted(os.listdir(path)) == ["evaluator.json", "image_encoder.weights.h5",
                                        "text_encoder.weights.h5"]
    return str(path)


def _check_entry(entry, num_images, seed=0, split="test"):
    assert (entry["num_images"], entry["seed"], entry["split"]) == (num_images, seed, split)


def test_metrics_of_a_reed_run_with_an_evaluator(reed, evaluator, work):
    data, run, _ = reed
    out_file = work / "reed.json"
    code, out, err = evaluate("metrics", "--model", run, "--data", data, "--format", "reed",
                              "--evaluator", evaluator, "--out", out_file)
    assert code == 0, err
    report = json.loads(out_file.read_text())
    # 2 test classes x 3 images; every image has 3 captions of the other class, fewer than 5
    # other images: mismatches come from other images, 6 candidates.
    assert report["num_images"] == 6 and report["split"] == "test" and report["seed"] == 0
    assert set(report["metrics"]) == {"r_precision_6", "fid_domain", "diversity_pixel_l1"}
    r_precision = report["metrics"]["r_precision_6"]
    _check_entry(r_precision, 6)
    assert r_precision["chance"] == pytest.approx(1 / 6)
    assert r_precision["mismatched_from"] == "other images"
    for key in ("mean", "std", "real_mean", "real_std"):
        assert 0 <= r_precision[key] <= 1
    assert report["metrics"]["fid_domain"]["value"] >= 0
    assert report["metrics"]["fid_domain"]["real_half_vs_half"] >= 0
    assert report["metrics"]["diversity_pixel_l1"]["real"] > 0
    # Five metrics lack what they need: one line each, in the JSON too.
    assert len(notes(err)) == 6 == len(report["skipped"])
    assert "Traceback" not in err


def _diversity_only(model, out_file):
    # --format and --data default to what the run was trained on (an export knows too).
    code, out, err = evaluate("metrics", "--model", model, "--metrics", "diversity,fid_domain",
                              "--num-images", 2, "--seed", 3, "--out", out_file)
    assert code == 0, err
    assert notes(err) == ["note: fid_domain skipped: it needs --evaluator EVAL (train one "
                          "with `evaluate.py train-evaluator`)."]
    report = json.loads(out_file.read_text())
    assert set(report["metrics"]) == {"diversity_pixel_l1"}
    _check_entry(report["metrics"]["diversity_pixel_l1"], 2, seed=3)
    return report["metrics"]["diversity_pixel_l1"]["value"]


def test_metrics_of_a_jsonl_run(jsonl, work):
    assert _diversity_only(jsonl[1], work / "jsonl.json") >= 0


@pytest.mark.slow
def test_metrics_of_a_trained_jsonl_run_and_of_its_export(jsonl, work):
    run, _ = _train(work / "jsonl-trained", "jsonl", jsonl[0])
    values = [_diversity_only(model, work / f"jsonl-{k}.json")
              for k, model in enumerate((run, os.path.join(run, "export")))]
    assert values[1] == pytest.approx(values[0], abs=2 / 255)


def test_training_writes_metrics_the_best_checkpoint_and_curves(reed, work):
    _, run, err = reed
    # The notes of metrics without their needs, then (train.diversity_warning=1: a generated
    # set is never as varied as real images) one collapse warning, in the GAN stage only.
    assert len(notes(err)) == 8
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: GAN step 2: images of one "
                                                         "caption differ by ")
    assert warnings[0].endswith("(mode collapse); try train.mode_seeking_weight=1.")
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    # Every 2 GAN steps (step 2 is also the GAN stage's end) and at the end of the style stage.
    assert [(line["stage"], line["step"], line["style_step"]) for line in lines] == [
        ("gan", 2, 0), ("style", 2, 1)]
    for line in lines:
        assert (line["split"], line["num_images"], line["seed"]) == ("test", 6, 0)
        assert set(line["metrics"]) == {"diversity_pixel_l1/value", "diversity_pixel_l1/real",
                                        "diversity_pixel_l1/ratio"}
    with open(os.path.join(run, "checkpoints", "best.json"), encoding="utf-8") as f:
        best = json.load(f)
    assert best["metric"] == "diversity" and best["higher_is_better"]
    assert best["value"] == max(line["metrics"]["diversity_pixel_l1/ratio"] for line in lines)
    assert os.path.isfile(os.path.join(run, "checkpoints", "best.weights.h5"))
    with Image.open(os.path.join(run, "curves.png")) as image:
        assert image.format == "PNG" and image.width > 500

    out_file = work / "curves.png"
    code, out, err = evaluate("plot", "--model", run, "--out", out_file)
    assert code == 0, err
    with Image.open(out_file) as image:
        assert image.format == "PNG"


def test_the_roc_plot_on_the_built_in_dataset(work):
    run, _ = write_untrained_run(str(work / "synthetic-run"), get_preset("tiny"))
    out_file, roc = work / "synthetic.json", work / "roc.png"
    code, out, err = evaluate("metrics", "--model", run, "--metrics",
                              "style_verification,style_transfer_fidelity,attribute_accuracy",
                              "--num-images", 40, "--roc-plot", roc, "--out", out_file)
    assert code == 0, err
    metrics = json.loads(out_file.read_text())["metrics"]
    assert set(metrics["style_verification_auc"]["attributes"]) == {"background", "petal_count"}
    assert set(metrics["attribute_accuracy"]["unseen"]) >= {"petal_colour", "colour_pair"}
    assert 0 <= metrics["style_transfer_background"]["accuracy"] <= 1
    with Image.open(roc) as image:
        assert image.format == "PNG"


@pytest.mark.parametrize("argv, fragments", [
    (["--inception-weights", "{bad}"], ["--inception-weights {bad} is not a Keras InceptionV3 "
                                        "weights file", "--inception-weights FILE"]),
    (["--inception-weights", "{work}/none.h5"], ["does not exist"]),
    (["--evaluator", "{work}"], ["--evaluator {work} has no evaluator.json",
                                 "evaluate.py train-evaluator"]),
    (["--metrics", "fid,diversity"], ["unknown metric 'fid'"]),
    (["--num-images", "1"], ["--num-images 1 is too small"]),
    (["--format", "reed"], ["--data is required for --format reed"]),
])
def test_bad_metrics_input_is_one_error_line(jsonl, work, argv, fragments):
    bad = work / "bad.weights.h5"
    bad.write_text("not an HDF5 file")
    argv = [a.format(bad=bad, work=work) for a in argv]
    code, out, err = evaluate("metrics", "--model", jsonl[1], "--out", work / "x.json", *argv)
    lines = [line for line in err.splitlines() if not line.startswith("note: ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment.format(bad=bad, work=work) in lines[0]


def test_plot_refuses_a_folder_without_logs(jsonl, work):
    code, _, err = evaluate("plot", "--model", jsonl[1], "--out", work / "p.png")
    assert code == 2 and err.count("\n") == 1 and "has no training logs" in err


@pytest.mark.parametrize("override, message", [
    ("train.eval_every=-1", "train.eval_every must be >= 0"),
    ("train.eval_images=1", "train.eval_images must be >= 2"),
    ("train.diversity_warning=2", "train.diversity_warning must be in [0, 1]"),
])
def test_metric_settings_are_validated(override, message):
    from tf_t2i.config import apply_overrides
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_overrides(get_preset("tiny"), [override]).validate()


def test_training_metric_names_are_checked_before_training(tmp_path):
    from tf_t2i.config import apply_overrides
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.data.synthetic import load_synthetic
    from tf_t2i.errors import UserInputError
    from tf_t2i.evaluation.training_evaluator import TrainingEvaluator
    dataset = load_synthetic(image_size=32, images_per_class=2)
    encoder = CaptionEncoder()
    for overrides, message in (
            (["train.eval_metrics=diversity,fid"], "unknown metric 'fid'"),
            (["train.best_metric=fid"], "train.best_metric=fid is not a metric"),
            (["train.evaluator=" + str(tmp_path)], f"train.evaluator {tmp_path} has no "
                                                   "evaluator.json")):
        config = apply_overrides(get_preset("tiny"), ["train.eval_every=2"] + overrides)
        with pytest.raises(UserInputError, match=re.escape(message)):
            TrainingEvaluator.of(str(tmp_path), config, dataset, encoder)
    assert TrainingEvaluator.of(str(tmp_path), get_preset("tiny"), dataset, encoder) is None
