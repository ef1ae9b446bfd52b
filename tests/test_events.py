"""The event log: written in the write's transaction by triggers, whatever API made
the write, with Hasura's payload and recipients decided at write time."""

import json

import apsw
import pytest
from receiver import Receiver

import clustore_lite
from clustore_lite import EventError, InvalidValue, NotFound
from clustore_lite.db import migrations
from clustore_lite.delivery import Deliverer

KINDS = ["organization", "team", "access", "membership", "dataset", "task", "tracking"]
EVENT_KEYS = {"id", "created_at", "trigger", "table", "event", "delivery_info"}


def deliver(store, **options) -> None:
    options = {"backoff": 0, "max_retries": 0, "timeout": 5, "webhook_allow": "127.0.0.1",
               **options}
    with Deliverer(store.path, **options) as worker:
        worker.run_once()


def tokens(store) -> list[str]:
    rows = store.db.query("SELECT adminToken, contributorToken, guestToken FROM access")
    return [t for row in rows for t in row.values()]


def test_every_kind_sends_hasuras_payload_for_insert_update_delete(store):
    with Receiver() as hooks:
        ana = store.users.create("ana", "ana@example.org")
        org = store.organizations.create("lumen", owner_id=ana.id, webhook=hooks.url("/org"))
        team = store.teams.create(org.id, "core", members=[ana.id])
        dataset = store.datasets.create(org.id, "points", {"x": [1.0, 2.0]}, owner_id=ana.id)
        member = store.memberships.create(dataset.access_id, "guest", user_id=ana.id,
                                          webhook=hooks.url("/ana"), follow=True)
        task = store.tasks.create(org.id, "k2", dataset_id=dataset.id,
                                  algorithm={"name": "kmeans", "k": 2}, variables=[1, 2])
        with store.as_session("user", ana.id):
            track = store.trackings.create("click", user_id=ana.id, organization_id=org.id,
                                           resource="task", resource_id=task.id,
                                           payload={"button": "run"})
        store.organizations.update(org.id, name="lumen2")
        store.teams.update(team.id, name="core2")
        store.accesses.update(org.access_id, public="guest")
        store.accesses.regenerate_token(org.access_id, "admin")
        store.memberships.update(member.id, role="contributor")
        store.datasets.update(dataset.id, name="points2")
        store.tasks.update(task.id, algorithm={"name": "kmeans", "k": 3})
        store.trackings.update(track.id, kind="clicked")
        secrets = tokens(store)
        for collection, row in [(store.trackings, track), (store.memberships, member),
                                (store.tasks, task), (store.datasets, dataset),
                                (store.teams, team), (store.organizations, org)]:
            collection.delete(row.id)
        deliver(store)

    bodies = hooks.bodies("/org")
    seen = {(b["table"]["name"], b["event"]["op"]) for b in bodies}
    assert seen >= {(kind, op) for kind in KINDS for op in ("INSERT", "UPDATE", "DELETE")}
    for body in bodies:
        assert set(body) == EVENT_KEYS
        name, op, data = body["table"]["name"], body["event"]["op"], body["event"]["data"]
        assert body["trigger"] == {"name": f"clustore_{name}"}
        assert body["table"] == {"schema": "public", "name": name}
        assert set(body["event"]) == {"op", "data", "session_variables"}
        assert body["delivery_info"] == {"max_retries": 0, "current_retry": 0}
        assert (data["old"] is None) == (op == "INSERT")
        assert (data["new"] is None) == (op == "DELETE")
        assert body["created_at"].endswith("+00:00")
        text = json.dumps(body)
        assert "Token" not in text and not any(secret in text for secret in secrets)
        assert "data" not in (data["new"] or data["old"])  # never chunk bytes

    def find(name, op):
        return [b for b in bodies if b["table"]["name"] == name and b["event"]["op"] == op]

    [task_update] = find("task", "UPDATE")
    assert task_update["event"]["data"]["old"]["algorithm"] == {"name": "kmeans", "k": 2}
    assert task_update["event"]["data"]["new"]["algorithm"] == {"name": "kmeans", "k": 3}
    assert task_update["event"]["data"]["new"]["variables"] == [1, 2]
    [member_insert] = find("membership", "INSERT")
    assert member_insert["event"]["data"]["new"]["follow"] is True
    [track_insert] = find("tracking", "INSERT")
    assert track_insert["event"]["data"]["new"]["payload"] == {"button": "run"}
    assert track_insert["event"]["session_variables"] == {"x-hasura-role": "user",
                                                          "x-hasura-user-id": ana.id}
    assert find("team", "INSERT")[0]["event"]["session_variables"] == {"x-hasura-role": "admin"}
    [org_update] = find("organization", "UPDATE")
    assert (org_update["event"]["data"]["old"]["name"], org_update["event"]["data"]["new"]["name"]) \
        == ("lumen", "lumen2")
    assert set(find("access", "UPDATE")[0]["event"]["data"]["new"]) == {
        "id", "public", "webhook", "createdAt", "updatedAt"}
    # the follower of the dataset hears about the dataset and its membership, not the team
    follower = {(b["table"]["name"], b["event"]["op"]) for b in hooks.bodies("/ana")}
    assert {("dataset", "UPDATE"), ("membership", "DELETE"), ("membership", "UPDATE")} <= follower
    assert not any(name in ("team", "task", "tracking") for name, _ in follower)


