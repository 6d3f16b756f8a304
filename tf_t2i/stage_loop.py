"""The step loop of a training stage: several steps per compiled call, no host round trip per step.

One compiled call (`_run_steps`) runs up to `steps_per_execution` steps in a graph loop: it pulls
each batch from the (distributed) iterator, runs the step on every replica and checks the step's
losses for NaN or infinity. A non-finite loss stops the graph loop at once and records its step
in a variable, so no update follows it. The host reads metrics, the divergence flag and the noise
state only at events (logging, samples, checkpoints, the end of the stage): on a GPU the calls in
between queue up without waiting for each other.
"""
from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_t2i.errors import TrainingDiverged, TrainingInterrupted
from tf_t2i.image_grid import image_grid

COUNTERS = {"encoder": "encoder_step", "gan": "step", "style": "style_step"}


def describe(record: dict) -> str:
    """'gan step 250' or 'style step 40': where a checkpoint record stands."""
    return f"{record['stage']} step {record[COUNTERS[record['stage']]]}"


class StageLoop:
    """Runs a stage's steps; logs, draws samples and checkpoints at their cadences.

    A record {"stage", "encoder_step" (warm-up steps), "step" (GAN steps), "style_step",
    "noise_state"} is what a checkpoint stores besides the weights.

    Args:
        config: the run's `Config` (cadences, steps_per_execution, jit_compile).
        run_dir: the run folder (logs/ and samples/ are written there).
        gan: the `TextToImageGAN` (its weights are checkpointed).
        checkpoints: the run's `RunCheckpoints`, or None on a worker that does not save.
        probes: fixed captions and noise for sample grids (`training.Probes`), or None.
        evaluator: a `TrainingEvaluator` scoring the model every `train.eval_every` steps, or
            None (metrics off).
        strategy: the `tf.distribute.Strategy` the models were built under.
        is_chief: False on a worker that trains but does not draw samples (it still logs and
            checkpoints, into its own folder, at the same steps: reading and saving metrics is
            a collective of all workers).
    """

    def __init__(self, config, run_dir, gan, checkpoints, probes, evaluator=None,
                 strategy=None, is_chief=True):
        self.train_cfg = config.train
        self.batch_size = config.data.batch_size
        self.run_dir = run_dir
        self.gan = gan
        self.checkpoints = checkpoints
        self.probes = probes
        self.evaluator = evaluator
        self.strategy = strategy or tf.distribute.get_strategy()
        self.is_chief = is_chief
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs"))

    def run(self, stage, step_fn, trackers, stream, record, total_steps) -> dict:
        """Runs `step_fn` on batches of `stream` until the stage's counter reaches `total_steps`.

        Args:
            stage: "encoder", "gan" or "style".
            step_fn: one training step, batch -> {name: loss}, run on every replica.
            trackers: {name: keras.metrics.Mean} the step updates; read and reset at log events.
            stream: a dataset, or a distributed dataset of the loop's strategy.
            record: the checkpoint record the stage starts from.
            total_steps: the stage's last step.
        """
        counter = COUNTERS[stage]
        start_step = step = record[counter]
        # Steps whose updates ran, and the first step whose loss was not finite (0: none yet).
        completed = tf.Variable(start_step, dtype=tf.int64, trainable=False)
        diverged_at = tf.Variable(0, dtype=tf.int64, trainable=False)
        run_steps = self._compile(step_fn, completed, diverged_at)
        progress = keras.utils.Progbar(total_steps,
                                       stateful_metrics=("images/s",) + tuple(trackers))
        print(f"{stage} stage:")
        logs = {}
        started = time.perf_counter()
        iterator = iter(stream)
        try:
            while step < total_steps:
                count = self._steps_until_event(stage, step, total_steps)
                run_steps(iterator, tf.constant(count, tf.int64))
                step += count
                rate = (step - start_step) * self.batch_size / (time.perf_counter() - started)
                if self._is_event(stage, step, total_steps):
                    self._check_finite(stage, trackers, diverged_at)
                    if step % self.train_cfg.log_every == 0 or step == total_steps:
                        logs = self._log(stage, step, trackers)
                    record = self._event(stage, step, record, last=step == total_steps)
                progress.update(step, list(logs.items()) + [("images/s", rate)])
        except KeyboardInterrupt:
            self._check_finite(stage, trackers, diverged_at)
            record = self._save_interrupted(stage, start_step, int(completed.numpy()), record)
        return record

    def _compile(self, step_fn, completed, diverged_at):
        return compile_steps(step_fn, self.strategy, self.train_cfg.jit_compile, completed,
                             diverged_at)

    def _steps_until_event(self, stage, step, total_steps) -> int:
        """Steps to run in the next call: up to steps_per_execution, never past an event."""
        next_event = min([total_steps] + [(step // c + 1) * c for c in self._cadences(stage)])
        return min(self.train_cfg.steps_per_execution, next_event - step)

    def _is_event(self, stage, step, total_steps) -> bool:
        return step == total_steps or any(step % c == 0 for c in self._cadences(stage))

    def _cadences(self, stage) -> list[int]:
        cfg = self.train_cfg
        cadences = [cfg.log_every, cfg.checkpoint_every]
        if stage == "gan" and self.probes is not None:
            cadences.append(cfg.sample_every)
        if stage == "gan" and cfg.eval_every > 0:
            # On every worker, evaluating or not: all must end their calls at the same steps.
            cadences.append(cfg.eval_every)
        return cadences

    def _log(self, stage, step, trackers) -> dict:
        """Reads the trackers' means since the last log, writes them to TensorBoard, resets."""
        logs = {name: float(tracker.result()) for name, tracker in trackers.items()}
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(f"{stage}/{name}", value)
        for tracker in trackers.values():
            tracker.reset_state()
        return logs

    def _event(self, stage, step, record, last) -> dict:
        cfg = self.train_cfg
        if (stage == "gan" and self.probes is not None and self.is_chief
                and (step % cfg.sample_every == 0 or last)):
            self._write_samples(step)
        evaluate = self.evaluator is not None and self.evaluator.due(stage, step, last)
        if evaluate or step % cfg.checkpoint_every == 0 or last:
            record = self._record(record, stage, step)
        if evaluate:
            self.evaluator.evaluate(self.gan, record, self.writer)
        if step % cfg.checkpoint_every == 0 or last:
            self._save(record)
        return record

    def _save(self, record):
        if self.checkpoints is not None:
            self.checkpoints.save(self.gan, record)

    def _save_interrupted(self, stage, start_step, step, record):
        """Ctrl-C: checkpoints the last completed step, then raises TrainingInterrupted."""
        if step > start_step:
            self._save(self._record(record, stage, step))
            saved = "checkpoint saved"
        elif self.checkpoints is not None and self.checkpoints.latest() is not None:
            saved = "no step finished since the last checkpoint, which is intact"
        else:
            raise TrainingInterrupted(
                f"interrupted before the first {stage} step finished; no checkpoint was "
                f"written. Start again with --out {self.run_dir}") from None
        raise TrainingInterrupted(
            f"interrupted at {stage} step {step}; {saved}. Continue with: "
            f"python train.py --resume {self.run_dir}") from None

    def _write_samples(self, step):
        grid = self.probes.grid(self.gan)
        sheet = image_grid(grid, row_labels=list(self.probes.captions), scale=2)
        os.makedirs(os.path.join(self.run_dir, "samples"), exist_ok=True)
        sheet.save(os.path.join(self.run_dir, "samples", f"step-{step:08d}.png"))
        with self.writer.as_default(step=step):
            tf.summary.image("samples", np.asarray(sheet)[None])

    def _record(self, record, stage, step):
        return dict(record, stage=stage, **{COUNTERS[stage]: step},
                    noise_state=self.gan.seed_generator.state.numpy().tolist())

    def _check_finite(self, stage, trackers, diverged_at):
        """Raises TrainingDiverged naming the step and the first non-finite term, if any."""
        step = int(diverged_at.numpy())
        if step == 0:
            return
        values = {name: float(tracker.result()) for name, tracker in trackers.items()}
        name, value = next(((n, v) for n, v in values.items() if not np.isfinite(v)),
                           ("loss", float("nan")))
        latest = self.checkpoints.latest() if self.checkpoints is not None else None
        kept = (f"the last good checkpoint ({describe(latest)}) is intact in "
                f"{self.checkpoints.directory}" if latest else "no checkpoint was written")
        raise TrainingDiverged(
            f"{stage} step {step}: the {name} term became {value}; training stopped and "
            f"{kept}. Lower train.learning_rate or use train.precision=float32.")


def compile_steps(step_fn, strategy, jit_compile, completed, diverged_at):
    """The compiled call `run_steps(iterator, count)`: up to `count` steps in a graph loop.

    Each step runs `step_fn` on every replica of `strategy` and adds 1 to `completed`; the loop
    stops after a step whose losses are not all finite, recording its number in `diverged_at`,
    and does nothing while `diverged_at` is set.

    Args:
        step_fn: batch -> {name: loss}.
        strategy: a `tf.distribute.Strategy` (the default one on a single device).
        jit_compile: compile `step_fn` with XLA. Only the step: iterator ops and the graph loop
            around it do not compile with XLA.
        completed, diverged_at: int64 scalar variables.
    """
    # The step's Python control flow depends only on the configuration, never on a tensor, so
    # autograph need not rewrite the source of every function it calls; that rewriting was over
    # half of the tracing time of a stage's first call (cProfile, tiny preset, 2 cores).
    step_fn = tf.autograph.experimental.do_not_convert(step_fn)
    if jit_compile:
        step_fn = tf.function(step_fn, jit_compile=True)

    def replica_step(batch):
        logs = step_fn(batch)
        finite = [tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32))) for v in logs.values()]
        return 1 - tf.cast(tf.reduce_all(finite), tf.int64)

    @tf.function
    def run_steps(iterator, count):
        for _ in tf.range(count):
            if diverged_at > 0:
                break
            not_finite = strategy.run(replica_step, args=(next(iterator),))
            completed.assign_add(1)
            if strategy.reduce("SUM", not_finite, axis=None) > 0:
                diverged_at.assign(completed)

    return run_steps
