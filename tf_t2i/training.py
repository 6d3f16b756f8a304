"""Wiring of a training run: models, optimizers, data, checkpoints, logs and sample grids.

A run folder holds:
    config.json         the resolved configuration (what `--resume` reads)
    checkpoints/        the newest checkpoints and `latest.json`
    logs/               TensorBoard scalars and sample grids
    samples/            step-<n>.png sample grids of fixed probe captions and fixed noise
    export/             the SavedModel of the final weights (tf_t2i.export), string inputs
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.checkpoints import RunCheckpoints
from tf_t2i.config import Config
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.dataset_index import DatasetIndex
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation.image_grid import image_grid, to_uint8
from tf_t2i.export import export_saved_model
from tf_t2i.gan import TextToImageGAN
from tf_t2i.models import builders

EXPORT_DIR = "export"
PROBE_ROWS = 8
PROBE_COLUMNS = 8


class TrainingDiverged(UserInputError):
    """A loss became NaN or infinite; the message names the step and the loss term."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after a checkpoint of the last completed step was saved."""


def build_gan(config: Config, vocabulary_size: int, steps_per_epoch: int) -> TextToImageGAN:
    """The training model with built sub-models, compiled with built optimizers."""
    model_cfg, data_cfg, train_cfg = config.model, config.data, config.train
    gan = TextToImageGAN(
        text_encoder=builders.build_text_encoder(model_cfg, data_cfg, vocabulary_size),
        image_encoder=builders.build_image_encoder(model_cfg, data_cfg),
        generator=builders.build_generator(model_cfg, data_cfg),
        discriminator=builders.build_discriminator(model_cfg, data_cfg),
        style_encoder=builders.build_style_encoder(model_cfg, data_cfg),
        cls_weight=train_cfg.cls_weight, interp_weight=train_cfg.interp_weight,
        interp_beta=train_cfg.interp_beta, interp_type=train_cfg.interp_type,
        mode_seeking_weight=train_cfg.mode_seeking_weight,
        matching_margin=train_cfg.matching_margin, seed=data_cfg.seed)
    gan.compile(encoder_optimizer=make_optimizer(train_cfg, steps_per_epoch, "encoder_optimizer"),
                d_optimizer=make_optimizer(train_cfg, steps_per_epoch, "d_optimizer"),
                g_optimizer=make_optimizer(train_cfg, steps_per_epoch, "g_optimizer"),
                style_optimizer=make_optimizer(train_cfg, 0, "style_optimizer"))
    gan.build_optimizers()
    # The wrapper has no call() of its own during training: mark it built (its sub-models are),
    # or save_weights/load_weights refuse it ("model that has not yet been built").
    gan.built = True
    return gan


def make_optimizer(train_cfg, steps_per_epoch: int, name: str) -> keras.optimizers.Optimizer:
    """Adam(lr, beta_1), the rate halved every `lr_decay_every_epochs` epochs (Reed: 100).

    `steps_per_epoch` 0 means a constant rate.
    """
    learning_rate = train_cfg.learning_rate
    if train_cfg.lr_decay_every_epochs > 0 and steps_per_epoch > 0:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=train_cfg.lr_decay_every_epochs * steps_per_epoch,
            decay_rate=0.5, staircase=True)
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=train_cfg.beta_1, name=name)
    if train_cfg.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=name)
    return optimizer


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


