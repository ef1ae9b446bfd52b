"""Dataframes: Arrow tables kept as chunks of Arrow IPC bytes, one BLOB per chunk.

Writes cut the input into chunks of `chunk_rows` rows and send each chunk's IPC bytes
to SQLite as one BLOB; reads hand the BLOBs to pyarrow without copying. The data path
has no Python loop over rows."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apsw
import pyarrow as pa

from ..arrow import checksum, codec, conform
from .. import values as v
from ..db import staging
from ..errors import DataCorrupted, InvalidValue, NotFound
from .base import Collection

CHECK_AHEAD_BYTES = 8 << 20  # of an Arrow stream, validated before its HTTP answer starts
# a chunk's checksum (migration 5), in a statement that reads the chunk table unaliased
CHECKSUM = "(SELECT checksum FROM chunk_checksum WHERE chunkId = chunk.id)"


@dataclass(frozen=True)
class Staged:
    """The chunks of a dataframe-to-be, written ahead by a served import (see
    `Dataframes.staged`): `create_owned` makes them a dataframe."""

    id: str
    schema: pa.Schema
    columns: str
    rows: int
    size: int
    compression: str | None


def write_size(data: Any) -> int | None:
    """The bytes a write of `data` adds in its transaction (`Database.bulk`): none for
    chunks staged ahead, else codec.size_hint's (None: not known)."""
    return 0 if isinstance(data, Staged) else codec.size_hint(data)


