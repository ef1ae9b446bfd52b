"""The access matrix of SPEC section 4, generated: every way of holding every role on
every kind of resource, with what each operation must then do. Shared by the
library and GraphQL tests, which must both agree with `expected`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from clustore_lite.catalog import LEVELS

KINDS = ("organization", "team", "dataset", "task")
ROLES = (None, "guest", "contributor", "admin")
GRANTS = ("membership", "team", "public", "token", "organization", "owner")
OPERATIONS = ("read", "list", "aggregate", "relationship", "read_access", "guestToken",
              "contributorToken", "adminToken", "invite_guest", "invite_contributor",
              "invite_admin", "update", "append", "delete")


@dataclass
class Case:
    kind: str
    grant: str
    role: str | None
    ids: dict = field(default_factory=dict)  # filled by setup

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.grant}-{self.role or 'none'}"


def cases() -> list[Case]:
    out = []
    for kind, grant, role in itertools.product(KINDS, GRANTS, ROLES):
        if grant == "owner" and (role != "admin" or kind == "team"):
            continue  # only organizations, datasets and tasks have owners; owning is admin
        if grant == "organization" and kind == "organization":
            continue
        if role is None and grant != "membership":
            continue  # one "no role at all" case per kind is enough
        out.append(Case(kind, grant, role))
    return out


def level(case: Case) -> int:
    return LEVELS.get(case.role, 0)


def expected(case: Case, operation: str) -> bool:
    """What SPEC section 4 says the caller may do."""
    held = level(case)
    needs = {
        "read": 1, "list": 1, "aggregate": 1, "relationship": 1, "read_access": 1,
        "guestToken": 1, "contributorToken": 2, "adminToken": 3,
        "invite_guest": 1, "invite_contributor": 2, "invite_admin": 3,
        # contributors change content; organizations and teams are changed by admins
        "update": 2 if case.kind in ("dataset", "task") else 3,
        "append": 2,
        "delete": 3,
    }[operation]
    if operation == "append" and case.kind not in ("dataset", "task"):
        return False  # datasets and tasks (their results) hold dataframes
    if operation.startswith("invite_") and case.grant == "public":
        return False  # a public role grants reading, not inviting (issue 12)
    return held >= needs


def setup(store, case: Case, caller_id: str) -> None:
    """Build an organization of its own for `case` and give the caller its role."""
    owner = store.users.create(f"owner-{case.name}")
    org = store.organizations.create(f"org-{case.name}",
                                     owner_id=caller_id if (case.grant, case.kind) == ("owner", "organization")
                                     else owner["id"])
    owner_of_target = caller_id if case.grant == "owner" else owner["id"]
    if case.kind == "organization":
        target = org
    elif case.kind == "team":
        target = store.teams.create(org["id"], "target")
    elif case.kind == "dataset":
        target = store.datasets.create(org["id"], "target", {"x": [1, 2]}, owner_id=owner_of_target)
    else:
        target = store.tasks.create(org["id"], "target", owner_id=owner_of_target,
                                    centroids={"c": [1.0]})
    access_id = target["accessId"]
    token = None
    if case.role is not None:
        if case.grant == "membership":
            store.memberships.create(access_id, case.role, user_id=caller_id)
        elif case.grant == "team":
            team = store.teams.create(org["id"], f"granting-{case.name}", members=[caller_id])
            store.memberships.create(access_id, case.role, team_id=team["id"])
        elif case.grant == "public":
            store.accesses.update(access_id, public=case.role)
        elif case.grant == "token":
            token = store.accesses.get(access_id)[f"{case.role}Token"]
        elif case.grant == "organization":
            store.memberships.create(org["accessId"], case.role, user_id=caller_id)
    invitee = store.users.create(f"invitee-{case.name}")
    case.ids = {"org": org["id"], "target": target["id"], "access": access_id, "token": token,
                "invitee": invitee["id"], "frame": target.get("dataframeId")}
