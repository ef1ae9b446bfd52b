"""A chunk whose bytes another tool broke (string offsets out of range, written with
plain SQL) gives a clear `data-corrupted` error on every path that reads it, and
never crashes the process: before, pyarrow read out of bounds and the process died of
SIGSEGV. Every read runs in another process (the real server, the CLI, a script), so
that a crash fails this test instead of killing the test run."""

import struct
import subprocess
import sys
import textwrap

import apsw
import httpx
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite.arrow import codec
from clustore_lite.model.dataframes import CHECK_AHEAD_BYTES
from serving import Client, running_server

BIG_ROWS = 700_000  # a first chunk over CHECK_AHEAD_BYTES: the next is checked mid-answer


def corrupt_offsets(db_path, frame_id: str, position: int, column: str) -> str:
    """Set the second offset of string `column` in one chunk far out of range, with a
    plain SQL UPDATE of chunk.data (no clustore-lite code); answer the chunk's id."""
    conn = apsw.Connection(str(db_path))
    chunk_id, data = conn.execute("SELECT id, data FROM chunk WHERE dataframeId = ? AND "
                                  "position = ?", (frame_id, position)).fetchone()
    buffer = pa.py_buffer(data)
    [batch] = list(pa.ipc.open_stream(buffer))
    offsets = batch.column(column).buffers()[1]
    start = offsets.address - buffer.address  # the batch shares the chunk's bytes
    assert data[start:start + 4] == struct.pack("<i", 0)
    conn.execute("UPDATE chunk SET data = CAST(substr(data, 1, ?) || ? || substr(data, ?) "
                 "AS BLOB) WHERE id = ?",
                 (start + 4, struct.pack("<i", 0x7FFFFFF0), start + 9, chunk_id))
    conn.close()
    return chunk_id


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A store with a small dataset whose 2nd chunk is corrupt, and a big dataframe
    whose 2nd chunk is corrupt after a first chunk of ~9 MB."""
    db = tmp_path_factory.mktemp("corrupt") / "store.sqlite"
    with clustore_lite.open(db) as store:
        ana = store.users.create("ana", email="ana@example.org")
        org = store.organizations.create("lumen", owner_id=ana.id)
        words = pa.table({"name": ["alpha", "beta", "gamma", "delta"] * 3,
                          "x": [float(i) for i in range(12)]})
        small = store.datasets.create(org.id, "words", words, owner_id=ana.id, chunk_rows=4)
        first = pa.record_batch({"name": ["w"] * BIG_ROWS, "x": [0.5] * BIG_ROWS})
        assert codec.stream_size(first) > CHECK_AHEAD_BYTES
        big = store.dataframes.create(first, chunk_rows=BIG_ROWS)
        store.dataframes.append(big.id, {"name": ["a", "b"], "x": [1.0, 2.0]})
        others = {kind: store.dataframes.create(words, chunk_rows=100).id
                  for kind in ("TEXT", "INTEGER")}
    small_chunk = corrupt_offsets(db, small.dataframe_id, 2, "name")
    big_chunk = corrupt_offsets(db, big.id, 2, "name")
    conn = apsw.Connection(str(db))  # other tools may store any type
    conn.execute("UPDATE chunk SET data = CAST(data AS TEXT) WHERE dataframeId = ?",
                 (others["TEXT"],))
    conn.execute("UPDATE chunk SET data = 42 WHERE dataframeId = ?", (others["INTEGER"],))
    conn.close()
    return db, small, small_chunk, big.id, big_chunk, others


@pytest.fixture(scope="module")
def served(broken):
    with running_server(broken[0]) as url:
        yield url


def test_the_library_raises_data_corrupted_naming_the_chunk(broken, tmp_path):
    db, small, chunk_id, *_ = broken
    script = tmp_path / "read.py"
    script.write_text(textwrap.dedent(f"""
        import clustore_lite
        store = clustore_lite.open({str(db)!r})
        reads = {{
            "read": lambda: store.dataframes.read({small.dataframe_id!r}),
            "iter_batches": lambda: list(store.dataframes.iter_batches({small.dataframe_id!r})),
            "read_chunk": lambda: store.dataframes.read_chunk({chunk_id!r}),
            "datasets.read": lambda: store.datasets.read({small.id!r}),
        }}
        for name, read in reads.items():
            try:
                read()
                print(name, "no error")
            except clustore_lite.ClustoreError as error:
                print(name, type(error).__name__, error.code, "|", error)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, (out.returncode, out.stderr)
    lines = out.stdout.splitlines()
    assert len(lines) == 4, out.stdout
    for line in lines:
        assert "DataCorrupted data-corrupted |" in line, line
        assert chunk_id in line and small.dataframe_id in line and "position 2" in line, line
    with clustore_lite.open(db) as store:
        # a healthy chunk of the same dataframe still reads
        first = store.dataframes.chunks(small.dataframe_id)[0]
        assert store.dataframes.read_chunk(first.id).num_rows == 4
        # bytes stored as TEXT are read as bytes; a number is no chunk (was NotFound)
        assert store.dataframes.read(broken[-1]["TEXT"]).num_rows == 12
        with pytest.raises(clustore_lite.DataCorrupted, match="its data is integer"):
            store.dataframes.read(broken[-1]["INTEGER"])


