"""Fixtures shared by test files."""
import contextlib
import fcntl
import io
import os
import shutil

import pytest

from tf_t2i.cpu_kernels import enable_onednn

# The kernels `train.py` runs with, set before any test imports TensorFlow: tests compare runs
# of this process with runs of `train.py` subprocesses to float tolerance, and oneDNN's and
# Eigen's kernels round differently (tf_t2i.cpu_kernels).
enable_onednn()
# cli_tiny_run's folder as it was right after its first checkpoint, next to the run folder.
FIRST_CHECKPOINT = "run-at-first-checkpoint"


@pytest.fixture(scope="session")
def cli_tiny_run(tmp_path_factory):
    """`train.py --preset tiny` run once per session, in a pytest process (`train.py` only calls
    `tf_t2i.cli.train.main`; tests/test_training.py starts the script itself); its folder.

    The one trained run of the default suite's tests that only read a finished run (export,
    evaluate.py), and the reference run test_training and test_faults compare resumed runs
    with. Never write into it: copy it (`shutil.copytree`) to change it. pytest-xdist's workers
    share it: the first to ask trains it while the others wait on a file lock.
    """
    folder = _session_folder(tmp_path_factory) / "cli"
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "trained").exists():
            shutil.rmtree(folder, ignore_errors=True)  # What a worker that failed here left.
            folder.mkdir()
            _train_the_cli_tiny_run(str(folder / "run"))
            (folder / "trained").touch()
    return str(folder / "run")


def _session_folder(tmp_path_factory):
    """The temporary folder of this pytest session: under pytest-xdist, the parent of each
    worker's own, which every worker shares."""
    folder = tmp_path_factory.getbasetemp()
    return folder.parent if os.environ.get("PYTEST_XDIST_WORKER") else folder


def _train_the_cli_tiny_run(run_dir):
    """`train.py --preset tiny --out run_dir`, copying the folder right after its first
    checkpoint to FIRST_CHECKPOINT beside it."""
    from tf_t2i import checkpoints
    from tf_t2i.cli.errors import run_cli
    from tf_t2i.cli.train import _main as train_main
    from tf_t2i.run_lock import LOCK_FILE

    real_save = checkpoints.RunCheckpoints.save
    snapshot = os.path.join(os.path.dirname(run_dir), FIRST_CHECKPOINT)

    def save_and_copy_the_first(self, model, record):
        path = real_save(self, model, record)
        if not os.path.exists(snapshot):
            # The lock names this process: a copy holding it would be a run in use.
            shutil.copytree(run_dir, snapshot, ignore=shutil.ignore_patterns(LOCK_FILE))
        return path

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints.RunCheckpoints, "save", save_and_copy_the_first)
        returncode = run_cli(train_main, ["--preset", "tiny", "--out", run_dir])
    assert returncode == 0, err.getvalue()[-3000:]
    assert f"exported the SavedModel to {run_dir}" in out.getvalue()


@pytest.fixture(scope="session")
def cli_tiny_run_at_first_checkpoint(cli_tiny_run):
    """`cli_tiny_run`'s folder as it was right after its first checkpoint (GAN step
    `train.checkpoint_every`): what a kill -9 right then leaves, but for the lock file. Copy it
    to resume it."""
    return os.path.join(os.path.dirname(cli_tiny_run), FIRST_CHECKPOINT)


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Loading a run sets Keras' global dtype policy to the run's precision (bfloat16 where the
    CPU has it): set it back, so no test depends on the tests that ran before it."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")
