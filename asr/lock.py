"""Exclusive locks on folders that one asr process writes at a time (an experiment, a report).

The lock is an flock(2) on a small file; the kernel drops it when the process ends, however
it ends, so a killed run never leaves a stale lock behind. A second process that asks for a
held lock gets an AsrError naming the folder and the holder's pid at once, instead of
mixing its files with the first one's. Locks are re-entrant within a process.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from asr.errors import AsrError

try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None

_held: dict[str, int] = {}  # lock file -> depth, in this process


@contextmanager
def folder_lock(folder: str | Path, lock_file: str | Path, what: str) -> Iterator[None]:
    """Hold the lock `lock_file` while writing `folder` (described as `what` in the error)."""
    key = os.path.abspath(lock_file)
    if key in _held or fcntl is None:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise AsrError(f"{folder}: another asr process (pid {holder}) is writing this {what}; "
                           "wait for it to finish or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # closing the descriptor releases the lock