def test_recipients_are_the_accesses_and_the_following_memberships(store):
    ana, bob = store.users.create("ana"), store.users.create("bob")
    org = store.organizations.create("lumen", webhook="http://127.0.0.1:9/org")
    team = store.teams.create(org.id, "core", members=[bob.id])
    store.memberships.create(org.access_id, "guest", user_id=ana.id,
                             webhook="http://127.0.0.1:9/ana", follow=True)
    store.memberships.create(org.access_id, "guest", user_id=bob.id,
                             webhook="http://127.0.0.1:9/quiet", follow=False)
    dataset = store.datasets.create(org.id, "points", webhook="http://127.0.0.1:9/org")
    store.memberships.create(dataset.access_id, "contributor", team_id=team.id,
                             webhook="http://127.0.0.1:9/team", follow=True)
    store.datasets.update(dataset.id, name="renamed")
    [event] = store.events.list(where={"tableName": {"_eq": "dataset"}, "op": {"_eq": "UPDATE"}})
    urls = [d.url for d in store.events.deliveries(event.id)]
    # the same URL on the dataset and on its organization is one delivery
    assert urls == ["http://127.0.0.1:9/ana", "http://127.0.0.1:9/org", "http://127.0.0.1:9/team"]
    assert event.status == "pending"
    # events with no recipient are logged all the same
    store.users.update(ana.id, name="ana2")  # users are not watched
    lone = store.organizations.create("alone")
    [logged] = store.events.list(where={"resourceId": {"_eq": lone.id}})
    assert logged.status == "logged" and store.events.deliveries(logged.id) == []
    with pytest.raises(EventError, match="no recipient"):
        store.events.redeliver(logged.id)


def test_deletes_reach_recipients_of_the_rows_that_went(store):
    """Deleting an organization removes everything in it; every one of those DELETE
    events still goes to the webhooks those rows had."""
    ana = store.users.create("ana")
    org = store.organizations.create("lumen", owner_id=ana.id, webhook="http://127.0.0.1:9/org")
    dataset = store.datasets.create(org.id, "points", webhook="http://127.0.0.1:9/ds")
    store.memberships.create(dataset.access_id, "guest", user_id=ana.id,
                             webhook="http://127.0.0.1:9/ana", follow=True)
    store.tasks.create(org.id, "t", dataset_id=dataset.id)
    store.teams.create(org.id, "core")
    store.trackings.create("view", organization_id=org.id, resource="dataset",
                           resource_id=dataset.id)
    before = store.events.count()
    store.organizations.delete(org.id)
    deleted = store.events.list(where={"seq": {"_gt": before}})
    assert {e.op for e in deleted} == {"DELETE"}
    assert {e.tableName for e in deleted} == set(KINDS)
    assert deleted[0].tableName == "organization"  # the cause comes first
    for event in deleted:
        urls = {d.url for d in store.events.deliveries(event.id)}
        assert "http://127.0.0.1:9/org" in urls, event
        if event.tableName in ("dataset", "membership") or event.resourceId == dataset.access_id:
            assert {"http://127.0.0.1:9/ds", "http://127.0.0.1:9/ana"} <= urls, event


