"""The permissions of `hasura-metadata`, evaluated: each rule is compiled to SQL the way
Hasura reads a boolean expression (relationships become EXISTS) and run in a pushed
mirror, for users with each kind of role, to check it says what SPEC section 4 says."""

import pytest

import clustore_lite
from clustore_lite.mirror import hasura
from clustore_lite.mirror.pg_schema import ORDER
from clustore_lite.catalog import TABLES

from pg_server import cluster, unavailable, url  # noqa: F401 - fixtures

try:
    import psycopg

    from clustore_lite.mirror import postgres
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")

META = {t: hasura.table_metadata(t, "CLUSTORE_WEBHOOK_URL") for t in ORDER}  # the event log stays local


def links(table):
    """relationship name -> (remote table, [(our column, their column)])."""
    out = {}
    meta = META[table]
    for rel in meta.get("object_relationships", []):
        using = rel["using"]
        if "foreign_key_constraint_on" in using:
            column = using["foreign_key_constraint_on"]
            (target,) = {r.table for r in TABLES[table].objects.values() if r.column == column}
            out[rel["name"]] = (target, [(column, "id")])
        else:
            manual = using["manual_configuration"]
            out[rel["name"]] = (manual["remote_table"]["name"], list(manual["column_mapping"].items()))
    for rel in meta.get("array_relationships", []):
        using = rel["using"]
        if "foreign_key_constraint_on" in using:
            fk = using["foreign_key_constraint_on"]
            out[rel["name"]] = (fk["table"]["name"], [("id", fk["column"])])
        else:
            manual = using["manual_configuration"]
            out[rel["name"]] = (manual["remote_table"]["name"], list(manual["column_mapping"].items()))
    return out


def literal(value, me):
    if value == hasura.ME:
        return f"'{me}'" if me else "NULL"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(literal(v, me) for v in value) + "]::text[]"
    if isinstance(value, bool):  # compared with column::text
        return "'true'" if value else "'false'"
    return "'" + str(value).replace("'", "''") + "'"


def compile_rule(table, rule, alias, me, depth=0):
    """SQL for a rule on the row `alias` of `table`; the row checked is always x."""
    parts = []
    for key, value in rule.items():
        if key in ("_and", "_or"):
            joined = f" {key[1:].upper()} ".join(compile_rule(table, r, alias, me, depth) for r in value)
            parts.append(f"({joined or ('TRUE' if key == '_and' else 'FALSE')})")
        elif key == "_not":
            parts.append(f"NOT ({compile_rule(table, value, alias, me, depth)})")
        elif key in TABLES[table].columns:
            column = f'{alias}."{key}"'
            for op, operand in value.items():
                if op in ("_ceq", "_cne"):  # ["$", column]: the row being checked
                    assert operand[0] == "$"
                    parts.append(f'{column} {"=" if op == "_ceq" else "<>"} x."{operand[1]}"')
                    continue
                sql = {"_eq": f"{column}::text = {literal(operand, me)}",
                       "_in": f"{column}::text = ANY({literal(operand, me)})",
                       "_is_null": f"{column} IS {'' if operand else 'NOT '}NULL"}[op]
                parts.append(sql)
        else:
            remote, pairs = links(table)[key]
            inner = f"r{depth}"
            join = " AND ".join(f'{inner}."{theirs}" = {alias}."{ours}"' for ours, theirs in pairs)
            body = compile_rule(remote, value, inner, me, depth + 1)
            parts.append(f'EXISTS (SELECT 1 FROM public."{remote}" {inner} WHERE {join} AND {body})')
    return "(" + (" AND ".join(parts) or "TRUE") + ")"


def permitted(conn, table, kind, role, me, row_id):
    """Does `role` (user `me`) pass the `kind` rule of `table` on the row `row_id`?"""
    perms = {p["role"]: p["permission"] for p in META[table].get(f"{kind}_permissions", [])}
    if role not in perms:
        return False
    rule = perms[role].get("filter", perms[role].get("check"))
    sql = compile_rule(table, rule, "x", me)
    return conn.execute(f'SELECT {sql} FROM public."{table}" x WHERE x.id = %s',
                        (row_id,)).fetchone()[0]


@pytest.fixture
def world(tmp_path, url):  # noqa: F811
    with clustore_lite.open(tmp_path / "rules.sqlite") as store:
        ana, bob, carl, dave = (store.users.create(n) for n in ("ana", "bob", "carl", "dave"))
        lumen = store.organizations.create("lumen", owner_id=ana.id)
        shown = store.organizations.create("shown", public="guest")
        store.memberships.create(lumen.access_id, "contributor", user_id=bob.id)
        team = store.teams.create(lumen.id, "readers", members=[carl.id])
        points = store.datasets.create(lumen.id, "points", {"x": [1.0]})
        other = store.datasets.create(lumen.id, "other", {"x": [2.0]})
        store.memberships.create(points.access_id, "guest", team_id=team.id)
        open_data = store.datasets.create(shown.id, "open", {"x": [3.0]})
        postgres.push(store, url)
        names = {"ana": ana.id, "bob": bob.id, "carl": carl.id, "dave": dave.id, None: None}
        with psycopg.connect(url) as conn:
            yield conn, names, {"lumen": lumen, "shown": shown, "points": points,
                                "other": other, "open": open_data}


