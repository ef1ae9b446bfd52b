"""Compacting a dataframe (issue 17 item 4): many small appends rewritten into chunks of
one size, in one transaction, with checksums, reading as a fresh ingest would."""

import apsw
import numpy as np
import pyarrow as pa
import pytest

import clustore_lite

SEED = 17


def pieces(count: int, rows: int) -> list[pa.Table]:
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    return [pa.table({"x": rng.random(rows), "n": rng.integers(0, 1000, rows),
                      "s": pa.array([f"v{i}" if i % 20 else None for i in range(rows)])})
            for _ in range(count)]


@pytest.fixture
def fast(tmp_path):
    with clustore_lite.open(tmp_path / "c.sqlite", durability="normal") as store:
        yield store


def chunk_rows_of(store, frame_id):
    return [c["rows"] for c in store.dataframes.chunks(frame_id)]


def checksums(store, frame_id):
    return [row[0] for row in store.db.execute(
        "SELECT s.checksum FROM chunk c JOIN chunk_checksum s ON s.chunkId = c.id "
        "WHERE c.dataframeId = ? ORDER BY c.position", (frame_id,))]


def test_a_thousand_appends_compact_to_what_a_fresh_ingest_writes(fast):
    parts = pieces(1000, 30)
    whole = pa.concat_tables(parts)
    frame = fast.dataframes.create()
    for part in parts:
        fast.dataframes.append(frame["id"], part)
    assert len(fast.dataframes.chunks(frame["id"])) == 1000
    compacted = fast.dataframes.compact(frame["id"], chunk_rows=4096)
    fresh = fast.dataframes.create(whole, chunk_rows=4096)
    assert chunk_rows_of(fast, frame["id"]) == [4096] * 7 + [30_000 - 7 * 4096]
    assert fast.dataframes.read(frame["id"]).equals(whole)
    assert fast.dataframes.read(frame["id"]).equals(fast.dataframes.read(fresh["id"]))
    assert checksums(fast, frame["id"]) == checksums(fast, fresh["id"])  # the same bytes
    assert compacted["rows"] == 30_000 and compacted["size"] == fresh["size"]
    positions = [c["position"] for c in fast.dataframes.chunks(frame["id"])]
    assert positions == list(range(positions[0], positions[0] + 8))  # in order, no holes
    assert fast.check().ok
    again = fast.dataframes.compact(frame["id"], chunk_rows=4096)  # already compact
    assert again["updatedAt"] == compacted["updatedAt"]


def test_a_reader_sees_the_old_chunks_or_the_new_never_a_mix(fast, tmp_path):
    parts = pieces(40, 50)
    frame = fast.dataframes.create()
    for part in parts:
        fast.dataframes.append(frame["id"], part)
    with clustore_lite.open(tmp_path / "c.sqlite") as other:
        with other.read_transaction():
            before = other.dataframes.read(frame["id"])
            fast.dataframes.compact(frame["id"], chunk_rows=1000)
            assert len(other.dataframes.chunks(frame["id"])) == 40  # its snapshot
            assert other.dataframes.read(frame["id"]).equals(before)
        assert len(other.dataframes.chunks(frame["id"])) == 2
        assert other.dataframes.read(frame["id"]).equals(before)


def test_a_corrupt_chunk_stops_the_compaction_and_changes_nothing(fast, tmp_path):
    frame = fast.dataframes.create()
    for part in pieces(10, 20):
        fast.dataframes.append(frame["id"], part)
    victim = fast.dataframes.chunks(frame["id"])[6]["id"]
    raw = apsw.Connection(str(tmp_path / "c.sqlite"))
    rowid = raw.execute("SELECT rowid FROM chunk WHERE id = ?", (victim,)).fetchone()[0]
    blob = raw.blob_open("main", "chunk", "data", rowid, True)
    blob.seek(blob.length() // 2)
    blob.write(b"\x00garbage\x00")
    blob.close()
    raw.close()
    ids = [c["id"] for c in fast.dataframes.chunks(frame["id"])]
    with pytest.raises(clustore_lite.DataCorrupted):
        fast.dataframes.compact(frame["id"])
    assert [c["id"] for c in fast.dataframes.chunks(frame["id"])] == ids
    assert fast.dataframes.get(frame["id"])["rows"] == 200


def test_bad_chunk_rows_and_unknown_ids_are_refused(fast):
    frame = fast.dataframes.create(pieces(1, 10)[0])
    with pytest.raises(clustore_lite.InvalidValue):
        fast.dataframes.compact(frame["id"], chunk_rows=0)
    with pytest.raises(clustore_lite.NotFound):
        fast.dataframes.compact("7d7d7d7d-7d7d-4d7d-8d7d-7d7d7d7d7d7d")


def test_vacuum_compacts_fragmented_dataframes_only(fast):
    parts = pieces(30, 10)
    scattered, tidy = fast.dataframes.create(), fast.dataframes.create(parts[0])
    for part in parts:
        fast.dataframes.append(scattered["id"], part)
    assert fast.dataframes.fragmented() == [scattered["id"]]
    result = fast.vacuum()
    assert result.compacted == 1 and "1 fragmented dataframe(s) compacted" in result.text()
    assert len(fast.dataframes.chunks(scattered["id"])) == 1
    assert fast.dataframes.read(scattered["id"]).equals(pa.concat_tables(parts))
    assert fast.dataframes.get(tidy["id"])["updatedAt"] == tidy["updatedAt"]
    assert fast.vacuum(compact=False).compacted == 0


def test_a_caller_lists_and_compacts_only_dataframes_it_sees(store, org):
    dataset = store.datasets.create(org["id"], "scattered", pieces(1, 10)[0])
    for part in pieces(5, 10):
        store.dataframes.append(dataset["dataframeId"], part)
    stranger = store.users.create("bo", "bo@example.org")
    outsider, owner = store.as_user(stranger["id"]), store.as_user(org["ownerId"])
    assert store.dataframes.fragmented(chunk_rows=100) == [dataset["dataframeId"]]
    assert owner.dataframes.fragmented(chunk_rows=100) == [dataset["dataframeId"]]
    assert outsider.dataframes.fragmented(chunk_rows=100) == []  # masked means absent
    with pytest.raises(clustore_lite.NotFound):
        outsider.dataframes.compact(dataset["dataframeId"], chunk_rows=100)
    assert len(owner.dataframes.compact(dataset["dataframeId"], chunk_rows=100)
               and owner.dataframes.chunks(dataset["dataframeId"])) == 1
