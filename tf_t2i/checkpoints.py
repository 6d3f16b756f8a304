"""Checkpoints of a run folder that survive kill -9: written aside, then renamed into place."""
from __future__ import annotations

import json
import os
import re
import uuid

CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"
_WEIGHTS = re.compile(r"^ckpt-(\d+)\.weights\.h5$")
_PARTIAL = re.compile(r"^ckpt-\d+\.partial(-[0-9a-f]+)?\.weights\.h5$")


class RunCheckpoints:
    """The checkpoints of one run: `ckpt-<step>.weights.h5` files and a `latest.json` pointer.

    A checkpoint holds every weight of the training model (models, BatchNorm statistics,
    optimizer slots and step counters, via `save_weights`) plus a JSON record of what weights
    files do not hold (the noise generator state, the stage and step). Files are written under
    a temporary name and renamed, and the pointer is replaced last, so a process killed at any
    moment leaves the previous checkpoint complete and pointed to.

    Args:
        run_dir: the run folder.
        keep: how many checkpoints to keep.
    """

    def __init__(self, run_dir: str, keep: int = 2):
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR)
        self.keep = keep

    def save(self, model, record: dict) -> str:
        """Saves `model.save_weights` and `record`.

        `record` holds int "step" and optionally "style_step"; their sum numbers the file, so
        names sort in training order across stages.
        """
        os.makedirs(self.directory, exist_ok=True)
        name = f"ckpt-{record['step'] + record.get('style_step', 0):08d}"
        weights = os.path.join(self.directory, name + ".weights.h5")
        # A new name per attempt: a save cut short by Ctrl-C leaves its HDF5 file open in this
        # process, and HDF5 refuses to recreate an open file, which the interrupt's save does.
        temporary = os.path.join(self.directory,
                                 f"{name}.partial-{uuid.uuid4().hex[:8]}.weights.h5")
        model.save_weights(temporary)
        os.replace(temporary, weights)
        _write_json_atomically(os.path.join(self.directory, LATEST_FILE),
                               dict(record, weights=os.path.basename(weights)))
        self._remove_old(keep_name=os.path.basename(weights))
        return weights

    def latest(self) -> dict | None:
        """The newest complete checkpoint's record (with "weights": its path), or None."""
        pointer = os.path.join(self.directory, LATEST_FILE)
        if not os.path.isfile(pointer):
            return None
        with open(pointer, encoding="utf-8") as f:
            record = json.load(f)
        record["weights"] = os.path.join(self.directory, record["weights"])
        return record

    def restore(self, model) -> dict | None:
        """Loads the newest checkpoint into `model` (built, with built optimizers); its record."""
        record = self.latest()
        if record is not None:
            model.load_weights(record["weights"])
        return record

    def _remove_old(self, keep_name: str):
        names = sorted(n for n in os.listdir(self.directory) if _WEIGHTS.match(n))
        for name in names[:-self.keep]:
            if name != keep_name:
                os.remove(os.path.join(self.directory, name))
        # Leftovers of saves that were killed or interrupted.
        for name in os.listdir(self.directory):
            if _PARTIAL.match(name):
                try:
                    os.remove(os.path.join(self.directory, name))
                except OSError:
                    pass


def _write_json_atomically(path: str, values: dict):
    temporary = path + ".partial"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(values, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