class Dataframes(Collection):
    table_name = "dataframe"
    settable = {"metadata": lambda m: v.check_json(m, "metadata", object_only=True)}

    def create(self, data: Any = None, metadata: dict | None = None,
               chunk_rows: int = codec.DEFAULT_CHUNK_ROWS,
               compression: str | None = None, id: str | None = None) -> v.Record:
        """A new dataframe, empty or holding `data` (a pyarrow Table or RecordBatch, a
        pandas DataFrame, a dict of columns, or a stream of RecordBatches)."""
        self.store.authorize("insert", "dataframe", {})
        if id is not None:  # staged chunks must never meet an existing dataframe
            return self.create_owned(data, metadata, chunk_rows, compression, id)
        with self.staged(data, chunk_rows, compression) as data:
            return self.create_owned(data, metadata, chunk_rows, compression)

    def create_owned(self, data: Any = None, metadata: dict | None = None,
                     chunk_rows: int = codec.DEFAULT_CHUNK_ROWS,
                     compression: str | None = None, id: str | None = None) -> v.Record:
        """`create`, for a dataframe made by an authorized write of its owner
        (a dataset or a task)."""
        if isinstance(data, Staged):
            id, compression = data.id, data.compression
        values = self.with_id(
            self.checked({"metadata": metadata if metadata is not None else {}}), id)
        values["compression"] = codec.check_compression(compression)
        codec.check_chunk_rows(chunk_rows)
        with self.db.bulk(write_size(data)):
            frame = self.insert(values, authorize=False)
            if isinstance(data, Staged):
                self._adopt(data)
            elif data is not None:
                self._write(frame, data, chunk_rows)
            return self.get_unfiltered(frame["id"])

    @contextlib.contextmanager
    def staged(self, data: Any, chunk_rows: int = codec.DEFAULT_CHUNK_ROWS,
               compression: str | None = None) -> Iterator[Any]:
        """Write the chunks of a new dataframe ahead, when it is large and other
        processes use the file (a served store): in short transactions that hand the
        write lock over, unseen until the caller's transaction, given what this
        yields, makes the dataframe (`create_owned`). Otherwise yields `data` itself,
        for the caller's transaction to write as before. See db/staging.py."""
        if data is None or isinstance(data, Staged) \
                or not self.db.would_share(codec.size_hint(data)):
            try:
                yield data
            finally:
                self.db.restore_wal()  # would_share may have left the WAL
            return
        compression = codec.check_compression(compression)
        codec.check_chunk_rows(chunk_rows)
        frame = {"id": v.new_id(), "compression": compression}
        schema, batches = codec.iter_batches(data)
        columns = v.to_sql(self.table, {"columns": schema.names})["columns"]
        with staging.Slices(self.db, frame["id"], v.now()) as slices:
            rows, size = self._write_chunks(frame, schema, batches, chunk_rows, 0, slices)
            slices.finish()
            yield Staged(frame["id"], schema, columns, rows, size, compression)

    def _adopt(self, staged: Staged) -> None:
        self._set_written(staged.id, staged.schema, staged.columns, staged.rows, staged.size)
        staging.adopted(self.db.conn, staged.id)

    def append(self, id: str, data: Any, chunk_rows: int = codec.DEFAULT_CHUNK_ROWS) -> v.Record:
        """Add rows at the end. Their schema must be the dataframe's (the first append
        to an empty dataframe sets it); otherwise nothing changes."""
        v.check_id(id)
        codec.check_chunk_rows(chunk_rows)
        with self.db.bulk(codec.size_hint(data)):
            frame = self.get(id)
            self.store.authorize("append", "dataframe", frame)
            self._write(frame, data, chunk_rows)
            return self.get(id)

    def append_ipc(self, id: str, data: bytes, chunk_rows: int = codec.DEFAULT_CHUNK_ROWS,
                   max_batch_bytes: int | None = None, max_bytes: int | None = None) -> v.Record:
        """Append the rows of one Arrow IPC stream given as bytes (the body of
        `POST /v1/dataframes/{id}/chunks`). The whole stream is read and validated
        before anything is written: garbage, a truncated stream, another schema, or
        (with limits) more bytes once decompressed than allowed raise InvalidValue
        (SchemaMismatch) and change nothing."""
        v.check_id(id)
        codec.check_chunk_rows(chunk_rows)
        return self.append(id, codec.read_stream(data, max_batch_bytes, max_bytes), chunk_rows)

    def _write(self, frame: v.Record, data: Any, chunk_rows: int) -> None:
        schema, batches = codec.iter_batches(data)
        stored = self._schema(frame["id"])
        if stored is None:
            stored = schema
        elif (target := conform.plan(stored, schema)) is not None:
            batches = (conform.cast_batch(target, batch) for batch in batches)
        columns = v.to_sql(self.table, {"columns": stored.names})["columns"]  # checked first
        added_rows, added_bytes = self._write_chunks(
            frame, stored, batches, chunk_rows, self._last_position(frame["id"]))
        self._set_written(frame["id"], stored, columns, added_rows, added_bytes)

    def _set_written(self, id: str, stored: pa.Schema, columns: str, added_rows: int,
                     added_bytes: int) -> None:
        self.db.execute(
            "UPDATE dataframe SET arrowSchema = ?, dim = ?, columns = ?, rows = rows + ?, "
            "size = size + ?, updatedAt = ? WHERE id = ?",
            (codec.schema_bytes(stored), len(stored.names), columns,
             added_rows, added_bytes, v.now(), id))

    def _write_chunks(self, frame: dict, stored: pa.Schema, batches, chunk_rows: int,
                      position: int, slices: staging.Slices | None = None) -> tuple[int, int]:
        """Write `batches` as chunks of `chunk_rows` rows after `position`; answer the
        rows and bytes added. With `slices`, in its short transactions."""
        added_rows, added_bytes = 0, 0
        stamp = v.now()
        compression = frame["compression"]
        conn = self.db.conn
        blob = None
        try:
            for batch in codec.rebatch(batches, chunk_rows):
                codec.check_same_schema(stored, batch.schema)
                # The row is inserted with a zeroblob of the exact size, then the IPC
                # stream is written straight into it: binding bytes instead made four
                # copies of every chunk (to Python bytes, SQLite's bound value, its
                # record, its pages); this makes one (into the pages).
                if compression is None:
                    encoded, size = None, codec.stream_size(batch)
                else:
                    encoded = codec.encode_buffer(batch, compression)
                    size = encoded.size
                position += 1
                chunk_id = v.new_id()
                conn.execute(
                    "INSERT INTO chunk (id, dataframeId, position, rows, size, createdAt, "
                    "updatedAt, data) VALUES (?, ?, ?, ?, ?, ?, ?, zeroblob(?))",
                    (chunk_id, frame["id"], position, batch.num_rows, size, stamp, stamp, size))
                rowid = conn.last_insert_rowid()
                if blob is None:
                    blob = conn.blob_open("main", "chunk", "data", rowid, True)
                else:
                    blob.reopen(rowid)
                sink = checksum.HashingSink(blob)  # hashed as the bytes stream in
                if encoded is None:
                    codec.write_stream(sink, batch)
                else:
                    sink.write(encoded)
                if blob.tell() != size:
                    raise RuntimeError(f"chunk {position}: wrote {blob.tell()} of {size} bytes")
                conn.execute("INSERT INTO chunk_checksum (chunkId, checksum) VALUES (?, ?)",
                             (chunk_id, sink.checksum))
                added_rows += batch.num_rows
                added_bytes += size
                (slices or self.db).wrote(size)
                if slices is not None and slices.full:
                    blob.close()  # a transaction cannot end with a BLOB open
                    blob = None
                    slices.next()
        finally:
            if blob is not None:
                blob.close()
        return added_rows, added_bytes

    def compact(self, id: str, chunk_rows: int = codec.DEFAULT_CHUNK_ROWS) -> v.Record:
        """Rewrite the dataframe as chunks of `chunk_rows` rows (the last one shorter), as
        a fresh ingest would cut it: many small appends read slower than few chunks.
        One transaction: readers see the old chunks or the new, never a mix; each old
        chunk is verified against its checksum as it is read, the new ones get theirs.
        The new chunks' positions follow the old ones' (renumbering would rewrite every
        chunk a second time); order, rows and schema stay. A dataframe already cut so
        is left as it is."""
        v.check_id(id)
        codec.check_chunk_rows(chunk_rows)
        frame = self.get(id)
        self.store.authorize("append", "dataframe", frame)
        with self.db.bulk(frame["size"]):
            frame = self.get(id)
            sizes = [row[0] for row in self.db.execute(
                "SELECT rows FROM chunk WHERE dataframeId = ? ORDER BY position", (id,))]
            if _cut_as(sizes, chunk_rows):
                return frame
            last = self._last_position(id)
            rows, size = self._write_chunks(frame, self._schema(id), self._batches(id),
                                            chunk_rows, last)
            if rows != frame["rows"]:
                raise DataCorrupted(f"dataframe {id} holds {frame['rows']} rows by its record "
                                    f"but {rows} in its chunks: nothing was changed")
            self.db.execute("DELETE FROM chunk WHERE dataframeId = ? AND position <= ?",
                            (id, last))
            self.db.execute("UPDATE dataframe SET size = ?, updatedAt = ? WHERE id = ?",
                            (size, v.now(), id))
            return self.get(id)

    def fragmented(self, chunk_rows: int = codec.DEFAULT_CHUNK_ROWS,
                   factor: int = 2) -> list[str]:
        """Ids of the dataframes with more than `factor` times the chunks that
        `compact(id, chunk_rows)` would leave (what `vacuum` compacts), among those
        the caller sees: the count runs unfiltered, each id found is then looked up
        through the caller's visibility."""
        return [row[0] for row in self.db.execute(
            "SELECT d.id FROM dataframe d JOIN chunk c ON c.dataframeId = d.id "
            "GROUP BY d.id HAVING count(*) > ? * ((max(d.rows, 1) + ? - 1) / ?) "
            "ORDER BY d.id", (factor, chunk_rows, chunk_rows)) if self.find(row[0])]

    def _last_position(self, id: str) -> int:
        row = self.db.execute("SELECT max(position) FROM chunk WHERE dataframeId = ?",
                              (id,)).fetchone()
        return row[0] or 0

    def _schema(self, id: str) -> pa.Schema | None:
        row = self.db.execute("SELECT arrowSchema FROM dataframe WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise NotFound(f"no dataframe with id {id}")
        return None if row[0] is None else codec.schema_from_bytes(row[0])

    def schema(self, id: str) -> pa.Schema | None:
        """The Arrow schema, or None while the dataframe has never held rows."""
        self.get(id)
        return self._schema(id)

    def read(self, id: str, columns: list[str] | None = None) -> pa.Table:
        """The whole dataframe as one pyarrow Table (chunks become record batches)."""
        with self.store.read_transaction():
            self.get(id)
            schema = self._schema(id) or pa.schema([])
            table = pa.Table.from_batches(list(self._batches(id)), schema=schema)
        return table.select(columns) if columns is not None else table

    def iter_batches(self, id: str) -> Iterator[pa.RecordBatch]:
        """The record batches one chunk at a time, never holding the whole dataframe."""
        self.get(id)
        return self._batches(id)

    def _batches(self, id: str) -> Iterator[pa.RecordBatch]:
        # The chunk list is read once (rows appended meanwhile are not seen), then each
        # BLOB through its own short-lived handle: a cursor or BLOB handle left open
        # across `yield` kept a read snapshot that a write in the caller's loop then had
        # to upgrade ("database is locked" when another connection had written), and
        # kept WAL checkpoints back. A BLOB handle reads straight into an Arrow buffer.
        listed = list(self.db.execute(
            f"SELECT rowid, position, id, {CHECKSUM} FROM chunk WHERE dataframeId = ? "
            "ORDER BY position", (id,)))
        # Each chunk's checksum is verified in a helper thread while the next chunk is
        # read, and its batches are yielded only once it matched.
        conn = self.db.conn
        previous = None
        for rowid, position, chunk_id, expected in listed:
            name = codec.chunk_name(id, position, chunk_id)
            data = _read_chunk(conn, rowid, name)
            if data is None:
                raise NotFound(f"dataframe {id} was deleted while it was being read")
            current = (checksum.verify_soon(data, expected, name), data, name)
            if previous is not None:
                yield from _verified(*previous)
            previous = current
        if previous is not None:
            yield from _verified(*previous)

    def ipc_stream(self, id: str) -> Iterator[bytes]:
        """The dataframe as ONE Arrow IPC stream, in pieces (GET /v1/dataframes/{id}.arrow):
        the chunks' messages sent as stored, from one snapshot of the file. Each chunk
        is validated before its bytes are taken (else DataCorrupted): the first
        CHECK_AHEAD_BYTES (at least one chunk) before this returns, so that a small
        dataframe's answer can still be an error; the rest as the pieces are taken,
        where a server can only cut its answer short."""
        self.get(id)
        chunks = [(c["id"], c["position"]) for c in self.chunks(id)]
        pieces = _ipc_pieces(self.db, id, self._schema(id), chunks)
        ahead, size = [], 0
        for piece in pieces:
            ahead.append(piece)
            size += len(piece)
            if size >= CHECK_AHEAD_BYTES:
                break
        return itertools.chain(ahead, pieces)

    def chunks(self, id: str) -> list[v.Record]:
        self.get(id)
        return self.store.chunks.list(dataframeId=id, order_by={"position": "asc"})

    def read_chunk(self, chunk_id: str) -> pa.Table:
        """One chunk, by its id, as a pyarrow Table."""
        chunk = self.store.chunks.get(chunk_id)
        conn = self.db.conn
        rowid, expected = conn.execute(f"SELECT rowid, {CHECKSUM} FROM chunk WHERE id = ?",
                                       (chunk_id,)).fetchone()
        name = codec.chunk_name(chunk["dataframeId"], chunk["position"], chunk_id)
        data = _read_chunk(conn, rowid, name)
        if data is None:
            raise NotFound(f"chunk {chunk_id} was deleted while it was being read")
        return pa.Table.from_batches(_decoded(data, expected, name))


def _ipc_pieces(db, frame_id: str, schema: pa.Schema | None,
                chunks: list[tuple[str, int]]) -> Iterator[bytes]:
    with db.snapshot() as conn:
        sent_schema = False
        if not chunks and schema is not None:
            yield bytes(codec.schema_message(schema))
            sent_schema = True
        for chunk_id, position in chunks:
            row = conn.execute(f"SELECT CAST(data AS BLOB), {CHECKSUM} FROM chunk WHERE id = ?",
                               (chunk_id,)).fetchone()
            if row is None:  # deleted since it was listed
                continue
            # sent undecoded, but a client's pyarrow would crash on broken offsets: bytes
            # that match their checksum are as written; others are decoded in full first
            name = codec.chunk_name(frame_id, position, chunk_id)
            if not checksum.verify(row[0], row[1], name):
                codec.decode(row[0], name)
            head, messages = codec.stream_parts(row[0])
            if not sent_schema:
                yield bytes(head)
                sent_schema = True
            yield bytes(messages)
        if sent_schema:
            yield codec.END_OF_STREAM


def _cut_as(sizes: list[int], chunk_rows: int) -> bool:
    """Whether chunks of these row counts are what a fresh ingest at `chunk_rows` makes."""
    return all(rows == chunk_rows for rows in sizes[:-1]) and \
        (not sizes or 0 < sizes[-1] <= chunk_rows)


def _verified(check, data: pa.Buffer, name: str) -> list[pa.RecordBatch]:
    """The batches of a chunk whose checksum `check` (a Future of checksum.verify) is
    being verified: refused if it does not match."""
    return codec.decode(data, name, checked=check.result())


def _decoded(data: pa.Buffer, expected: int | None, name: str) -> list[pa.RecordBatch]:
    """The batches of a chunk's bytes, refused (DataCorrupted) unless they match their
    checksum; a chunk from before checksums is validated in full instead."""
    return codec.decode(data, name, checked=checksum.verify(data, expected, name))


def _read_chunk(conn: apsw.Connection, rowid: int, name: str) -> pa.Buffer | None:
    """A chunk's bytes (None if it is gone), read once from SQLite into an aligned
    pyarrow buffer: a SELECT of the BLOB copied them twice (SQLite's value, then
    Python bytes)."""
    try:
        blob = conn.blob_open("main", "chunk", "data", rowid, False)
    except apsw.SQLError:  # no such row, or a value that is neither BLOB nor TEXT
        row = conn.execute("SELECT typeof(data) FROM chunk WHERE rowid = ?", (rowid,)).fetchone()
        if row is None:
            return None
        raise DataCorrupted(f"{name} is corrupted: its data is {row[0]}, not Arrow IPC "
                            "bytes; restore it from a backup or delete its dataframe") from None
    try:
        buffer = pa.allocate_buffer(blob.length())
        blob.read_into(buffer)
        return buffer
    finally:
        blob.close()


class Chunks(Collection):
    table_name = "chunk"
    settable = {}

    def update(self, *args, **kwargs):
        raise InvalidValue("chunks are immutable: append to the dataframe instead")

    def delete(self, id: str):
        # one chunk gone would leave its dataframe's rows and size wrong and a hole
        # in its positions: a dataframe only grows, or goes as a whole
        v.check_id(id)
        raise InvalidValue("chunks cannot be deleted one by one: delete the dataframe "
                           "(or its dataset or task) instead")
