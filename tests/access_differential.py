"""The differential access test of issue 12, shared by the library and the server
variants: what a caller cannot read must not change what it gets.

For each kind of caller, `copy_for` makes a copy of the store (store.backup) in which
every value that caller cannot read is changed: every value of the rows it does not
see, and every masked cell of the rows it sees. Queries generated from the catalog,
for every masked column and every relationship path up to depth 3 (where with
Hasura's operators, order_by, counts, nested selections and aggregates), must answer
the same on the store and on the copy.

Values that decide visibility (keys, relationship columns, `public`, `role`) are
structure, not values: changing them changes what a caller may see."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

import clustore_lite
from clustore_lite.graphql.schema import build_schema
from clustore_lite.access.roles import MASKED_COLUMNS
from clustore_lite.catalog import BLOB, BOOL, DATA_MODEL, INT, JSON, REAL, TABLES, TEXT, ArrayRel, q

SEED = int(os.environ.get("DIFFERENTIAL_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)
DEPTH = 3
DECIDING = {("access", "public"), ("membership", "role")}  # who sees what, besides the links
CALLERS = ("anonymous", "guest_token", "guest_user", "team_contributor", "outsider", "owner")


# -- the catalog, walked -----------------------------------------------------------------


def linking_columns(table: str) -> set[str]:
    """Keys and the columns relationships join on (to or from `table`)."""
    columns = set(TABLES[table].key)
    for other in TABLES.values():
        for rel in [*other.objects.values(), *other.arrays.values()]:
            if other.name == table:
                columns.add(rel.column)
            if isinstance(rel, ArrayRel) and rel.through:
                join, from_col, to_col = rel.through
                if join == table:
                    columns |= {from_col, to_col}
                if rel.table == table:
                    columns.add("id")
            elif rel.table == table:
                columns.add(rel.remote)
    return columns


def value_columns(table: str) -> list[str]:
    """The columns holding values (what the copy changes when a caller cannot read them)."""
    spec = TABLES[table]
    links = linking_columns(table)
    return [c for c, kind in spec.columns.items()
            if c not in links and (table, c) not in DECIDING and kind != BLOB and c not in spec.hidden]


def leaf_columns(table: str) -> list[str]:
    """Columns queried at the end of a path: every masked one, and one plain value
    (the first text or number, else createdAt) standing for the rows hidden there."""
    masked = list(MASKED_COLUMNS.get(table, {}))
    plain = [c for c in value_columns(table)
             if c not in masked and TABLES[table].columns[c] in (TEXT, INT) and c != "createdAt"]
    return masked + [plain[0] if plain else "createdAt"]


def paths(table: str, depth: int = DEPTH) -> list[tuple[tuple[str, str, bool], ...]]:
    """Every relationship path from `table`, up to `depth` hops: ((name, target, is_object), ...)."""
    out = [()]
    if depth:
        spec = TABLES[table]
        for name, rel in [*spec.objects.items(), *spec.arrays.items()]:
            hop = (name, rel.table, name in spec.objects)
            out += [(hop, *rest) for rest in paths(rel.table, depth - 1)]
    return out


@dataclass(frozen=True)
class Target:
    root: str
    path: tuple
    column: str

    @property
    def leaf(self) -> str:
        return self.path[-1][1] if self.path else self.root

    @property
    def orderable(self) -> bool:  # Hasura orders through object relationships only
        return all(is_object for _, _, is_object in self.path)

    def nest(self, leaf):
        for name, _, _ in reversed(self.path):
            leaf = {name: leaf}
        return leaf

    def __str__(self) -> str:
        return ".".join([self.root, *(name for name, _, _ in self.path), self.column])


def targets() -> list[Target]:
    return [Target(root, path, column) for root in DATA_MODEL for path in paths(root)
            for column in leaf_columns(path[-1][1] if path else root)]


# -- the world and its copies ------------------------------------------------------------


def build(store, rng: random.Random) -> dict:
    """Organizations with every way of holding a role, hidden and public rows next to
    each other, webhooks and emails everywhere; names drawn from `rng`."""
    def name(prefix):
        return f"{prefix}-{rng.randrange(16**6):06x}"

    def hook():
        return f"https://hooks.example.org/{rng.randrange(16**8):08x}"

    def frame():
        return {"x": [rng.randrange(100) for _ in range(rng.randrange(1, 4))]}

    def user(prefix):
        return store.users.create(name(prefix), f"{name(prefix)}@mail.example").id

    owner, guest, member, outsider, coworker, bystander, stranger = (
        user(p) for p in ("owner", "guest", "member", "outsider", "coworker", "bystander", "stranger"))
    lab = store.organizations.create(name("lab"), owner_id=owner, webhook=hook())
    team = store.teams.create(lab.id, name("team"), members=[member, bystander], webhook=hook())
    store.memberships.create(lab.access_id, "contributor", team_id=team.id, webhook=hook(), follow=True)
    store.memberships.create(lab.access_id, "guest", user_id=guest, webhook=hook())
    shown = store.datasets.create(lab.id, name("shown"), frame(), owner_id=owner, public="guest",
                                  webhook=hook())
    kept = store.datasets.create(lab.id, name("kept"), frame(), owner_id=member, webhook=hook())
    store.tasks.create(lab.id, name("task"), dataset_id=kept.id, owner_id=owner,
                       algorithm={"name": "kmeans", "k": 2}, identifier=name("run"),
                       centroids={"c": [1.0, 2.0]}, labels={"label": [0, 1]}, webhook=hook())
    store.tasks.create(lab.id, name("open-task"), dataset_id=shown.id, public="guest")
    other = store.organizations.create(name("other"), owner_id=outsider, webhook=hook())
    their_team = store.teams.create(other.id, name("team"), members=[coworker])
    store.memberships.create(other.access_id, "admin", team_id=their_team.id, webhook=hook())
    theirs = store.datasets.create(other.id, name("theirs"), frame(), owner_id=coworker)
    store.memberships.create(theirs.access_id, "guest", user_id=guest, webhook=hook())  # org hidden
    store.tasks.create(other.id, name("their-task"), dataset_id=theirs.id, owner_id=outsider)
    plaza = store.organizations.create(name("plaza"), owner_id=bystander, public="guest")
    store.teams.create(plaza.id, name("team"), members=[stranger, guest], public="guest")
    store.datasets.create(plaza.id, name("square"), frame(), owner_id=stranger)
    vault = store.organizations.create(name("vault"), owner_id=stranger, webhook=hook())
    store.datasets.create(vault.id, name("leaked"), frame(), owner_id=stranger, public="guest")
    store.datasets.create(vault.id, name("sealed"), frame(), owner_id=stranger)
    store.memberships.create(vault.access_id, "guest", user_id=bystander, webhook=hook())
    for who, org in ((owner, lab), (guest, lab), (member, lab), (outsider, other), (stranger, vault)):
        store.trackings.create(name("kind"), user_id=who, organization_id=org.id, resource=name("res"),
                               payload={"n": rng.randrange(100)})
    guest_token = store.accesses.get(kept.access_id).guest_token
    return {"owner": owner, "guest_user": guest, "team_contributor": member, "outsider": outsider,
            "guest_token": guest_token}


def view(store, caller: str, ids: dict):
    if caller == "anonymous":
        return store.anonymous()
    if caller == "guest_token":
        return store.with_token(ids["guest_token"])
    return store.as_user(ids[caller])


def rows_by_key(rows, table: str) -> dict:
    return {tuple(row[k] for k in TABLES[table].key): row for row in rows}


def unreadable(store, caller_view) -> dict:
    """table -> {key: [columns]}: the cells the caller cannot read (every value of a row
    it does not see; the masked cells of a row it sees)."""
    out = {}
    for table in DATA_MODEL:
        spec = TABLES[table]
        everything = rows_by_key(store.collection(table).list(), table)
        seen = rows_by_key(caller_view.collection(table).list(), table)
        cells = {}
        for key, row in everything.items():
            if key not in seen:
                cells[key] = value_columns(table)
                continue
            differ = [c for c in spec.visible_columns if seen[key][c] != row[c]]
            assert set(differ) <= set(MASKED_COLUMNS.get(table, {})), (table, differ)
            if differ:
                cells[key] = differ
        out[table] = cells
    return out


def scrambled(rng: random.Random, table: str, column: str, nullable: bool):
    """A new value for a cell: another random one, or NULL where the column allows it."""
    if nullable and rng.random() < 0.3:
        return None
    kind = TABLES[table].columns[column]
    word = f"{rng.randrange(16**10):010x}"
    if column == "webhook":
        return f"https://hooks.example.org/{word}"
    if column == "compression":  # the file's CHECK allows these only
        return rng.choice(("lz4", "zstd"))
    if column == "email":
        return f"{word}@mail.example"
    if column in ("createdAt", "updatedAt"):
        return f"20{rng.randrange(10, 40)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T00:00:00.{word[:6]}Z"
    if kind in (INT, REAL):
        return rng.randrange(10_000)
    if kind == BOOL:
        return rng.randrange(2)
    if kind == JSON:
        return json.dumps({"r": word})
    return word


def world(directory, rng: random.Random):
    """The store (built from `rng`), the callers' ids, and a copy for each caller."""
    store = clustore_lite.open(directory / "store.sqlite")
    ids = build(store, rng)
    copies = {}
    for caller in CALLERS:
        copies[caller], changed = copy_for(store, caller, ids, directory / f"{caller}.sqlite", rng)
        assert changed, caller  # every kind of caller misses something
    return store, ids, copies


