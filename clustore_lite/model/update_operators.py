"""Hasura's update operators (`_set _inc _append _prepend _delete_key _delete_elem
_delete_at_path`) turned into the new values of one row, with PostgreSQL's semantics
(`+`, jsonb `||`, `-` text, `-` int, `#-` text[]), so that a client written against
Hasura on PostgreSQL gets the same rows here. The values computed then go through the
collection's ordinary update: same checks, access rules and events."""

from __future__ import annotations

import copy
from typing import Any

from ..catalog import INT, JSON, REAL, Table
from ..errors import InvalidValue

OPERATORS = ("_set", "_inc", "_append", "_prepend", "_delete_key", "_delete_elem",
             "_delete_at_path")
KINDS = {"_inc": (INT, REAL), "_append": (JSON,), "_prepend": (JSON,), "_delete_key": (JSON,),
         "_delete_elem": (JSON,), "_delete_at_path": (JSON,)}  # the columns each one takes


def given(operators: dict) -> dict:
    """The operators that name at least one column (`_set: {}` names none)."""
    return {op: dict(columns) for op, columns in operators.items()
            if op in OPERATORS and columns}


def check(table: Table, operators: dict) -> None:
    """Refuse a column named by two operators (Hasura: 'column found in multiple
    operators') or an operator on a column of another kind."""
    seen: dict[str, str] = {}
    for op, columns in given(operators).items():
        for column in columns:
            if column in seen:
                raise InvalidValue(f'column found in multiple operators; "{column}" in '
                                   f"{seen[column]}, {op} operators")
            seen[column] = op
            kind = table.columns.get(column)
            if op in KINDS and kind not in KINDS[op]:
                raise InvalidValue(f"{op} does not apply to {table.name}.{column}")


def changes(table: Table, row: dict, operators: dict) -> dict:
    """The new values of the columns the operators name, from the row as it is."""
    if not given(operators):
        raise InvalidValue(f"at least any one of {', '.join(OPERATORS)} is expected")
    check(table, operators)
    out: dict[str, Any] = {}
    for op, columns in given(operators).items():
        for column, argument in columns.items():
            out[column] = argument if op == "_set" else APPLY[op](row.get(column), argument)
    return out


def inc(value: Any, by: Any) -> Any:
    """`column + by`; NULL stays NULL as in SQL."""
    if isinstance(by, bool) or not isinstance(by, (int, float)):
        raise InvalidValue(f"_inc takes a number, not {by!r}")
    return None if value is None else value + by


def concat(left: Any, right: Any) -> Any:
    """PostgreSQL's jsonb `left || right`: two objects merge (the right wins); otherwise
    each side that is not an array counts as a one-element array."""
    if isinstance(left, dict) and isinstance(right, dict):
        return {**left, **right}
    return _as_array(left) + _as_array(right)


def _as_array(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def append(value: Any, argument: Any) -> Any:
    return None if value is None else concat(value, argument)


def prepend(value: Any, argument: Any) -> Any:
    return None if value is None else concat(argument, value)


def delete_key(value: Any, key: Any) -> Any:
    """jsonb `- text`: drop the key of an object, or the string elements equal to it
    of an array."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [item for item in value if item != key or not isinstance(item, str)]
    raise InvalidValue("cannot delete from scalar")


def delete_elem(value: Any, index: Any) -> Any:
    """jsonb `- int`: drop the array element at `index` (negative counts from the end)."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidValue(f"_delete_elem takes an integer index, not {index!r}")
    if value is None:
        return None
    if isinstance(value, dict):
        raise InvalidValue("cannot delete from object using integer index")
    if not isinstance(value, list):
        raise InvalidValue("cannot delete from scalar")
    position = index + len(value) if index < 0 else index
    return [item for i, item in enumerate(value) if i != position]


def delete_at_path(value: Any, path: Any) -> Any:
    """jsonb `#- text[]`: drop what the path names (array steps are integers); a path
    that names nothing changes nothing."""
    if not isinstance(path, list) or not all(isinstance(step, str) for step in path):
        raise InvalidValue(f"_delete_at_path takes a list of strings, not {path!r}")
    if value is None:
        return None
    if not isinstance(value, (dict, list)):
        raise InvalidValue("cannot delete path in scalar")
    if not path or not value:  # PostgreSQL looks at no step of an empty container
        return value
    out = copy.deepcopy(value)
    _drop(out, path, 1)
    return out


def _drop(node: Any, path: list[str], position: int) -> None:
    step, last = path[0], len(path) == 1
    if isinstance(node, dict):
        if step not in node:
            return
        if last:
            del node[step]
        else:
            _drop(node[step], path[1:], position + 1)
        return
    if not isinstance(node, list):
        return  # PostgreSQL leaves a scalar met along the path as it is
    try:
        index = int(step)
    except ValueError:
        raise InvalidValue(f'path element at position {position} is not an integer: '
                           f'"{step}"') from None
    index = index + len(node) if index < 0 else index
    if 0 <= index < len(node):
        if last:
            del node[index]
        else:
            _drop(node[index], path[1:], position + 1)


APPLY = {"_inc": inc, "_append": append, "_prepend": prepend, "_delete_key": delete_key,
         "_delete_elem": delete_elem, "_delete_at_path": delete_at_path}
