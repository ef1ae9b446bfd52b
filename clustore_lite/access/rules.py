"""What each role may write (SPEC section 4), checked before the write happens.
`Rules.authorize` answers the values to write (an organization's owner is its
creator, ...) or raises PermissionDenied, so that nothing changes.

A webhook written by any caller but the store admin must point where the store's
destination policy allows (access/destinations.py)."""

from __future__ import annotations

from dataclasses import replace

from ..catalog import ACCESS_OWNERS, FRAME_OWNERS, LEVELS, ROLES, q
from ..errors import PermissionDenied, a
from .destinations import WebhookPolicy
from .roles import Caller


class Rules:
    def __init__(self, caller: Caller, db, webhooks: WebhookPolicy | None = None):
        self.caller = caller
        self.db = db
        self.webhooks = webhooks or WebhookPolicy()

    def authorize(self, action: str, table: str, row: dict, changes: dict | None = None) -> dict:
        check = getattr(self, f"{action}_{table}", None)
        if check is None:
            raise PermissionDenied(f"only the store admin may {action} a {table}")
        result = check(row, changes or {}) if action == "update" else check(row)
        written = (changes or {}) if action == "update" else row
        if action in ("insert", "update") and written.get("webhook") is not None:
            self.webhooks.check_written(written["webhook"])
        return row if result is None else result

    def _need(self, table: str, id: str, role: str, doing: str) -> None:
        self.caller.require(self.db, table, id, role, doing)

    # -- inserts ----------------------------------------------------------------------

    def insert_organization(self, values: dict) -> dict:
        me = self.caller.require_user("creating an organization")
        if values.get("ownerId") not in (None, me):
            raise PermissionDenied("an organization you create is owned by you")
        return {**values, "ownerId": me}

    def _insert_in_organization(self, table: str, values: dict) -> dict:
        self._need("organization", values["organizationId"], "contributor", f"adding a {table}")
        if values.get("public") is not None:
            self._need("organization", values["organizationId"], "admin", "setting public")
        return values

    def insert_team(self, values: dict) -> dict:
        return self._insert_in_organization("team", values)

    def insert_dataset(self, values: dict) -> dict:
        return self._insert_in_organization("dataset", values)

    def insert_task(self, values: dict) -> dict:
        return self._insert_in_organization("task", values)

    def insert_team_member(self, values: dict) -> None:
        self._need("team", values["teamId"], "admin", "adding a member to a team")

    def insert_membership(self, values: dict) -> None:
        role = values["role"]
        if not (self.caller.user_id or self.caller.token_access):
            raise PermissionDenied("an anonymous caller invites nobody: a public role grants "
                                   "reading, not inviting")
        self._own_role(values["accessId"], role, f"inviting {a(role)}")
        if values.get("webhook") is not None or values.get("follow"):
            self._feed(values)

    def insert_tracking(self, values: dict) -> dict:
        """A tracking is the caller's, about what it may see: it reaches the webhooks
        of its organization and of the resource it names."""
        me = self.caller.require_user("recording a tracking")
        if values.get("userId") not in (None, me):
            raise PermissionDenied("a tracking you record is yours")
        if values.get("organizationId") is not None:
            self._need("organization", values["organizationId"], "guest",
                       "recording a tracking in an organization")
        resource = values.get("resource")
        if resource in ACCESS_OWNERS and values.get("resourceId") is not None:
            self._need(resource, values["resourceId"], "guest", f"recording a tracking of {a(resource)}")
        return {**values, "userId": me}

    def _own_role(self, access_id: str, role: str, doing: str) -> None:
        """Membership writes count the roles the caller holds itself: `public` lets
        everyone read a resource; it makes nobody someone who invites."""
        if replace(self.caller, public=False).level(self.db, "access", access_id) < LEVELS[role]:
            raise PermissionDenied(f"{doing} needs the {role} role on this access, held by you "
                                   "(a public role grants reading, not inviting)")

    def _feed(self, membership: dict) -> None:
        """A membership's webhook and follow send on what its user (a team's: its
        members) may read: set by that user, or by an admin of the access."""
        if membership.get("userId") is not None and membership["userId"] == self.caller.user_id:
            return
        self._own_role(membership["accessId"], "admin",
                       "setting the webhook or follow of another user's or a team's membership")

    # -- updates ----------------------------------------------------------------------

    def update_user(self, row: dict, changes: dict) -> None:
        """A user changes itself; its email only to one its sign-in proved (or none).
        The refusal is the same whoever holds the address: it tells nothing."""
        if row["id"] != self.caller.user_id:
            raise PermissionDenied("only a user may change their own name and email")
        email = changes.get("email")
        if email not in (None, row["email"], self.caller.proved_email):
            raise PermissionDenied("a user may set their email only to the address their "
                                   "sign-in proves (their JWT's email claim); the store admin "
                                   "sets any other")

    def update_access(self, row: dict, changes: dict) -> None:
        self._need("access", row["id"], "admin", "changing an access")

    def update_organization(self, row: dict, changes: dict) -> None:
        self._need("organization", row["id"], "admin", "changing an organization")

    def update_team(self, row: dict, changes: dict) -> None:
        self._need("team", row["id"], "admin", "changing a team")
        self._moving("team", row, changes)

    def update_dataset(self, row: dict, changes: dict) -> None:
        self._content_update("dataset", row, changes)

    def update_task(self, row: dict, changes: dict) -> None:
        self._content_update("task", row, changes)

    def _content_update(self, table: str, row: dict, changes: dict) -> None:
        """Contributors change content; moving or giving away needs admin."""
        structural = {"ownerId", "organizationId"} & set(changes)
        self._need(table, row["id"], "admin" if structural else "contributor", f"changing a {table}")
        self._moving(table, row, changes)

    def _moving(self, table: str, row: dict, changes: dict) -> None:
        target = changes.get("organizationId")
        if target and target != row["organizationId"]:
            self._need("organization", target, "contributor", f"moving a {table} there")

    def update_membership(self, row: dict, changes: dict) -> None:
        highest = max(LEVELS[row["role"]], LEVELS.get(changes.get("role"), 0))
        role = ROLES[highest - 1]
        self._own_role(row["accessId"], role, f"changing {a(role)} membership")
        if {"webhook", "follow"} & set(changes):
            self._feed(row)

    def update_dataframe(self, row: dict, changes: dict) -> None:
        self._on_owner(row["id"], "contributor", "changing a dataframe")

    # -- deletes ----------------------------------------------------------------------

    def delete_user(self, row: dict) -> None:
        if row["id"] != self.caller.user_id:
            raise PermissionDenied("only the store admin or the user may delete a user")

    def _delete_resource(self, table: str, row: dict) -> None:
        self._need(table, row["id"], "admin", f"deleting a {table}")

    def delete_organization(self, row: dict) -> None:
        self._delete_resource("organization", row)

    def delete_team(self, row: dict) -> None:
        self._delete_resource("team", row)

    def delete_dataset(self, row: dict) -> None:
        self._delete_resource("dataset", row)

    def delete_task(self, row: dict) -> None:
        self._delete_resource("task", row)

    def delete_team_member(self, row: dict) -> None:
        if row["userId"] != self.caller.user_id:
            self._need("team", row["teamId"], "admin", "removing a member from a team")

    def delete_membership(self, row: dict) -> None:
        if row.get("userId") is None or row["userId"] != self.caller.user_id:
            self._need("access", row["accessId"], "admin", "revoking a membership")

    def delete_dataframe(self, row: dict) -> None:
        self._on_owner(row["id"], "admin", "deleting a dataframe")

    # -- dataframes and tokens --------------------------------------------------------

    def append_dataframe(self, row: dict) -> None:
        self._on_owner(row["id"], "contributor", "appending chunks")

    def regenerate_access(self, row: dict) -> None:
        self._need("access", row["id"], "admin", "regenerating a token")

    def _on_owner(self, frame_id: str, role: str, doing: str) -> None:
        """Rights on a dataframe are rights on the dataset or task that holds it."""
        owner = self.db.execute(" UNION ALL ".join(
            f"SELECT '{table}', id FROM {q(table)} WHERE "
            + " OR ".join(f"{q(column)} = :f" for column in columns)
            for table, columns in FRAME_OWNERS.items()), {"f": frame_id}).fetchone()
        if owner is None:
            raise PermissionDenied(f"{doing} on a dataframe of no dataset or task needs the store admin")
        self._need(owner[0], owner[1], role, doing)
