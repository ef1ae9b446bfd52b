"""Issue 12, items 5, 6 and 10 through the library: events reach a follower only if it
may read the row; a tracking needs a role on what it tracks; store files are private.
(Item 7, webhook destinations, is tests/test_webhook_policy.py.)"""

import json
import os
import random

import apsw
import pytest
from receiver import Receiver

import clustore_lite
from clustore_lite import PermissionDenied
from clustore_lite.db import migrations
from clustore_lite.delivery import Deliverer

LOCAL = "127.0.0.1"  # the receivers listen on loopback


@pytest.fixture
def store(db_path):
    with clustore_lite.open(db_path, webhook_allow=LOCAL) as opened:
        yield opened


def deliver(store):
    with Deliverer(store.path, backoff=0, max_retries=0, timeout=5, webhook_allow=LOCAL) as worker:
        return worker.run_once()


def rows_of(bodies, table):
    """(op, row) of the bodies about `table`, the row as the event shows it."""
    return [(b["event"]["op"], b["event"]["data"]["new"] or b["event"]["data"]["old"])
            for b in bodies if b["table"]["name"] == table]


def lab(store):
    ana, gus = store.users.create("ana"), store.users.create("gus")
    org = store.organizations.create("lab", owner_id=ana.id)
    member = store.memberships.create(org.access_id, "guest", user_id=gus.id)
    return ana, gus, org, member


# -- item 5: follow webhooks deliver only what the member may read -----------------

def test_a_follower_receives_only_the_rows_it_may_read(store):
    """The issue's attack: a guest follows, with a webhook on her own membership, and
    received another user's tracking, payload included."""
    with Receiver() as hooks:
        ana, gus, org, member = lab(store)
        store.as_user(gus.id).memberships.update(member.id, follow=True, webhook=hooks.url("/gus"))
        store.as_user(ana.id).trackings.create("salary", organization_id=org.id, payload={"k": 1})
        store.as_user(gus.id).trackings.create("mine", organization_id=org.id)
        store.datasets.create(org.id, "shared")
        summary = deliver(store)
    received = rows_of(hooks.bodies("/gus"), "tracking")
    assert [row["kind"] for _, row in received] == ["mine"]
    assert [r.kind for r in store.as_user(gus.id).trackings.list()] == ["mine"]  # same rule
    assert [row["name"] for _, row in rows_of(hooks.bodies("/gus"), "dataset")] == ["shared"]
    assert summary.withheld == 1
    [hidden] = [e for e in store.events.list(where={"tableName": {"_eq": "tracking"}})
                if e.new["kind"] == "salary"]
    [delivery] = store.events.deliveries(hidden.id)
    assert (delivery.status, delivery.tries, delivery.followers) == ("withheld", 0, [[gus.id, None]])
    assert "no following member may read" in delivery.lastError
    assert hidden.status == "logged"  # nobody received it


def test_the_accesses_own_webhooks_still_receive_their_resources_events(store):
    with Receiver() as hooks:
        ana, gus, org, _ = lab(store)
        store.accesses.update(org.access_id, webhook=hooks.url("/org"))
        store.as_user(ana.id).trackings.create("salary", organization_id=org.id)
        store.as_user(gus.id).trackings.create("mine", organization_id=org.id)
        deliver(store)
    assert sorted(row["kind"] for _, row in rows_of(hooks.bodies("/org"), "tracking")) \
        == ["mine", "salary"]


def test_a_team_follows_with_what_every_member_may_read(store):
    with Receiver() as hooks:
        ana, gus, org, _ = lab(store)
        team = store.teams.create(org.id, "mixed", members=[ana.id, gus.id])
        store.memberships.create(org.access_id, "guest", team_id=team.id,
                                 webhook=hooks.url("/team"), follow=True)
        store.as_user(ana.id).trackings.create("ana-only", organization_id=org.id)
        store.as_user(gus.id).trackings.create("gus-own", organization_id=org.id)  # ana: org admin
        empty = store.teams.create(org.id, "empty")
        store.memberships.create(org.access_id, "guest", team_id=empty.id,
                                 webhook=hooks.url("/empty"), follow=True)
        store.datasets.create(org.id, "seen-by-all")
        deliver(store)
    assert [row["kind"] for _, row in rows_of(hooks.bodies("/team"), "tracking")] == ["gus-own"]
    assert hooks.bodies("/empty") == []  # a team without members reads nothing


