"""Random sequences of writes against a plain in-memory model of SPEC section 1:
uniqueness rules, cascades, counts and dataframe contents must agree after every step.
A refused write must raise its typed error and change nothing.

CLUSTORE_CAMPAIGN_SCALE=10 runs ten times as many sequences."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import clustore_lite
from clustore_lite import InvalidValue, NameTaken, SchemaMismatch

SCALE = float(os.environ.get("CLUSTORE_CAMPAIGN_SCALE", "1"))
NAMES = st.sampled_from(["ana", "bo", "cy"])  # few names: collisions are frequent
EMAILS = st.one_of(st.none(), st.sampled_from(["a@x.org", "b@x.org"]))
ROLES = st.sampled_from(["admin", "contributor", "guest"])
ROWS = st.lists(st.integers(-5, 5), min_size=0, max_size=12)


@dataclass
class Owned:
    """An organization, team, dataset or task of the model."""

    name: str
    access: str
    org: str | None = None
    owner: str | None = None
    dataset: str | None = None
    frame: str | None = None
    rows: list[int] | None = None  # the dataframe's column x (None: never written)


@dataclass
class World:
    users: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> name, email
    orgs: dict[str, Owned] = field(default_factory=dict)
    teams: dict[str, Owned] = field(default_factory=dict)
    datasets: dict[str, Owned] = field(default_factory=dict)
    tasks: dict[str, Owned] = field(default_factory=dict)
    members: dict[tuple[str, str], None] = field(default_factory=dict)  # (team, user), ordered
    memberships: dict[str, tuple] = field(default_factory=dict)  # id -> (access, user, team, role)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="clustore-stateful-")
        self.store = clustore_lite.open(os.path.join(self.dir, "s.sqlite"))
        self.m = World()

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pick(self, data, ids):
        # in creation order: ids are random UUIDs, sorting them would make every
        # replay of a failing example pick differently
        return data.draw(st.sampled_from(list(ids)))

    # -- users ---------------------------------------------------------------------

    @rule(name=NAMES, email=EMAILS)
    def create_user(self, name, email):
        if email is not None and email in {e for _, e in self.m.users.values()}:
            with pytest.raises(NameTaken, match="email"):
                self.store.users.create(name, email=email)
            return
        user = self.store.users.create(name, email=email)
        self.m.users[user["id"]] = (name, email)

    @precondition(lambda self: self.m.users)
    @rule(data=st.data(), email=EMAILS)
    def change_email(self, data, email):
        user = self.pick(data, self.m.users)
        name, old = self.m.users[user]
        if email is not None and email != old and email in {e for _, e in self.m.users.values()}:
            with pytest.raises(NameTaken):
                self.store.users.update(user, email=email)
            return
        self.store.users.update(user, email=email)
        self.m.users[user] = (name, email)

    @precondition(lambda self: self.m.users)
    @rule(data=st.data())
    def delete_user(self, data):
        user = self.pick(data, self.m.users)
        self.store.users.delete(user)
        del self.m.users[user]
        self.m.members = {(t, u): None for t, u in self.m.members if u != user}
        self.m.memberships = {k: v for k, v in self.m.memberships.items() if v[1] != user}
        for entity in self.entities():
            if entity.owner == user:
                entity.owner = None

    # -- organizations and teams ---------------------------------------------------

    @rule(data=st.data(), name=NAMES)
    def create_org(self, data, name):
        owner = self.pick(data, [None, *self.m.users]) if self.m.users else None
        if name in {o.name for o in self.m.orgs.values()}:
            with pytest.raises(NameTaken, match="organization"):
                self.store.organizations.create(name, owner_id=owner)
            return
        org = self.store.organizations.create(name, owner_id=owner)
        self.m.orgs[org["id"]] = Owned(name, org["accessId"], owner=owner)

    @precondition(lambda self: self.m.orgs)
    @rule(data=st.data(), name=NAMES)
    def rename_org(self, data, name):
        org = self.pick(data, self.m.orgs)
        if name in {o.name for k, o in self.m.orgs.items() if k != org}:
            with pytest.raises(NameTaken):
                self.store.organizations.update(org, name=name)
            return
        self.store.organizations.update(org, name=name)
        self.m.orgs[org].name = name

    @precondition(lambda self: self.m.orgs)
    @rule(data=st.data())
    def delete_org(self, data):
        org = self.pick(data, self.m.orgs)
        self.store.organizations.delete(org)
        for kind in ("teams", "datasets", "tasks"):
            for key, entity in list(getattr(self.m, kind).items()):
                if entity.org == org:
                    self.forget(kind, key)
        self.forget("orgs", org)

    @precondition(lambda self: self.m.orgs)
    @rule(data=st.data(), name=NAMES)
    def create_team(self, data, name):
        org = self.pick(data, self.m.orgs)
        if name in {t.name for t in self.m.teams.values() if t.org == org}:
            with pytest.raises(NameTaken, match="in this organization"):
                self.store.teams.create(org, name)
            return
        team = self.store.teams.create(org, name)
        self.m.teams[team["id"]] = Owned(name, team["accessId"], org=org)

    @precondition(lambda self: self.m.teams)
    @rule(data=st.data(), name=NAMES)
    def rename_team(self, data, name):
        key = self.pick(data, self.m.teams)
        team = self.m.teams[key]
        if name in {t.name for k, t in self.m.teams.items() if t.org == team.org and k != key}:
            with pytest.raises(NameTaken):
                self.store.teams.update(key, name=name)
            return
        self.store.teams.update(key, name=name)
        team.name = name

    @precondition(lambda self: self.m.teams)
    @rule(data=st.data())
    def delete_team(self, data):
        team = self.pick(data, self.m.teams)
        self.store.teams.delete(team)
        self.forget("teams", team)

    @precondition(lambda self: self.m.teams and self.m.users)
    @rule(data=st.data())
    def add_member(self, data):
        team, user = self.pick(data, self.m.teams), self.pick(data, self.m.users)
        if (team, user) in self.m.members:
            with pytest.raises(NameTaken):
                self.store.teams.add_member(team, user)
            return
        self.store.teams.add_member(team, user)
        self.m.members[(team, user)] = None

    @precondition(lambda self: self.m.members)
    @rule(data=st.data())
    def remove_member(self, data):
        team, user = self.pick(data, self.m.members)
        self.store.teams.remove_member(team, user)
        del self.m.members[(team, user)]

    # -- memberships -----------------------------------------------------------------

    @precondition(lambda self: (self.m.users or self.m.teams) and self.m.orgs)
    @rule(data=st.data(), role=ROLES)
    def create_membership(self, data, role):
        access = self.pick(data, [e.access for e in self.entities()])
        user = team = None
        if self.m.users and (not self.m.teams or data.draw(st.booleans())):
            user = self.pick(data, self.m.users)
        else:
            team = self.pick(data, self.m.teams)
        if any(m[0] == access and m[1:3] == (user, team) for m in self.m.memberships.values()):
            with pytest.raises(NameTaken):
                self.store.memberships.create(access, role, user_id=user, team_id=team)
            return
        made = self.store.memberships.create(access, role, user_id=user, team_id=team)
        self.m.memberships[made["id"]] = (access, user, team, role)

    @precondition(lambda self: self.m.memberships)
    @rule(data=st.data(), role=ROLES)
    def change_role(self, data, role):
        membership = self.pick(data, self.m.memberships)
        self.store.memberships.update(membership, role=role)
        self.m.memberships[membership] = (*self.m.memberships[membership][:3], role)

    @precondition(lambda self: self.m.memberships)
    @rule(data=st.data())
    def delete_membership(self, data):
        membership = self.pick(data, self.m.memberships)
        self.store.memberships.delete(membership)
        del self.m.memberships[membership]

    # -- datasets, tasks, dataframes ---------------------------------------------------

    @precondition(lambda self: self.m.orgs)
    @rule(data=st.data(), name=NAMES, rows=st.one_of(st.none(), ROWS),
          chunk_rows=st.integers(1, 5))
    def create_dataset(self, data, name, rows, chunk_rows):
        org = self.pick(data, self.m.orgs)
        owner = self.pick(data, [None, *self.m.users]) if self.m.users else None
        frame = None if rows is None else pa.table({"x": pa.array(rows, pa.int64())})
        if name in {d.name for d in self.m.datasets.values() if d.org == org}:
            with pytest.raises(NameTaken, match="in this organization"):
                self.store.datasets.create(org, name, frame, owner_id=owner)
            return
        made = self.store.datasets.create(org, name, frame, owner_id=owner, chunk_rows=chunk_rows)
        self.m.datasets[made["id"]] = Owned(name, made["accessId"], org=org, owner=owner,
                                            frame=made["dataframeId"], rows=rows)

    @precondition(lambda self: self.m.datasets)
    @rule(data=st.data(), rows=ROWS, chunk_rows=st.integers(1, 5), as_bytes=st.booleans())
    def append(self, data, rows, chunk_rows, as_bytes):
        dataset = self.m.datasets[self.pick(data, self.m.datasets)]
        table = pa.table({"x": pa.array(rows, pa.int64())})
        if as_bytes:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            self.store.dataframes.append_ipc(dataset.frame, sink.getvalue().to_pybytes(),
                                             chunk_rows=chunk_rows)
        else:
            self.store.dataframes.append(dataset.frame, table, chunk_rows=chunk_rows)
        dataset.rows = (dataset.rows or []) + rows

    @precondition(lambda self: any(d.rows is not None for d in self.m.datasets.values()))
    @rule(data=st.data(), broken=st.sampled_from(["type", "width", "truncated"]))
    def refused_append(self, data, broken):
        frame = self.m.datasets[self.pick(data, [k for k, d in self.m.datasets.items()
                                                 if d.rows is not None])].frame
        if broken == "truncated":
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, pa.schema({"x": pa.int64()})) as writer:
                writer.write_batch(pa.record_batch({"x": pa.array([1, 2], pa.int64())}))
            with pytest.raises(InvalidValue, match="Arrow IPC"):
                self.store.dataframes.append_ipc(frame, sink.getvalue().to_pybytes()[:-12])
            return
        bad = {"type": {"x": ["one"]}, "width": {"x": [1], "y": [2]}}[broken]
        with pytest.raises(SchemaMismatch):
            self.store.dataframes.append(frame, bad)

    @precondition(lambda self: self.m.datasets)
    @rule(data=st.data(), name=NAMES)
    def rename_dataset(self, data, name):
        key = self.pick(data, self.m.datasets)
        dataset = self.m.datasets[key]
        siblings = {d.name for k, d in self.m.datasets.items() if d.org == dataset.org and k != key}
        if name in siblings:
            with pytest.raises(NameTaken):
                self.store.datasets.update(key, name=name)
            return
        self.store.datasets.update(key, name=name)
        dataset.name = name

    @precondition(lambda self: self.m.datasets)
    @rule(data=st.data())
    def delete_dataset(self, data):
        dataset = self.pick(data, self.m.datasets)
        self.store.datasets.delete(dataset)
        self.forget("datasets", dataset)

    @precondition(lambda self: self.m.orgs)
    @rule(data=st.data(), name=NAMES, centroids=st.one_of(st.none(), ROWS))
    def create_task(self, data, name, centroids):
        org = self.pick(data, self.m.orgs)
        dataset = self.pick(data, [None, *self.m.datasets]) if self.m.datasets else None
        frame = None if centroids is None else {"x": pa.array(centroids, pa.int64())}
        task = self.store.tasks.create(org, name, dataset_id=dataset, centroids=frame,
                                       algorithm={"name": "kmeans", "k": 2})
        self.m.tasks[task["id"]] = Owned(name, task["accessId"], org=org, dataset=dataset,
                                         frame=task["centroidsId"], rows=centroids)

    @precondition(lambda self: self.m.tasks)
    @rule(data=st.data(), centroids=ROWS, name=NAMES)
    def update_task(self, data, centroids, name):
        """New centroids replace the old dataframe, which is deleted."""
        key = self.pick(data, self.m.tasks)
        task = self.store.tasks.update(key, name=name,
                                       centroids={"x": pa.array(centroids, pa.int64())})
        self.m.tasks[key].name, self.m.tasks[key].rows = name, centroids
        self.m.tasks[key].frame = task["centroidsId"]

    @precondition(lambda self: self.m.tasks)
    @rule(data=st.data())
    def delete_task(self, data):
        task = self.pick(data, self.m.tasks)
        self.store.tasks.delete(task)
        self.forget("tasks", task)

    # -- the model's cascades (SPEC section 1) ----------------------------------------

    def entities(self):
        return [*self.m.orgs.values(), *self.m.teams.values(), *self.m.datasets.values(),
                *self.m.tasks.values()]

    def forget(self, kind: str, key: str) -> None:
        """An entity goes with its access and the memberships on it; a team with its
        members and its memberships; a dataset leaves its tasks without a dataset."""
        entity = getattr(self.m, kind).pop(key)
        self.m.memberships = {k: v for k, v in self.m.memberships.items()
                              if v[0] != entity.access and v[2] != key}
        if kind == "teams":
            self.m.members = {(t, u): None for t, u in self.m.members if t != key}
        if kind == "datasets":
            for task in self.m.tasks.values():
                if task.dataset == key:
                    task.dataset = None

    # -- what must hold after every step ----------------------------------------------

    @invariant()
    def same_rows_as_the_model(self):
        s, m = self.store, self.m
        assert {u["id"]: (u["name"], u["email"]) for u in s.users.list()} == m.users
        assert {o["id"]: (o["name"], o["ownerId"], o["accessId"])
                for o in s.organizations.list()} == {
            k: (o.name, o.owner, o.access) for k, o in m.orgs.items()}
        assert {t["id"]: (t["name"], t["organizationId"]) for t in s.teams.list()} == {
            k: (t.name, t.org) for k, t in m.teams.items()}
        assert {(r["teamId"], r["userId"]) for r in s.team_members.list()} == set(m.members)
        assert {r["id"]: (r["accessId"], r["userId"], r["teamId"], r["role"])
                for r in s.memberships.list()} == m.memberships
        assert {d["id"]: (d["name"], d["organizationId"], d["ownerId"], d["dataframeId"])
                for d in s.datasets.list()} == {
            k: (d.name, d.org, d.owner, d.frame) for k, d in m.datasets.items()}
        assert {t["id"]: (t["name"], t["organizationId"], t["datasetId"], t["centroidsId"])
                for t in s.tasks.list()} == {
            k: (t.name, t.org, t.dataset, t.frame) for k, t in m.tasks.items()}
        assert {a["id"] for a in s.accesses.list()} == {e.access for e in self.entities()}

    @invariant()
    def dataframes_hold_what_was_written(self):
        frames = {e.frame: e.rows for e in self.entities() if e.frame is not None}
        assert self.store.dataframes.count() == len(frames)
        for frame, rows in frames.items():
            record = self.store.dataframes.get(frame)
            table = self.store.dataframes.read(frame)
            assert table.column_names == ([] if rows is None else ["x"])
            assert (table.column("x").to_pylist() if rows is not None else []) == (rows or [])
            chunks = self.store.dataframes.chunks(frame)
            assert record["rows"] == len(rows or []) == sum(c["rows"] for c in chunks)
            assert record["size"] == sum(c["size"] for c in chunks)
            assert [c["position"] for c in chunks] == list(range(1, len(chunks) + 1))


StoreMachine.TestCase.settings = settings(
    max_examples=max(5, round(25 * SCALE)), stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_the_store_behaves_like_the_model = StoreMachine.TestCase
