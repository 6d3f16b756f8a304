"""evaluate.py's quality subcommands: `metrics`, `train-evaluator` and `plot`.

Flags are checked before TensorFlow starts wherever possible; bad input is one `error:` line.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time

from tf_t2i.config import DATA_FORMATS, DataConfig
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation import model_source
from tf_t2i.evaluation.quality_metrics import METRICS, parse_metric_names

_METRICS_HELP = f"""\
Writes --out: one JSON object {{"metrics": {{key: entry}}, "skipped": [...], "model", "data",
"split", "num_images", "seed", "seconds", "date", "machine"}}. Keys name their protocol, e.g.
r_precision_100, fid_inception_5k (the sample count), fid_domain, diversity_pixel_l1,
style_verification_auc, style_transfer_background, attribute_accuracy,
interpolation_monotonicity; every entry holds its
sample count (num_images), seed and split, and the real images' value where one exists
(real*, real_ceiling). Metrics: {', '.join(METRICS)} (see tf_t2i/evaluation/quality_metrics.py).
A metric whose needs are missing is skipped with one line:
  r_precision, fid_domain     --evaluator EVAL (written by `evaluate.py train-evaluator`)
  fid_inception, inception_score   --inception-weights FILE (Keras InceptionV3 weights; nothing
                              is downloaded; the file with the classifier also gives IS)
  style_verification, style_transfer_fidelity, attribute_accuracy,
  interpolation_monotonicity  --format synthetic
