"""The Hasura session variables a connection's writes record (SPEC section 5)."""

from __future__ import annotations

import json

from ..errors import InvalidValue

ADMIN_SESSION = {"x-hasura-role": "admin"}


class Session:
    """The Hasura session variables of one connection, as JSON text.

    The event triggers call the SQL function `clustore_session()`, which returns
    this JSON text, so every event records who made the change (SPEC section 5)."""

    def __init__(self, variables: dict | None = None):
        self.json = json.dumps(variables or ADMIN_SESSION)

    @property
    def variables(self) -> dict:
        return json.loads(self.json)


def check_session(variables: dict) -> dict:
    """Session variables as Hasura names them: lower-case `x-hasura-*` keys, string
    values, and a role."""
    if not isinstance(variables, dict):
        raise InvalidValue(f"session variables must be a dict, not {variables!r}")
    out = {}
    for key, value in variables.items():
        name = str(key).lower()
        if not name.startswith("x-hasura-") or not isinstance(value, str):
            raise InvalidValue(f"session variable {key!r} must be named x-hasura-... and "
                               f"hold a string, not {value!r}")
        out[name] = value
    if not out.get("x-hasura-role"):
        raise InvalidValue("session variables need an x-hasura-role")
    return out
