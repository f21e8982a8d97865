"""Files written atomically: a reader sees the old file or the new one, never a torn one.

Used by every layer that writes (recordings, reports, QES checkpoints, metrics, model copies), so it
lives apart from any of them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

__all__ = ["atomic_file", "copy_atomic", "write_bytes_atomic", "write_json_atomic", "remove_orphaned_temporaries", "json_default",
           "unwritable"]


@contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through: it goes to a temporary file in the same directory, which is
    fsynced and renamed over ``path`` when the block ends (and removed if it raises), so readers see the
    old file or the new one, never a torn one."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def copy_atomic(source: str | Path, target: str | Path) -> None:
    """Copy a file so that ``target`` is either absent/old or complete (see :func:`atomic_file`)."""
    with open(source, "rb") as original, atomic_file(target) as copy:
        shutil.copyfileobj(original, copy, 1 << 20)


def remove_orphaned_temporaries(directory: str | Path) -> list[Path]:
    """Delete what :func:`atomic_file` leaves behind when its process is killed mid-write (its temporary
    files, ``.<name>.<random>.tmp``) in ``directory``, and return their paths. Call it only where no other
    process is writing, e.g. when a killed run is resumed."""
    orphans = sorted(Path(directory).glob(".*.*.tmp"))
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans


def unwritable(path: str | Path, directory: bool = False) -> str | None:
    """Why a file (or, with ``directory``, a directory) cannot be written at ``path``, or None: checked
    before a command does any work, so that a bad output path is refused before anything is written."""
    path = Path(path)
    if path.exists():
        if path.is_dir() != directory:
            return f"{path} is {'not ' if directory else ''}a directory"
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK):
        return f"{parent} is not writable"
    return None


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as file:
        file.write(data)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, json.dumps(data, indent=2, default=json_default).encode())


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