def test_a_revoked_follower_gets_nothing_more(store):
    """Pending deliveries are judged when sent: a membership revoked meanwhile stops them."""
    with Receiver() as hooks:
        ana, gus, org, member = lab(store)
        store.memberships.update(member.id, follow=True, webhook=hooks.url("/gus"))
        store.datasets.create(org.id, "before-revocation")
        store.memberships.delete(member.id)
        deliver(store)
    assert rows_of(hooks.bodies("/gus"), "dataset") == []


def test_nobody_redirects_anothers_feed_and_anonymous_invites_nobody(store):
    ana, gus, org, member = lab(store)
    boss = store.users.create("boss")  # an admin of the lab: reads every tracking in it
    bosses = store.memberships.create(org.access_id, "admin", user_id=boss.id)
    dataset = store.datasets.create(org.id, "d")
    as_gus = store.as_user(gus.id)
    # a guest invites the admin, following, with her own webhook: the admin's view to her
    with pytest.raises(PermissionDenied, match="another user's or a team's membership"):
        as_gus.memberships.create(dataset.access_id, "guest", user_id=boss.id, follow=True,
                                  webhook="http://127.0.0.1:9/gus")
    invited = as_gus.memberships.create(dataset.access_id, "guest", user_id=boss.id)
    with pytest.raises(PermissionDenied, match="another user's or a team's membership"):
        as_gus.memberships.update(invited.id, webhook="http://127.0.0.1:9/gus")
    with pytest.raises(PermissionDenied, match="another user's or a team's membership"):
        as_gus.memberships.update(invited.id, follow=True)
    team = store.teams.create(org.id, "t", members=[boss.id])
    with pytest.raises(PermissionDenied, match="team"):
        as_gus.memberships.create(dataset.access_id, "guest", team_id=team.id, follow=True,
                                  webhook="http://127.0.0.1:9/gus")
    # her own membership's feed is hers to set
    as_gus.memberships.update(member.id, follow=True, webhook="http://127.0.0.1:9/gus")
    # an admin of the access may set anyone's (it receives the access's events anyway)
    store.as_user(ana.id).memberships.update(bosses.id, follow=True, webhook="http://127.0.0.1:9/b")

    # a public role grants reading: anonymous callers and public-only users invite nobody
    store.accesses.update(org.access_id, public="guest")
    stranger = store.users.create("stranger")
    before = store.memberships.count()
    with pytest.raises(PermissionDenied, match="anonymous caller invites nobody"):
        store.anonymous().memberships.create(org.access_id, "guest", user_id=stranger.id,
                                             follow=True, webhook="http://127.0.0.1:9/anon")
    with pytest.raises(PermissionDenied, match="public role grants reading"):
        store.as_user(stranger.id).memberships.create(org.access_id, "guest", user_id=stranger.id)
    assert store.memberships.count() == before
    assert store.anonymous().organizations.list()[0].name == "lab"  # reading, as granted


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_generated_followers_receive_exactly_what_the_api_shows_them(store, seed):
    """A random lab (roles by membership, team, ownership), everyone following the
    organization; each follower's tracking and dataset events are exactly the rows
    its own view of the store lists."""
    rng = random.Random(seed)
    print(f"seed {seed}")
    with Receiver() as hooks:
        users = [store.users.create(f"u{i}") for i in range(7)]
        org = store.organizations.create("lab", owner_id=users[0].id)
        datasets = [store.datasets.create(org.id, f"d{n}", owner_id=rng.choice(users).id)
                    for n in range(2)]
        team = store.teams.create(org.id, "t", members=[u.id for u in users if rng.random() < 0.3])
        store.memberships.create(org.access_id, rng.choice(["guest", "admin"]), team_id=team.id)
        for n, user in enumerate(users):  # the last two only on a dataset, the rest on the lab
            access = datasets[n % 2].access_id if n >= 5 else org.access_id
            store.memberships.create(access, rng.choice(["guest", "contributor", "admin"]),
                                     user_id=user.id, follow=True, webhook=hooks.url(f"/{user.name}"))
        for n in range(14):
            index = rng.randrange(len(users))
            author = users[index]
            dataset = rng.choice(datasets) if index < 5 else datasets[index % 2]  # one they see
            where = {"organization_id": org.id} if index < 5 else {}
            store.as_user(author.id).trackings.create(
                f"k{n}", resource="dataset", resource_id=dataset.id, payload={"n": n}, **where)
            if rng.random() < 0.3:
                store.datasets.create(org.id, f"e{n}", owner_id=author.id)
        deliver(store)
    for user in users:
        view, url = store.as_user(user.id), hooks.url(f"/{user.name}")
        routed = {e.resourceId for e in store.events.list(where={"deliveries": {"url": {"_eq": url}}})}
        bodies = hooks.bodies(f"/{user.name}")
        for table, collection in (("tracking", view.trackings), ("dataset", view.datasets)):
            got = sorted(row["id"] for op, row in rows_of(bodies, table) if op == "INSERT")
            visible = sorted(r.id for r in collection.list() if r.id in routed)
            assert got == visible, (seed, user.name, table)