The sample: --num-images images of the split (default: all), one caption and one noise vector
each, all chosen by --seed; the same seed gives the same numbers."""

_EVALUATOR_HELP = """\
Trains a text/image encoder pair (the project's TextEncoder and ImageEncoder, matching loss) on
real images and captions only, to judge generators that it never saw: R-precision and domain FID
of `evaluate.py metrics --evaluator EVAL`. Writes EVAL/evaluator.json (its settings and training
record), EVAL/text_encoder.weights.h5 and EVAL/image_encoder.weights.h5. Short by default
(--steps 400: a few minutes on a CPU); more steps make a sharper judge."""


def add_commands(add, model_parent) -> None:
    """Adds the subcommands with `add(name, help, epilog, parents)` (evaluate.py's helper)."""
    metrics = add("metrics", "measure a model's quality on a dataset split", _METRICS_HELP,
                  [model_parent])
    _data_flags(metrics, required=False)
    metrics.add_argument("--split", choices=("test", "train"), default="test",
                         help="split to measure on (default: %(default)s).")
    metrics.add_argument("--metrics", default="all", metavar="NAMES",
                         help="comma-separated metric names, or all (default).")
    metrics.add_argument("--num-images", type=int, metavar="N",
                         help="sample size (default: the whole split).")
    metrics.add_argument("--seed", type=int, default=0, metavar="S",
                         help="sample, caption and noise seed (default: %(default)s).")
    metrics.add_argument("--evaluator", metavar="EVAL",
                         help="evaluator folder (evaluate.py train-evaluator).")
    metrics.add_argument("--inception-weights", metavar="FILE",
                         help="Keras InceptionV3 weights file (.h5 or .weights.h5).")
    metrics.add_argument("--inception-size", type=int, default=299, metavar="PX",
                         help="side Inception sees (default: %(default)s, the standard "
                              "protocol; other sizes give numbers that do not compare).")
    metrics.add_argument("--roc-plot", metavar="FILE",
                         help="also draw the style verification ROC curves to this PNG.")
    metrics.add_argument("--out", required=True, metavar="FILE", help="JSON file to write.")
    metrics.set_defaults(run=_metrics)

    evaluator = add("train-evaluator", "train a text/image evaluator on real data",
                    _EVALUATOR_HELP, [])
    _data_flags(evaluator, required=True)
    evaluator.add_argument("--out", required=True, metavar="EVAL", help="folder to write.")
    evaluator.add_argument("--steps", type=int, default=400, metavar="N",
                           help="training steps (default: %(default)s).")
    evaluator.add_argument("--image-size", type=int, default=64, metavar="PX",
                           help="side the evaluator sees images at (default: %(default)s).")
    evaluator.add_argument("--batch-size", type=int, default=64, metavar="B",
                           help="examples per step (default: %(default)s).")
    evaluator.add_argument("--splits", choices=("all", "train"), default="all",
                           help="real images to train on (default: %(default)s: train and "
                                "test; generated images are never used).")
    evaluator.add_argument("--seed", type=int, default=0, metavar="S",
                           help="seed (default: %(default)s).")
    evaluator.set_defaults(run=_train_evaluator)

    plot = add("plot", "draw a run's training curves and metrics",
               "Draws GAN losses, D's real/wrong/fake scores, the style loss and every metric "
               "of\nmetrics.jsonl against the step, from the run's TensorBoard logs. train.py "
               "writes\nthe same figure as curves.png in the run folder when a run ends.", [])
    plot.add_argument("--model", required=True, metavar="RUN", help="a run folder.")
    plot.add_argument("--out", required=True, metavar="FILE", help="PNG to write.")
    plot.set_defaults(run=_plot)


def _data_flags(parser, required: bool) -> None:
    parser.add_argument("--data", metavar="DIR", help="dataset folder (not for synthetic).")
    parser.add_argument("--format", choices=DATA_FORMATS, required=required,
                        help="dataset layout" + ("" if required else
                                                 " (default: the model's training data)."))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserInputError(message)


def _check_output(path: str, flag: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    _check(os.path.isdir(folder), f"{flag} {path}: its folder {folder} does not exist: create "
                                  "it or choose another path.")
    _check(not os.path.isdir(path), f"{flag} {path} is a folder: pass a file name.")


def _data_config(fmt: str | None, data: str | None, image_size: int,
                 trained: dict | None) -> DataConfig:
    """The DataConfig that loads the dataset to measure on; the built-in dataset is drawn with the
    model's own settings (images per class, seed), so its splits are the model's."""
    trained = (trained or {}).get("data", {})
    fmt = fmt or trained.get("format")
    _check(fmt is not None, "--format is needed: the model does not say what it was trained on.")
    if fmt != "synthetic":
        data = data or (trained.get("path") if trained.get("format") == fmt else None)
        _check(bool(data), f"--data is required for --format {fmt}: pass the dataset folder.")
        _check(os.path.isdir(data), f"--data {data} is not a folder: pass the dataset folder.")
    defaults = DataConfig()
    return DataConfig(format=fmt, path=data, image_size=image_size,
                      synthetic_images_per_class=trained.get(
                          "synthetic_images_per_class", defaults.synthetic_images_per_class),
                      seed=trained.get("seed", defaults.seed))


def _metrics(args) -> int:
    names = parse_metric_names(args.metrics)
    _check(args.num_images is None or args.num_images >= 2,
           f"--num-images {args.num_images} is too small: pass a whole number >= 2.")
    _check(args.seed >= 0, f"--seed {args.seed}: pass a whole number >= 0.")
    _check(args.inception_size >= 75, f"--inception-size {args.inception_size}: InceptionV3 "
                                      "needs >= 75 px; use 299 (the standard protocol).")
    _check_output(args.out, "--out")
    if args.roc_plot:
        _check_output(args.roc_plot, "--roc-plot")
    if args.format == "synthetic" and args.data:
        raise UserInputError("--data is not used with --format synthetic: leave it out.")
    model_source.detect_model_kind(args.model)
    started = time.perf_counter()

    # The judges first: a wrong file is reported before the model takes time to load.
    evaluator = inception = None
    if args.evaluator and ({"r_precision", "fid_domain"} & set(names)):
        from tf_t2i.evaluation.evaluator import Evaluator
        evaluator = Evaluator.load(args.evaluator)
    if args.inception_weights and ({"fid_inception", "inception_score"} & set(names)):
        from tf_t2i.evaluation.inception_features import InceptionFeatures
        inception = InceptionFeatures(args.inception_weights, args.inception_size)
    from tf_t2i.data.load_dataset import load_dataset
    from tf_t2i.evaluation.quality_metrics import QualityMetrics
    model = model_source.open_model(args.model, image_size=args.image_size)
    print(f"model: {model.description}")
    dataset = load_dataset(_data_config(args.format, args.data, model.image_size, model.config))
    suite = QualityMetrics(dataset, args.split, names, model.image_size, args.num_images,
                           args.seed, evaluator=evaluator, inception=inception)
    for line in suite.skipped.values():
        print(f"note: {line}", file=sys.stderr)
    results = suite.evaluate(model)
    seconds = time.perf_counter() - started
    report = {"model": model.description, "data": dataset.name, "split": args.split,
              "num_images": suite.num_images, "seed": args.seed, "metrics": results,
              "skipped": list(suite.skipped.values()), "seconds": round(seconds, 1),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {_cpu_name()}"}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, default=float)
    for key, entry in results.items():
        print(f"{key}: {_summary(entry)}")
    if args.roc_plot:
        _roc_plot(suite, results, args)
    print(f"wrote {len(results)} metrics of {suite.num_images} {args.split} images to {args.out} "
          f"in {seconds:.1f} s")
    return 0


def _roc_plot(suite, results, args) -> None:
    entry = results.get("style_verification_auc")
    if entry is None:
        print("note: --roc-plot skipped: style_verification was not measured.", file=sys.stderr)
        return
    from tf_t2i.evaluation.curves import plot_roc
    plot_roc(suite.roc_curves, entry["attributes"], args.roc_plot,
             f"style verification, {entry['num_images']} real {args.split} images "
             f"({entry['pairs']} pairs), seed {args.seed}")
    print(f"wrote the style verification ROC curves to {args.roc_plot}")


def _summary(entry: dict) -> str:
    shown = {k: v for k, v in entry.items() if isinstance(v, float)}
    return ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) + f" (n={entry['num_images']})"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def _train_evaluator(args) -> int:
    _check(args.steps >= 1, f"--steps {args.steps}: pass a whole number >= 1.")
    _check(args.image_size >= 16 and args.image_size % 16 == 0,
           f"--image-size {args.image_size}: pass a multiple of 16 (e.g. 32 or 64).")
    _check(args.batch_size >= 2, f"--batch-size {args.batch_size}: pass a whole number >= 2.")
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        raise UserInputError(f"--out {args.out} already exists: choose a new folder.")
    if args.format == "synthetic" and args.data:
        raise UserInputError("--data is not used with --format synthetic: leave it out.")
    config = _data_config(args.format, args.data, args.image_size, None)
    from tf_t2i.data.load_dataset import load_dataset
    dataset = load_dataset(config)

    from tf_t2i.evaluation.evaluator import EvaluatorConfig, train_evaluator
    started = time.perf_counter()
    evaluator = train_evaluator(
        dataset, EvaluatorConfig(image_size=args.image_size, batch_size=args.batch_size,
                                 seed=args.seed), steps=args.steps, splits=args.splits)
    evaluator.save(args.out)
    print(f"wrote {evaluator.description} to {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


def _plot(args) -> int:
    _check(os.path.isdir(args.model), f"--model {args.model} is not a folder: pass a run folder "
                                      "written by train.py.")
    _check(model_source.detect_model_kind(args.model) == model_source.RUN,
           f"--model {args.model} is an export, which keeps no training logs: pass its run "
           "folder.")
    _check_output(args.out, "--out")
    from tf_t2i.evaluation.curves import plot_curves
    print(f"wrote the training curves of {args.model} to {plot_curves(args.model, args.out)}")
    return 0
