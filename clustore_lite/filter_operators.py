"""SQL for Hasura's operators that SQLite has no operator for, with PostgreSQL's
semantics through the functions of db/sql_functions.py: text patterns
(_similar, _regex & co.) and jsonb (equality by value, _contains, _has_key & co.).
query.py calls `compile_operator` for them; the one builder of rows stays there."""

from __future__ import annotations

import itertools
import json
from typing import Any, Callable

from .catalog import JSON, TEXT
from .errors import InvalidValue
from .patterns import compiled

# op -> (SIMILAR TO?, case-insensitive?, negated?)
PATTERN_OPERATORS = {
    "_similar": (True, False, False), "_nsimilar": (True, False, True),
    "_regex": (False, False, False), "_nregex": (False, False, True),
    "_iregex": (False, True, False), "_niregex": (False, True, True),
}
JSONB_OPERATORS = ("_contains", "_contained_in", "_has_key", "_has_keys_any", "_has_keys_all")
OPERATORS = (*PATTERN_OPERATORS, *JSONB_OPERATORS)
Bind = Callable[[Any], str]
_BUDGETS = itertools.count(1)


def new_budget() -> int:
    """A number for one statement's budget of matching time (patterns.BUDGETS)."""
    return next(_BUDGETS)


def jsonb_key(sql: str) -> str:
    """SQL comparing equal for equal jsonb values (`{"a": 2}` = `{"a":2}`)."""
    return f"clustore_jsonb_key({sql})"


def jsonb_value(bind: Bind, value: Any) -> str:
    return jsonb_key(bind(json.dumps(value)))


def jsonb_order(bind: Bind, ref: str, comparison: str, value: Any) -> str:
    """SQL for `ref <comparison> value` in jsonb's order (_gt, _gte, _lt, _lte)."""
    return f"clustore_jsonb_compare({ref}, {bind(json.dumps(value))}) {comparison} 0"


def jsonb_text(sql: str) -> str:
    """SQL for jsonb's text (`value::text`), which `_cast: {String: ...}` compares."""
    return f"clustore_jsonb_text({sql})"


def compile_operator(bind: Bind, kind: str, ref: str, op: str, value: Any, what: str,
                     budget: int) -> str:
    """SQL for one of OPERATORS on `ref` (a column of `kind`, named `what` in errors);
    patterns spend the statement's `budget` of matching time."""
    if op in PATTERN_OPERATORS:
        if kind != TEXT:
            raise InvalidValue(f"{op} applies to text, and {what} is not text")
        if not isinstance(value, str):
            raise InvalidValue(f"{op} on {what} takes a pattern (a string), not {value!r}")
        similar, ignore_case, negated = PATTERN_OPERATORS[op]
        compiled(value, similar, ignore_case)  # a bad pattern is refused before it runs
        test = (f"clustore_matches({ref}, {bind(value)}, {int(similar)}, {int(ignore_case)}, "
                f"{bind(budget)})")
        return f"NOT {test}" if negated else test
    if kind != JSON:
        raise InvalidValue(f"{op} applies to jsonb, and {what} is not jsonb")
    if op in ("_contains", "_contained_in"):
        other = bind(json.dumps(value))
        pair = (ref, other) if op == "_contains" else (other, ref)
        return f"clustore_jsonb_contains({pair[0]}, {pair[1]})"
    if op == "_has_key":
        if not isinstance(value, str):
            raise InvalidValue(f"_has_key on {what} takes a key (a string), not {value!r}")
        return f"clustore_jsonb_has_key({ref}, {bind(value)})"
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise InvalidValue(f"{op} on {what} takes a list of keys (strings), not {value!r}")
    return f"clustore_jsonb_has_keys({ref}, {bind(json.dumps(value))}, {int(op == '_has_keys_all')})"
