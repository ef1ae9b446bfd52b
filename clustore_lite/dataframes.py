"""Dataframes: Arrow tables kept as chunks of Arrow IPC bytes, one BLOB per chunk.

Writes cut the input into chunks of `chunk_rows` rows and send each chunk's IPC bytes
to SQLite as one BLOB; reads hand the BLOBs to pyarrow without copying. The data path
has no Python loop over rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from . import arrow_codec as codec
from . import values as v
from .errors import InvalidValue, NotFound
from .model import Collection


class Dataframes(Collection):
    table_name = "dataframe"
    settable = {"metadata": lambda m: v.check_json(m, "metadata", object_only=True)}

    def create(self, data: Any = None, metadata: dict | None = None,
               chunk_rows: int = codec.DEFAULT_CHUNK_ROWS,
               compression: str | None = None) -> v.Record:
        """A new dataframe, empty or holding `data` (a pyarrow Table or RecordBatch, a
        pandas DataFrame, a dict of columns, or a stream of RecordBatches)."""
        values = self.checked({"metadata": metadata or {}})
        values["compression"] = codec.check_compression(compression)
        with self.db.bulk():
            frame = self.insert(values)
            if data is not None:
                self._write(frame, data, chunk_rows)
            return self.get(frame["id"])

    def append(self, id: str, data: Any, chunk_rows: int = codec.DEFAULT_CHUNK_ROWS) -> v.Record:
        """Add rows at the end. Their schema must be the dataframe's (the first append
        to an empty dataframe sets it); otherwise nothing changes."""
        with self.db.bulk():
            frame = self.get(id)
            self._write(frame, data, chunk_rows)
            return self.get(id)

    def _write(self, frame: v.Record, data: Any, chunk_rows: int) -> None:
        schema, batches = codec.iter_batches(data)
        stored = self._schema(frame["id"])
        if stored is None:
            stored = schema
        else:
            codec.check_same_schema(stored, schema)
        position, added_rows, added_bytes = self._last_position(frame["id"]), 0, 0
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
                conn.execute(
                    "INSERT INTO chunk (id, dataframeId, position, rows, size, createdAt, "
                    "updatedAt, data) VALUES (?, ?, ?, ?, ?, ?, ?, zeroblob(?))",
                    (v.new_id(), frame["id"], position, batch.num_rows, size, stamp, stamp, size))
                rowid = conn.last_insert_rowid()
                if blob is None:
                    blob = conn.blob_open("main", "chunk", "data", rowid, True)
                else:
                    blob.reopen(rowid)
                if encoded is None:
                    codec.write_stream(blob, batch)
                else:
                    blob.write(encoded)
                if blob.tell() != size:
                    raise RuntimeError(f"chunk {position}: wrote {blob.tell()} of {size} bytes")
                added_rows += batch.num_rows
                added_bytes += size
                self.db.wrote(size)
        finally:
            if blob is not None:
                blob.close()
        self.db.execute(
            "UPDATE dataframe SET arrowSchema = ?, dim = ?, columns = ?, rows = rows + ?, "
            "size = size + ?, updatedAt = ? WHERE id = ?",
            (codec.schema_bytes(stored), len(stored.names),
             v.to_sql(self.table, {"columns": stored.names})["columns"],
             added_rows, added_bytes, v.now(), frame["id"]))

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
        # the SELECT stays open while the chunks are read: one consistent snapshot
        # even if a writer appends meanwhile
        conn = self.db.conn
        blob = None
        try:
            for (rowid,) in conn.execute(
                    "SELECT rowid FROM chunk WHERE dataframeId = ? ORDER BY position", (id,)):
                if blob is None:
                    blob = conn.blob_open("main", "chunk", "data", rowid, False)
                else:
                    blob.reopen(rowid)
                yield from codec.decode(_read_blob(blob))
        finally:
            if blob is not None:
                blob.close()

    def chunks(self, id: str) -> list[v.Record]:
        self.get(id)
        return self.store.chunks.list(dataframeId=id, order_by={"position": "asc"})

    def read_chunk(self, chunk_id: str) -> pa.Table:
        """One chunk, by its id, as a pyarrow Table."""
        self.store.chunks.get(chunk_id)
        conn = self.db.conn
        (rowid,) = conn.execute("SELECT rowid FROM chunk WHERE id = ?", (chunk_id,)).fetchone()
        with conn.blob_open("main", "chunk", "data", rowid, False) as blob:
            data = _read_blob(blob)
        return pa.Table.from_batches(codec.decode(data))


def _read_blob(blob) -> pa.Buffer:
    """A chunk's bytes, read once from SQLite into an aligned pyarrow buffer: a SELECT
    of the BLOB copied them twice (SQLite's value, then Python bytes)."""
    buffer = pa.allocate_buffer(blob.length())
    blob.read_into(buffer)
    return buffer


class Chunks(Collection):
    table_name = "chunk"
    settable = {}

    def update(self, *args, **kwargs):
        raise InvalidValue("chunks are immutable: append to the dataframe instead")
