"""Checksums for chunks written before schema version 5 (`check --repair-checksums`).

Migration 5 adds the table chunk_checksum and leaves older chunks without a row there:
reads validate those in full, as before. Summing them is a separate, explicit step because it
reads every such chunk, and because a checksum taken now only proves that the bytes do
not change from now on: a chunk is summed only if it passes the full validation of an
Arrow stream received over HTTP (parses, offsets and UTF-8 valid, end-of-stream marker);
a chunk that fails it is reported and left alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..arrow import checksum, codec
from ..errors import InvalidValue
from .connection import Database

BATCH_BYTES = 64 << 20  # chunk bytes summed per write transaction


@dataclass
class RepairResult:
    summed: int = 0
    bytes: int = 0
    refused: list[str] = field(default_factory=list)  # chunks that failed validation

    def text(self) -> str:
        line = f"checksums added to {self.summed} chunk(s) ({self.bytes} bytes)"
        if self.refused:
            line += f"; {len(self.refused)} chunk(s) left without one, their bytes are " \
                    "not valid Arrow data: " + "; ".join(self.refused)
        return line


def repair(db: Database) -> RepairResult:
    """Sum every chunk without a checksum whose bytes validate; answer what was done."""
    result = RepairResult()
    pending = [row for row in db.execute(
        "SELECT rowid, id, dataframeId, position FROM chunk WHERE id NOT IN "
        "(SELECT chunkId FROM chunk_checksum) ORDER BY dataframeId, position")]
    while pending:
        done = 0
        with db.transaction() as conn:
            while pending and done < BATCH_BYTES:
                rowid, chunk_id, frame_id, position = pending.pop(0)
                done += _sum_one(conn, rowid, codec.chunk_name(frame_id, position, chunk_id),
                                 result)
    return result


def _sum_one(conn, rowid: int, name: str, result: RepairResult) -> int:
    row = conn.execute("SELECT CAST(data AS BLOB), id FROM chunk WHERE rowid = ? AND id NOT IN "
                       "(SELECT chunkId FROM chunk_checksum)", (rowid,)).fetchone()
    if row is None or row[0] is None:  # deleted, or summed by another process meanwhile
        return 0
    try:
        codec.read_stream(row[0])
    except InvalidValue as error:
        result.refused.append(f"{name}: {error}")
        return len(row[0])
    conn.execute("INSERT INTO chunk_checksum (chunkId, checksum) VALUES (?, ?)",
                 (row[1], checksum.of(row[0])))
    result.summed += 1
    result.bytes += len(row[0])
    return len(row[0])