def test_foreign_key_actions_are_events_too(store):
    ana = store.users.create("ana")
    org = store.organizations.create("lumen", owner_id=ana.id, webhook="http://127.0.0.1:9/o")
    dataset = store.datasets.create(org.id, "points")
    task = store.tasks.create(org.id, "t", dataset_id=dataset.id)
    store.users.delete(ana.id)  # ownerId is set to null
    [update] = store.events.list(where={"resourceId": {"_eq": org.id}, "op": {"_eq": "UPDATE"}})
    assert (update.old["ownerId"], update.new["ownerId"]) == (ana.id, None)
    store.datasets.delete(dataset.id)  # the task's datasetId is set to null
    [update] = store.events.list(where={"resourceId": {"_eq": task.id}, "op": {"_eq": "UPDATE"}})
    assert update.new["datasetId"] is None


def test_events_share_the_transaction_of_the_write(store):
    store.organizations.create("lumen")
    count = store.events.count()
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.organizations.create("doomed")
            raise RuntimeError("changed my mind")
    with pytest.raises(clustore_lite.NameTaken):
        store.organizations.create("lumen")
    assert store.events.count() == count
    # a write made with plain SQL, outside the Python API, is logged as well
    store.db.execute("UPDATE organization SET name = 'sql'")
    [event] = store.events.list(where={"seq": {"_gt": count}})
    assert (event.op, event.new["name"]) == ("UPDATE", "sql")


def test_session_variables(store):
    assert store.db.session == {"x-hasura-role": "admin"}
    with store.db.as_session("user", "u-1", x_hasura_org_id="o-1") as session:
        assert session == {"x-hasura-role": "user", "x-hasura-user-id": "u-1",
                           "x-hasura-org-id": "o-1"}
        with store.db.as_session("guest"):
            store.organizations.create("inner")
        store.organizations.create("outer")
    store.organizations.create("after")
    sessions = {e.new["name"]: e.sessionVariables
                for e in store.events.list(where={"tableName": {"_eq": "organization"}})}
    assert sessions["inner"] == {"x-hasura-role": "guest"}
    assert sessions["outer"]["x-hasura-user-id"] == "u-1"
    assert sessions["after"] == {"x-hasura-role": "admin"}
    store.db.session = {"X-Hasura-Role": "user", "X-Hasura-User-Id": "u-2"}
    assert store.db.session == {"x-hasura-role": "user", "x-hasura-user-id": "u-2"}
    store.db.session = None
    assert store.db.session == {"x-hasura-role": "admin"}
    for bad in [{"x-hasura-user-id": "u"}, {"role": "admin"}, {"x-hasura-role": 3}, "admin"]:
        with pytest.raises(InvalidValue):
            store.db.session = bad


def test_event_log_is_queried_like_any_collection(store):
    org = store.organizations.create("lumen", webhook="http://127.0.0.1:9/o")
    for name in "abc":
        store.datasets.create(org.id, name)
    datasets = store.events.list(where={"tableName": {"_eq": "dataset"}},
                                 order_by={"seq": "desc"}, limit=2)
    assert [e.new["name"] for e in datasets] == ["c", "b"]
    routed = store.events.list(where={"deliveries": {"url": {"_like": "%/o"}},
                                      "new": {"_is_null": False}})
    assert {e.tableName for e in routed} == {"access", "organization", "dataset"}
    assert store.events.count(status="pending") == len(routed)
    with pytest.raises(NotFound):
        store.events.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(InvalidValue, match="written by the store"):
        store.events.insert({})
    with pytest.raises(InvalidValue):
        store.events.list(where={"nope": {"_eq": 1}})


def test_manual_event_carries_the_row_as_it_is(store):
    with Receiver() as hooks:
        org = store.organizations.create("lumen", webhook=hooks.url())
        task = store.tasks.create(org.id, "t", algorithm={"name": "mcmc"})
        event = store.events.trigger("task", task.id)
        assert (event.op, event.old, event.new["algorithm"]) == ("MANUAL", None, {"name": "mcmc"})
        deliver(store)
    [body] = [b for b in hooks.bodies() if b["id"] == event.id]
    assert body["event"]["op"] == "MANUAL"
    with pytest.raises(InvalidValue, match="events are kept for"):
        store.events.trigger("chunk", task.id)
    with pytest.raises(NotFound):
        store.events.trigger("task", org.id)


def test_an_older_file_is_upgraded_and_logs_from_then_on(db_path):
    conn = apsw.Connection(str(db_path))
    conn.execute(migrations.MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with clustore_lite.open(db_path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == migrations.LATEST
        store.organizations.create("lumen")
        assert [e.op for e in store.events.list()] == ["INSERT", "INSERT"]
