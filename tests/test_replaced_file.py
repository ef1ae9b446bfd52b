"""The store file deleted or replaced (renamed over) under a running process: writes
went on into the old inode and were acknowledged, then lost with it (30 of 30).
Now every write transaction compares the path's (device, inode) with the file's and
refuses with StoreReplaced (code store-replaced); reads may go on."""

import os
import threading

import pytest

import clustore_lite
from serving import Client, running_server

WRITES = 30


def replace_file(db, how: str, tmp_path) -> None:
    if how == "deleted":
        os.remove(db)
    else:  # another store renamed over it (a restore done by hand, a sync tool)
        other = tmp_path / "other.sqlite"
        with clustore_lite.open(other) as fresh:
            fresh.users.create("zoe", email="zoe@example.org")
        os.replace(other, db)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_served_file_deleted_or_replaced_refuses_writes(tmp_path, how):
    db = tmp_path / "served.sqlite"
    insert = 'mutation ($name: String!) { insert_user_one(object: {name: $name}) { id } }'
    acknowledged, refused = [], []
    with running_server(db) as url:
        client = Client(url)
        for i in range(3):
            client(insert, {"name": f"before-{i}"})
        replace_file(db, how, tmp_path)
        for i in range(WRITES):
            response = client.post(insert, {"name": f"after-{i}"})
            assert response.status_code < 500, response.text
            body = response.json()
            if "errors" in body:
                [error] = body["errors"]
                assert error["extensions"]["code"] == "store-replaced", error
                assert "deleted or replaced" in error["message"]
                refused.append(i)
            else:
                acknowledged.append(f"after-{i}")
        assert acknowledged == [] and len(refused) == WRITES
        # reads may go on (on the old file), or be refused the same way: never a 5xx
        response = client.post("{ users(order_by: {name: asc}) { name } }")
        assert response.status_code < 500
        body = response.json()
        if "errors" in body:
            assert body["errors"][0]["extensions"]["code"] == "store-replaced"
        else:
            assert [u["name"] for u in body["data"]["users"]] == [f"before-{i}" for i in range(3)]
    if how == "replaced":  # the new file is intact: the old WAL was not replayed onto it
        with clustore_lite.open(db) as store:
            assert [u.name for u in store.users.list()] == ["zoe"]
    else:
        assert not db.exists()  # no new empty store was created at the path either


def test_the_library_refuses_writes_and_goes_on_reading(tmp_path):
    db = tmp_path / "store.sqlite"
    with clustore_lite.open(db) as store:
        store.users.create("ana", email="ana@example.org")
        replace_file(db, "replaced", tmp_path)
        with pytest.raises(clustore_lite.StoreReplaced, match="restart on the new file") as error:
            store.users.create("bob", email="bob@example.org")
        assert error.value.code == "store-replaced"
        with pytest.raises(clustore_lite.StoreReplaced):
            with store.transaction():
                store.users.create("bob", email="bob@example.org")
        assert [u.name for u in store.users.list()] == ["ana"]  # this thread's connection
        found = []  # a thread without a connection yet cannot reach the old file
        thread = threading.Thread(target=lambda: found.append(_try(store.users.list)))
        thread.start()
        thread.join()
        assert found == ["StoreReplaced"]
    with clustore_lite.open(db) as store:  # ana's pages went to the old file, not here
        assert [u.name for u in store.users.list()] == ["zoe"]
        assert store.check().ok


def _try(function) -> str:
    try:
        function()
    except clustore_lite.ClustoreError as error:
        return type(error).__name__
    return "ok"


def test_closing_a_replaced_store_leaves_the_new_file_intact(tmp_path):
    """SQLite skips its checkpoint on close once the file has moved, leaving the WAL
    under the path, and the next open replayed it onto the new file."""
    db = tmp_path / "store.sqlite"
    store = clustore_lite.open(db)
    store.users.create("ana", email="ana@example.org")
    replace_file(db, "replaced", tmp_path)
    store.close()  # no write was tried since the replacement
    with clustore_lite.open(db) as reopened:
        assert [u.name for u in reopened.users.list()] == ["zoe"]
        assert reopened.check().ok
