"""Wiring of a training run: data, stage loops, checkpoints, logs and sample grids.

The run folder's layout and the training model it describes are `tf_t2i.runs`'.
"""
from __future__ import annotations

import dataclasses
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
from tf_t2i.evaluation.curves import write_training_curves
from tf_t2i.evaluation.training_evaluator import TrainingEvaluator
from tf_t2i.export import export_saved_model
from tf_t2i.gan import TextToImageGAN
from tf_t2i.image_grid import image_grid, to_uint8
from tf_t2i.runs import CONFIG_FILE, EXPORT_DIR, LoadedRun, build_gan

PROBE_ROWS = 8
PROBE_COLUMNS = 8


class TrainingDiverged(UserInputError):
    """A loss became NaN or infinite; the message names the step and the loss term."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after a checkpoint of the last completed step was saved."""


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
    with open(os.path.join(run_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
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
                      Probes.of(dataset, encoder, gan.z_dim, config.data.seed),
                      TrainingEvaluator.of(run_dir, config, dataset, encoder))
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
    write_training_curves(run_dir)
    return record


class _StageLoop:
    """The step loop of a stage: train, log, sample, checkpoint; guards against NaN and Ctrl-C.

    A record {"stage", "step" (GAN steps), "style_step", "noise_state"} is what a checkpoint
    stores besides the weights.
    """

    def __init__(self, config, run_dir, gan, checkpoints, probes, evaluator=None):
        self.train_cfg = config.train
        self.batch_size = config.data.batch_size
        self.run_dir = run_dir
        self.gan = gan
        self.checkpoints = checkpoints
        self.probes = probes
        self.evaluator = evaluator  # a TrainingEvaluator, or None (train.eval_every = 0)
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
        if self.evaluator is not None and self.evaluator.due(stage, step, last):
            self.evaluator.evaluate(self.gan, record, self.writer)
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
