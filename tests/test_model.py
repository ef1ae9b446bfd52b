"""The data model of SPEC section 1: CRUD, uniqueness, cascades, transactions."""

import pytest

import clustore_lite
from clustore_lite import InvalidValue, NameTaken, NotFound


def count(store, table):
    return store.db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def test_every_entity_round_trips(store, org):
    user = store.users.get(org["ownerId"])
    assert user.name == "ana" and user.email == "ana@example.org"
    team = store.teams.create(org["id"], "core", members=[user["id"]])
    assert [m["id"] for m in store.teams.members(team["id"])] == [user["id"]]
    access = store.accesses.get(org["accessId"])
    assert len({access.adminToken, access.contributorToken, access.guestToken}) == 3
    membership = store.memberships.create(access["id"], "contributor", team_id=team["id"],
                                          webhook="http://127.0.0.1:9/hook", follow=True)
    assert membership.follow is True and membership.role == "contributor"
    dataset = store.datasets.create(org["id"], "iris", {"x": [1.0, 2.0]}, owner_id=user["id"])
    task = store.tasks.create(org["id"], "km", dataset_id=dataset["id"],
                              algorithm={"name": "kmeans", "k": 3, "init": "kmeans_pp"},
                              identifier="run-1", variables={"a": 1}, predictions=[0, 1],
                              centroids={"x": [1.5]}, labels={"label": [0, 0]})
    assert task.algorithm == {"name": "kmeans", "k": 3, "init": "kmeans_pp"}
    assert store.tasks.centroids(task["id"]).to_pydict() == {"x": [1.5]}
    assert store.tasks.labels(task["id"]).column("label").to_pylist() == [0, 0]
    tracking = store.trackings.create("click", user_id=user["id"], organization_id=org["id"],
                                      resource="dataset", resource_id=dataset["id"],
                                      payload={"x": 1})
    assert store.trackings.get(tracking["id"]).payload == {"x": 1}
    for entity in (user, org, team, access, membership, dataset, task, tracking):
        assert entity["createdAt"].endswith("+00:00")


def test_update_changes_fields_and_timestamp(store, org):
    renamed = store.organizations.update(org["id"], name="lumen2")
    assert renamed.name == "lumen2" and renamed.updatedAt > org["updatedAt"]
    assert renamed.createdAt == org["createdAt"]


def test_list_filters_order_and_paging(store, org):
    for name in ["b", "a", "c", "B"]:
        store.datasets.create(org["id"], name)
    names = lambda rows: [r["name"] for r in rows]  # noqa: E731
    assert names(store.datasets.list(order_by={"name": "asc"})) == ["B", "a", "b", "c"]
    assert names(store.datasets.list(order_by={"name": "desc"}, limit=2, offset=1)) == ["b", "a"]
    assert names(store.datasets.list(where={"name": {"_like": "b"}})) == ["b"]
    assert sorted(names(store.datasets.list(where={"name": {"_ilike": "b"}}))) == ["B", "b"]
    assert names(store.datasets.list(where={"_or": [{"name": {"_eq": "a"}},
                                                    {"name": {"_in": ["c"]}}]},
                                     order_by={"name": "asc"})) == ["a", "c"]
    assert names(store.datasets.list(where={"owner": {"name": {"_eq": "ana"}}})) == []
    assert store.organizations.count(where={"datasets": {"name": {"_eq": "c"}}}) == 1
    assert store.datasets.count(organization_id=org["id"]) == 4


def test_organization_name_is_unique(store, org):
    with pytest.raises(NameTaken, match="organization with name 'lumen' already exists"):
        store.organizations.create("lumen")
    assert count(store, "organization") == 1 and count(store, "access") == 1


def test_names_unique_per_organization(store, org):
    other = store.organizations.create("other")
    store.datasets.create(org["id"], "iris")
    store.datasets.create(other["id"], "iris")
    with pytest.raises(NameTaken, match="in this organization"):
        store.datasets.create(org["id"], "iris")
    store.teams.create(org["id"], "core")
    store.teams.create(other["id"], "core")
    with pytest.raises(NameTaken):
        store.teams.create(org["id"], "core")


def test_user_email_unique(store, org):
    with pytest.raises(NameTaken, match="email"):
        store.users.create("ana2", "ana@example.org")
    store.users.create("no-mail-1")
    store.users.create("no-mail-2")


def test_deleting_an_organization_removes_everything_it_holds(store, org):
    user = store.users.get(org["ownerId"])
    team = store.teams.create(org["id"], "core", members=[user["id"]])
    store.memberships.create(team["accessId"], "guest", user_id=user["id"])
    dataset = store.datasets.create(org["id"], "iris", {"x": list(range(10))}, chunk_rows=3)
    store.tasks.create(org["id"], "km", dataset_id=dataset["id"], centroids={"c": [1]},
                       labels={"l": [1]})
    store.trackings.create("view", organization_id=org["id"])
    keep = store.organizations.create("keep")
    store.datasets.create(keep["id"], "kept", {"x": [1]})
    store.organizations.delete(org["id"])
    assert count(store, "organization") == 1
    for table, left in [("team", 0), ("team_member", 0), ("membership", 0), ("task", 0),
                        ("tracking", 0), ("dataset", 1), ("dataframe", 1), ("chunk", 1),
                        ("access", 2)]:
        assert count(store, table) == left, table
    assert store.users.get(user["id"])  # users outlive organizations


