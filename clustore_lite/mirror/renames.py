"""Renames in a push: the order in which rows that change a unique name (organization
name, user email, team and dataset names per organization) are written, so that the
mirror never holds a name twice, not even for one row's time.

PostgreSQL checks its (immediate) unique constraints row by row, so a swap of two
names, or a row taking the name a sibling gives up, fails in most orders. The rows whose
names move are written first, in one transaction: a row after the row whose name it
takes (a topological order); rows on a cycle (a swap, a rotation) and those waiting on
them are first parked under a placeholder name in that same transaction, so no
placeholder is ever committed. The constraints stay immediate and not DEFERRABLE:
PostgreSQL refuses deferrable ones as ON CONFLICT arbiters, which Hasura's
`on_conflict: {constraint: ...}` upserts need."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Sequence

import psycopg

from ..catalog import TABLES, pg_type, q
from .pg_schema import NATURAL_KEYS

PLACEHOLDER = "clustore-lite push: renaming "  # + the row's id: unique, never committed


@dataclass
class Renames:
    """`moving`: the rows changing a unique name, in a safe order (parked ones last);
    `parked`: keys of those to park first; `rest`: the other rows, as they came."""

    moving: list = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    rest: list = field(default_factory=list)


def plan(conn: psycopg.Connection, table: str, rows: Sequence) -> Renames:
    """Sort `rows` (with .key and values by column index) of `table` for writing."""
    naturals = NATURAL_KEYS.get(table, [])
    if not naturals or not rows:
        return Renames(rest=list(rows))
    columns = list(TABLES[table].columns)
    wanted = {row.key: [tuple(row[columns.index(c)] for c in natural) for natural in naturals]
              for row in rows}
    current = _current(conn, table, naturals, list(wanted))
    moving = [row for row in rows if row.key in current and current[row.key] != wanted[row.key]]
    holders = [{names[n]: key for key, names in current.items()
                if key in wanted and None not in names[n]} for n in range(len(naturals))]
    waits = {row.key: {holders[n].get(names) for n, names in enumerate(wanted[row.key])}
             - {None, row.key} for row in moving}
    order = _topological(waits)
    by_key = {row.key: row for row in moving}
    ordered = set(order)
    parked = [row.key for row in moving if row.key not in ordered]
    moved = set(by_key)
    return Renames([by_key[k] for k in order + parked], parked,
                   [row for row in rows if row.key not in moved])


def _current(conn: psycopg.Connection, table: str, naturals: list[tuple[str, ...]],
             keys: list[str]) -> dict[str, list[tuple]]:
    """key -> the natural keys its row has in PostgreSQL now (as text), for the rows there."""
    names = ", ".join(f"{q(c)}::text" for natural in naturals for c in natural)
    found = {}
    for id, *values in conn.execute(
            f"SELECT id::text, {names} FROM public.{q(table)} WHERE id = ANY(%s::uuid[])", (keys,)):
        found[id], at = [], 0
        for natural in naturals:
            found[id].append(tuple(values[at:at + len(natural)]))
            at += len(natural)
    return found


def _topological(waits: dict[str, set[str]]) -> list[str]:
    """Keys in an order where each comes after those it waits for (keys that are not
    themselves waiting keys move no name: nothing to wait for); keys on a cycle or
    behind one are left out."""
    count, freed = {}, defaultdict(list)
    for key, before in waits.items():
        before = {k for k in before if k in waits}
        count[key] = len(before)
        for k in before:
            freed[k].append(key)
    ready = deque(key for key, n in count.items() if n == 0)
    order: list[str] = []
    while ready:
        key = ready.popleft()
        order.append(key)
        for other in freed[key]:
            count[other] -= 1
            if count[other] == 0:
                ready.append(other)
    return order


def park(conn: psycopg.Connection, table: str, keys: list[str]) -> None:
    """Give the rows of `keys` a placeholder for each unique text column, freeing their
    names (in the transaction that then writes their new ones)."""
    texts = {c for natural in NATURAL_KEYS.get(table, []) for c in natural
             if pg_type(table, c) == "text"}
    if keys and texts:
        sets = ", ".join(f"{q(c)} = %s || id::text" for c in sorted(texts))
        conn.execute(f"UPDATE public.{q(table)} SET {sets} WHERE id = ANY(%s::uuid[])",
                     [*(PLACEHOLDER for _ in texts), keys])
