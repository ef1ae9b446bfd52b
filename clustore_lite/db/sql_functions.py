"""The SQL functions the compiled filters call (query.py), defined on every
connection: PostgreSQL's text patterns (patterns.py) and jsonb semantics (jsonb.py),
which SQLite has no operators for."""

from __future__ import annotations

from typing import Callable

from .. import jsonb, patterns

# SQL name -> (function, number of arguments)
SQL_FUNCTIONS: dict[str, tuple[Callable, int]] = {
    "clustore_matches": (patterns.matches, 5),  # (text, pattern, similar, ignore_case, budget)
    "clustore_jsonb_key": (jsonb.key, 1),  # jsonb equality: equal values, equal keys
    "clustore_jsonb_text": (jsonb.text, 1),  # value::text
    "clustore_jsonb_compare": (jsonb.compare, 2),  # jsonb's order: -1, 0, 1
    "clustore_jsonb_contains": (jsonb.contains, 2),  # a @> b
    "clustore_jsonb_has_key": (jsonb.has_key, 2),  # a ? key
    "clustore_jsonb_has_keys": (jsonb.has_keys, 3),  # a ?& keys (every=1), a ?| keys
}
