"""Training runs: checkpoints round-trip every variable, resume is exact, train.py end to end,
kill -9 / Ctrl-C recovery, and the divergence guard.

In-process runs use the `tiny` preset; command-line runs start `python train.py` in a subprocess.
"""
import contextlib
import dataclasses
import glob
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import types

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_t2i import losses, training
from tf_t2i.checkpoints import RunCheckpoints
from tf_t2i.cli.errors import run_cli
from tf_t2i.cli.train import _main as train_main
from tf_t2i.config import Config, get_preset
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.runs import build_gan
from tf_t2i.errors import TrainingDiverged, TrainingInterrupted
from tf_t2i.runs import with_resolved_precision
from tf_t2i.stage_loop import StageLoop
from tf_t2i.training import run_training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = get_preset("tiny")
OPTIMIZERS = ("encoder_optimizer", "d_optimizer", "g_optimizer", "style_optimizer")


def tiny(**train):
    return dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, **train))


def all_variables(gan):
    """Every variable of the training model and of its four optimizers."""
    variables = list(gan.variables)
    for name in OPTIMIZERS:
        variables += list(getattr(gan, name).variables)
    return variables


def unsaved_seed_states(gan):
    """Seed generator states that checkpoints do not hold: every one but the GAN's noise.

    The only other one is the text encoder GRU's, which draws nothing: the GRU has no dropout.
    """
    rnn = gan.text_encoder.rnn
    assert rnn.cell.dropout == 0 and rnn.cell.recurrent_dropout == 0
    return {id(v) for v in gan.variables
            if v.path.endswith("seed_generator_state") and v is not gan.seed_generator.state}


def comparable(gan):
    """(path, value) of every variable a checkpoint plus its record must restore."""
    skip = unsaved_seed_states(gan)
    return [(v.path, np.array(v.numpy())) for v in all_variables(gan) if id(v) not in skip]


def assert_same_variables(actual, expected):
    assert [p for p, _ in actual] == [p for p, _ in expected]
    for (path, a), (_, e) in zip(actual, expected):
        np.testing.assert_array_equal(a, e, err_msg=path)


def saved_iterations(weights_path, optimizer="g_optimizer"):
    """The optimizer step counter stored in a checkpoint file."""
    with h5py.File(weights_path, "r") as f:
        return int(f[f"{optimizer}/vars/0"][()])


# ---------------------------------------------------------------------------------------------
# In process


def test_a_frozen_text_encoders_table_is_embedded_once_per_distinct_caption_table():
    """The style stage reuses the frozen GAN stage's caption table instead of embedding the
    same captions again."""
    calls = []
    embed = training.embedded_once(lambda ids: calls.append(ids.shape) or ids * 2.0)
    ids = np.arange(12, dtype=np.int32).reshape(4, 3)
    first = embed(ids)
    np.testing.assert_array_equal(embed(ids.copy()), first)
    np.testing.assert_array_equal(embed(ids + 1), (ids + 1) * 2.0)
    np.testing.assert_array_equal(embed(ids.reshape(3, 4)), ids.reshape(3, 4) * 2.0)
    assert calls == [(4, 3), (4, 3), (3, 4)]


