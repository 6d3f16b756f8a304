"""Checkpoints of a run folder that survive kill -9 and power loss: written aside, fsynced,
then renamed into place; the previous checkpoint stays as a fallback."""
from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import sys
import uuid

from tf_t2i.durable import publish, write_json_atomically
from tf_t2i.errors import UserInputError, first_line

CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"
_WEIGHTS = re.compile(r"^ckpt-(\d+)\.weights\.h5$")
_PARTIAL = re.compile(r"^(ckpt-\d+|best)\.partial(-[0-9a-f]+)?\.weights\.h5$")
# What a weights file that cannot be read raises: h5py's OSError for a truncated or garbled
# file, Keras's ValueError/KeyError for missing or misshapen entries.
UNREADABLE_CHECKPOINT = (OSError, ValueError, KeyError, RuntimeError)
# Keras' load_weights error when a file's layers do not match the model's (a checkpoint of
# another version's layer structure, not a damaged file).
LAYOUT_MISMATCH = "could not be loaded"


class CheckpointLayoutError(ValueError):
    """A checkpoint whose layers the model does not have: written by a version of tf-t2i that
    built the model from other layers, not damaged. Its message is Keras's loading error."""


class CheckpointWriteError(UserInputError):
    """A checkpoint could not be written (full disk, file size limit); the previous one is kept."""


class RunCheckpoints:
    """The checkpoints of one run: `ckpt-<n>.weights.h5` files and a `latest.json` pointer.

    A checkpoint holds every weight of the training model (models, BatchNorm statistics,
    optimizer slots and step counters, via `save_weights`) plus a JSON record of what weights
    files do not hold (the noise generator state, the stage and step). The weights are written
    under a temporary name, fsynced and renamed, and the pointer is replaced last (also
    fsynced), so a process killed at any moment, or a power loss, leaves the previous
    checkpoint complete and pointed to. The pointer also names the checkpoint before the
    newest ("previous"): if the newest file is damaged on disk, `restore` falls back to it.

    Args:
        run_dir: the run folder.
    """

    def __init__(self, run_dir: str):
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR)

    def save(self, model, record: dict) -> str:
        """Saves `model.save_weights` and `record`; returns the weights path.

        `record` holds int "step" and optionally "encoder_step", "style_step" and
        "earlier_style_steps" (style steps of passes before the current one); their sum numbers
        the file, so names grow in training order across stages.

        Raises:
            CheckpointWriteError: the disk refused the write; the previous checkpoint is intact.
        """
        os.makedirs(self.directory, exist_ok=True)
        number = sum(record.get(counter, 0) for counter in (
            "encoder_step", "step", "style_step", "earlier_style_steps"))
        name = f"ckpt-{number:08d}.weights.h5"
        weights = os.path.join(self.directory, name)
        # A new name per attempt: a save cut short by Ctrl-C leaves its HDF5 file open in this
        # process, and HDF5 refuses to recreate an open file, which the interrupt's save does.
        temporary = os.path.join(self.directory,
                                 f"{name[:-11]}.partial-{uuid.uuid4().hex[:8]}.weights.h5")
        previous = self._pointer()
        try:
            _check_room(self.directory, previous)
            model.save_weights(temporary)
            publish(temporary, weights)
            entry = dict(record, weights=name)
            if previous is not None:
                # Saving the same step twice (Ctrl-C right after a periodic save) replaces the
                # file in place: the fallback stays the one before it.
                fallback = previous if previous["weights"] != name else previous.get("previous")
                if fallback is not None:
                    entry["previous"] = {k: v for k, v in fallback.items() if k != "previous"}
            write_json_atomically(os.path.join(self.directory, LATEST_FILE), entry)
        except OSError as error:
            _remove_quietly(temporary)
            kept = (f"the previous checkpoint {previous['weights']} is intact" if previous
                    else "no checkpoint was written yet")
            raise CheckpointWriteError(
                f"could not write checkpoint {name} in {self.directory} ({_reason(error)}); "
                f"{kept}: free disk space, then continue with --resume "
                f"{os.path.dirname(self.directory)}.") from None
        self._remove_unreferenced(entry)
        return weights

    def latest(self) -> dict | None:
        """The newest complete checkpoint's record (with "weights": its path), or None."""
        pointer = self._pointer()
        if pointer is None:
            return None
        pointer.pop("previous", None)
        pointer["weights"] = os.path.join(self.directory, pointer["weights"])
        return pointer

    def restore(self, model) -> dict | None:
        """Loads the newest readable checkpoint into `model` (built, with built optimizers).

        Returns its record (with "weights": its path), or None without a checkpoint. A newest
        file that cannot be read (truncated or damaged on disk) is reported with a warning on
        stderr and the previous checkpoint is loaded instead; when none is left, the loading
        error is raised, and when the file's layers do not match the model's, at once, as a
        `CheckpointLayoutError` (an older file would not match either). Callers word both for
        their user.
        """
        pointer = self._pointer()
        if pointer is None:
            return None
        candidates = [pointer] + ([pointer["previous"]] if pointer.get("previous") else [])
        for index, candidate in enumerate(candidates):
            record = {k: v for k, v in candidate.items() if k != "previous"}
            record["weights"] = os.path.join(self.directory, record["weights"])
            try:
                model.load_weights(record["weights"])
                return record
            except UNREADABLE_CHECKPOINT as error:
                if LAYOUT_MISMATCH in str(error):
                    raise CheckpointLayoutError(str(error)) from error
                if index + 1 == len(candidates):
                    raise
                print(f"warning: {record['weights']} cannot be read ({first_line(error)}); "
                      f"using the previous checkpoint {candidates[index + 1]['weights']}.",
                      file=sys.stderr)
        return None

    def _pointer(self) -> dict | None:
        path = os.path.join(self.directory, LATEST_FILE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def _remove_unreferenced(self, entry: dict):
        """Removes weights files that neither the newest nor the previous checkpoint is, and
        leftovers of saves that were killed or interrupted."""
        referenced = {entry["weights"], (entry.get("previous") or {}).get("weights")}
        for name in os.listdir(self.directory):
            if (_WEIGHTS.match(name) and name not in referenced) or _PARTIAL.match(name):
                _remove_quietly(os.path.join(self.directory, name))


def _check_room(directory: str, previous: dict | None):
    """Raises OSError (ENOSPC or EFBIG) when the disk or the file size limit has no room for
    another checkpoint as large as the previous one.

    Checked before writing because HDF5 cut short by a full disk leaves its file open and
    retries the write when Python frees it (tracebacks on stderr, even a crash at exit).
    """
    path = os.path.join(directory, previous["weights"]) if previous else None
    if path is None or not os.path.isfile(path):
        return
    needed = os.path.getsize(path)
    size_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if size_limit != resource.RLIM_INFINITY and size_limit < needed:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
    if shutil.disk_usage(directory).free < needed:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _reason(error: OSError) -> str:
    """One line saying why a write failed: the OS's words, also from inside HDF5's message."""
    if error.errno:
        return os.strerror(error.errno)
    found = re.search(r"error message = '([^']*)'", str(error))
    return found.group(1) if found else first_line(error)


def _remove_quietly(path: str):
    try:
        os.remove(path)
    except OSError:
        pass