def test_what_a_follower_cannot_read_does_not_change_what_it_receives(store, tmp_path):
    """Differential: the store, and a copy in which every value the follower may not
    read was changed (an UPDATE, itself an event), deliver the same bodies to her."""
    ana, gus, org, member = lab(store)
    port = Receiver().port
    store.memberships.update(member.id, follow=True, webhook=f"http://127.0.0.1:{port}/gus")
    for n in range(3):
        store.as_user(ana.id).trackings.create(f"ana{n}", organization_id=org.id, payload={"n": n})
        store.as_user(gus.id).trackings.create(f"gus{n}", organization_id=org.id)
    store.datasets.create(org.id, "shared")
    store.backup(tmp_path / "copy.sqlite")
    received = []
    for path in (store.path, tmp_path / "copy.sqlite"):
        with clustore_lite.open(path) as opened, Receiver(port=port) as hooks:
            if path != store.path:  # what gus may not read, changed
                opened.db.execute("UPDATE tracking SET kind = 'changed', payload = '{\"n\": -1}' "
                                  "WHERE userId = ?", (ana.id,))
            deliver(opened)
            received.append(sorted(json.dumps(b, sort_keys=True) for b in hooks.bodies("/gus")))
    assert received[0] == received[1] and len(received[0]) >= 5


def test_masked_columns_stay_out_of_a_followers_payload(store, monkeypatch):
    """What the one masking layer hides from a reader is absent from its events."""
    from clustore_lite.access.roles import Caller

    ana, gus, org, member = lab(store)
    original = Caller.column_sql

    def hide_webhooks_from_guests(self, c, table, alias, column):
        if (table.name, column) == ("membership", "webhook") and self.user_id == gus.id:
            return "NULL"
        return original(self, c, table, alias, column)

    with Receiver() as hooks:
        store.memberships.update(member.id, follow=True, webhook=hooks.url("/gus"))
        store.memberships.create(org.access_id, "guest", user_id=store.users.create("eve").id,
                                 webhook="http://127.0.0.1:9/eve-private")
        monkeypatch.setattr(Caller, "column_sql", hide_webhooks_from_guests)
        deliver(store)
    [(_, eve)] = [(op, row) for op, row in rows_of(hooks.bodies("/gus"), "membership")
                  if row["userId"] != gus.id]
    assert "webhook" not in eve and eve["role"] == "guest"


