"""Signals between the processes that use one store file, as byte-range locks on it.

SQLite's write lock has no queue: a waiting writer polls, and a bulk import that
commits in short transactions takes the lock again before the poller looks. Two
signals make the hand-over fair, and say whether an import is in flight:

- WAITING: a writer holds a shared lock here from before it asks SQLite for the
  write lock until its transaction ends. An importer, between two of its short
  transactions, waits while anyone holds it (db/staging.py).
- IMPORTING: an import holds a shared lock here while its chunks are staged
  (written, not yet visible). Staged chunks nobody holds it for are an interrupted
  import's, swept on open; checkpoints wait while it is held (db/checkpoints.py).

They are Linux's open-file-description locks (F_OFD_*), taken on SQLite's own
descriptor of the file (connection.database_fd) at offsets far beyond SQLite's lock
bytes (around 1 GiB): POSIX record locks would be dropped by closing any descriptor
of the file, and a second descriptor of our own would drop SQLite's. A lock goes
when its descriptor closes, so a killed process holds nothing. Where OFD locks are
missing, `supported()` is False: no hand-over, and an import counts as in flight."""

from __future__ import annotations

import fcntl
import os
import struct
import time

WAITING = 1 << 40
IMPORTING = WAITING + 1
HAND_OVER_SECONDS = 0.1  # the longest a writer between two steps waits for those in line

_SETLK = getattr(fcntl, "F_OFD_SETLK", None)
_GETLK = getattr(fcntl, "F_OFD_GETLK", None)
# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
# pid_t l_pid (0 for OFD locks), padded to 32 bytes on 64-bit
_FLOCK = struct.Struct("hhqqi4x")


def supported() -> bool:
    return _SETLK is not None and _FLOCK.size == 32 and os.uname().sysname == "Linux"


def _lock(fd: int, command: int, kind: int, offset: int) -> bytes:
    return fcntl.fcntl(fd, command, _FLOCK.pack(kind, os.SEEK_SET, offset, 1, 0))


def share(fd: int | None, offset: int) -> bool:
    """Take a shared lock at `offset` (never waits: only `probe` ever asks for an
    exclusive one, and never holds it). False when it could not be taken."""
    if fd is None or not supported():
        return False
    try:
        _lock(fd, _SETLK, fcntl.F_RDLCK, offset)
        return True
    except OSError:
        return False


def release(fd: int | None, offset: int) -> None:
    if fd is None or not supported():
        return
    try:
        _lock(fd, _SETLK, fcntl.F_UNLCK, offset)
    except OSError:
        pass  # the descriptor closed already: so did its locks


def held(fd: int | None, offset: int, unknown: bool = True) -> bool:
    """Whether another descriptor (of any process) holds a lock at `offset`;
    `unknown` when that cannot be told."""
    if fd is None or not supported():
        return unknown
    try:
        answer = _lock(fd, _GETLK, fcntl.F_WRLCK, offset)
    except OSError:
        return unknown
    return _FLOCK.unpack(answer)[0] != fcntl.F_UNLCK


def let_waiting_writers_in(fd: int | None, longest: float = HAND_OVER_SECONDS) -> None:
    """Wait, up to `longest`, while a writer is in line for the write lock (WAITING):
    what a long job writing in steps does between two of them."""
    deadline = time.monotonic() + longest
    while held(fd, WAITING, unknown=False) and time.monotonic() < deadline:
        time.sleep(0.0005)