def test_checkpoint_round_trips_every_variable(tmp_path):
    """Models, BatchNorm statistics, optimizer slots and counters, and the noise state."""
    keras.mixed_precision.set_global_policy("float32")
    encoder = CaptionEncoder(TINY.data.alphabet, TINY.data.caption_length)
    dataset = load_dataset(TINY.data)
    keras.backend.clear_session()  # Restart layer names, so both models' paths match.
    gan = build_gan(TINY, encoder.vocabulary_size, steps_per_epoch=10)
    initial = comparable(gan)
    for batch in make_train_dataset(dataset.train, TINY.data, encoder).take(2):
        gan.train_step(batch)
    gan.style_step(batch)
    record = {"stage": "style", "step": 2, "style_step": 1,
              "noise_state": gan.seed_generator.state.numpy().tolist()}
    path = RunCheckpoints(str(tmp_path)).save(gan, record)
    assert os.path.basename(path) == "ckpt-00000003.weights.h5"
    trained = comparable(gan)

    # Training moved the weights, BatchNorm statistics, optimizer slots and counters of every
    # model, so the comparison below cannot pass by accident.
    moved = {p for (p, a), (_, b) in zip(initial, trained) if not np.array_equal(a, b)}
    for name in ("text_encoder", "image_encoder", "generator", "discriminator", "style_encoder"):
        assert any(p.startswith(name + "/") for p in moved), name
    assert any("moving_mean" in p for p in moved) and any("moving_variance" in p for p in moved)
    for name in OPTIMIZERS:
        assert any(p.startswith(name + "/") and "momentum" in p for p in moved), name
        assert f"{name}/iteration" in moved
    assert gan.seed_generator.state.path in moved

    keras.backend.clear_session()
    fresh = build_gan(TINY, encoder.vocabulary_size, steps_per_epoch=10)
    assert moved <= {p for (p, a), (_, b) in zip(comparable(fresh), trained)
                     if not np.array_equal(a, b)}
    restored = RunCheckpoints(str(tmp_path)).restore(fresh)
    assert {k: v for k, v in restored.items() if k != "weights"} == record
    assert restored["weights"] == path
    fresh.seed_generator.state.assign(np.asarray(restored["noise_state"], dtype=np.uint32))
    assert_same_variables(comparable(fresh), trained)
    assert int(fresh.g_optimizer.iterations) == 2 and int(fresh.style_optimizer.iterations) == 1
    # And the restored model draws the same next images from the same noise state.
    ids = batch["captions"][:2]
    z = tf.random.stateless_normal((2, TINY.model.z_dim), seed=(1, 2))
    np.testing.assert_array_equal(fresh((z, ids)).numpy(), gan((z, ids)).numpy())
    np.testing.assert_array_equal(fresh.noise(3).numpy(), gan.noise(3).numpy())


@pytest.mark.slow  # two training runs; the kill -9 test below checks the same resume exactly
def test_resumed_run_matches_uninterrupted_run(tmp_path, capsys, cli_tiny_run):
    """Steps 1..k, stop, resume for the rest == the whole tiny run of `train.py` at once.

    The data stream, noise state and optimizer state resume exactly, so the final weights,
    optimizer slots and noise state are equal, and so are the sample grids drawn after resuming.
    The first part runs one step per compiled call, `train.py` several: the results agree.
    """
    k = TINY.train.steps // 2
    assert k >= 1 and TINY.train.style_steps >= 1
    split = str(tmp_path / "split")
    stopped = run_training(tiny(steps=k, style_steps=0, steps_per_execution=1), split)
    assert TINY.train.steps_per_execution >= k and TINY.train.checkpoint_every == k
    assert (stopped["stage"], stopped["step"], stopped["style_step"]) == ("gan", k, 0)
    capsys.readouterr()
    resumed = run_training(TINY, split, resume=True)
    assert f"resuming from gan step {k} (ckpt-{k:08d}.weights.h5)" in capsys.readouterr().out

    whole = RunCheckpoints(cli_tiny_run).latest()
    # Same stage, counters and noise state; the returned record has no stale weights path.
    assert resumed == {key: value for key, value in whole.items() if key != "weights"}
    assert_same_weights_and_later_samples(split, cli_tiny_run, k)


def assert_same_weights_and_later_samples(run_dir, whole_dir, resumed_at):
    """The latest checkpoints of both run folders hold the same arrays (to float tolerance), and
    the sample grids drawn after GAN step `resumed_at` are the same images."""
    whole, ours = RunCheckpoints(whole_dir).latest(), RunCheckpoints(run_dir).latest()
    assert os.path.basename(ours["weights"]) == os.path.basename(whole["weights"])
    expected, actual = h5_datasets(whole["weights"]), h5_datasets(ours["weights"])
    assert sorted(actual) == sorted(expected)
    assert len(expected) > 200
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    for step in range(TINY.train.sample_every, TINY.train.steps + 1, TINY.train.sample_every):
        if step > resumed_at:
            name = os.path.join("samples", f"step-{step:08d}.png")
            np.testing.assert_allclose(read_png(os.path.join(run_dir, name)),
                                       read_png(os.path.join(whole_dir, name)), atol=1)


def read_png(path):
    with Image.open(path) as image:
        return np.asarray(image, np.int16)