def run_training(config: Config, run_dir: str, resume: bool = False) -> dict:
    """Runs the GAN stage, then the style stage, then exports, in `run_dir`; returns the record.

    With `resume`, continues from the run folder's latest checkpoint: every weight, optimizer
    slot, the noise generator and the data stream pick up where that checkpoint left them.
    """
    keras.mixed_precision.set_global_policy(config.train.precision)
    keras.utils.set_random_seed(config.data.seed)
    checkpoints = RunCheckpoints(run_dir)
    if not resume and checkpoints.latest() is not None:
        raise UserInputError(f"{run_dir} already holds a run: pass --resume {run_dir} to continue "
                             "it, or another --out.")
    if resume and checkpoints.latest() is None:
        raise UserInputError(f"--resume {run_dir}: no checkpoint there yet; start it again "
                             f"without --resume (use --out {run_dir}).")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as f:
        f.write(config.to_json())

    dataset = load_dataset(config.data)
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    steps_per_epoch = max(1, len(dataset.train) // config.data.batch_size)
    gan_steps = config.train.steps or config.train.epochs * steps_per_epoch
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch)
    record = {"stage": "gan", "step": 0, "style_step": 0}
    if resume:
        record = checkpoints.restore(gan)
        gan.seed_generator.state.assign(np.asarray(record["noise_state"], dtype=np.uint32))
        weights = record.pop("weights")  # The file is the checkpoint's, not the new records'.
        print(f"resuming from {_describe(record)} ({os.path.basename(weights)})")
    print(f"run folder: {run_dir}  ({len(dataset.train)} training images, {steps_per_epoch} "
          f"steps per epoch, {gan_steps} GAN steps, {config.train.style_steps} style steps)")
    loop = _StageLoop(config, run_dir, gan, checkpoints,
                      Probes.of(dataset, encoder, gan.z_dim, config.data.seed))
    if record["step"] < gan_steps:
        stream = make_train_dataset(dataset.train, config.data, encoder, start_step=record["step"])
        record = loop.run("gan", gan.train_step, gan.trackers, stream, record, gan_steps)
    if record["style_step"] < config.train.style_steps:
        stream = make_train_dataset(dataset.train, config.data, encoder,
                                    start_step=record["style_step"])
        record = loop.run("style", gan.style_step, gan.style_trackers, stream, record,
                          config.train.style_steps)
    export_dir = os.path.join(run_dir, EXPORT_DIR)
    export_saved_model(LoadedRun(config, encoder, gan, checkpoints.latest()), export_dir,
                       overwrite=True)
    print(f"exported the SavedModel to {export_dir}")
    return record


