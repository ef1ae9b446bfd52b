"""How large an Arrow IPC stream becomes once read, told from its messages' metadata
without decompressing anything: a few KB of zstd can hold gigabytes of zeros (a
decompression bomb), and pyarrow decompresses a whole record batch at once.

The metadata is a FlatBuffer (format/Message.fbs): Message { version, header_type,
header, bodyLength, ... }, the header a RecordBatch { length, nodes, buffers:
[Buffer { offset, length }], compression, ... } (a DictionaryBatch wraps one). A
compressed buffer starts with its decompressed length as a little-endian int64
(-1: stored as is)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.ipc as ipc

RECORD_BATCH, DICTIONARY_BATCH = 3, 2  # MessageHeader union tags


@dataclass
class BatchSize:
    rows: int
    bytes: int  # of its buffers once decompressed


class _Table:
    """One FlatBuffer table: its fields by index."""

    def __init__(self, data: bytes, position: int):
        self.data, self.position = data, position
        self.vtable = position - struct.unpack_from("<i", data, position)[0]
        self.vtable_size = struct.unpack_from("<H", data, self.vtable)[0]

    def _offset(self, field: int) -> int:
        entry = 4 + 2 * field
        if entry >= self.vtable_size:
            return 0
        return struct.unpack_from("<H", self.data, self.vtable + entry)[0]

    def scalar(self, field: int, fmt: str, default=0):
        offset = self._offset(field)
        return struct.unpack_from(fmt, self.data, self.position + offset)[0] if offset else default

    def table(self, field: int) -> "_Table | None":
        offset = self._offset(field)
        if not offset:
            return None
        at = self.position + offset
        return _Table(self.data, at + struct.unpack_from("<I", self.data, at)[0])

    def structs(self, field: int, fmt: str) -> list[tuple]:
        offset = self._offset(field)
        if not offset:
            return []
        at = self.position + offset
        start = at + struct.unpack_from("<I", self.data, at)[0]
        count = struct.unpack_from("<I", self.data, start)[0]
        size = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, self.data, start + 4 + i * size) for i in range(count)]


def batch_sizes(data) -> Iterator[BatchSize]:
    """The size of each record or dictionary batch of the IPC stream `data`, once read.
    Raises pyarrow's errors (ArrowInvalid, struct.error as ValueError) on garbage."""
    source = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    for message in ipc.MessageReader.open_stream(source):
        meta = message.metadata.to_pybytes()
        root = _Table(meta, struct.unpack_from("<I", meta, 0)[0])
        kind = root.scalar(1, "<B")
        header = root.table(2)
        if header is None or kind not in (RECORD_BATCH, DICTIONARY_BATCH):
            continue
        if kind == DICTIONARY_BATCH:
            header = header.table(1)
            if header is None:
                continue
        compressed = header.table(3) is not None
        body = message.body
        total = 0
        for offset, length in header.structs(2, "<qq"):
            if compressed and length >= 8:
                decoded = struct.unpack_from("<q", body, offset)[0] if body is not None else -1
                total += length - 8 if decoded < 0 else decoded
            else:
                total += length
        yield BatchSize(header.scalar(0, "<q"), total)
