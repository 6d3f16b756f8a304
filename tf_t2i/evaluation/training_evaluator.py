"""Quality metrics during training: every `train.eval_every` GAN steps and at the end of each stage.

On a fixed sample of the test split (`train.eval_images` images, seeded by `data.seed`), the
metrics of `train.eval_metrics` (see `quality_metrics`) are computed with the current weights
and written
    - as TensorBoard scalars `metrics/<key>/<field>` (logs/),
    - as one JSON line {"stage", "step", "style_step", "split", "num_images", "seed",
      "metrics": {"<key>/<field>": value}} in
      `metrics.jsonl` of the run folder (what `evaluate.py plot` draws),
    - with a warning on stderr when the diversity of generated images falls below
      `train.diversity_warning` times that of real images (mode collapse),
and, with `train.best_metric`, the best weights so far are kept as `checkpoints/best.weights.h5`
with `checkpoints/best.json` (the metric, its value and the checkpoint record), beside the latest
checkpoint; both files are written aside and renamed into place.
"""
from __future__ import annotations

import json
import math
import os
import sys
import uuid

import numpy as np

# The run's own atomic JSON write (written aside, fsynced, renamed), so best.json is as safe as
# the latest checkpoint's pointer.
from tf_t2i.checkpoints import CHECKPOINT_DIR
from tf_t2i.durable import publish, write_json_atomically
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation import model_source
from tf_t2i.evaluation.quality_metrics import QualityMetrics, parse_metric_names

METRICS_FILE = "metrics.jsonl"
BEST_WEIGHTS = "best.weights.h5"
BEST_RECORD = "best.json"
# The number each metric is ranked by for the best checkpoint: (key prefix, field, higher wins).
PRIMARY = {
    "r_precision": ("r_precision_", "mean", True),
    "fid_inception": ("fid_inception_", "value", False),
    "inception_score": ("inception_score_", "mean", True),
    "fid_domain": ("fid_domain", "value", False),
    "diversity": ("diversity_pixel_l1", "ratio", True),
    "style_verification": ("style_verification_auc", "mean", True),
    "style_transfer_fidelity": ("style_transfer_background", "accuracy", True),
    "attribute_accuracy": ("attribute_accuracy", "unseen_mean", True),
}
# Entry fields that describe the protocol rather than measure anything.
_BOOKKEEPING = {"num_images", "seed", "candidates", "repeats", "captions", "images_per_caption",
                "pairs", "splits", "num_captions", "chance", "uniform_chance"}


