"""What `--resume` may change in a run's configuration, and the run's config file with its history.

A resumed run must continue the run it resumes: its data stream, models and optimizers are
those of the checkpoint. Only fields that do not change what the checkpoint means may differ:
how long to train, how often to log, sample and checkpoint, and the learning rate (which
`run_training` then applies to the restored optimizers).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os

from tf_t2i.config import Config
from tf_t2i.durable import write_text_atomically
from tf_t2i.errors import UserInputError
from tf_t2i.runs import CONFIG_FILE

# Fields a resumed run may change. Every train.*_every cadence is safe too (see `safe_field`).
# How many steps run per compiled call and on how many devices leave the results as they are:
# a run may continue on another machine or cluster.
# What is measured during training (train.eval_*, the best-checkpoint metric) changes no weight.
SAFE_FIELDS = ("train.steps", "train.epochs", "train.style_steps", "train.learning_rate",
               "train.encoder_warmup_steps", "train.encoder_learning_rate",
               "train.steps_per_execution", "train.strategy", "train.eval_metrics",
               "train.eval_images", "train.evaluator", "train.best_metric",
               "train.diversity_warning")
HISTORY_KEY = "history"


class UnsafeResume(UserInputError):
    """A resumed run asked to change a field the checkpoint fixes."""


def safe_field(name: str) -> bool:
    """Whether `--resume` may change the dotted config field `name`."""
    return name in SAFE_FIELDS or (name.startswith("train.") and name.endswith("_every"))


def config_changes(saved: Config, requested: Config) -> dict[str, tuple]:
    """{"section.field": (saved value, requested value)} for every field that differs."""
    changes = {}
    saved_values, requested_values = saved.to_dict(), requested.to_dict()
    for section in ("data", "model", "train"):
        for field, value in requested_values[section].items():
            if saved_values[section].get(field) != value:
                changes[f"{section}.{field}"] = (saved_values[section].get(field), value)
    return changes


def check_resume(run_dir: str, saved: Config, requested: Config) -> dict[str, tuple]:
    """The changes `requested` makes to the run's `saved` configuration, all safe.

    Raises:
        UnsafeResume: one sentence naming the first field that may not change.
    """
    changes = config_changes(saved, absolute_data_path(requested, base=None))
    for field, (old, new) in changes.items():
        if not safe_field(field):
            raise UnsafeResume(
                f"--resume {run_dir} cannot change {field} from {old!r} to {new!r}: the "
                f"checkpoint was trained with {old!r}. Resume may change only the steps, "
                f"epochs, cadences (*_every), train.learning_rate and settings that leave the "
                f"weights alone (see train.py --help); start a new run (--out) for other "
                f"changes.")
    return changes


def absolute_data_path(config: Config, base: str | None = None) -> Config:
    """`config` with data.path made absolute (relative to `base`, default the working folder),
    so the run folder's config works from any folder."""
    if not config.data.path:
        return config
    path = os.path.abspath(os.path.join(base or os.getcwd(), config.data.path))
    return dataclasses.replace(config, data=dataclasses.replace(config.data, path=path))


def read_history(run_dir: str) -> list:
    """The `history` list of a run folder's config file (empty for a new run)."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(json.load(f).get(HISTORY_KEY, []))


def write_run_config(run_dir: str, config: Config, history: list) -> None:
    """Writes config.json atomically: the configuration plus `history`, a list of
    {"at": "<stage> step <n>", "time": ISO UTC, "changes": {field: [old, new]}} entries."""
    values = dict(config.to_dict(), **{HISTORY_KEY: history})
    os.makedirs(run_dir, exist_ok=True)
    write_text_atomically(os.path.join(run_dir, CONFIG_FILE),
                          json.dumps(values, indent=2, sort_keys=True))


def history_entry(where: str, changes: dict[str, tuple]) -> dict:
    return {"at": where,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "changes": {field: list(values) for field, values in changes.items()}}


def check_not_shrinking(run_dir: str, record: dict, gan_steps: int, style_steps: int) -> None:
    """Refuses a resumed configuration that ends a stage before the checkpoint's step."""
    if record["step"] > gan_steps:
        raise UnsafeResume(
            f"--resume {run_dir}: the run is at GAN step {record['step']}, past the "
            f"{gan_steps} GAN steps asked for: pass --steps {record['step']} or more.")
    if record["stage"] == "style" and record["step"] == gan_steps and \
            record.get("style_step", 0) > style_steps:
        raise UnsafeResume(
            f"--resume {run_dir}: the run is at style step {record['style_step']}, past "
            f"train.style_steps={style_steps}: pass --set "
            f"train.style_steps={record['style_step']} or more.")


def continue_stages(record: dict, gan_steps: int) -> tuple[dict, str | None]:
    """The record to continue from when the GAN stage grows, and a sentence saying what happens.

    Stages run in order: when a run that had reached the style stage gets more GAN steps, the
    GAN stage continues, then the style stage runs again from style step 0 on the new generator
    (the style encoder starts from its trained weights). The finished pass's style steps move
    to "earlier_style_steps", which keeps checkpoint numbers growing.
    """
    if record["step"] >= gan_steps or record.get("style_step", 0) == 0:
        return record, None
    earlier = record.get("earlier_style_steps", 0) + record["style_step"]
    note = (f"the GAN stage continues from step {record['step']} to {gan_steps}; then the style "
            f"stage runs again from style step 0, on the new generator.")
    return dict(record, stage="gan", style_step=0, earlier_style_steps=earlier), note