def h5_datasets(path):
    """Every array in a weights file, by its place in the file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return arrays


class _Savable:
    """A model whose weights file is a few bytes."""

    def save_weights(self, path):
        with open(path, "wb") as f:
            f.write(b"weights")


def test_resume_needs_a_checkpoint_and_a_new_run_needs_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint there yet"):
        run_training(TINY, str(tmp_path / "empty"), resume=True)
    RunCheckpoints(str(tmp_path / "used")).save(
        _Savable(), {"stage": "gan", "step": 1, "noise_state": [0, 0]})
    with pytest.raises(ValueError, match="already holds a run"):
        run_training(TINY, str(tmp_path / "used"))


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path,
                                                                          monkeypatch):
    """D's loss turns NaN at step 3: training stops at step 3, naming it and the term."""
    calls = tf.Variable(0, dtype=tf.int64, trainable=False)
    finite_loss = losses.discriminator_loss

    def poisoned(*args, **kwargs):
        calls.assign_add(1)
        loss = finite_loss(*args, **kwargs)
        return tf.where(calls >= 3, tf.constant(float("nan")), loss)

    # The GAN takes its loss functions from GAN_LOSSES when it is built.
    monkeypatch.setitem(losses.GAN_LOSSES, "bce",
                        (poisoned, losses.generator_loss, losses.interpolation_loss))
    run_dir = str(tmp_path / "run")
    with pytest.raises(TrainingDiverged) as raised:
        run_training(tiny(steps=6, checkpoint_every=2, log_every=5), run_dir)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("gan step 3: the d_loss term became nan")
    assert "last good checkpoint (gan step 2)" in message

    latest = RunCheckpoints(run_dir).latest()
    assert latest["step"] == 2 and saved_iterations(latest["weights"]) == 2
    assert not glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-00000003*"))
    # Every array of the kept checkpoint is finite (test_checkpoint_round_trips_every_variable
    # shows that a checkpoint file restores every variable).
    arrays = h5_datasets(latest["weights"])
    assert len(arrays) > 200
    for name, value in arrays.items():
        if np.issubdtype(value.dtype, np.floating):
            assert np.all(np.isfinite(value)), name


def test_a_checkpoint_save_cut_short_does_not_break_the_next_one(tmp_path):
    """Ctrl-C during a periodic save, then the interrupt handler's save of the same step."""
    class CutShort:
        def save_weights(self, path):
            self.file = h5py.File(path, "w")  # Left open, as by a Keras save cut short.
            self.file.create_dataset("half", data=np.zeros(3))
            raise KeyboardInterrupt

    checkpoints = RunCheckpoints(str(tmp_path))
    record = {"stage": "gan", "step": 3, "style_step": 0, "noise_state": [0, 7]}
    cut = CutShort()
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(cut, record)
    assert checkpoints.latest() is None

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    checkpoints.save(model, record)
    latest = checkpoints.latest()
    assert {k: v for k, v in latest.items() if k != "weights"} == record
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    fresh.load_weights(latest["weights"])
    for a, b in zip(fresh.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The partial file of the cut-short save is cleaned up.
    assert sorted(os.listdir(checkpoints.directory)) == ["ckpt-00000003.weights.h5",
                                                         "latest.json"]
    cut.file.close()


class _CountingModel:
    """Stands in for the GAN in `StageLoop`: a step adds 1 to `updates`; its "weights file"
    records `updates`, so a checkpoint shows which step its weights are from."""

    def __init__(self):
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.seed_generator = types.SimpleNamespace(state=tf.Variable([0, 0], dtype=tf.int64))

    def step(self, batch):
        self.updates.assign_add(1)
        self.seed_generator.state.assign_add([0, 1])
        return {"style_loss": tf.constant(1.0)}

    def save_weights(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"updates": int(self.updates.numpy())}, f)


def interrupt_stage_loop(tmp_path, monkeypatch, after_call=None, before_call=None, record=None,
                         steps_per_execution=1):
    """Runs a style stage of `_CountingModel` steps, raising KeyboardInterrupt either once
    compiled call `after_call` returned but before the loop counted its steps (where Ctrl-C
    lands while a compiled call runs), or just before call `before_call` starts."""
    model = _CountingModel()
    run_dir = str(tmp_path / "run")
    checkpoints = RunCheckpoints(run_dir)
    config = tiny(checkpoint_every=100, log_every=100, steps_per_execution=steps_per_execution)
    loop = StageLoop(config, run_dir, model, checkpoints, probes=None)
    compile_steps = loop._compile
    calls = []

    def interrupting_compile(*args):
        run_steps = compile_steps(*args)

        def run(iterator, count):
            calls.append(count)
            if len(calls) == before_call:
                raise KeyboardInterrupt
            run_steps(iterator, count)
            if len(calls) == after_call:
                raise KeyboardInterrupt
        return run

    monkeypatch.setattr(loop, "_compile", interrupting_compile)
    record = record or {"stage": "gan", "step": 4, "style_step": 0}
    stream = tf.data.Dataset.from_tensors(0).repeat()
    with pytest.raises(TrainingInterrupted) as raised:
        loop.run("style", model.step, {}, stream, record, total_steps=50)
    return str(raised.value), checkpoints.latest()