class TrainingEvaluator:
    """Scores the training model on a fixed test sample; logs, warns and keeps the best weights.

    Args:
        run_dir: the run folder.
        config: the run's `Config` (train.eval_* fields, train.best_metric,
            train.diversity_warning, train.evaluator).
        dataset: the run's `DatasetIndex`.
        caption_encoder: the run's `CaptionEncoder`.
        log: where skip notes and warnings go (one line each).
    """

    def __init__(self, run_dir: str, config, dataset, caption_encoder, log=None):
        train = config.train
        self.run_dir = run_dir
        self.every = train.eval_every
        self.config = config
        self.caption_encoder = caption_encoder
        self.log = log or (lambda line: print(line, file=sys.stderr))
        evaluator = None
        if train.evaluator:
            from tf_t2i.evaluation.evaluator import Evaluator
            evaluator = Evaluator.load(train.evaluator, flag="train.evaluator")
        names = parse_metric_names(train.eval_metrics)
        split = "test" if len(dataset.test) >= 2 else "train"
        self.metrics = QualityMetrics(dataset, split, names, config.data.image_size,
                                      num_images=train.eval_images, seed=config.data.seed,
                                      evaluator=evaluator)
        for line in self.metrics.skipped.values():
            self.log(f"note: {line}")
        self.best_metric = train.best_metric
        if self.best_metric and self.best_metric not in PRIMARY:
            raise UserInputError(f"train.best_metric={self.best_metric} is not a metric: choose "
                                 f"one of {', '.join(PRIMARY)} (or leave it empty).")
        if self.best_metric and self.best_metric not in self.metrics.names:
            self.log(f"note: no best checkpoint: train.best_metric={self.best_metric} is not "
                     "among the metrics computed.")
            self.best_metric = ""
        self.best = _read_json(os.path.join(run_dir, CHECKPOINT_DIR, BEST_RECORD))
        self._model = None

    @classmethod
    def of(cls, run_dir: str, config, dataset, caption_encoder) -> "TrainingEvaluator | None":
        """A TrainingEvaluator, or None when `train.eval_every` is 0 (off)."""
        if config.train.eval_every <= 0:
            return None
        return cls(run_dir, config, dataset, caption_encoder)

    def due(self, stage: str, step: int, last: bool) -> bool:
        """Every `eval_every` GAN steps, and at the end of the GAN and style stages (the encoder
        warm-up trains no generator to score)."""
        return stage != "encoder" and (last or (stage == "gan" and step % self.every == 0))

    def evaluate(self, gan, record: dict, writer=None) -> dict:
        """Scores `gan` now; returns the flat {"<key>/<field>": value} that was logged.

        Args:
            gan: the `TextToImageGAN` being trained.
            record: the checkpoint record of this moment (stage, step, style_step, ...).
            writer: a `tf.summary` writer for TensorBoard scalars, or None.
        """
        if self._model is None:
            self._model = model_source.from_training_model(
                gan, self.caption_encoder, self.config.to_dict(), self.run_dir)
        results = self.metrics.evaluate(self._model)
        values = scalars(results)
        step = record["step"] + record.get("style_step", 0)
        if writer is not None:
            import tensorflow as tf
            with writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(f"metrics/{name}", value)
            writer.flush()
        line = {"stage": record["stage"], "step": record["step"],
                "style_step": record.get("style_step", 0), "split": self.metrics.split_name,
                "num_images": self.metrics.num_images, "seed": self.metrics.seed,
                "metrics": values}
        with open(os.path.join(self.run_dir, METRICS_FILE), "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        self._warn_on_collapse(results, record)
        if self.best_metric:
            self._keep_best(gan, results, record)
        return values

    def _warn_on_collapse(self, results: dict, record: dict) -> None:
        """A warning when G's images of one caption vary much less than real ones (only in the
        GAN stage: the style stage does not change G)."""
        entry = results.get("diversity_pixel_l1")
        train = self.config.train
        if record["stage"] != "gan" or not entry or not math.isfinite(entry["ratio"]) \
                or entry["ratio"] >= train.diversity_warning:
            return
        advice = ("raise train.mode_seeking_weight" if train.mode_seeking_weight > 0
                  else "try train.mode_seeking_weight=1")
        self.log(f"warning: GAN step {record['step']}: images of one caption differ by "
                 f"{entry['value']:.4f} under different noise, {entry['ratio']:.2f} x real "
                 f"images of one class ({entry['real']:.4f}), below "
                 f"train.diversity_warning={train.diversity_warning}: the generator may be "
                 f"collapsing (mode collapse); {advice}.")

    def _keep_best(self, gan, results: dict, record: dict) -> None:
        value, higher = primary_value(self.best_metric, results)
        if not math.isfinite(value):
            return
        if self.best is not None and self.best.get("metric") == self.best_metric:
            better = value > self.best["value"] if higher else value < self.best["value"]
            if not better:
                return
        directory = os.path.join(self.run_dir, CHECKPOINT_DIR)
        os.makedirs(directory, exist_ok=True)
        temporary = os.path.join(directory, f"best.partial-{uuid.uuid4().hex[:8]}.weights.h5")
        gan.save_weights(temporary)
        publish(temporary, os.path.join(directory, BEST_WEIGHTS))
        self.best = dict({k: v for k, v in record.items() if k != "weights"},
                         metric=self.best_metric, value=value, higher_is_better=higher,
                         weights=BEST_WEIGHTS)
        write_json_atomically(os.path.join(directory, BEST_RECORD), self.best)


def primary_value(name: str, results: dict) -> tuple[float, bool]:
    """(the number metric `name` is ranked by in `results`, whether higher is better); NaN if
    the metric is not in `results`."""
    prefix, field, higher = PRIMARY[name]
    for key, entry in results.items():
        if key.startswith(prefix):
            return float(entry[field]), higher
    return float("nan"), higher


def scalars(results: dict) -> dict:
    """{"<key>/<field>": float} of the measured numbers of `quality_metrics` results (one level
    of nested dicts of numbers, e.g. per-attribute AUCs, as "<key>/<field>/<name>")."""
    flat = {}
    for key, entry in results.items():
        for field, value in entry.items():
            if field in _BOOKKEEPING:
                continue
            if _is_number(value):
                flat[f"{key}/{field}"] = float(value)
            elif isinstance(value, dict) and all(_is_number(v) for v in value.values()):
                flat.update({f"{key}/{field}/{name}": float(v) for name, v in value.items()})
    return flat


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)