def copy_for(store, caller: str, ids: dict, path, rng: random.Random):
    """A backup of `store` in which every value `caller` cannot read was changed."""
    cells = unreadable(store, view(store, caller, ids))
    store.backup(path)
    copy = clustore_lite.open(path)
    with copy.transaction():
        for table, rows in cells.items():
            info = copy.db.execute(f"PRAGMA table_info({q(table)})").fetchall()
            nullable = {row[1]: not row[3] for row in info}
            for key, columns in rows.items():
                values = {c: scrambled(rng, table, c, nullable[c]) for c in columns}
                sets = ", ".join(f"{q(c)} = :{c}" for c in values)
                match = " AND ".join(f"{q(k)} = :key{i}" for i, k in enumerate(TABLES[table].key))
                copy.db.execute(f"UPDATE {q(table)} SET {sets} WHERE {match}",
                                {**values, **{f"key{i}": k for i, k in enumerate(key)}})
    return copy, sum(len(r) for r in cells.values())


# -- queries -----------------------------------------------------------------------------


SCHEMA = build_schema()
DIRECTIONS = ("asc", "desc", "asc_nulls_first", "desc_nulls_last")
OPERATORS = ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_like", "_ilike",
             "_is_null", "_regex", "_iregex", "_similar")


def escaped(text: str) -> str:
    """`text` as a literal in a regular expression or a SIMILAR TO pattern."""
    return "".join(c if c.isalnum() else "\\" + c for c in text)


