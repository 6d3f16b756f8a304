"""Fixtures shared by test files."""
import contextlib
import io

import pytest


@pytest.fixture(scope="session")
def cli_tiny_run(tmp_path_factory):
    """`train.py --preset tiny` run once per session, in this process (`train.py` only calls
    `tf_t2i.cli.train.main`; tests/test_training.py starts the script itself); its folder.

    The one trained run of the default suite's tests that only read a finished run (export,
    evaluate.py), and the reference run test_training and test_faults compare resumed runs
    with. Never write into it: copy it (`shutil.copytree`) to change it.
    """
    from tf_t2i.cli.errors import run_cli
    from tf_t2i.cli.train import _main as train_main

    run_dir = tmp_path_factory.mktemp("cli") / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        returncode = run_cli(train_main, ["--preset", "tiny", "--out", str(run_dir)])
    assert returncode == 0, err.getvalue()[-3000:]
    assert f"exported the SavedModel to {run_dir}" in out.getvalue()
    return str(run_dir)


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Loading a run sets Keras' global dtype policy to the run's precision (bfloat16 where the
    CPU has it): set it back, so no test depends on the tests that ran before it."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")
