"""Fault injection: a run folder survives kill -9 anywhere in a checkpoint write, a full disk, a
damaged checkpoint file, Ctrl-C in the style stage and in the export, unsafe resumes and a second
trainer; each case ends with a run that resumes, losing at most one checkpoint interval.

Kill points are injected by `tests/fault_injection.py` (train.py with `RunCheckpoints` patched to
kill -9 itself at a chosen phase of its n-th save). Resumed runs are compared with the
uninterrupted `train.py --preset tiny` run (`cli_tiny_run`): checkpoint cadence does not change
the weights, so runs that checkpoint every step must end with the same weights.
"""
import contextlib
import errno
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

from tests.fault_injection import PHASES
from tests.test_training import (TINY, h5_datasets, saved_iterations, started, tiny, train_py,
                                 wait_for_checkpoint)
from tf_t2i import training
from tf_t2i.checkpoints import LAYOUT_MISMATCH, CheckpointWriteError, RunCheckpoints
from tf_t2i.cli.errors import run_cli
from tf_t2i.cli.train import _main as train_main
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation.model_source import open_model
from tf_t2i.resume import check_resume, write_run_config
from tf_t2i.run_lock import LOCK_FILE
from tf_t2i.runs import build_gan, load_run, read_run_config
from tf_t2i.stage_loop import describe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVERY_STEP = ["--set", "train.checkpoint_every=1"]
KILL_PHASES = tuple(p for p in PHASES if p != "full_disk")


def run(args, timeout=600, injected=None):
    """train.py (or, with `injected` = (phase, n), the fault-injection driver) to its end."""
    command = (train_py(*args) if injected is None else
               [sys.executable, os.path.join("tests", "fault_injection.py"), injected[0],
                str(injected[1]), *args])
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=REPO))


def checkpoint_number(record):
    return 0 if record is None else record["step"] + record["style_step"] + record.get(
        "earlier_style_steps", 0)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def assert_same_final_weights(run_dir, reference_dir):
    ours, whole = RunCheckpoints(run_dir).latest(), RunCheckpoints(reference_dir).latest()
    assert {k: v for k, v in ours.items() if k != "weights"} == \
        {k: v for k, v in whole.items() if k != "weights"}
    expected, actual = h5_datasets(whole["weights"]), h5_datasets(ours["weights"])
    assert sorted(actual) == sorted(expected) and len(expected) > 200
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert not glob.glob(os.path.join(run_dir, "checkpoints", "*partial*"))
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))
    assert os.path.isfile(os.path.join(run_dir, "export", "saved_model.pb"))


def train_through_kills(run_dir, kills):
    """Trains the tiny run (a checkpoint every step) to its end in `run_dir`, one process per
    (phase, n) in `kills`, each killed -9 at that phase of its n-th save, then one to finish.

    Checks after every kill that the newest readable checkpoint is the last one whose pointer
    was written (nothing lost beyond one interval) and that the next process resumes from it.
    Returns the number of kills that happened (a process may finish before its n-th save).
    """
    fresh = ["--preset", "tiny", "--out", run_dir, *EVERY_STEP]
    happened = 0
    for injected in list(kills) + [None]:
        before = RunCheckpoints(run_dir).latest()
        result = run(["--resume", run_dir] if before else fresh, injected=injected)
        if before is not None:
            assert f"resuming from {describe(before)} " in result.stdout, \
                result.stderr[-3000:]
        if happened:
            assert "taking over the stale lock" in result.stderr
        if result.returncode == 0:
            return happened
        assert injected is not None and result.returncode == -signal.SIGKILL, \
            result.stderr[-3000:]
        happened += 1
        phase, nth = injected
        kept = nth if phase == "after_pointer" else nth - 1
        after = RunCheckpoints(run_dir).latest()
        assert checkpoint_number(after) == checkpoint_number(before) + kept, (injected, after)
    pytest.fail(f"the run did not finish after {len(kills)} kills")


@pytest.mark.slow  # about a minute; test_training's kill -9 test stays in the default suite.
def test_kill_9_inside_checkpoint_writes_then_resume_matches_the_whole_run(tmp_path,
                                                                           cli_tiny_run):
    """Two kills: while the weights file is half written, and between the weights' rename and
    latest.json. The resumed run ends with the uninterrupted run's weights."""
    run_dir = str(tmp_path / "run")
    assert train_through_kills(run_dir, [("mid_weights", 2), ("after_rename", 2)]) == 2
    assert_same_final_weights(run_dir, cli_tiny_run)


