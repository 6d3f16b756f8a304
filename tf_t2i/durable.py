"""Durable file writes: data reaches the disk before a rename makes it visible.

A rename is atomic, but without fsync a power loss can leave the new name pointing at a file
whose data never reached the disk; fsyncing the file before the rename and its folder after it
closes that window (the pattern of SQLite, git and TF's own checkpoint writer).
"""
from __future__ import annotations

import json
import os


def fsync_file(path: str) -> None:
    """Flushes a closed file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: str) -> None:
    """Flushes a folder's entries (new names, renames) to the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(temporary: str, path: str) -> None:
    """Renames a complete, closed `temporary` file to `path`, durably."""
    fsync_file(temporary)
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(os.path.abspath(path)))


def write_text_atomically(path: str, text: str) -> None:
    """Writes `text` to `path` so readers see the old file or the new one, never a part."""
    temporary = path + ".partial"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    publish(temporary, path)


def write_json_atomically(path: str, values: dict) -> None:
    write_text_atomically(path, json.dumps(values, indent=2))
