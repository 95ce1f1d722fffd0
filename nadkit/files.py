"""File safety, the lowest layer: atomic writes (a temporary file, fsync, one rename, then the
folder's fsync), a file's sha256, and the tests' kill switch inside a write window. Every result,
card and report nadkit writes goes through ``atomic``, so a reader or a machine that lost power
never sees half a file."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry itself is data)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_pause(moment: str) -> None:
    """Tests only: NADKIT_TEST_KILL_AT=TEXT SIGKILLs this process at the first write window whose
    ``moment`` (the file about to be committed, or "commit" before meta.json) contains TEXT."""
    kill = os.environ.get("NADKIT_TEST_KILL_AT")
    if kill and kill in moment:
        os.kill(os.getpid(), signal.SIGKILL)


def atomic(path: Path, write) -> None:
    """Write ``path`` via a temporary file, fsync and one rename, so readers (and a machine that lost
    power) never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        test_pause(path.name)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
