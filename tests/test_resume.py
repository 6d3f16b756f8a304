"""What --resume may change (tf_t2i.resume) and the pid lock of a run folder (tf_t2i.run_lock)."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from tf_t2i.config import apply_overrides, get_preset
from tf_t2i.resume import (UnsafeResume, absolute_data_path, check_not_shrinking, check_resume,
                           config_changes, continue_stages, read_history, safe_field,
                           write_run_config)
from tf_t2i.run_lock import LOCK_FILE, RunInUse, RunLock
from tf_t2i.runs import read_run_config

TINY = get_preset("tiny")


def changed(*overrides):
    return apply_overrides(TINY, list(overrides))


def test_safe_fields_are_lengths_cadences_the_learning_rate_and_how_training_runs():
    for name in ("train.steps", "train.epochs", "train.style_steps", "train.learning_rate",
                 "train.log_every", "train.sample_every", "train.checkpoint_every",
                 "train.eval_every", "train.steps_per_execution", "train.strategy",
                 "train.eval_metrics", "train.best_metric"):
        assert safe_field(name), name
    for name in ("data.image_size", "data.batch_size", "data.seed", "data.captions_per_image",
                 "data.shuffle_buffer", "train.lr_decay_every_epochs", "train.precision",
                 "train.jit_compile", "train.sync_batch_norm", "model.ngf", "data.path"):
        assert not safe_field(name), name


def test_check_resume_lists_safe_changes_and_refuses_the_rest(tmp_path):
    requested = changed("train.steps=9", "train.learning_rate=1e-5", "train.log_every=3")
    assert check_resume("RUN", TINY, requested) == {
        "train.steps": (4, 9), "train.learning_rate": (2e-4, 1e-5),
        "train.log_every": (TINY.train.log_every, 3)}
    with pytest.raises(UnsafeResume) as raised:
        check_resume("RUN", TINY, changed("train.steps=9", "data.image_size=64"))
    assert str(raised.value).startswith(
        "--resume RUN cannot change data.image_size from 32 to 64: the checkpoint was trained "
        "with 32.")
    assert "\n" not in str(raised.value)


def test_data_paths_are_compared_and_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = dataclasses.replace(TINY, data=dataclasses.replace(TINY.data, format="jsonl",
                                                                  path="data"))
    absolute = absolute_data_path(relative)
    assert absolute.data.path == str(tmp_path / "data")
    assert check_resume("RUN", absolute, relative) == {}
    assert absolute_data_path(TINY) == TINY  # No path: unchanged.


def test_config_file_round_trips_with_its_history(tmp_path):
    history = [{"at": "gan step 2", "time": "t", "changes": {"train.steps": [4, 6]}}]
    write_run_config(str(tmp_path), TINY, history)
    assert read_run_config(str(tmp_path)) == TINY
    assert read_history(str(tmp_path)) == history
    assert read_history(str(tmp_path / "none")) == []
    assert not [n for n in os.listdir(tmp_path) if "partial" in n]


def test_continue_stages_reruns_the_style_stage_after_more_gan_steps():
    finished = {"stage": "style", "step": 4, "style_step": 2, "noise_state": [0, 9]}
    record, note = continue_stages(finished, gan_steps=8)
    assert record == {"stage": "gan", "step": 4, "style_step": 0, "earlier_style_steps": 2,
                      "noise_state": [0, 9]}
    assert note.startswith("the GAN stage continues from step 4 to 8; then the style stage "
                           "runs again from style step 0")
    again, _ = continue_stages(dict(record, stage="style", step=8, style_step=1), gan_steps=12)
    assert again["earlier_style_steps"] == 3
    assert continue_stages(finished, gan_steps=4) == (finished, None)
    gan_only = {"stage": "gan", "step": 2, "style_step": 0}
    assert continue_stages(gan_only, gan_steps=8) == (gan_only, None)


def test_a_resume_may_not_end_a_stage_before_the_checkpoint():
    with pytest.raises(UnsafeResume, match="at GAN step 6, past the 4 GAN steps asked for: "
                                           "pass --steps 6 or more"):
        check_not_shrinking("RUN", {"stage": "gan", "step": 6, "style_step": 0}, 4, 2)
    with pytest.raises(UnsafeResume, match="train.style_steps=5 or more"):
        check_not_shrinking("RUN", {"stage": "style", "step": 4, "style_step": 5}, 4, 2)
    check_not_shrinking("RUN", {"stage": "style", "step": 4, "style_step": 2}, 8, 2)


def test_config_changes_compare_every_section():
    assert config_changes(TINY, TINY) == {}
    assert config_changes(TINY, changed("model.ngf=8", "data.flip=false")) == {
        "data.flip": (True, False), "model.ngf": (16, 8)}


# ---------------------------------------------------------------------------------------------
# The run folder lock


def test_lock_is_exclusive_while_its_owner_runs(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(f"{owner.pid}\n")
        with pytest.raises(RunInUse) as raised:
            RunLock(str(tmp_path)).__enter__()
        assert str(raised.value) == (
            f"{tmp_path} is in use by another train.py (pid {owner.pid}, lock file "
            f"{tmp_path / LOCK_FILE}): wait for it to finish or stop it, or pass another --out.")
        assert (tmp_path / LOCK_FILE).read_text() == f"{owner.pid}\n"
    finally:
        owner.kill()
        owner.wait()


def test_a_stale_lock_is_taken_over_with_a_warning_and_released(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / LOCK_FILE).write_text(dead + "\n")
    with RunLock(str(tmp_path)):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert capsys.readouterr().err == (
            f"warning: taking over the stale lock {tmp_path / LOCK_FILE} of pid {dead}, which "
            "no longer runs.\n")
    assert not (tmp_path / LOCK_FILE).exists()
    with RunLock(str(tmp_path / "new")):  # Creates the folder.
        assert json.loads((tmp_path / "new" / LOCK_FILE).read_text()) == os.getpid()
    (tmp_path / LOCK_FILE).write_text("")  # Killed between creating and writing it.
    with RunLock(str(tmp_path)):
        assert "without a pid" in capsys.readouterr().err