class _StageLoop:
    """The step loop of a stage: train, log, sample, checkpoint; guards against NaN and Ctrl-C.

    A record {"stage", "step" (GAN steps), "style_step", "noise_state"} is what a checkpoint
    stores besides the weights.
    """

    def __init__(self, config, run_dir, gan, checkpoints, probes):
        self.train_cfg = config.train
        self.batch_size = config.data.batch_size
        self.run_dir = run_dir
        self.gan = gan
        self.checkpoints = checkpoints
        self.probes = probes
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs"))

    def run(self, stage, step_fn, trackers, stream, record, total_steps) -> dict:
        """Runs `step_fn` on `stream` until the stage's counter reaches `total_steps`."""
        counter = "step" if stage == "gan" else "style_step"
        # Steps whose updates ran. Ctrl-C surfaces once a compiled step has returned, possibly
        # before `step` counts it: the interrupt checkpoint must carry the weights' own step.
        completed = tf.Variable(record[counter], dtype=tf.int64, trainable=False)

        def counted_step(batch, train_step=step_fn):
            logs = train_step(batch)
            completed.assign_add(1)
            return logs

        step_fn = tf.function(counted_step, jit_compile=self.train_cfg.jit_compile)
        progress = keras.utils.Progbar(total_steps, stateful_metrics=("images/s",) + tuple(trackers))
        print(f"{stage} stage:")
        start_step = step = record[counter]
        started = time.perf_counter()
        iterator = iter(stream)
        try:
            while step < total_steps:
                logs = {k: float(v) for k, v in step_fn(next(iterator)).items()}
                step += 1
                self._check_finite(stage, logs, step)
                record = self._record(record, stage, counter, step)
                rate = (step - start_step) * self.batch_size / (time.perf_counter() - started)
                progress.update(step, list(logs.items()) + [("images/s", rate)])
                self._periodic(stage, step, logs, trackers, record, last=step == total_steps)
        except KeyboardInterrupt:
            step = int(completed.numpy())
            if record[counter] != step:
                record = self._record(record, stage, counter, step)
            if step > start_step:
                self.checkpoints.save(self.gan, record)
                saved = "checkpoint saved"
            elif self.checkpoints.latest() is not None:
                saved = "no step finished since the last checkpoint, which is intact"
            else:
                raise TrainingInterrupted(
                    f"interrupted before the first {stage} step finished; no checkpoint was "
                    f"written. Start again with --out {self.run_dir}") from None
            raise TrainingInterrupted(
                f"interrupted at {stage} step {step}; {saved}. Continue with: "
                f"python train.py --resume {self.run_dir}") from None
        return record

    def _periodic(self, stage, step, logs, trackers, record, last):
        cfg = self.train_cfg
        if step % cfg.log_every == 0 or last:
            with self.writer.as_default(step=step):
                for name, value in logs.items():
                    tf.summary.scalar(f"{stage}/{name}", value)
            for tracker in trackers.values():
                tracker.reset_state()
        if stage == "gan" and (step % cfg.sample_every == 0 or last):
            self._write_samples(step)
        if step % cfg.checkpoint_every == 0 or last:
            self.checkpoints.save(self.gan, record)

    def _write_samples(self, step):
        grid = self.probes.grid(self.gan)
        sheet = image_grid(grid, row_labels=list(self.probes.captions), scale=2)
        os.makedirs(os.path.join(self.run_dir, "samples"), exist_ok=True)
        sheet.save(os.path.join(self.run_dir, "samples", f"step-{step:08d}.png"))
        with self.writer.as_default(step=step):
            tf.summary.image("samples", np.asarray(sheet)[None])

    def _record(self, record, stage, counter, step):
        return dict(record, stage=stage, **{counter: step},
                    noise_state=self.gan.seed_generator.state.numpy().tolist())

    def _check_finite(self, stage, logs, step):
        for name, value in logs.items():
            if not math.isfinite(value):
                latest = self.checkpoints.latest()
                kept = (f"the last good checkpoint ({_describe(latest)}) is intact in "
                        f"{self.checkpoints.directory}" if latest else "no checkpoint was written")
                raise TrainingDiverged(
                    f"{stage} step {step}: the {name} term became {value}; training stopped and "
                    f"{kept}. Lower train.learning_rate or use train.precision=float32.")


def _describe(record: dict) -> str:
    """'gan step 250' or 'style step 40': where a checkpoint record stands."""
    counter = "step" if record["stage"] == "gan" else "style_step"
    return f"{record['stage']} step {record[counter]}"


def read_run_config(run_dir: str) -> Config:
    """The configuration saved in a run folder."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise UserInputError(f"{run_dir} has no config.json: pass a run folder written by train.py.")
    with open(path, encoding="utf-8") as f:
        return Config.from_dict(json.load(f))


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run folder's configuration, caption encoder, trained model and checkpoint record."""

    config: Config
    encoder: CaptionEncoder
    gan: TextToImageGAN
    record: dict


def load_run(run_dir: str) -> LoadedRun:
    """Builds the models of a run folder and loads its latest checkpoint (also of a stopped run)."""
    if not os.path.isdir(run_dir):
        raise UserInputError(f"{run_dir} does not exist: pass a run folder written by train.py.")
    config = read_run_config(run_dir)
    record = RunCheckpoints(run_dir).latest()
    if record is None:
        raise UserInputError(f"{run_dir} has no checkpoint yet: train longer (checkpoints every "
                             f"{config.train.checkpoint_every} steps) or pass another run.")
    keras.mixed_precision.set_global_policy(config.train.precision)
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=1)
    gan.load_weights(record["weights"])
    return LoadedRun(config, encoder, gan, record)
