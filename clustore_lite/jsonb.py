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
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{_string(k)}: {_render(value[k], number)}" for k in keys) + "}"
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
