"""Giving space back to the disk after deletions (`store.vacuum()`, `clustore-lite vacuum`).

SQLite keeps the pages of deleted rows as free pages inside the file and reuses them for
later writes; the file never shrinks on its own. Stores created by this version have
`auto_vacuum=INCREMENTAL`, so free pages can be handed back cheaply and online: only
the pages at the end of the file are moved into the holes, then the file is cut. It is
done in steps of at most WAL_BYTES, each its own short write transaction followed by a
checkpoint, so the WAL stays within its budget and writers wait at most one step.

Files created before (auto_vacuum=NONE) cannot do that: SQLite switches the mode only
when it rebuilds the file, with a full VACUUM, which copies every live page (it needs
free disk space of about the file's size, and holds the write lock throughout). That
is what `vacuum()` does on such a file, once; later ones are incremental."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ..errors import TransactionError
from .checkpoints import WAL_BYTES
from .connection import Database

INCREMENTAL = 2  # PRAGMA auto_vacuum's answer for INCREMENTAL


@dataclass
class VacuumResult:
    mode: str  # "incremental" or "full"
    bytes_before: int  # on disk: the file and its WAL
    bytes_after: int
    seconds: float
    converted: bool = False  # a full vacuum switched an older file to incremental
    compacted: int = 0  # dataframes compacted first (Store.vacuum)

    def text(self) -> str:
        note = "; the file is now set for incremental vacuums" if self.converted else ""
        if self.compacted:
            note += f"; {self.compacted} fragmented dataframe(s) compacted first"
        return (f"{self.mode} vacuum: {self.bytes_before / 1e6:,.1f} MB -> "
                f"{self.bytes_after / 1e6:,.1f} MB on disk (file and WAL) in "
                f"{self.seconds:.2f} s{note}")


def vacuum(db: Database, full: bool = False) -> VacuumResult:
    """Give the file's free pages back to the disk: incrementally when the file allows
    it, else (or with `full`) by rebuilding it, which also defragments it."""
    if db.in_transaction:
        raise TransactionError("vacuum cannot run inside a transaction")
    conn = db.conn
    started, before = time.monotonic(), _size(db.path)
    mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
    if full or mode != INCREMENTAL:
        conn.execute(f"PRAGMA auto_vacuum = {INCREMENTAL}")  # applied by the VACUUM
        conn.execute("VACUUM")
        done = "full"
    else:
        _incremental(conn)
        done = "incremental"
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file shrinks at the checkpoint
    return VacuumResult(done, before, _size(db.path), time.monotonic() - started,
                        converted=mode != INCREMENTAL)


def _incremental(conn) -> None:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    step = max(1, WAL_BYTES // page_size)
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    while free:
        conn.execute(f"PRAGMA incremental_vacuum({step})").fetchall()
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        free, before = conn.execute("PRAGMA freelist_count").fetchone()[0], free
        if free >= before:  # nothing more SQLite can give back now
            break


def _size(path: str) -> int:
    return sum(os.path.getsize(f"{path}{suffix}") for suffix in ("", "-wal")
               if os.path.exists(f"{path}{suffix}"))
