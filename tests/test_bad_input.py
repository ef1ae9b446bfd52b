"""Bad input at the library level: a clear typed error, and the file unchanged."""

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from clustore_lite import InvalidValue, NotFound, SchemaMismatch
from clustore_lite.store import COLLECTIONS


def snapshot(store) -> dict:
    """Every row of every table, BLOBs included."""
    return {table: sorted(map(repr, store.db.execute(f'SELECT * FROM "{table}"')))
            for table in COLLECTIONS}


@pytest.fixture
def world(store, org):
    dataset = store.datasets.create(org["id"], "points", {"x": [1.0, 2.0], "y": ["a", "b"]},
                                    chunk_rows=1)
    team = store.teams.create(org["id"], "core", members=[org["ownerId"]])
    return {"org": org, "dataset": dataset, "team": team, "frame": dataset["dataframeId"]}


@pytest.fixture
def unchanged(store, world):
    """Asserts, after the test, that nothing in the file changed."""
    before = snapshot(store)
    yield
    assert snapshot(store) == before
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def stream(table: pa.Table, close: bool = True) -> bytes:
    sink = pa.BufferOutputStream()
    writer = ipc.new_stream(sink, table.schema)
    for batch in table.to_batches(max_chunksize=2):
        writer.write_batch(batch)
    if close:
        writer.close()
    return sink.getvalue().to_pybytes()


GOOD = pa.table({"x": [3.0, 4.0, 5.0], "y": ["c", "d", "e"]})


def test_append_ipc_appends_a_whole_stream(store, world):
    frame = store.dataframes.append_ipc(world["frame"], stream(GOOD), chunk_rows=2)
    assert frame["rows"] == 5
    assert store.dataframes.read(world["frame"]).column("y").to_pylist() == list("abcde")
    assert [c["rows"] for c in store.dataframes.chunks(world["frame"])] == [1, 1, 2, 1]


def test_append_ipc_sets_the_schema_of_an_empty_dataframe(store):
    frame = store.dataframes.create()
    store.dataframes.append_ipc(frame["id"], stream(GOOD))
    assert store.dataframes.read(frame["id"]).equals(GOOD)


@pytest.mark.parametrize("cut", ["garbage", "empty", "mid-message", "no-end-marker",
                                 "half-end-marker", "trailing", "not-bytes", "bad-offsets"])
