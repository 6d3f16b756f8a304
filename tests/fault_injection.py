"""Runs train.py with a fault injected into its n-th checkpoint save (used by test_faults.py).

    python tests/fault_injection.py PHASE N [train.py arguments...]

PHASE says where in the n-th `RunCheckpoints.save` of this process it strikes:
    before_weights   kill -9 before anything of the checkpoint is written
    mid_weights      the temporary weights file is cut to half its size, then kill -9
                     (as if killed while HDF5 was writing it)
    before_rename    kill -9 with the weights written and fsynced, not yet renamed
    after_rename     kill -9 with the weights in place, latest.json not yet replaced
    mid_pointer      a half-written latest.json.partial, then kill -9
    after_pointer    kill -9 right after latest.json names the new checkpoint
    full_disk        files may grow to 64 KiB from then on (RLIMIT_FSIZE; writes fail with
                     EFBIG instead of SIGXFSZ killing the process)
"""
from __future__ import annotations

import os
import resource
import signal
import sys

from tf_t2i import checkpoints
from tf_t2i.cli import train

PHASES = ("before_weights", "mid_weights", "before_rename", "after_rename", "mid_pointer",
          "after_pointer", "full_disk")


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def inject(phase: str, nth: int) -> None:
    """Patches `tf_t2i.checkpoints` so that its `nth` save (1-based) meets `phase`."""
    if phase not in PHASES:
        raise SystemExit(f"unknown phase {phase!r}: choose one of {PHASES}")
    saves = {"count": 0}
    real_save = checkpoints.RunCheckpoints.save
    real_publish = checkpoints.publish
    real_write_json = checkpoints.write_json_atomically

    def striking():
        return saves["count"] == nth

    def save(self, model, record):
        saves["count"] += 1
        if striking() and phase == "before_weights":
            _kill()
        if striking() and phase == "full_disk":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        return real_save(self, model, record)

    def publish(temporary, path):
        if striking() and phase == "mid_weights":
            os.truncate(temporary, os.path.getsize(temporary) // 2)
            _kill()
        if striking() and phase == "before_rename":
            _kill()
        real_publish(temporary, path)
        if striking() and phase == "after_rename":
            _kill()

    def write_json(path, values):
        if striking() and phase == "mid_pointer":
            with open(path + ".partial", "w", encoding="utf-8") as f:
                f.write('{"stage": "gan", "st')
            _kill()
        real_write_json(path, values)
        if striking() and phase == "after_pointer":
            _kill()

    checkpoints.RunCheckpoints.save = save
    checkpoints.publish = publish
    checkpoints.write_json_atomically = write_json


if __name__ == "__main__":
    inject(sys.argv[1], int(sys.argv[2]))
    train.main(sys.argv[3:])
