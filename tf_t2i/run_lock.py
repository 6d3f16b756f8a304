"""One training process per run folder: a lock file holding the owner's pid."""
from __future__ import annotations

import os
import sys

from tf_t2i.errors import UserInputError

LOCK_FILE = "train.lock"


class RunInUse(UserInputError):
    """Another live process trains in the run folder."""


class RunLock:
    """An exclusive claim on a run folder, held while `train.py` writes into it.

    The lock is `<run_dir>/train.lock`, created with O_EXCL and holding the owner's pid. A lock
    whose pid no longer runs (the owner was killed) is stale: it is taken over with a warning.

    Use as a context manager; the lock file is removed on the way out.

    Args:
        run_dir: the run folder (created if missing).
    """

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_FILE)

    def __enter__(self) -> "RunLock":
        os.makedirs(self.run_dir, exist_ok=True)
        while not self._create():
            owner = _read_pid(self.path)
            if owner is not None and _is_running(owner):
                raise RunInUse(
                    f"{self.run_dir} is in use by another train.py (pid {owner}, lock file "
                    f"{self.path}): wait for it to finish or stop it, or pass another --out.")
            whose = (f"of pid {owner}, which no longer runs" if owner is not None else
                     "without a pid (its owner was killed while creating it)")
            print(f"warning: taking over the stale lock {self.path} {whose}.", file=sys.stderr)
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass  # Another process took it over first; retry creating it.
        return self

    def __exit__(self, *exc_info):
        if _read_pid(self.path) == os.getpid():
            os.remove(self.path)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return True


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _is_running(pid: int) -> bool:
    if pid == os.getpid():
        # This process: a lock it left behind (an earlier run in the same process that was
        # not released) is not a second trainer.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    """A killed child not yet reaped still has a pid; /proc says it is a zombie ("Z")."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