@pytest.mark.slow
def test_20_random_kill_points_all_resume_to_the_whole_run(tmp_path, cli_tiny_run):
    """The issue's bar: 20 kill -9 points drawn at random (phase of the write, which save of
    the process) over chains of resumed runs; every chain ends with the whole run's weights."""
    rng = random.Random(8)
    kills, chains, started_at = 0, 0, time.monotonic()
    while kills < 20:
        chain = [(rng.choice(KILL_PHASES), rng.randint(1, 3)) for _ in range(min(4, 20 - kills))]
        run_dir = str(tmp_path / f"chain-{chains}")
        kills += train_through_kills(run_dir, chain)
        assert_same_final_weights(run_dir, cli_tiny_run)
        chains += 1
    print(f"{kills} kill points over {chains} chains in {time.monotonic() - started_at:.0f} s")


# ---------------------------------------------------------------------------------------------
# A full disk


def test_a_refused_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    class Model:
        def __init__(self, fail):
            self.fail = fail

        def save_weights(self, path):
            with open(path, "wb") as f:
                f.write(b"half")
            if self.fail:
                raise OSError(errno.ENOSPC, "No space left on device", path)

    checkpoints = RunCheckpoints(str(tmp_path))
    checkpoints.save(Model(False), {"stage": "gan", "step": 2, "style_step": 0})
    with pytest.raises(CheckpointWriteError) as raised:
        checkpoints.save(Model(True), {"stage": "gan", "step": 4, "style_step": 0})
    assert str(raised.value) == (
        f"could not write checkpoint ckpt-00000004.weights.h5 in {tmp_path}/checkpoints (No "
        "space left on device); the previous checkpoint ckpt-00000002.weights.h5 is intact: "
        f"free disk space, then continue with --resume {tmp_path}.")
    assert checkpoints.latest()["step"] == 2
    assert sorted(os.listdir(checkpoints.directory)) == ["ckpt-00000002.weights.h5",
                                                         "latest.json"]


def test_no_room_for_another_checkpoint_is_found_before_writing(tmp_path, monkeypatch):
    """HDF5 cut short by a full disk leaves a file it keeps flushing: with less free space than
    the last checkpoint took, the save stops before HDF5 starts."""
    checkpoints = RunCheckpoints(str(tmp_path))
    checkpoints.save(DenseModel(1), {"stage": "gan", "step": 1, "style_step": 0})
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 9, 1))

    class Unwritten(DenseModel):
        def save_weights(self, path):
            raise AssertionError("save_weights must not start")

    with pytest.raises(CheckpointWriteError, match=r"ckpt-00000002\.weights\.h5 in .* \(No space "
                                                   r"left on device\); the previous checkpoint "
                                                   r"ckpt-00000001\.weights\.h5 is intact"):
        checkpoints.save(Unwritten(2), {"stage": "gan", "step": 2, "style_step": 0})
    assert checkpoints.latest()["step"] == 1


@pytest.mark.slow
def test_file_size_limit_during_a_save_is_one_line_then_resume_completes(tmp_path,
                                                                         cli_tiny_run):
    run_dir = str(tmp_path / "run")
    result = run(["--preset", "tiny", "--out", run_dir], injected=("full_disk", 2))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [
        f"error: could not write checkpoint ckpt-00000004.weights.h5 in {run_dir}/checkpoints "
        "(File too large); the previous checkpoint ckpt-00000002.weights.h5 is intact: free "
        f"disk space, then continue with --resume {run_dir}."]
    assert RunCheckpoints(run_dir).latest()["step"] == 2
    resumed = run(["--resume", run_dir])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from gan step 2 " in resumed.stdout
    assert_same_final_weights(run_dir, cli_tiny_run)


@contextlib.contextmanager
def tmpfs(path, size_bytes):
    os.makedirs(path)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs",
                              path], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test covers it")
    try:
        yield path
    finally:
        subprocess.run(["umount", path], check=True)