def test_append_ipc_refuses_broken_streams(store, world, unchanged, cut):
    good = stream(GOOD)
    data = {
        "garbage": b"this is not arrow at all",
        "empty": b"",
        "mid-message": good[: len(good) // 2],
        "no-end-marker": stream(GOOD, close=False),  # ends cleanly after a batch
        "half-end-marker": good[:-4],
        "trailing": good + b"\x00junk",
        "not-bytes": "a string",
        "bad-offsets": _corrupt_offsets(),
    }[cut]
    with pytest.raises(InvalidValue, match="Arrow IPC stream"):
        store.dataframes.append_ipc(world["frame"], data)


def _corrupt_offsets() -> bytes:
    """A well-framed stream whose string offsets point past the data buffer."""
    table = pa.table({"x": [1.0], "y": ["abc"]})
    data = bytearray(stream(table))
    offsets = data.find((3).to_bytes(4, "little"), len(data) - 120)  # end offset of "abc"
    data[offsets:offsets + 4] = (1000).to_bytes(4, "little")
    return bytes(data)


def test_append_ipc_refuses_another_schema(store, world, unchanged):
    for table in (pa.table({"x": [1.0]}),  # too narrow
                  pa.table({"x": [1.0], "y": ["a"], "z": [1]}),  # too wide
                  pa.table({"x": ["1"], "y": ["a"]}),  # text for a number
                  pa.table({"y": [1], "x": [1.0]})):  # a number for text (order alone is cast)
        with pytest.raises(SchemaMismatch, match="schema"):
            store.dataframes.append_ipc(world["frame"], stream(table))


def test_append_refuses_rows_of_the_wrong_width_or_type(store, world, unchanged):
    frame = world["frame"]
    for data in ({"x": [1.0]}, {"x": [1.0], "y": ["a"], "z": [0]}, {"x": ["1"], "y": ["a"]},
                 pa.table({"x": pa.array([1.5], pa.float64()), "y": pa.array([b"a"])})):
        with pytest.raises(SchemaMismatch):
            store.dataframes.append(frame, data)
    # a stream whose later batch changes type: nothing of its first batch stays
    first = pa.record_batch({"x": [9.0], "y": ["z"]})
    later = pa.record_batch({"x": [9], "y": ["z"]})
    with pytest.raises(SchemaMismatch):
        store.dataframes.append(frame, [first, later], chunk_rows=1)
    for data in ({"x": [1.0, 2.0], "y": ["a"]}, 42, "text", [1, 2]):
        with pytest.raises(InvalidValue):
            store.dataframes.append(frame, data)
    for chunk_rows in (0, -1, "5", True, 1.5):
        with pytest.raises(InvalidValue, match="chunk_rows"):
            store.dataframes.append(frame, {"x": [1.0], "y": ["a"]}, chunk_rows=chunk_rows)


BAD_IDS = ["nope", "", "123", 42, None, b"\x00" * 16, "00000000-0000-0000-0000-00000000000g"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_non_uuid_ids_are_refused(store, world, unchanged, bad):
    calls = [
        lambda: store.users.get(bad), lambda: store.users.delete(bad),
        lambda: store.users.update(bad, name="x"), lambda: store.organizations.get(bad),
        lambda: store.datasets.append(bad, {"x": [1.0], "y": ["a"]}),
        lambda: store.dataframes.append(bad, {"x": [1.0], "y": ["a"]}),
        lambda: store.dataframes.append_ipc(bad, stream(GOOD)),
        lambda: store.dataframes.read(bad), lambda: store.dataframes.read_chunk(bad),
        lambda: store.chunks.delete(bad),
        lambda: store.teams.add_member(world["team"]["id"], bad),
        lambda: store.teams.create(bad, "t"),
        lambda: store.memberships.create(bad, "guest", user_id=world["org"]["ownerId"]),
    ]
    if bad is not None:  # None is a fine value for these optional references
        calls += [
            lambda: store.memberships.create(world["org"]["accessId"], "guest", user_id=bad),
            lambda: store.tasks.create(world["org"]["id"], "t", dataset_id=bad),
            lambda: store.datasets.create(world["org"]["id"], "d2", {"x": [1]}, owner_id=bad),
            lambda: store.users.create("u", id=bad),
        ]
    for call in calls:
        with pytest.raises(InvalidValue, match="UUID"):
            call()


def test_unknown_ids_are_not_found(store, world, unchanged):
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (lambda: store.datasets.append(missing, {"x": [1.0], "y": ["a"]}),
                 lambda: store.dataframes.append_ipc(missing, stream(GOOD)),
                 lambda: store.teams.create(missing, "t"),
                 lambda: store.users.delete(missing)):
        with pytest.raises(NotFound):
            call()


def test_oversize_and_empty_names_are_refused(store, world, unchanged):
    org_id = world["org"]["id"]
    long = "n" * 256
    for call in (lambda: store.users.create(long), lambda: store.organizations.create(long),
                 lambda: store.teams.create(org_id, long),
                 lambda: store.datasets.create(org_id, long, {"x": [1]}),
                 lambda: store.tasks.create(org_id, long),
                 lambda: store.organizations.update(org_id, name=long)):
        with pytest.raises(InvalidValue, match="at most 255"):
            call()
    for bad in ("", "   ", None, 7):
        with pytest.raises(InvalidValue, match="non-empty string"):
            store.organizations.create(bad)
    with pytest.raises(InvalidValue, match="at most 4096"):
        store.users.create("u", email="a@" + "b" * 5000)


BAD_WEBHOOKS = ["ftp://example.org/hook", "javascript:alert(1)", "file:///etc/passwd",
                "http://", "//example.org/hook", "example.org/hook", "http://exa mple.org",
                "http://example.org:99999/", "https://example.org/\r\nX: y", 42]


@pytest.mark.parametrize("bad", BAD_WEBHOOKS, ids=repr)
def test_webhooks_that_are_not_http_urls_are_refused(store, world, unchanged, bad):
    org = world["org"]
    calls = [
        lambda: store.organizations.create("other", webhook=bad),
        lambda: store.teams.create(org["id"], "t2", webhook=bad),
        lambda: store.datasets.create(org["id"], "d2", {"x": [1]}, webhook=bad),
        lambda: store.tasks.create(org["id"], "k", webhook=bad),
        lambda: store.accesses.update(org["accessId"], webhook=bad),
        lambda: store.memberships.create(org["accessId"], "guest", user_id=org["ownerId"],
                                         webhook=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidValue, match="webhook must be"):
            call()


def test_good_webhooks_are_kept(store, world):
    for url in ("http://127.0.0.1:9/hook", "https://hooks.example.org/a?b=c", "http://[::1]:80/"):
        assert store.accesses.update(world["org"]["accessId"], webhook=url)["webhook"] == url


def test_chunks_cannot_be_deleted_one_by_one(store, world, unchanged):
    """Deleting one chunk left its dataframe's rows and size wrong."""
    chunk = store.dataframes.chunks(world["frame"])[0]
    with pytest.raises(InvalidValue, match="delete the dataframe"):
        store.chunks.delete(chunk["id"])
