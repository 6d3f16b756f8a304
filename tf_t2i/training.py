"""Wiring of a training run: data, stage loops, checkpoints, logs and sample grids.

The run folder's layout and the training model it describes are `tf_t2i.runs`'.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os

import keras
import numpy as np

from tf_t2i import distribution
from tf_t2i.checkpoints import UNREADABLE_CHECKPOINT, CheckpointLayoutError, RunCheckpoints
from tf_t2i.config import Config, DataConfig
from tf_t2i.data.attribute_words import attribute_words, read_attribute_words
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.dataset_index import DatasetIndex
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.errors import TrainingInterrupted, UserInputError, first_line
from tf_t2i.evaluation.curves import write_training_curves
from tf_t2i.evaluation.training_evaluator import TrainingEvaluator
from tf_t2i.export import export_saved_model
from tf_t2i.gan import TextToImageGAN
from tf_t2i.image_grid import to_uint8
from tf_t2i.resume import (absolute_data_path, check_not_shrinking, check_resume,
                           continue_stages, history_entry, read_history, write_run_config)
from tf_t2i.run_lock import RunLock
from tf_t2i.runs import EXPORT_DIR, LoadedRun, build_gan, read_run_config, with_resolved_precision
from tf_t2i.stage_loop import StageLoop, describe

PROBE_ROWS = 8
PROBE_COLUMNS = 8


@dataclasses.dataclass(frozen=True)
class Probes:
    """Fixed captions and noise for sample grids, so grids of different steps compare."""

    captions: tuple[str, ...]
    caption_ids: np.ndarray   # int32 [rows, 1, T]
    noise: np.ndarray         # float32 [rows * columns, Z]

    @classmethod
    def of(cls, dataset: DatasetIndex, encoder: CaptionEncoder, z_dim: int, seed: int) -> "Probes":
        captions = probe_captions(dataset, PROBE_ROWS)
        ids = encoder.encode(list(captions)).numpy()[:, None, :]
        noise = np.random.default_rng(seed).standard_normal(
            [PROBE_COLUMNS, z_dim]).astype(np.float32)
        return cls(captions, ids, np.tile(noise, [len(captions), 1]))

    def grid(self, gan: TextToImageGAN):
        """uint8 [rows, columns, S, S, 3]: row r draws caption r with each noise column."""
        ids = np.repeat(self.caption_ids, PROBE_COLUMNS, axis=0)
        images = to_uint8(gan((self.noise, ids), training=False))
        return images.reshape((len(self.captions), PROBE_COLUMNS) + images.shape[1:])


def probe_captions(dataset: DatasetIndex, count: int) -> tuple[str, ...]:
    """One caption per class for `count` classes spread evenly over the class list, alternating
    seen (train) and unseen (test) classes."""
    def spread(split, wanted):
        first_image = {}
        for index, label in enumerate(split.labels):
            first_image.setdefault(int(label), index)
        labels = sorted(first_image)
        picks = np.linspace(0, len(labels) - 1, num=min(wanted, len(labels))).round().astype(int)
        return [split.captions[first_image[labels[i]]][0] for i in picks]

    test = spread(dataset.test, count // 2)
    train = spread(dataset.train, count - len(test))
    mixed = [c for pair in zip(train, test) for c in pair]
    return tuple(mixed + train[len(test):])


def embedded_once(embed_caption_table):
    """`embed_caption_table` (caption ids int32 [M, T] -> float32 [M, E]) computing each distinct
    table of ids once: valid while the text encoder does not change."""
    tables = {}

    def embed(caption_ids):
        key = (caption_ids.shape,
               hashlib.sha256(np.ascontiguousarray(caption_ids).tobytes()).hexdigest())
        if key not in tables:
            tables[key] = embed_caption_table(caption_ids)
        return tables[key]

    return embed


def run_training(config: Config, run_dir: str, resume: bool = False,
                 export: bool = True, embed_captions=None) -> dict:
    """Runs the GAN stage, then the style stage, then exports, in `run_dir`; returns the record.

    With `resume`, continues from the run folder's latest checkpoint: every weight, optimizer
    slot, the noise generator and the data stream pick up where that checkpoint left them.
    `config` may differ from the run's only in fields `tf_t2i.resume.safe_field` allows; any
    other change is refused before anything is written. The run folder is locked
    (`tf_t2i.run_lock`) while training, so a second process cannot train into it.

    Under `train.strategy` multiworker, every worker calls this with the same `run_dir`; only
    the chief locks it and writes into it (`tf_t2i.distribution`).

    Without `export`, the run ends after its last checkpoint without writing `RUN_DIR/export/`
    (an earlier export there stays as it was; `evaluate.py export` exports any run folder).

    `embed_captions` (caption ids int32 [M, T] -> float32 [M, E]), where given, stands in for
    the frozen text encoder's embeddings in the GAN and style stages (`train.freeze_encoders`):
    `benchmarks/oracle_text.py` trains on a perfect text code this way.
    """
    if embed_captions is not None and not config.train.freeze_encoders:
        raise ValueError("embed_captions replaces a frozen text encoder: set "
                         "train.freeze_encoders=true.")
    strategy = distribution.make_strategy(config.train.strategy)
    chief = distribution.is_chief(strategy)
    distribution.check_batch_size(strategy, config.data.batch_size, pairs=(
        config.train.interp_weight > 0 or config.train.mode_seeking_weight > 0))
    config = absolute_data_path(with_resolved_precision(config, announce=True))
    if config.train.hard_negatives:
        read_attribute_words(config.data.attribute_words)  # A missing file: before any write.
    checkpoints = RunCheckpoints(run_dir)
    changes = {}
    if resume:
        if checkpoints.latest() is None:
            raise UserInputError(f"--resume {run_dir}: no checkpoint there yet; start it again "
                                 f"without --resume (use --out {run_dir}).")
        changes = check_resume(run_dir, absolute_data_path(read_run_config(run_dir)), config)
    with RunLock(run_dir) if chief else contextlib.nullcontext():
        return _train_in_locked_folder(config, run_dir, checkpoints, resume, changes, strategy,
                                       chief, export, embed_captions)


def _train_in_locked_folder(config, run_dir, checkpoints, resume, changes, strategy,
                            chief, export, embed_captions=None) -> dict:
    keras.mixed_precision.set_global_policy(config.train.precision)
    keras.utils.set_random_seed(config.data.seed)
    if not resume:
        if checkpoints.latest() is not None:
            raise UserInputError(f"{run_dir} already holds a run: pass --resume {run_dir} to "
                                 "continue it, or another --out.")
        if chief:
            write_run_config(run_dir, config, history=[])

    dataset = load_dataset(config.data)
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    steps_per_epoch = max(1, len(dataset.train) // config.data.batch_size)
    gan_steps = config.train.steps or config.train.epochs * steps_per_epoch
    with strategy.scope():
        gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch)
    warmup_steps = config.train.encoder_warmup_steps
    record = {"stage": "encoder" if warmup_steps else "gan", "encoder_step": 0, "step": 0,
              "style_step": 0}
    if resume:
        record = _restore(config, run_dir, checkpoints, gan, gan_steps, changes, chief)
    warmup = f"{warmup_steps} encoder warm-up steps, " if warmup_steps else ""
    print(f"run folder: {run_dir}  ({len(dataset.train)} training images, {steps_per_epoch} "
          f"steps per epoch, {warmup}{gan_steps} GAN steps, {config.train.style_steps} style "
          "steps)")
    probes = Probes.of(dataset, encoder, gan.z_dim, config.data.seed)

    batch_size = config.data.batch_size
    # Only the GAN stage uses hard negatives; their words are found (and shown) once.
    hard_negative_words = (attribute_words(dataset.train, config.data, announce=chief)
                           if config.train.hard_negatives else None)

    # Once frozen, the text encoder stays so for the rest of the run: the style stage reuses
    # the frozen GAN stage's table.
    embed_once = embedded_once(embed_captions or gan.embed_caption_table)

    def stream(start_step, data, words=None, frozen_text=False):
        # Where the text encoder does not train, the pipeline embeds every caption once
        # instead of the step embedding each batch's captions again.
        embed = embed_once if frozen_text else None
        return distribution.distribute(
            strategy, lambda: make_train_dataset(dataset.train, data, encoder,
                                                 start_step=start_step, attribute_words=words,
                                                 embed_captions=embed),
            batch_size)

    def step(step_fn):
        return distribution.with_static_batch(step_fn, strategy, batch_size)

    evaluator = TrainingEvaluator.of(run_dir, config, dataset, encoder) if chief else None
    with distribution.work_folder(run_dir, strategy) as work_dir:
        loop = StageLoop(config, work_dir, gan, RunCheckpoints(work_dir), probes, evaluator,
                         strategy, is_chief=chief)
        # A run whose GAN stage has begun never goes back to warming up its encoders.
        if record.get("encoder_step", 0) < warmup_steps and record["step"] == 0:
            record = loop.run("encoder", step(gan.encoder_step), gan.encoder_trackers,
                              stream(record.get("encoder_step", 0), config.data,
                                     hard_negative_words),
                              record, warmup_steps)
        if record["step"] < gan_steps:
            record = loop.run("gan", step(gan.train_step), gan.trackers,
                              stream(record["step"], conditioning_data(config),
                                     hard_negative_words, frozen_text=not gan.train_encoders),
                              record, gan_steps)
        if record["style_step"] < config.train.style_steps:
            record = loop.run("style", step(gan.style_step), gan.style_trackers,
                              stream(record["style_step"], conditioning_data(config),
                                     frozen_text=True), record,
                              config.train.style_steps)
    if not chief:
        return record
    if export:
        export_dir = os.path.join(run_dir, EXPORT_DIR)
        try:
            export_saved_model(LoadedRun(config, encoder, gan, checkpoints.latest()), export_dir,
                               overwrite=True)
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"interrupted during the export; training is complete and checkpointed. Export "
                f"again with: python train.py --resume {run_dir}") from None
        print(f"exported the SavedModel to {export_dir}")
    write_training_curves(run_dir)
    return record


def conditioning_data(config: Config) -> DataConfig:
    """The data configuration of the GAN and style stages: `train.conditioning_captions`
    captions per image where it is set, else `data.captions_per_image` (the warm-up's)."""
    if not config.train.conditioning_captions:
        return config.data
    return dataclasses.replace(config.data,
                               captions_per_image=config.train.conditioning_captions)


def _restore(config, run_dir, checkpoints, gan, gan_steps, changes, chief) -> dict:
    """Loads the newest readable checkpoint, applies the resumed configuration's safe changes,
    then (only then, and only on the chief) writes config.json with the changes added to its
    history."""
    try:
        record = checkpoints.restore(gan)
    except CheckpointLayoutError as error:
        raise UserInputError(
            f"--resume {run_dir}: its checkpoints hold layers that this version of tf-t2i "
            f"builds differently ({first_line(error)}); resume it with the version that "
            f"started it, or start a new run with another --out.") from None
    except UNREADABLE_CHECKPOINT as error:
        raise UserInputError(
            f"--resume {run_dir}: no checkpoint there can be read ({first_line(error)}); start "
            f"a new run with another --out.") from None
    gan.seed_generator.state.assign(np.asarray(record["noise_state"], dtype=np.uint32))
    weights = record.pop("weights")  # The file is the checkpoint's, not the new records'.
    check_not_shrinking(run_dir, record, gan_steps, config.train.style_steps)
    print(f"resuming from {describe(record)} ({os.path.basename(weights)})")
    record, note = continue_stages(record, gan_steps)
    if note:
        print(note)
    # A constant rate is a variable the checkpoint restored: set it to the configured rate
    # (D's or the encoders' own rate when train.d_learning_rate or encoder_learning_rate sets one).
    train_cfg = config.train
    for optimizer, rate in ((gan.encoder_optimizer, train_cfg.encoder_learning_rate),
                            (gan.d_optimizer, train_cfg.d_learning_rate),
                            (gan.g_optimizer, 0.0), (gan.style_optimizer, 0.0)):
        if isinstance(optimizer.learning_rate, keras.Variable):
            optimizer.learning_rate = rate or train_cfg.learning_rate
    if chief:
        history = read_history(run_dir)
        if changes:
            history.append(history_entry(describe(record), changes))
        write_run_config(run_dir, config, history)
    return record