def test_interrupt_checkpoint_holds_the_weights_of_its_step(tmp_path, monkeypatch):
    """Ctrl-C after a step's updates ran but before the loop counted it (where it lands while a
    compiled step runs): the checkpoint names the step its weights are from."""
    message, latest = interrupt_stage_loop(tmp_path, monkeypatch, after_call=3)
    assert message.startswith("interrupted at style step 3; checkpoint saved. Continue with: "
                              f"python train.py --resume {tmp_path / 'run'}")
    assert latest["style_step"] == 3 and latest["step"] == 4
    with open(latest["weights"], encoding="utf-8") as f:
        assert json.load(f)["updates"] == 3
    assert latest["noise_state"] == [0, 3]


def test_interrupt_during_a_call_of_several_steps_saves_every_step_it_ran(tmp_path, monkeypatch):
    message, latest = interrupt_stage_loop(tmp_path, monkeypatch, after_call=2,
                                           steps_per_execution=4)
    assert message.startswith("interrupted at style step 8; checkpoint saved.")
    with open(latest["weights"], encoding="utf-8") as f:
        assert latest["style_step"] == 8 and json.load(f)["updates"] == 8
    assert latest["noise_state"] == [0, 8]


def test_interrupt_between_steps_saves_the_last_finished_step(tmp_path, monkeypatch):
    message, latest = interrupt_stage_loop(tmp_path, monkeypatch, before_call=6)
    assert message.startswith("interrupted at style step 5; checkpoint saved.")
    with open(latest["weights"], encoding="utf-8") as f:
        assert latest["style_step"] == 5 and json.load(f)["updates"] == 5


def test_interrupt_before_any_step_claims_no_new_checkpoint(tmp_path, monkeypatch):
    message, latest = interrupt_stage_loop(tmp_path, monkeypatch, before_call=1)
    assert latest is None
    assert "no checkpoint was written" in message and "checkpoint saved" not in message

    earlier = {"stage": "gan", "step": 4, "style_step": 0, "noise_state": [0, 0]}
    RunCheckpoints(str(tmp_path / "run")).save(_Savable(), earlier)
    message, latest = interrupt_stage_loop(tmp_path, monkeypatch, before_call=1, record=earlier)
    assert "checkpoint saved" not in message and "--resume" in message
    assert latest["step"] == 4 and latest["style_step"] == 0


# ---------------------------------------------------------------------------------------------
# train.py in a subprocess


def train_py(*args):
    return [sys.executable, "train.py", *args]


@contextlib.contextmanager
def started(args, tmp_path, name="train"):
    """train.py running in the background, with SIGINT handled as in a terminal (a shell's
    background job ignores it); killed on the way out if the test left it running."""
    logs = (tmp_path / f"{name}.out", tmp_path / f"{name}.err")
    with open(logs[0], "w") as stdout, open(logs[1], "w") as stderr:
        process = subprocess.Popen(
            train_py(*args), cwd=REPO, stdout=stdout, stderr=stderr,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    process.logs = logs
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_checkpoint(process, run_dir, min_step=1, timeout=240):
    """Polls latest.json until it names a GAN step >= min_step; returns its record."""
    deadline = time.monotonic() + timeout
    pointer = os.path.join(run_dir, "checkpoints", "latest.json")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"train.py exited early ({process.returncode}): "
                        f"{process.logs[1].read_text()[-2000:]}")
        if os.path.isfile(pointer):
            with open(pointer, encoding="utf-8") as f:
                record = json.load(f)
            if record["step"] >= min_step:
                return record
        time.sleep(0.05)
    pytest.fail("no checkpoint within the timeout")


