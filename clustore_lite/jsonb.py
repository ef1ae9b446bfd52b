"""PostgreSQL's jsonb semantics on JSON text, for the SQL functions of the filters
(db/sql_functions.py): SQLite keeps JSON as text, where `{"a": 2}` and `{"a":2}`
differ, but Hasura's clients expect jsonb's rules: equality by value (keys in any
order, 1 = 1.0), containment (@> and <@), key existence (? ?| ?&) and jsonb's
text form (`_cast: {String: ...}` compares the text PostgreSQL prints)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Callable

from .errors import InvalidValue


def parse(text: str | bytes) -> Any:
    """A JSON value as jsonb holds it: numbers exact (Decimal), the last of duplicate
    keys kept."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _render(value: Any, number: Callable[[Decimal], str]) -> str:
    if isinstance(value, dict):
        # jsonb keeps an object's keys shorter first, then by their bytes
        return "{" + ", ".join(f"{_string(k)}: {_render(value[k], number)}"
                               for k in _stored(value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(item, number) for item in value) + "]"
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, str):
        return _string(value)
    return json.dumps(value)  # true, false, null


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _printed(number: Decimal) -> str:
    """PostgreSQL's numeric output: the input's scale kept (1.50), no exponent."""
    return format(number.copy_abs() if number.is_zero() else number, "f")  # no -0


def _normal(number: Decimal) -> str:
    """One text for numerically equal numbers (1, 1.0, 1e0)."""
    return format(number.normalize(), "f") if number else "0"


def text(value: str | None) -> str | None:
    """jsonb's text (`value::text`): PostgreSQL's key order and spacing."""
    return None if value is None else _render(parse(value), _printed)


def key(value: str | None) -> str | None:
    """A text equal for equal jsonb values and different otherwise: _eq, _neq, _in
    and _nin compare these."""
    return None if value is None else _render(parse(value), _normal)


def contains(container: str | None, contained: str | None) -> int | None:
    """jsonb's `container @> contained`."""
    if container is None or contained is None:
        return None
    outer, inner = parse(container), parse(contained)
    if isinstance(outer, list) and not isinstance(inner, (list, dict)):
        inner = [inner]  # at the top level only, an array contains a scalar it holds
    return int(_contains(outer, inner))


def _contains(outer: Any, inner: Any) -> bool:
    if isinstance(outer, dict) and isinstance(inner, dict):
        return all(k in outer and _contains(outer[k], v) for k, v in inner.items())
    if isinstance(outer, list) and isinstance(inner, list):
        return all(any(_contains(o, i) for o in outer) for i in inner)
    if isinstance(outer, (dict, list)) or isinstance(inner, (dict, list)):
        return False
    return type(outer) is type(inner) and outer == inner


def has_key(value: str | None, name: str | None) -> int | None:
    """jsonb's `value ? name`: a key of an object, or a string of an array (or the
    string itself), at the top level."""
    if value is None or name is None:
        return None
    return int(name in _keys(parse(value)))


def has_keys(value: str | None, names: str | None, every: int) -> int | None:
    """jsonb's `?&` (every) or `?|` (any) with a JSON array of names."""
    if value is None or names is None:
        return None
    keys = _keys(parse(value))
    wanted = [n for n in json.loads(names)]
    return int((all if every else any)(n in keys for n in wanted))


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value)
    items = value if isinstance(value, list) else [value]
    return {item for item in items if isinstance(item, str)}


def compare(left: str | None, right: str | None) -> int | None:
    """jsonb's order (PostgreSQL's btree, for _gt & co.): -1, 0 or 1; NULL if either
    is NULL. Object > array > boolean > number > string > null; containers compare
    by size first, then item by item (an object's keys in jsonb's order). At the top
    level a scalar is a one-item array that sorts before the arrays of its size."""
    if left is None or right is None:
        return None
    a, b = parse(left), parse(right)
    if isinstance(a, dict) or isinstance(b, dict):
        return _compare(a, b)
    raw_a, raw_b = not isinstance(a, list), not isinstance(b, list)
    items_a, items_b = ([a] if raw_a else a), ([b] if raw_b else b)
    result = 0
    if raw_a != raw_b:
        result = -1 if raw_a else 1
    if len(items_a) != len(items_b):
        result = 1 if len(items_a) > len(items_b) else -1
    return result or _items(items_a, items_b)


def _rank(value: Any) -> int:
    if value is None:
        return 0
    return 3 if isinstance(value, bool) else 1 if isinstance(value, str) else \
        2 if isinstance(value, Decimal) else 4 if isinstance(value, list) else 5


def _compare(a: Any, b: Any) -> int:
    if _rank(a) != _rank(b):
        return 1 if _rank(a) > _rank(b) else -1
    if isinstance(a, (list, dict)) and len(a) != len(b):
        return 1 if len(a) > len(b) else -1
    if isinstance(a, list):
        return _items(a, b)
    if isinstance(a, dict):
        pairs = [(x, y) for ka, kb in zip(_stored(a), _stored(b))
                 for x, y in ((ka, kb), (a[ka], b[kb]))]
        return _items([x for x, _ in pairs], [y for _, y in pairs])
    if a is None:
        return 0
    return (a > b) - (a < b)  # strings as the C locale orders them: by code point


def _stored(value: dict) -> list[str]:
    """An object's keys in jsonb's order: shorter first, then by their bytes."""
    return sorted(value, key=lambda k: (len(k.encode()), k.encode()))


def _items(a: list, b: list) -> int:
    for x, y in zip(a, b):
        result = _compare(x, y)
        if result:
            return result
    return 0


PATH_STEP = re.compile(r"""\.?([^.\[\]"']+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\['([^']*)'\]""")


def sqlite_path(path: str) -> str:
    """Hasura's `path:` argument of a jsonb field (`$.a.b[0]`, `a["b c"]`, `a[0]`) as
    an SQLite JSON path; InvalidValue for one it cannot read."""
    rest, steps = path[1:] if path.startswith("$") else path, ["$"]
    while rest:
        match = PATH_STEP.match(rest)
        if not match or (match.group(1) and match.start(1) == 0 and len(steps) > 1):
            raise InvalidValue(f"invalid json path {path!r}: expected .key, [index] or "
                               f"[\"key\"] at {rest!r}")
        key, index, quoted, single = match.groups()
        if index is not None:
            steps.append(f"[{index}]")
        else:
            name = key if key is not None else single if single is not None else json.loads(f'"{quoted}"')
            steps.append("." + json.dumps(name))
        rest = rest[match.end():]
    return "".join(steps)
