"""The decompressed size of an Arrow IPC stream, read from its metadata alone, is the
size pyarrow gives its batches once read; a bomb is refused before it is inflated."""

import random

import numpy as np
import pyarrow as pa
import pytest

from clustore_lite import InvalidValue
from clustore_lite.arrow import codec
from clustore_lite.arrow.ipc_size import batch_sizes


def table(rng: random.Random, rows: int) -> pa.Table:
    words = [f"w{rng.randrange(50)}" * rng.randrange(1, 4) for _ in range(rows)]
    return pa.table({
        "f": np.arange(rows, dtype="float64"),
        "i": pa.array([rng.randrange(-9, 9) if rng.random() > 0.1 else None for _ in range(rows)],
                      pa.int32()),
        "s": words, "d": pa.array(words).dictionary_encode(),
        "l": [[rng.randrange(5)] * rng.randrange(3) for _ in range(rows)],
        "b": [rng.random() > 0.5 for _ in range(rows)],
    })


def stream(data: pa.Table, compression, max_chunksize) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema,
                           options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(data, max_chunksize=max_chunksize)
    return sink.getvalue()


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
@pytest.mark.parametrize("seed", range(4))
def test_sizes_from_metadata_are_the_sizes_once_read(compression, seed):
    rng = random.Random(seed)
    print("seed", seed)
    data = table(rng, rng.randrange(0, 3000))
    body = stream(data, compression, rng.randrange(1, 1000))
    sizes = list(batch_sizes(body))
    read = list(pa.ipc.open_stream(body))
    record_sizes = sizes[-len(read):] if read else []
    assert [s.rows for s in record_sizes] == [b.num_rows for b in read]
    for size, batch in zip(record_sizes, read):
        # pyarrow's nbytes counts the dictionary of d in every batch; the stream sends it once
        assert size.bytes >= batch.nbytes - batch.column("d").dictionary.nbytes
        assert size.bytes <= sum(buf.size for col in batch.columns for chunk in [col]
                                 for buf in chunk.buffers() if buf is not None) + 64 * 16


def test_a_bomb_is_refused_by_its_metadata():
    zeros = pa.table({"x": np.zeros(1 << 20)})  # 8 MB of zeros, a few KB compressed
    body = stream(zeros, "zstd", 1 << 20).to_pybytes()
    assert len(body) < 20_000
    with pytest.raises(InvalidValue, match="at most 1000000 are allowed in one batch"):
        codec.read_stream(body, max_batch_bytes=1_000_000)
    with pytest.raises(InvalidValue, match="more than 4000000 bytes once decompressed"):
        codec.read_stream(stream(zeros, "zstd", 1 << 18).to_pybytes(), max_bytes=4_000_000)
    assert codec.read_stream(body, max_batch_bytes=9 << 20, max_bytes=9 << 20).num_rows == 1 << 20


@pytest.mark.parametrize("garbage", [b"", b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"\x00" * 16,
                                     b"not arrow at all"])
def test_garbage_is_a_clear_error_not_a_crash(garbage):
    with pytest.raises(InvalidValue, match="not a valid Arrow IPC stream"):
        codec.read_stream(garbage, max_batch_bytes=1 << 20, max_bytes=1 << 20)