def test_who_sees_what(world):
    conn, users, rows = world

    def sees(who, table, name, role="user"):
        return permitted(conn, table, "select", role if who else "anonymous", users[who], rows[name].id)

    assert sees("ana", "organization", "lumen")  # owner
    assert sees("bob", "organization", "lumen")  # contributor by membership
    assert not sees("carl", "organization", "lumen")  # a guest of one dataset only
    assert not sees("dave", "organization", "lumen")
    assert sees("bob", "dataset", "other")  # a role on an organization holds inside it
    assert sees("carl", "dataset", "points") and not sees("carl", "dataset", "other")  # by team
    assert not sees("dave", "dataset", "points")
    assert sees(None, "organization", "shown") and sees(None, "dataset", "open")  # public
    assert not sees(None, "organization", "lumen") and not sees(None, "dataset", "points")
    assert sees("dave", "organization", "shown")
    for who, other, expected in (("bob", "ana", True), ("dave", "bob", False),
                                 ("dave", "dave", True), ("carl", "ana", False)):
        assert permitted(conn, "user", "select", "user", users[who], users[other]) is expected
    frame = rows["points"].dataframe_id
    chunk = conn.execute('SELECT id FROM chunk WHERE "dataframeId" = %s', (frame,)).fetchone()[0]
    for who, expected in (("carl", True), ("dave", False)):
        assert permitted(conn, "chunk", "select", "user", users[who], chunk) is expected
        assert permitted(conn, "access", "select", "user", users[who],
                         rows["points"].access_id) is expected


def test_who_may_change_what(world):
    conn, users, rows = world
    lumen = rows["lumen"].id
    assert permitted(conn, "organization", "update", "user", users["ana"], lumen)
    assert not permitted(conn, "organization", "update", "user", users["bob"], lumen)
    assert permitted(conn, "dataset", "update", "user", users["bob"], rows["points"].id)
    assert not permitted(conn, "dataset", "update", "user", users["carl"], rows["points"].id)
    assert not permitted(conn, "dataset", "delete", "user", users["bob"], rows["points"].id)
    assert permitted(conn, "dataset", "delete", "user", users["ana"], rows["points"].id)
    assert not permitted(conn, "organization", "update", "anonymous", None, rows["shown"].id)


@pytest.mark.parametrize("inviter, role, allowed", [
    ("bob", "contributor", True), ("bob", "admin", False), ("ana", "admin", True),
    ("dave", "guest", False), ("dave", "admin", False)])
def test_invitations_follow_the_inviter_role(world, inviter, role, allowed):
    """Checked, like Hasura does, once the new membership is written: inviting oneself
    must not pass on the strength of that very membership."""
    conn, users, rows = world
    with conn.transaction(force_rollback=True):
        new = conn.execute(
            'INSERT INTO membership ("accessId", "userId", role) VALUES (%s, %s, %s) RETURNING id',
            (rows["lumen"].access_id, users["dave"], role)).fetchone()[0]
        assert permitted(conn, "membership", "insert", "user", users[inviter], new) is allowed


def test_joining_a_powerful_team_needs_a_right_besides_the_new_member_row(world):
    conn, users, rows = world
    with conn.transaction(force_rollback=True):
        team = conn.execute('SELECT id FROM team WHERE name = %s', ("readers",)).fetchone()[0]
        conn.execute('INSERT INTO membership ("accessId", "teamId", role) VALUES (%s, %s, %s)',
                     (rows["lumen"].access_id, team, "admin"))  # the team is admin of lumen
        conn.execute('INSERT INTO team_member ("teamId", "userId") VALUES (%s, %s)',
                     (team, users["dave"]))
        rule = META["team_member"]["insert_permissions"][0]["permission"]["check"]
        for who, allowed in (("dave", False), ("carl", True), ("ana", True)):
            sql = compile_rule("team_member", rule, "x", users[who])
            passed = conn.execute(f'SELECT {sql} FROM team_member x WHERE x."teamId" = %s AND '
                                  'x."userId" = %s', (team, users["dave"])).fetchone()[0]
            assert passed is allowed, who


def test_a_membership_changes_only_within_the_changer_role(world):
    """The filter reads the membership before the change, the check after it."""
    conn, users, rows = world
    bobs = conn.execute('SELECT id FROM membership WHERE "userId" = %s', (users["bob"],)).fetchone()[0]
    assert permitted(conn, "membership", "update", "user", users["bob"], bobs)  # contributor
    assert not permitted(conn, "membership", "update", "user", users["dave"], bobs)
    rule = META["membership"]["update_permissions"][0]["permission"]["check"]
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE membership SET role = 'admin' WHERE id = %s", (bobs,))
        for who, allowed in (("bob", False), ("ana", True)):
            sql = compile_rule("membership", rule, "x", users[who])
            passed = conn.execute(f"SELECT {sql} FROM membership x WHERE x.id = %s", (bobs,)).fetchone()[0]
            assert passed is allowed, who
