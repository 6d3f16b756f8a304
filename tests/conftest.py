"""Fixtures shared by test files."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def cli_tiny_run(tmp_path_factory):
    """`python train.py --preset tiny` run once per session; its folder (a reference run that
    test_training and test_faults compare resumed runs with)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = subprocess.run([sys.executable, "train.py", "--preset", "tiny", "--out", str(run_dir)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return str(run_dir)


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Loading a run sets Keras' global dtype policy to the run's precision (bfloat16 where the
    CPU has it): set it back, so no test depends on the tests that ran before it."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")