def test_train_py_tiny_end_to_end(cli_tiny_run):
    run_dir = pathlib.Path(cli_tiny_run)
    config = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert config == with_resolved_precision(TINY)
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    steps, style_steps = TINY.train.steps, TINY.train.style_steps
    assert (latest["stage"], latest["step"], latest["style_step"]) == ("style", steps,
                                                                        style_steps)
    assert (run_dir / "checkpoints" / latest["weights"]).is_file()
    assert saved_iterations(run_dir / "checkpoints" / latest["weights"]) == steps
    samples = sorted(os.path.basename(p) for p in glob.glob(str(run_dir / "samples" / "*.png")))
    every = TINY.train.sample_every
    assert samples == [f"step-{s:08d}.png" for s in range(1, steps + 1)
                       if s % every == 0 or s == steps]
    assert read_png(run_dir / "samples" / samples[-1]).shape[1] > 8 * TINY.data.image_size
    assert glob.glob(str(run_dir / "logs" / "events.out.tfevents.*"))


# Samples only at the end: the first checkpoints come before any sample grid.
CTRL_C_RUN = ["--preset", "tiny", "--steps", "400", "--set", "train.checkpoint_every=3",
              "--set", "train.sample_every=1000"]


def test_ctrl_c_saves_a_checkpoint_of_the_step_reached(tmp_path, capsys):
    """A real SIGINT while train.py trains: its main runs in this process (the slow test below
    starts the script) and another thread sends the signal once a checkpoint exists. Python's
    handler raises KeyboardInterrupt in the main thread when the compiled call running there
    returns, as in a terminal."""
    run_dir = str(tmp_path / "run")
    first, done = {}, threading.Event()

    def interrupt_after_a_checkpoint():
        pointer = os.path.join(run_dir, "checkpoints", "latest.json")
        deadline = time.monotonic() + 240
        while not done.is_set() and time.monotonic() < deadline:
            if os.path.isfile(pointer):
                with open(pointer, encoding="utf-8") as f:
                    first.update(json.load(f))
                if first["step"] >= 3:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
            time.sleep(0.05)

    # A shell's background job (CI, `pytest &`) starts with SIGINT ignored: handle it as a
    # terminal's foreground process does.
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    sender = threading.Thread(target=interrupt_after_a_checkpoint)
    sender.start()
    try:
        returncode = run_cli(train_main, CTRL_C_RUN + ["--out", run_dir])
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGINT, handler)
    assert_interrupted_at_a_saved_step(returncode, capsys.readouterr().err, run_dir, first)


@pytest.mark.slow  # a train.py start; the test above sends the same signal in this process
def test_ctrl_c_to_the_train_py_script_saves_a_checkpoint_of_the_step_reached(tmp_path):
    run_dir = str(tmp_path / "run")
    with started(CTRL_C_RUN + ["--out", run_dir], tmp_path) as process:
        first = wait_for_checkpoint(process, run_dir, min_step=3)
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=120)
    assert_interrupted_at_a_saved_step(returncode, process.logs[1].read_text(), run_dir, first)


def assert_interrupted_at_a_saved_step(returncode, stderr, run_dir, first):
    """train.py exited with 130 and one line naming the step reached, whose checkpoint (at or
    after `first`, the checkpoint record seen before the signal) holds that step's weights."""
    assert returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    match = re.search(r"interrupted at gan step (\d+); checkpoint saved\. Continue with: "
                      r"python train\.py --resume (\S+)", stderr)
    assert match, stderr[-3000:]
    reached = int(match.group(1))
    assert match.group(2) == run_dir
    latest = RunCheckpoints(run_dir).latest()
    assert reached >= first["step"] and latest["step"] == reached
    # The saved weights are those of that step: the step counter inside the file agrees.
    assert saved_iterations(latest["weights"]) == reached