def operators(table: str, column: str) -> list[str]:
    """The operators GraphQL offers on the column (the Python API takes the same)."""
    exp = SCHEMA.type_map[f"{table}_bool_exp"].fields[column].type
    return [op for op in OPERATORS if op in exp.fields]


def originals(store, target: Target) -> list:
    rows = store.db.execute(f"SELECT DISTINCT {q(target.column)} FROM {q(target.leaf)} "
                            f"WHERE {q(target.column)} IS NOT NULL ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def condition(rng: random.Random, op: str, values: list):
    """A random comparison: `_in` all the store's values (a leak matches on the store and
    not on the copy), others one of them (or a prefix, for _like)."""
    if op == "_is_null":
        return rng.choice((True, False))
    if op in ("_in", "_nin"):
        return values
    value = rng.choice(values)
    if op in ("_like", "_ilike"):
        return value[: rng.randrange(1, 6)] + "%"
    if op in ("_regex", "_iregex"):
        return "^" + escaped(value[: rng.randrange(1, 6)])
    if op == "_similar":
        return escaped(value[: rng.randrange(1, 6)]) + "%"
    return value


@dataclass(frozen=True)
class Query:
    target: Target
    kind: str  # list (the keys, in order) or count
    arguments: dict
    what: str

    def __str__(self) -> str:
        return f"{self.target} {self.what}"


def where(store, target: Target, rng: random.Random, op: str | None = None) -> tuple[dict, str]:
    """A where on the target's column, and what it says; `_in` unless `op` is given."""
    values = originals(store, target)
    if not values:
        op = "_is_null"
    op = op or "_in"
    value = condition(rng, op, values)
    shown = f"{op} {len(value)} values" if isinstance(value, list) else f"{op} {value!r}"
    return target.nest({target.column: {op: value}}), shown


def python_queries(store, rng: random.Random, others: float = 1 / 3) -> list[Query]:
    """For every target: a list with `_in` the values of the store and an order_by
    where Hasura has one; for a share `others` of them, drawn at random, a count with
    another operator picked at random (the same compiler builds every operator: the
    share keeps the run in seconds)."""
    out = []
    for target in targets():
        condition_in, shown = where(store, target, rng)
        out.append(Query(target, "list", {"where": condition_in}, shown))
        if rng.random() < others:
            op = rng.choice([o for o in operators(target.leaf, target.column) if o != "_in"])
            other, shown = where(store, target, rng, op)
            out.append(Query(target, "count", {"where": other}, shown))
        if target.orderable:
            direction = rng.choice(DIRECTIONS)
            out.append(Query(target, "list", {"order_by": [target.nest({target.column: direction})]},
                             direction))
        if not target.path:
            out.append(Query(target, "list", distinct_arguments(target, rng), "distinct_on"))
    return out


def distinct_arguments(target: Target, rng: random.Random) -> dict:
    """distinct_on the target's column (of the root table), led by an order_by on it
    when Hasura orders by it."""
    arguments = {"distinct_on": [target.column]}
    if target.column in SCHEMA.type_map[f"{target.root}_order_by"].fields:
        arguments["order_by"] = [{target.column: rng.choice(DIRECTIONS)}]
    return arguments


def run_python(caller_view, query: Query):
    """The keys (in order) or the count a query answers, or the error it raised."""
    root = query.target.root
    collection = caller_view.collection(root)
    try:
        if query.kind == "count":
            return collection.count(**query.arguments)
        return list(rows_by_key(collection.list(**query.arguments), root))
    except clustore_lite.ClustoreError as error:
        return f"{type(error).__name__}: {error}"


# -- the same in GraphQL -----------------------------------------------------------------


def literal(value, enum: bool = False) -> str:
    """A GraphQL literal for a Python value (order directions are enum values)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {literal(v, enum)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, enum) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if enum else json.dumps(value)
    return json.dumps(value)


def _keys(table: str) -> str:
    return " ".join(TABLES[table].key)


def _nested(table: str, path: tuple, column: str) -> str:
    """The selection along `path` down to `column`, with the key at each level and, at
    a last array hop, its aggregate counts (all rows, and distinct values of `column`)."""
    if not path:
        return column
    name, target, is_object = path[0]
    inner = f"{{ {_keys(target)} {_nested(target, path[1:], column)} }}"
    if is_object or len(path) > 1:
        return f"{name} {inner}"
    return (f"{name} {inner} {name}_aggregate {{ aggregate {{ count "
            f"n: count(columns: [{column}], distinct: true) }} }}")


def graphql_fields(store, target: Target, rng: random.Random, n: int) -> list[str]:
    """Three root fields for a target: a where, a nested selection (ordered through
    the path when it can be), and an aggregate with another operator."""
    plural = TABLES[target.root].plural
    condition_in, _ = where(store, target, rng)
    op = rng.choice(operators(target.leaf, target.column))
    other, _ = where(store, target, rng, op)
    order = ""
    if target.orderable:
        order = f"(order_by: {literal([target.nest({target.column: rng.choice(DIRECTIONS)})], enum=True)})"
    counted = "" if target.path else (
        f" n: count(columns: [{target.column}], distinct: true)"
        f" m: count(columns: [{target.column}, {', '.join(TABLES[target.root].key)}])")
    fields = [f"w{n}: {plural}(where: {literal(condition_in)}) {{ {_keys(target.root)} }}",
              f"s{n}: {plural}{order} {{ {_keys(target.root)} {_nested(target.root, target.path, target.column)} }}",
              f"a{n}: {plural}_aggregate(where: {literal(other)}) {{ aggregate {{ count{counted} }} }}"]
    if not target.path:
        arguments = literal(distinct_arguments(target, rng), enum=True)[1:-1]
        fields.append(f"d{n}: {plural}_aggregate({arguments}) {{ aggregate {{ count }} "
                      f"nodes {{ {_keys(target.root)} }} }}")
    return fields


def subscription_document(store, rng: random.Random) -> str:
    """One generated nested selection (of a masked column, one hop away or less) as a
    subscription."""
    masked = [t for t in targets() if t.column in MASKED_COLUMNS.get(t.leaf, {}) and len(t.path) <= 1]
    selection = graphql_fields(store, rng.choice(masked), rng, 0)[1]
    return "subscription { " + selection + " }"


def graphql_documents(store, rng: random.Random, sample: int, per_document: int = 12) -> list[str]:
    """Queries for `sample` targets drawn at random (the masked columns always among
    them), `per_document` targets to a document (at most 4 root fields each; the
    server allows 50)."""
    everything = targets()
    masked = [t for t in everything if t.column in MASKED_COLUMNS.get(t.leaf, {}) and len(t.path) <= 1]
    chosen = masked + rng.sample([t for t in everything if t not in masked],
                                 max(0, sample - len(masked)))
    fields = [graphql_fields(store, target, rng, n) for n, target in enumerate(chosen)]
    return ["query { " + " ".join(f for group in fields[i:i + per_document] for f in group) + " }"
            for i in range(0, len(fields), per_document)]
