"""One way to write a file of the hub's own state: whole or not at all.

A unique temporary file beside the target (two writers may overlap: a shutdown save and a save in a worker thread),
fsynced, renamed over the target, and the directory fsynced. A disk that refuses it (full, read-only) raises OSError
and leaves no temporary file behind; callers decide what that means (hub/app.py: a state, not a crash).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_whole(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `data` atomically and durably (`mode`: its permission bits, e.g. 0o600)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