def test_deleting_a_dataset_removes_its_dataframe_and_chunks(store, org):
    dataset = store.datasets.create(org["id"], "iris", {"x": list(range(10))}, chunk_rows=2)
    assert count(store, "chunk") == 5
    store.datasets.delete(dataset["id"])
    assert (count(store, "dataframe"), count(store, "chunk"), count(store, "access")) == (0, 0, 1)


def test_deleting_a_task_removes_its_result_dataframes(store, org):
    task = store.tasks.create(org["id"], "km", centroids={"c": [1]}, labels={"l": [1]})
    replaced = store.tasks.update(task["id"], centroids={"c": [2, 3]})
    assert replaced.centroidsId != task["centroidsId"] and count(store, "dataframe") == 2
    store.tasks.delete(task["id"])
    assert count(store, "dataframe") == 0 and count(store, "chunk") == 0


def test_transaction_rolls_back_whole(store, org):
    with pytest.raises(NameTaken):
        with store.transaction():
            store.datasets.create(org["id"], "first", {"x": [1, 2, 3]})
            store.teams.create(org["id"], "t")
            store.datasets.create(org["id"], "first")
    assert count(store, "dataset") == 0 and count(store, "team") == 0
    assert count(store, "dataframe") == 0 and count(store, "access") == 1


def test_nested_transaction_failure_keeps_outer_work(store, org):
    with store.transaction():
        store.datasets.create(org["id"], "a")
        with pytest.raises(NameTaken):
            store.datasets.create(org["id"], "a")
        store.datasets.create(org["id"], "b")
    assert count(store, "dataset") == 2


@pytest.mark.parametrize("call, message", [
    (lambda s, o: s.organizations.create(""), "non-empty"),
    (lambda s, o: s.organizations.create("x" * 300), "at most 255"),
    (lambda s, o: s.memberships.create(o["accessId"], "owner", user_id=o["ownerId"]), "role"),
    (lambda s, o: s.accesses.update(o["accessId"], public="everyone"), "public"),
    (lambda s, o: s.accesses.update(o["accessId"], webhook="ftp://x"), "http"),
    (lambda s, o: s.tasks.create(o["id"], "t", algorithm={"k": "three"}), "algorithm.k"),
    (lambda s, o: s.tasks.create(o["id"], "t", algorithm={"colour": 1}), "no field 'colour'"),
    (lambda s, o: s.tasks.create(o["id"], "t", algorithm={"init": "magic"}), "algorithm.init"),
    (lambda s, o: s.datasets.get("not-a-uuid"), "UUID"),
    (lambda s, o: s.users.create("x", email="nope"), "email"),
    (lambda s, o: s.memberships.create(o["accessId"], "guest"), "exactly one"),
    (lambda s, o: s.organizations.update(o["id"], colour="red"), "no settable field"),
    (lambda s, o: s.dataframes.create({"x": [1]}, chunk_rows=0), "chunk_rows"),
    (lambda s, o: s.dataframes.create({"x": [1]}, compression="gzip"), "compression"),
    (lambda s, o: s.dataframes.create(42), "pyarrow Table"),
])
def test_invalid_values_are_refused_with_a_clear_message(store, org, call, message):
    before = {t: count(store, t) for t in ("organization", "task", "membership", "dataframe")}
    with pytest.raises(InvalidValue, match=message):
        call(store, org)
    assert {t: count(store, t) for t in before} == before
    assert store.accesses.get(org["accessId"])["public"] is None


def test_not_found(store, org):
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFound, match="no dataset"):
        store.datasets.get(missing)
    with pytest.raises(NotFound, match="no organization"):
        store.datasets.create(missing, "x")
    with pytest.raises(NotFound):
        store.organizations.delete(missing)


def test_regenerate_token_replaces_only_that_token(store, org):
    before = store.accesses.get(org["accessId"])
    after = store.accesses.regenerate_token(org["accessId"], "guest")
    assert after.guestToken != before.guestToken
    assert after.adminToken == before.adminToken


def test_store_survives_reopen(db_path):
    with clustore_lite.open(db_path) as store:
        org = store.organizations.create("lumen")
        store.datasets.create(org["id"], "d", {"x": [1, 2]})
    with clustore_lite.open(db_path) as store:
        [dataset] = store.datasets.list()
        assert store.datasets.read(dataset["id"]).to_pydict() == {"x": [1, 2]}
