"""Who may receive an event: the rule "an event reaches a recipient only if that
recipient may read the row" (SPEC section 4), asked of the one visibility layer
(`Caller.visibility` and `Caller.column_sql` through `Compiler.rows`) when a delivery
is about to be sent.

- The webhook of the row's access or of its organization's access was set by an admin
  of that resource: it receives the resource's events (`followers` is None).
- A following membership's webhook receives an event only if its user (for a team's
  membership: every member of the team, and the team has one) may read every row image
  the event carries (`new`, and `old`: an UPDATE needs both), judged against the store
  as it is when the delivery is sent, so a revoked member gets nothing more. The
  columns masked for that reader are left out of the payload.

When several following memberships set the same URL, one that may read suffices (the
URL is that member's); the view of the one who may see most is sent."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..catalog import TABLES, q
from ..query import Compiler
from .roles import Caller

WITHHELD = "withheld: no following member may read this row"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    hidden: frozenset[str] = frozenset()  # columns to leave out of old and new


def hidden_columns(db, user_id: str, table: str, image: str) -> set[str] | None:
    """The columns of the row `image` (JSON text) that `user_id` may not read, or None
    when it may not read the row at all."""
    caller, schema = Caller(user_id=user_id), TABLES[table]
    c = Compiler(caller.visibility)
    rows = c.rows(schema, image=image)
    shown = [column for column in json.loads(image) if column in schema.columns]
    masked = [f"({caller.column_sql(c, schema, rows.alias, column)}) IS NULL AND "
              f"{rows.alias}.{q(column)} IS NOT NULL" for column in shown]
    found = db.execute(rows.select(", ".join(masked) or "0"), c.params).fetchone()
    if found is None:
        return None
    return {column for column, hidden in zip(shown, found) if hidden}


def _readers(db, user_id: str | None, team_id: str | None) -> list[str]:
    if user_id:
        return [user_id]
    return [row[0] for row in db.execute("SELECT userId FROM team_member WHERE teamId = ?",
                                         (team_id,))]


def judge(db, table: str, images: list[str], followers: str | None) -> Verdict:
    """May the delivery go, and without which columns. `followers` is the delivery's
    JSON list of [userId, teamId], or None for an access's own webhook."""
    if followers is None:
        return Verdict(True)
    best: set[str] | None = None
    for user_id, team_id in json.loads(followers):
        readers = _readers(db, user_id, team_id)
        hidden: set[str] | None = set() if readers else None
        for reader in readers:
            for image in images:
                seen = hidden_columns(db, reader, table, image)
                if seen is None:
                    hidden = None
                    break
                hidden |= seen
            if hidden is None:
                break
        if hidden is not None and (best is None or len(hidden) < len(best)):
            best = hidden
    return Verdict(False) if best is None else Verdict(True, frozenset(best))