def test_export_fails_with_one_line_and_leaves_no_file(broken, tmp_path):
    db, small, chunk_id, *_ = broken
    out_file = tmp_path / "out.parquet"
    out = subprocess.run([sys.executable, "-m", "clustore_lite", "export", str(db), small.id,
                          str(out_file)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: chunk ") and chunk_id in line and "is corrupted" in line
    assert not out_file.exists()  # closed, a half-written Parquet file would look whole


def test_the_server_answers_errors_and_keeps_running(broken, served):
    db, small, chunk_id, big_id, big_chunk, _ = broken
    url = served
    if True:
        client = Client(url)
        response = client.post("query ($id: uuid!) { dataframe(id: $id) { chunks { data } } }",
                               {"id": small.dataframe_id})
        assert response.status_code < 500
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "data-corrupted"
        assert chunk_id in error["message"] and small.dataframe_id in error["message"]
        # the healthy chunk alone still answers
        first = client("query ($id: uuid!) { chunks(where: {dataframeId: {_eq: $id}, "
                       "position: {_eq: 1}}) { data } }", {"id": small.dataframe_id})
        assert first["chunks"][0]["data"][0] == ["alpha", 0.0]

        # a small dataframe is checked whole before its answer starts: a plain error
        response = httpx.get(f"{url}/v1/dataframes/{small.dataframe_id}.arrow", timeout=30)
        assert response.status_code == 400, response.status_code
        body = response.json()
        assert body["code"] == "data-corrupted" and chunk_id in body["error"]

        # a large one: its answer has started when the corrupt chunk comes, so it is
        # cut short, never a valid-looking shorter stream
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream("GET", f"{url}/v1/dataframes/{big_id}.arrow", timeout=30) as got:
                assert got.status_code == 200
                for _ in got.iter_bytes():
                    pass
        assert httpx.get(f"{url}/ping", timeout=10).text == "pong"


def test_chunk_data_of_another_sql_type(broken, served):
    """Bytes stored as TEXT (not valid UTF-8: an IPC stream starts with 0xFF) are read
    as the bytes they are (this was a UnicodeDecodeError and a 500); a number is no
    Arrow IPC stream."""
    query = "query ($id: uuid!) { dataframe(id: $id) { chunks { data } } }"
    texted, number = broken[-1]["TEXT"], broken[-1]["INTEGER"]
    chunks = Client(served)(query, {"id": texted})["dataframe"]["chunks"]
    assert chunks[0]["data"][:2] == [["alpha", 0.0], ["beta", 1.0]]
    response = httpx.get(f"{served}/v1/dataframes/{texted}.arrow", timeout=30)
    assert response.status_code == 200
    assert pa.ipc.open_stream(response.content).read_all().num_rows == 12

    response = Client(served).post(query, {"id": number})
    assert response.status_code < 500
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "data-corrupted" and number in error["message"]
    response = httpx.get(f"{served}/v1/dataframes/{number}.arrow", timeout=30)
    assert response.status_code == 400 and response.json()["code"] == "data-corrupted"