def test_an_older_file_gets_followers_for_its_pending_deliveries(db_path):
    """Migration 3 on a file of schema version 2 with pending deliveries."""
    conn = apsw.Connection(str(db_path))
    conn.create_scalar_function("clustore_session", lambda: '{"x-hasura-role": "admin"}', 0)
    conn.execute("PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = ON")
    conn.execute(migrations.MIGRATIONS[0])
    conn.execute(migrations.MIGRATIONS[1])
    conn.execute("PRAGMA user_version = 2")
    now = "2025-01-01T00:00:00+00:00"
    ids = {name: f"00000000-0000-4000-8000-00000000000{n}" for n, name in enumerate(
        ["ana", "gus", "access", "org", "m", "t1"])}
    conn.execute(f"""
        INSERT INTO user VALUES ('{ids["ana"]}', 'ana', NULL, '{now}', '{now}'),
                                ('{ids["gus"]}', 'gus', NULL, '{now}', '{now}');
        INSERT INTO access VALUES ('{ids["access"]}', NULL, 'http://127.0.0.1:9/org',
                                   'a', 'c', 'g', '{now}', '{now}');
        INSERT INTO organization VALUES ('{ids["org"]}', 'lab', '{ids["ana"]}',
                                         '{ids["access"]}', '{now}', '{now}');
        INSERT INTO membership VALUES ('{ids["m"]}', '{ids["access"]}', '{ids["gus"]}', NULL,
                                       'guest', 'http://127.0.0.1:9/gus', 1, '{now}', '{now}');
        INSERT INTO tracking VALUES ('{ids["t1"]}', '{ids["ana"]}', '{ids["org"]}', NULL, NULL,
                                     'salary', NULL, '{now}', '{now}');""")
    conn.close()
    with clustore_lite.open(db_path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == migrations.LATEST
        [event] = store.events.list(where={"resourceId": {"_eq": ids["t1"]}})
        followers = {d.url: d.followers for d in store.events.deliveries(event.id)}
        assert followers == {"http://127.0.0.1:9/org": None,
                             "http://127.0.0.1:9/gus": [[ids["gus"], None]]}
        with Deliverer(store.path, max_retries=0, backoff=0) as worker:
            summary = worker.run_once()
        assert summary.withheld >= 1
        statuses = {d.url: d.status for d in store.events.deliveries(event.id)}
        assert statuses["http://127.0.0.1:9/gus"] == "withheld"


# -- item 6: a tracking needs at least guest on what it tracks ---------------------

def test_a_tracking_needs_a_role_on_what_it_tracks(store):
    ana, gus, org, _ = lab(store)
    dataset = store.datasets.create(org.id, "d")
    other = store.organizations.create("elsewhere", owner_id=store.users.create("olga").id,
                                       webhook="http://127.0.0.1:9/elsewhere")
    foreign = store.datasets.create(other.id, "theirs")
    mallory = store.as_user(store.users.create("mallory").id)
    before = store.events.count()
    for attempt in (
            lambda: mallory.trackings.create("spam", organization_id=org.id),
            lambda: mallory.trackings.create("spam", resource="dataset", resource_id=dataset.id),
            lambda: store.as_user(gus.id).trackings.create(
                "spam", organization_id=org.id, resource="dataset", resource_id=foreign.id),
            lambda: store.as_user(gus.id).trackings.create("spam", organization_id=other.id)):
        with pytest.raises(PermissionDenied, match="tracking"):
            attempt()
    assert store.events.count() == before  # nothing queued for their webhooks
    as_gus = store.as_user(gus.id)  # a guest tracks what she sees, and herself
    as_gus.trackings.create("view", organization_id=org.id, resource="dataset",
                            resource_id=dataset.id)
    as_gus.trackings.create("login")
    mallory.trackings.create("login", resource="page", resource_id=dataset.id)  # not a resource
    store.accesses.update(other.access_id, public="guest")  # what is public may be tracked
    mallory.trackings.create("view", organization_id=other.id, resource="dataset",
                             resource_id=foreign.id)


# -- item 10: files that hold tokens are private -------------------------------------

@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_new_store_wal_shm_and_backup_files_are_private(tmp_path, umask_022):
    path = tmp_path / "new.sqlite"
    with clustore_lite.open(path) as store:
        store.organizations.create("lab")
        second = clustore_lite.open(path)  # the -shm file exists while connections are open
        files = {p.name: mode(p) for p in tmp_path.iterdir()}
        assert files == {"new.sqlite": 0o600, "new.sqlite-wal": 0o600, "new.sqlite-shm": 0o600}
        second.close()
        store.backup(tmp_path / "copy.sqlite")
        assert mode(tmp_path / "copy.sqlite") == 0o600
    shared = tmp_path / "shared.sqlite"  # a file that exists keeps the mode it was given
    shared.touch()
    shared.chmod(0o640)
    with clustore_lite.open(shared) as store:
        store.organizations.create("lab")
        assert mode(shared) == 0o640 and mode(f"{shared}-wal") == 0o640