@pytest.mark.slow
def test_a_full_tmpfs_is_one_line_then_the_copied_run_resumes(tmp_path, cli_tiny_run):
    """A real ENOSPC: a tmpfs with room for two checkpoints and the logs, not a third."""
    checkpoint_size = os.path.getsize(RunCheckpoints(cli_tiny_run).latest()["weights"])
    with tmpfs(str(tmp_path / "disk"), 2 * checkpoint_size + 2**20) as disk:
        run_dir = os.path.join(disk, "run")
        result = run(["--preset", "tiny", "--out", run_dir])
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        [line] = error_lines(result.stderr)
        assert "(No space left on device)" in line and "is intact" in line, line
        reached = RunCheckpoints(run_dir).latest()["step"]
        moved = shutil.copytree(run_dir, str(tmp_path / "run"))
    resumed = run(["--resume", moved])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from gan step {reached} " in resumed.stdout
    assert_same_final_weights(moved, cli_tiny_run)


# ---------------------------------------------------------------------------------------------
# A checkpoint damaged on disk


class DenseModel(keras.Sequential):
    def __init__(self, value):
        super().__init__([keras.Input((3,)), keras.layers.Dense(2)])
        for weight in self.weights:
            weight.assign(np.full(weight.shape, value, np.float32))


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
    checkpoints = RunCheckpoints(str(tmp_path))
    for step in (1, 2, 3):
        checkpoints.save(DenseModel(step), {"stage": "gan", "step": step, "style_step": 0})
    assert sorted(os.listdir(checkpoints.directory)) == [
        "ckpt-00000002.weights.h5", "ckpt-00000003.weights.h5", "latest.json"]
    newest = checkpoints.latest()["weights"]
    os.truncate(newest, os.path.getsize(newest) // 2)
    model = DenseModel(0)
    record = checkpoints.restore(model)
    assert record["step"] == 2 and record["weights"].endswith("ckpt-00000002.weights.h5")
    assert all(np.all(w.numpy() == 2) for w in model.weights)
    warning = capsys.readouterr().err
    assert warning.startswith(f"warning: {newest} cannot be read (") and warning.endswith(
        "); using the previous checkpoint ckpt-00000002.weights.h5.\n")
    os.truncate(os.path.join(checkpoints.directory, "ckpt-00000002.weights.h5"), 10)
    with pytest.raises(OSError):  # None left: the loading error, for the caller to word.
        checkpoints.restore(DenseModel(0))


def test_a_checkpoint_of_other_layers_is_reported_not_skipped(tmp_path, capsys):
    """A file whose layers the model does not have (written by a version that built the model
    from other layers) is not damage: no fall-back to an older file, which would fail alike."""
    checkpoints = RunCheckpoints(str(tmp_path))
    for step in (1, 2):
        checkpoints.save(DenseModel(step), {"stage": "gan", "step": step, "style_step": 0})
    other_layers = keras.Sequential(
        [keras.Input((3,)), keras.layers.EinsumDense("ab,bc->ac", output_shape=2)])
    with pytest.raises(ValueError, match=LAYOUT_MISMATCH):
        checkpoints.restore(other_layers)
    assert capsys.readouterr().err == ""


def copy_with_other_layers(run_dir, tmp_path):
    """A copy of `run_dir` whose checkpoints name a layer of G as another version might."""
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    for path in glob.glob(os.path.join(copy, "checkpoints", "*.weights.h5")):
        with h5py.File(path, "r+") as weights:
            weights.move("generator/image_decoder/layers/conv2d_transpose",
                         "generator/image_decoder/layers/older_upsampling")
    return copy


def test_resuming_checkpoints_of_other_layers_names_the_version(tmp_path, cli_tiny_run):
    run_dir = copy_with_other_layers(cli_tiny_run, tmp_path)
    before = h5_datasets(RunCheckpoints(run_dir).latest()["weights"])
    resumed = run(["--resume", run_dir])
    assert resumed.returncode == 2, resumed.stderr[-3000:]
    [line] = error_lines(resumed.stderr)
    assert line.startswith(f"error: --resume {run_dir}: its checkpoints hold layers that this "
                           "version of tf-t2i builds differently (")
    assert line.endswith("); resume it with the version that started it, or start a new run "
                         "with another --out.")
    assert "cannot be read" not in resumed.stderr
    after = h5_datasets(RunCheckpoints(run_dir).latest()["weights"])  # The run is kept as it was.
    assert sorted(after) == sorted(before)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_evaluating_checkpoints_of_other_layers_names_the_version(tmp_path, cli_tiny_run):
    run_dir = copy_with_other_layers(cli_tiny_run, tmp_path)
    with pytest.raises(UserInputError, match=(
            f"^the checkpoints of {re.escape(run_dir)} hold layers that this version of tf-t2i "
            r"builds differently \(.*\): load it with the version that trained it")):
        open_model(run_dir)


def test_resuming_with_no_readable_checkpoint_is_one_line(tmp_path, cli_tiny_run):
    run_dir = str(tmp_path / "run")
    shutil.copytree(cli_tiny_run, run_dir)
    for path in glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.weights.h5")):
        os.truncate(path, 10)
    resumed = run(["--resume", run_dir])
    assert resumed.returncode == 2, resumed.stderr[-3000:]
    [line] = error_lines(resumed.stderr)
    assert line.startswith(f"error: --resume {run_dir}: no checkpoint there can be read (")
    assert line.endswith("); start a new run with another --out.")


@pytest.mark.slow
def test_a_truncated_newest_checkpoint_resumes_from_the_previous(tmp_path, cli_tiny_run):
    run_dir = str(tmp_path / "run")
    first = run(["--preset", "tiny", "--out", run_dir, "--set", "train.style_steps=0"])
    assert first.returncode == 0, first.stderr[-3000:]
    newest = RunCheckpoints(run_dir).latest()["weights"]
    os.truncate(newest, os.path.getsize(newest) // 3)
    resumed = run(["--resume", run_dir, "--set", f"train.style_steps={TINY.train.style_steps}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"warning: {newest} cannot be read" in resumed.stderr
    assert "resuming from gan step 2 (ckpt-00000002.weights.h5)" in resumed.stdout
    assert_same_final_weights(run_dir, cli_tiny_run)


# ---------------------------------------------------------------------------------------------
# Ctrl-C in the style stage and in the export


def wait_for(condition, process, timeout=300, poll=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"train.py exited early: {process.logs[1].read_text()[-3000:]}")
        if condition():
            return
        time.sleep(poll)
    pytest.fail("timed out")


def latest_stage(run_dir):
    record = RunCheckpoints(run_dir).latest() if os.path.isfile(
        os.path.join(run_dir, "checkpoints", "latest.json")) else None
    return record and record["stage"]


@pytest.mark.slow
def test_ctrl_c_in_the_style_stage_then_resume(tmp_path):
    run_dir = str(tmp_path / "run")
    with started(["--preset", "tiny", "--steps", "2", "--out", run_dir,
                  "--set", "train.style_steps=5000", "--set", "train.checkpoint_every=3"],
                 tmp_path) as process:
        wait_for(lambda: latest_stage(run_dir) == "style", process)
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=120)
    stderr = process.logs[1].read_text()
    assert returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    match = re.search(r"interrupted at style step (\d+); checkpoint saved\. Continue with: "
                      r"python train\.py --resume (\S+)", stderr)
    assert match and match.group(2) == run_dir, stderr[-3000:]
    reached = int(match.group(1))
    latest = RunCheckpoints(run_dir).latest()
    assert (latest["stage"], latest["step"], latest["style_step"]) == ("style", 2, reached)
    assert saved_iterations(latest["weights"], "style_optimizer") == reached

    resumed = run(["--resume", run_dir, "--set", f"train.style_steps={reached + 2}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from style step {reached} " in resumed.stdout
    final = RunCheckpoints(run_dir).latest()
    assert final["style_step"] == reached + 2
    assert saved_iterations(final["weights"], "style_optimizer") == reached + 2
    history = json.load(open(os.path.join(run_dir, "config.json")))["history"]
    assert [h["changes"] for h in history] == [{"train.style_steps": [5000, reached + 2]}]
    assert history[0]["at"] == f"style step {reached}"


@pytest.mark.slow
def test_ctrl_c_during_the_export_then_resume_exports(tmp_path, cli_tiny_run):
    run_dir = str(tmp_path / "run")
    with started(["--preset", "tiny", "--out", run_dir], tmp_path) as process:
        wait_for(lambda: os.path.isdir(os.path.join(run_dir, "export.partial")), process)
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=120)
    stderr = process.logs[1].read_text()
    assert returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        "interrupted during the export; training is complete and checkpointed. Export again "
        f"with: python train.py --resume {run_dir}")
    assert not os.path.exists(os.path.join(run_dir, "export"))
    resumed = run(["--resume", run_dir])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "gan stage:" not in resumed.stdout and "style stage:" not in resumed.stdout
    assert not os.path.exists(os.path.join(run_dir, "export.partial"))
    assert_same_final_weights(run_dir, cli_tiny_run)


# ---------------------------------------------------------------------------------------------
# Unsafe resumes


@pytest.fixture
def finished_run(tmp_path):
    """A run folder with config.json and a checkpoint record (resume refusals never load it).

    Its precision is float32, as a run records `auto` on a CPU without native bfloat16.
    """
    run_dir = str(tmp_path / "run")
    write_run_config(run_dir, tiny(precision="float32"), history=[])

    class Weights:
        def save_weights(self, path):
            with open(path, "wb") as f:
                f.write(b"weights")

    RunCheckpoints(run_dir).save(Weights(), {"stage": "style", "step": 4, "style_step": 2,
                                             "noise_state": [0, 14]})
    return run_dir


def folder_bytes(run_dir):
    contents = {}
    for root, _, files in os.walk(run_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                contents[os.path.relpath(os.path.join(root, name), run_dir)] = f.read()
    return contents


@pytest.mark.parametrize("flags, field, old, new", [
    (["--image-size", "64"], "data.image_size", 32, 64),
    (["--batch-size", "4"], "data.batch_size", 8, 4),
    (["--seed", "5"], "data.seed", 0, 5),
    (["--set", "data.captions_per_image=2"], "data.captions_per_image", 4, 2),
    (["--set", "data.shuffle_buffer=8"], "data.shuffle_buffer", 256, 8),
    (["--set", "train.lr_decay_every_epochs=0"], "train.lr_decay_every_epochs", 100, 0),
    (["--set", "train.precision=mixed_bfloat16"], "train.precision", "'float32'",
     "'mixed_bfloat16'"),
    (["--set", "model.ngf=8"], "model.ngf", 16, 8),
    (["--steps", "9", "--set", "train.cls_weight=0.2"], "train.cls_weight", 0.5, 0.2),
])
def test_unsafe_resume_is_one_line_and_writes_nothing(finished_run, capsys, flags, field, old,
                                                       new):
    before = folder_bytes(finished_run)
    assert run_cli(train_main, ["--resume", finished_run, *flags]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: --resume {finished_run} cannot change {field} from {old} to {new}: the "
        f"checkpoint was trained with {old}. Resume may change only the steps, epochs, "
        "cadences (*_every), train.learning_rate and settings that leave the weights alone "
        "(see train.py --help); start a new run (--out) for other changes."]
    assert folder_bytes(finished_run) == before  # config.json byte for byte, no lock file.


@pytest.mark.slow  # a train.py subprocess; the in-process refusal tests cover the same check
def test_resume_with_another_image_size_in_a_subprocess(finished_run):
    """The bar as a user meets it: train.py --resume RUN --image-size 64 on a 32-px run."""
    config_bytes = open(os.path.join(finished_run, "config.json"), "rb").read()
    result = run(["--resume", finished_run, "--image-size", "64"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith(
        f"error: --resume {finished_run} cannot change data.image_size from 32 to 64")
    assert open(os.path.join(finished_run, "config.json"), "rb").read() == config_bytes


def test_a_new_learning_rate_replaces_the_restored_constant_rate(tmp_path):
    """A constant rate is an optimizer variable: the checkpoint brings the old one back, and
    the resume sets the configured one, recording the change in config.json's history."""
    run_dir = str(tmp_path / "run")
    old = tiny(lr_decay_every_epochs=0, steps=2, style_steps=0)
    encoder = CaptionEncoder(old.data.alphabet, old.data.caption_length)
    gan = build_gan(old, encoder.vocabulary_size, steps_per_epoch=70)
    write_run_config(run_dir, old, history=[])
    RunCheckpoints(run_dir).save(gan, {"stage": "gan", "step": 2, "style_step": 0,
                                       "noise_state": [0, 4]})
    new = tiny(lr_decay_every_epochs=0, steps=6, style_steps=0, learning_rate=1e-5)
    changes = check_resume(run_dir, read_run_config(run_dir), new)
    optimizers = ("encoder_optimizer", "d_optimizer", "g_optimizer", "style_optimizer")

    plain = build_gan(new, encoder.vocabulary_size, steps_per_epoch=70)
    RunCheckpoints(run_dir).restore(plain)
    assert [float(getattr(plain, o).learning_rate) for o in optimizers] == \
        pytest.approx([2e-4] * 4)  # What a bare restore leaves: the old rate.

    resumed = build_gan(new, encoder.vocabulary_size, steps_per_epoch=70)
    record = training._restore(new, run_dir, RunCheckpoints(run_dir), resumed, 6, changes,
                              chief=True)
    assert record["step"] == 2
    assert [float(getattr(resumed, o).learning_rate) for o in optimizers] == \
        pytest.approx([1e-5] * 4)
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert read_run_config(run_dir) == new
    [entry] = saved["history"]
    assert entry["at"] == "gan step 2"
    assert entry["changes"] == {"train.learning_rate": [2e-4, 1e-5], "train.steps": [2, 6]}


@pytest.mark.slow
def test_resume_with_a_new_rate_trains_at_it_and_extension_reruns_the_style_stage(tmp_path):
    """train.py end to end: the rate the final checkpoint holds is the new one, and a finished
    run extended by GAN steps runs the style stage again on the new G."""
    run_dir = str(tmp_path / "run")
    first = run(["--preset", "tiny", "--steps", "2", "--out", run_dir,
                 "--set", "train.lr_decay_every_epochs=0"])
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run(["--resume", run_dir, "--steps", "4", "--set", "train.learning_rate=1e-5"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from style step 2 (ckpt-00000004.weights.h5)" in resumed.stdout
    assert ("the GAN stage continues from step 2 to 4; then the style stage runs again from "
            "style step 0, on the new generator.") in resumed.stdout
    latest = RunCheckpoints(run_dir).latest()
    assert latest["weights"].endswith("ckpt-00000008.weights.h5")
    assert (latest["stage"], latest["step"], latest["style_step"],
            latest["earlier_style_steps"]) == ("style", 4, 2, 2)
    assert saved_iterations(latest["weights"], "g_optimizer") == 4
    assert saved_iterations(latest["weights"], "style_optimizer") == 4
    loaded = load_run(run_dir)
    assert float(loaded.gan.g_optimizer.learning_rate) == pytest.approx(1e-5)
    assert float(loaded.gan.style_optimizer.learning_rate) == pytest.approx(1e-5)
    metadata = json.load(open(os.path.join(run_dir, "export", "t2i_export.json")))
    assert metadata["checkpoint"]["step"] == 4 and metadata["checkpoint"]["style_step"] == 2


# ---------------------------------------------------------------------------------------------
# A second process on the same folder


def test_a_second_train_py_on_a_locked_folder_is_one_line(tmp_path, capsys):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run_dir = str(tmp_path / "run")
    try:
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, LOCK_FILE), "w") as f:
            f.write(f"{owner.pid}\n")
        assert run_cli(train_main, ["--preset", "tiny", "--out", run_dir]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: {run_dir} is in use by another train.py (pid {owner.pid}, lock file "
            f"{run_dir}/{LOCK_FILE}): wait for it to finish or stop it, or pass another --out."]
        assert os.listdir(run_dir) == [LOCK_FILE]
    finally:
        owner.kill()
        owner.wait()


@pytest.mark.slow
def test_a_second_train_py_while_one_trains_is_refused(tmp_path):
    run_dir = str(tmp_path / "run")
    with started(["--preset", "tiny", "--steps", "400", "--out", run_dir,
                  "--set", "train.checkpoint_every=5"], tmp_path) as first:
        wait_for_checkpoint(first, run_dir, min_step=5)
        config_bytes = open(os.path.join(run_dir, "config.json"), "rb").read()
        for args in (["--preset", "tiny", "--out", run_dir], ["--resume", run_dir]):
            second = run(args)
            assert second.returncode == 2 and "Traceback" not in second.stderr
            assert error_lines(second.stderr) == [
                f"error: {run_dir} is in use by another train.py (pid {first.pid}, lock file "
                f"{run_dir}/{LOCK_FILE}): wait for it to finish or stop it, or pass another "
                "--out."]
        assert open(os.path.join(run_dir, "config.json"), "rb").read() == config_bytes
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    reached = RunCheckpoints(run_dir).latest()["step"]
    resumed = run(["--resume", run_dir, "--steps", str(reached + 1)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (f"warning: taking over the stale lock {run_dir}/{LOCK_FILE} of pid {first.pid}, "
            "which no longer runs.") in resumed.stderr
