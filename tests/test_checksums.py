"""Chunk checksums (issue 15, item 2): one flipped byte inside a float column is still
valid Arrow, so before checksums it was returned as data everywhere (`check` said OK,
`export` wrote the wrong floats). Now every read path refuses it with DataCorrupted
naming the dataframe and the chunk, and `check` reports it. Files from before
checksums keep working, and `check --repair-checksums` sums their chunks."""

import random
import subprocess
import sys

import apsw
import httpx
import numpy as np
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite.arrow import checksum
from clustore_lite.db import maintenance
from serving import Client, running_server

SEED = 1515


def flip_byte(db_path, chunk_id: str, rng: random.Random) -> int:
    """Flip one bit of one byte in the middle of a chunk's bytes with plain SQL (no
    clustore-lite code), its checksum left as it was; answer the byte's offset."""
    conn = apsw.Connection(str(db_path))
    (data,) = conn.execute("SELECT data FROM chunk WHERE id = ?", (chunk_id,)).fetchone()
    offset = rng.randrange(len(data) // 2, len(data) - 64)  # inside the float buffer
    changed = bytearray(data)
    changed[offset] ^= 1 << rng.randrange(8)
    conn.execute("UPDATE chunk SET data = ? WHERE id = ?", (bytes(changed), chunk_id))
    conn.close()
    return offset


@pytest.fixture
def rotten(tmp_path):
    """A dataset of 3 float chunks whose 2nd chunk has one flipped bit."""
    rng = random.Random(SEED)
    print("seed", SEED)
    db = tmp_path / "store.sqlite"
    values = np.random.default_rng(SEED).random(3000)
    with clustore_lite.open(db) as store:
        org = store.organizations.create("lumen")
        dataset = store.datasets.create(org.id, "floats", {"x": values}, chunk_rows=1000)
        chunks = store.dataframes.chunks(dataset.dataframe_id)
    flip_byte(db, chunks[1].id, rng)
    return db, dataset, chunks[1].id


def _names_the_chunk(message: str, dataset, chunk_id: str) -> None:
    assert chunk_id in message and dataset.dataframe_id in message, message
    assert "position 2" in message and "checksum" in message, message


def test_a_flipped_bit_is_refused_by_every_library_read(rotten):
    db, dataset, chunk_id = rotten
    with clustore_lite.open(db) as store:
        reads = [lambda: store.dataframes.read(dataset.dataframe_id),
                 lambda: list(store.dataframes.iter_batches(dataset.dataframe_id)),
                 lambda: store.dataframes.read_chunk(chunk_id),
                 lambda: store.datasets.read(dataset.id)]
        for read in reads:
            with pytest.raises(clustore_lite.DataCorrupted) as error:
                read()
            assert error.value.code == "data-corrupted"
            _names_the_chunk(str(error.value), dataset, chunk_id)
        first = store.dataframes.chunks(dataset.dataframe_id)[0]
        assert store.dataframes.read_chunk(first.id).num_rows == 1000  # the others still read


def test_check_and_export_report_the_flipped_bit(rotten, tmp_path):
    db, dataset, chunk_id = rotten
    report = maintenance.check(db)
    assert not report.ok
    [problem] = report.problems
    assert chunk_id in problem and "checksum" in problem, problem
    out_file = tmp_path / "out.csv"
    out = subprocess.run([sys.executable, "-m", "clustore_lite", "export", str(db), dataset.id,
                          str(out_file)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    [line] = out.stderr.strip().splitlines()
    _names_the_chunk(line, dataset, chunk_id)
    assert not out_file.exists()


def test_the_server_refuses_the_flipped_bit(rotten):
    db, dataset, chunk_id = rotten
    with running_server(db) as url:
        response = Client(url).post(
            "query ($id: uuid!) { dataframe(id: $id) { chunks { data } } }",
            {"id": dataset.dataframe_id})
        assert response.status_code == 200
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "data-corrupted"
        _names_the_chunk(error["message"], dataset, chunk_id)
        response = httpx.get(f"{url}/v1/dataframes/{dataset.dataframe_id}.arrow", timeout=30)
        assert response.status_code == 400
        assert response.json()["code"] == "data-corrupted"
        _names_the_chunk(response.json()["error"], dataset, chunk_id)


def test_checksums_are_taken_as_chunks_are_written(tmp_path):
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        plain = store.dataframes.create({"x": [1.0, 2.0], "s": ["a", None]}, chunk_rows=1)
        packed = store.dataframes.create({"x": [1.0, 2.0]}, compression="zstd")
        store.dataframes.append_ipc(plain.id, _ipc(pa.table({"x": [3.0], "s": ["c"]})))
        rows = store.db.execute("SELECT data, checksum FROM chunk JOIN chunk_checksum "
                                "ON chunkId = id").fetchall()
        assert len(rows) == 4
        assert all(total == checksum.of(data) for data, total in rows)
        assert store.dataframes.read(plain.id).num_rows == 3
        assert store.dataframes.read(packed.id).column("x").to_pylist() == [1.0, 2.0]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def older_file(path) -> dict:
    """A store as schema version 4 wrote it (no checksums), with one healthy
    dataframe and one whose string offsets another tool broke."""
    with clustore_lite.open(path) as store:
        good = store.dataframes.create({"x": [0.5] * 10, "s": ["w"] * 10}, chunk_rows=5)
        bad = store.dataframes.create({"s": ["alpha", "beta"]})
    conn = apsw.Connection(str(path))
    conn.execute("DROP TABLE chunk_checksum; DROP TABLE chunk_import; PRAGMA user_version = 4")
    (data,) = conn.execute("SELECT data FROM chunk WHERE dataframeId = ?", (bad.id,)).fetchone()
    batch = pa.ipc.open_stream(data).read_next_batch()
    start = batch.column("s").buffers()[1].address - pa.py_buffer(data).address
    broken = data[:start + 4] + (0x7FFFFFF0).to_bytes(4, "little") + data[start + 8:]
    conn.execute("UPDATE chunk SET data = ? WHERE dataframeId = ?", (broken, bad.id))
    conn.close()
    return {"good": good.id, "bad": bad.id}


def test_older_files_keep_working_and_repair_adds_the_sums(tmp_path):
    db = tmp_path / "old.sqlite"
    ids = older_file(db)
    with clustore_lite.open(db) as store:  # migration 5: the table, no sums yet
        assert store.db.execute("SELECT count(*) FROM chunk_checksum").fetchone()[0] == 0
        assert store.dataframes.read(ids["good"]).num_rows == 10  # validated in full
        with pytest.raises(clustore_lite.DataCorrupted, match="not valid Arrow IPC"):
            store.dataframes.read(ids["bad"])
    report = maintenance.check(db)
    assert report.unsummed == 3 and "--repair-checksums" in report.text()

    out = subprocess.run([sys.executable, "-m", "clustore_lite", "check", str(db),
                          "--repair-checksums"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out  # the broken chunk is still a problem ...
    assert "checksums added to 2 chunk(s)" in out.stdout, out.stdout
    assert "1 chunk(s) left without one" in out.stdout and ids["bad"] in out.stdout
    with clustore_lite.open(db) as store:  # ... and it got no checksum to vouch for it
        sums = dict(store.db.execute("SELECT dataframeId, count(checksum) FROM chunk LEFT "
                                     "JOIN chunk_checksum ON chunkId = id GROUP BY dataframeId"))
        assert sums == {ids["good"]: 2, ids["bad"]: 0}
        chunk = store.dataframes.chunks(ids["good"])[1]
    flip_byte(db, chunk.id, random.Random(SEED))  # now a flipped bit is caught there too
    with clustore_lite.open(db) as store:
        with pytest.raises(clustore_lite.DataCorrupted, match="checksum"):
            store.dataframes.read(ids["good"])
