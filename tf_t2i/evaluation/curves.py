"""Plots with matplotlib (Agg, no display): training curves of a run folder and ROC curves.

`training_curves(run_dir)` reads the scalars the training loop wrote to TensorBoard (`logs/`) and
the quality metrics of `metrics.jsonl` (tf_t2i.evaluation.training_evaluator); `plot_curves`
draws them against the step:
    encoder warm-up     encoder/matching_loss, hard_negative_loss, against the warm-up step
    GAN losses          gan/d_loss, g_loss, matching_loss, interp_loss, mode_seeking_loss
    D's scores          gan/d_real, d_wrong, d_fake (mean sigmoid outputs)
    GAN penalties       gan/gradient_penalty, hard_negative_loss, latent_regression_loss,
                        reconstruction_loss, style_prior_loss (the options that are on)
    style stage         style/style_loss, style_reconstruction_loss (when on), against the
                        style step
    one panel per metric of metrics.jsonl (its fields, real-image references dashed), against
    the GAN step plus the style step.
`write_training_curves(run_dir)` writes `curves.png` in the run folder (train.py does at the end).
"""
from __future__ import annotations

import json
import math
import os

from tf_t2i.errors import UserInputError

CURVES_FILE = "curves.png"
_LOGS = "logs"
_METRICS_FILE = "metrics.jsonl"
_PANELS = (
    ("encoder warm-up", "encoder/", ("matching_loss", "hard_negative_loss")),
    ("GAN losses", "gan/", ("d_loss", "g_loss", "matching_loss", "interp_loss",
                            "mode_seeking_loss")),
    ("discriminator scores", "gan/", ("d_real", "d_wrong", "d_fake")),
    ("GAN penalties", "gan/", ("gradient_penalty", "hard_negative_loss", "latent_regression_loss",
                               "reconstruction_loss", "style_prior_loss")),
    ("style stage", "style/", ("style_loss", "style_reconstruction_loss")),
)

_X_LABELS = {"encoder/": "warm-up step", "gan/": "GAN step", "style/": "style step"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def read_scalars(log_dir: str) -> dict:
    """{tag: ([steps], [values])} of every scalar in the TensorBoard event files of `log_dir`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray
    accumulator = EventAccumulator(log_dir, size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    series = {}
    tags = accumulator.Tags()
    for tag in tags.get("tensors", []):
        points = [(event.step, make_ndarray(event.tensor_proto)) for event in
                  accumulator.Tensors(tag)]
        if points and all(value.ndim == 0 for _, value in points):
            series[tag] = ([s for s, _ in points], [float(v) for _, v in points])
    for tag in tags.get("scalars", []):
        events = accumulator.Scalars(tag)
        series[tag] = ([e.step for e in events], [e.value for e in events])
    return series


def read_metrics(run_dir: str) -> list[dict]:
    """The lines of a run's metrics.jsonl (none if it has no file)."""
    path = os.path.join(run_dir, _METRICS_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def training_curves(run_dir: str) -> list[tuple[str, str, dict]]:
    """[(panel title, x-axis label, {series name: ([x], [y])})] of a run folder."""
    scalars = read_scalars(os.path.join(run_dir, _LOGS)) if os.path.isdir(
        os.path.join(run_dir, _LOGS)) else {}
    panels = []
    for title, prefix, names in _PANELS:
        series = {name: scalars[prefix + name] for name in names
                  if prefix + name in scalars and any(scalars[prefix + name][1])}
        if series:
            panels.append((title, _X_LABELS[prefix], series))
    by_metric = {}
    for line in read_metrics(run_dir):
        x = line["step"] + line.get("style_step", 0)
        for name, value in line["metrics"].items():
            key, _, field = name.partition("/")
            xs, ys = by_metric.setdefault(key, {}).setdefault(field, ([], []))
            xs.append(x)
            ys.append(value)
    for key, series in by_metric.items():
        panels.append((key, "GAN step + style step", series))
    return panels


def plot_curves(run_dir: str, out: str) -> str:
    """Draws `training_curves(run_dir)` into the PNG `out`; UserInputError if there is nothing."""
    panels = training_curves(run_dir)
    if not panels:
        raise UserInputError(f"{run_dir} has no training logs ({_LOGS}/ or {_METRICS_FILE}) to "
                             "plot: pass a run folder written by train.py.")
    plt = _pyplot()
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows),
                                squeeze=False)
    for axis, (title, x_label, series) in zip(axes.ravel(), panels):
        for name, (xs, ys) in series.items():
            style = "--" if "real" in name else "-"
            axis.plot(xs, ys, style, marker="o" if len(xs) < 20 else None, markersize=3,
                      label=name)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(x_label, fontsize=8)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in axes.ravel()[len(panels):]:
        axis.axis("off")
    figure.suptitle(os.path.basename(os.path.normpath(run_dir)) + _sample_note(run_dir),
                    fontsize=11)
    figure.tight_layout()
    _save(figure, out)
    plt.close(figure)
    return out


def _sample_note(run_dir: str) -> str:
    lines = read_metrics(run_dir)
    if not lines:
        return ""
    last = lines[-1]
    return (f" (metrics: {last.get('num_images')} {last.get('split')} images, seed "
            f"{last.get('seed')}; dashed: real images)")


def write_training_curves(run_dir: str) -> str | None:
    """Writes `curves.png` in the run folder; returns its path (None if nothing was logged)."""
    if not training_curves(run_dir):
        return None
    path = plot_curves(run_dir, os.path.join(run_dir, CURVES_FILE))
    print(f"wrote the training curves to {path}")
    return path


def plot_roc(curves: dict, aucs: dict, out: str, title: str) -> str:
    """One ROC curve per attribute ({name: (fpr, tpr)}, AUC in the legend) into the PNG `out`."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, (fpr, tpr) in curves.items():
        axis.plot(fpr, tpr, label=f"{name} (AUC {aucs[name]:.3f})")
    axis.plot([0, 1], [0, 1], ":", color="grey", label="chance (AUC 0.5)")
    axis.set_xlabel("false positive rate (pairs of different value)")
    axis.set_ylabel("true positive rate (pairs of the same value)")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, out)
    plt.close(figure)
    return out


def _save(figure, out: str) -> None:
    try:
        figure.savefig(out, dpi=100, format="png")
    except OSError as error:
        raise UserInputError(f"{out} cannot be written ({error.strerror or error}): choose "
                             "another path.") from None
