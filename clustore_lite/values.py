"""Checking and converting values on their way into and out of the store."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from .catalog import BOOL, JSON, ROLES, Table, camel
from .errors import InvalidValue, UnstorableValue

MAX_NAME = 255
MAX_TEXT = 4096

ALGORITHM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "flow": str, "space": str, "innerSpace": str, "init": str,
    "iter": int, "iterPerData": int, "dataPerIter": int, "k": int, "kInit": int,
    "initK": int, "window": int, "numCPU": int, "frameSize": int,
    "iterFreq": (int, float), "dataFreq": (int, float), "mu": (int, float),
    "amp": (int, float), "timeout": (int, float), "parallel": bool,
}
ALGORITHM_INITS = ("random", "given", "kmeans_pp")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_id() -> str:
    return str(uuid.uuid4())


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_id(value: Any, what: str = "id") -> str:
    try:
        return str(uuid.UUID(str(value))) if not isinstance(value, bool) else _bad_id(value, what)
    except (ValueError, AttributeError, TypeError):
        return _bad_id(value, what)


def _bad_id(value: Any, what: str) -> str:
    raise InvalidValue(f"{what} must be a UUID, not {value!r}")


def check_name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{what} must be a non-empty string, not {value!r}")
    if len(value) > MAX_NAME:
        raise InvalidValue(f"{what} is {len(value)} characters long; at most {MAX_NAME} are allowed")
    return value


def check_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be a string, not {value!r}")
    if len(value) > MAX_TEXT:
        raise InvalidValue(f"{what} is {len(value)} characters long; at most {MAX_TEXT} are allowed")
    return value


def check_email(value: Any) -> str | None:
    if value is None:
        return None
    check_text(value, "email")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise InvalidValue(f"email must look like name@domain, not {value!r}")
    return value


def check_role(value: Any, what: str = "role", nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if value not in ROLES:
        raise InvalidValue(f"{what} must be one of admin, contributor or guest, not {value!r}")
    return value


def check_webhook(value: Any) -> str | None:
    if value is None:
        return None
    check_text(value, "webhook")
    try:
        url = urlparse(value)
        _ = url.port  # raises ValueError for a port that is not a number in range
    except ValueError:  # also a malformed [IPv6] host
        url = None
    # whitespace and control characters would be cut or mangled by an HTTP client
    if (url is None or url.scheme not in ("http", "https") or not url.hostname
            or re.search(r"[\s\x00-\x1f\x7f]", value)):
        raise InvalidValue(f"webhook must be an http(s) URL, not {value!r}")
    return value


def check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"{what} must be true or false, not {value!r}")
    return value


def check_json(value: Any, what: str, object_only: bool = False) -> Any:
    if object_only and not isinstance(value, dict):
        raise InvalidValue(f"{what} must be a JSON object, not {value!r}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidValue(f"{what} is not JSON: {error}") from None
    return value


def check_algorithm(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue(f"algorithm must be an object, not {value!r}")
    for key, field_value in value.items():
        expected = ALGORITHM_FIELDS.get(key)
        if expected is None:
            raise InvalidValue(
                f"algorithm has no field {key!r}; known fields: {', '.join(ALGORITHM_FIELDS)}")
        if field_value is None:
            continue
        wrong_bool = isinstance(field_value, bool) and expected is not bool
        if wrong_bool or not isinstance(field_value, expected):
            names = expected.__name__ if isinstance(expected, type) else "number"
            raise InvalidValue(f"algorithm.{key} must be a {names}, not {field_value!r}")
    if value.get("init") is not None and value["init"] not in ALGORITHM_INITS:
        raise InvalidValue(f"algorithm.init must be one of {', '.join(ALGORITHM_INITS)}, "
                           f"not {value['init']!r}")
    return value


def to_sql(table: Table, values: dict) -> dict:
    """Python values to SQLite values (JSON as text, booleans as 0/1). Every write of
    the model passes here: values PostgreSQL cannot store are refused here."""
    out = {}
    for column, value in values.items():
        kind = table.columns[column]
        if kind == JSON and value is not None:
            value = json.dumps(value, allow_nan=False)
        elif kind == BOOL and value is not None:
            value = int(value)
        if stored_nul(kind, value):
            raise UnstorableValue(
                f"{table.name}.{column} contains the NUL character (\\x00, \\u0000 in JSON), "
                "which PostgreSQL cannot store (so neither Hasura nor the mirror could): "
                "remove it")
        out[column] = value
    return out


def stored_nul(kind: str, value: Any) -> bool:
    """Whether a value as SQLite holds it (JSON as text) has a NUL character, which
    PostgreSQL refuses in text (0x00) and in jsonb (\\u0000)."""
    if not isinstance(value, str):
        return False
    if kind != JSON or "\x00" in value:
        return "\x00" in value
    if "\\u0000" not in value:  # json.dumps writes a NUL so; cheap to rule out
        return False
    try:  # the text may instead hold an escaped backslash then "u0000"
        return _holds_nul(json.loads(value))
    except (ValueError, RecursionError):
        return True


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(x) for k, x in value.items())
    if isinstance(value, list):
        return any(_holds_nul(x) for x in value)
    return False


class Record(dict):
    """A row: a dict keyed by column name, whose keys are also attributes in
    camelCase or snake_case (`row.ownerId == row.owner_id == row["ownerId"]`)."""

    def __getattr__(self, name: str) -> Any:
        for key in (name, camel(name)):
            if key in self:
                return self[key]
        raise AttributeError(name)


def from_sql(table: Table, row: dict) -> Record:
    out = Record()
    for column, value in row.items():
        if column in table.hidden:
            continue
        kind = table.columns.get(column)
        if kind == JSON and value is not None:
            value = json.loads(value)
        elif kind == BOOL and value is not None:
            value = bool(value)
        out[column] = value
    return out