def test_kill_9_after_a_checkpoint_then_resume_matches_the_whole_run(
        tmp_path, capsys, cli_tiny_run, cli_tiny_run_at_first_checkpoint):
    """`train.py --resume` from GAN step k, killed -9 right after its next checkpoint (the end of
    the GAN stage), then `train.py --resume` for the rest == the whole tiny run of `train.py` at
    once (`cli_tiny_run`).

    The data stream, noise state and optimizer state resume exactly, so the final weights,
    optimizer slots and noise state are equal, and so are the sample grids drawn after step k.
    The run starts from a copy of `cli_tiny_run` as it was at its first checkpoint (step k), so
    only one part trains its GAN steps here. The killed part runs one step per compiled call,
    the whole run several: the results agree. The kill comes from `tests/fault_injection.py`
    (the moment is fixed: a kill from outside at a random moment is the slow test below); the
    last resume runs in this process, the same command line without a second TensorFlow start,
    with --no-export (the export reads the weights compared here, never writes them; test_export
    checks it on `cli_tiny_run`).
    """
    k, steps = TINY.train.checkpoint_every, TINY.train.steps
    assert 1 <= k < steps <= 2 * k and TINY.train.style_steps >= 1
    every = TINY.train.steps_per_execution
    assert every >= steps
    run_dir = str(tmp_path / "run")
    shutil.copytree(cli_tiny_run_at_first_checkpoint, run_dir)
    started_at = RunCheckpoints(run_dir).latest()
    assert (started_at["stage"], started_at["step"], started_at["style_step"]) == ("gan", k, 0)
    killed = subprocess.run(
        [sys.executable, os.path.join("tests", "fault_injection.py"), "after_pointer", "1",
         "--resume", run_dir, "--set", "train.steps_per_execution=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    before = RunCheckpoints(run_dir).latest()
    assert (before["stage"], before["step"], before["style_step"]) == ("gan", steps, 0)
    assert saved_iterations(before["weights"]) == steps

    capsys.readouterr()
    returncode = run_cli(train_main, ["--resume", run_dir, "--no-export",
                                      "--set", f"train.steps_per_execution={every}"])
    out, err = capsys.readouterr()
    assert returncode == 0, err[-3000:]
    assert f"resuming from gan step {steps} (ckpt-{steps:08d}.weights.h5)" in out
    assert "taking over the stale lock" in err
    assert "exported" not in out and not os.path.exists(os.path.join(run_dir, "export"))
    whole, after = RunCheckpoints(cli_tiny_run).latest(), RunCheckpoints(run_dir).latest()
    # Same stage, counters and noise state.
    assert {key: value for key, value in after.items() if key != "weights"} == \
        {key: value for key, value in whole.items() if key != "weights"}
    assert saved_iterations(after["weights"]) == steps
    assert_same_weights_and_later_samples(run_dir, cli_tiny_run, k)
    assert not glob.glob(os.path.join(run_dir, "checkpoints", "*partial*"))
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        history = json.load(f)["history"]
    assert [(entry["at"], entry["changes"]) for entry in history] == [
        (f"gan step {k}", {"train.steps_per_execution": [every, 1]}),
        (f"gan step {steps}", {"train.steps_per_execution": [1, every]})]


@pytest.mark.slow  # two train.py starts; the test above kills, resumes and compares in less
def test_kill_9_then_resume_continues_from_the_last_checkpoint(tmp_path):
    run_dir = str(tmp_path / "run")
    with started(["--preset", "tiny", "--steps", "400", "--out", run_dir,
                  "--set", "train.checkpoint_every=5"], tmp_path) as process:
        wait_for_checkpoint(process, run_dir, min_step=5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    before = RunCheckpoints(run_dir).latest()
    assert before["step"] % 5 == 0 and os.path.isfile(before["weights"])
    assert saved_iterations(before["weights"]) == before["step"]

    total = before["step"] + 3
    result = subprocess.run(train_py("--resume", run_dir, "--steps", str(total)), cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from gan step {before['step']} " in result.stdout
    after = RunCheckpoints(run_dir).latest()
    assert (after["stage"], after["step"], after["style_step"]) == ("style", total,
                                                                     TINY.train.style_steps)
    assert saved_iterations(after["weights"]) == total
    assert not glob.glob(os.path.join(run_dir, "checkpoints", "*partial*"))
    assert json.loads(open(os.path.join(run_dir, "config.json")).read())["train"]["steps"] == total


@pytest.mark.slow
def test_train_py_reports_divergence_in_one_line(tmp_path):
    """A learning rate of 1e30 blows D up in step 1's D phase, so G's loss of step 1 is NaN."""
    run_dir = str(tmp_path / "run")
    result = subprocess.run(
        train_py("--preset", "tiny", "--out", run_dir, "--steps", "6",
                 "--set", "train.learning_rate=1e30", "--set", "train.checkpoint_every=1"),
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1
    pattern = (r"error: gan step 1: the \w+ term became (nan|inf|-inf); training stopped and "
               r"no checkpoint was written\. Lower train\.learning_rate")
    assert re.match(pattern, lines[0]), lines[0]
    assert RunCheckpoints(run_dir).latest() is None
