"""Users, accesses, organizations, teams and memberships as Python collections, with
the uniqueness and cascade rules of SPEC section 1."""

from __future__ import annotations

from .. import values as v
from ..catalog import TOKEN_COLUMNS, camel
from ..errors import InvalidValue, NotFound
from .base import Collection, OwnsAccess, reference


class Users(Collection):
    """Users. An email is proved when the store admin set it or a JWT's email claim
    carried it (`emailVerified`, hidden); only a proved email identifies its holder to a
    JWT that carries only an email, and proving an address takes it from an unproved
    holder (README "Identities, sessions and impersonation")."""

    table_name = "user"
    settable = {"name": v.check_name, "email": v.check_email}

    def create(self, name: str, email: str | None = None, id: str | None = None) -> v.Record:
        values = self.checked({"name": name, "email": email})
        if id is not None:
            values["id"] = v.check_id(id)
        with self.store.transaction():
            values = self.store.authorize("insert", "user", values)
            self._prove(values)
            return self.insert(values, authorize=False)

    def update(self, id: str, **changes) -> v.Record:
        values = self.checked(changes)
        with self.store.transaction():
            row = self.get(id)
            self.store.authorize("update", "user", row, values)
            self._prove(values, row["id"])
            self.write_update(id, values)
            return self.get(id)

    def _prove(self, values: dict, user_id: str | None = None) -> None:
        """Mark an email the caller proves (the store admin proves any) and take it from a
        holder that never proved it; an unchanged one (all else the rules let a user
        write) stays as proved as it was."""
        if "email" not in values:
            return
        email, caller = values["email"], self.store.caller
        if email is None:
            values["emailVerified"] = False
        elif caller is None or caller.proved_email == email:
            values["emailVerified"] = True
            self.db.execute('UPDATE "user" SET email = NULL, emailVerified = 0, updatedAt = ? '
                            "WHERE email = ? AND NOT emailVerified AND id IS NOT ?",
                            (v.now(), email, user_id))

    def holder(self, email: str) -> tuple[str, bool] | None:
        """(id, proved) of the user holding `email`, whoever may see it: for the
        authenticator, which maps a JWT's email claim to a user."""
        found = self.db.execute('SELECT id, emailVerified FROM "user" WHERE email = ?',
                                (v.check_email(email),)).fetchone()
        return None if found is None else (found[0], bool(found[1]))


class Accesses(Collection):
    table_name = "access"
    settable = {"public": lambda r: v.check_role(r, "public", nullable=True),
                "webhook": v.check_webhook}

    def create(self, public: str | None = None, webhook: str | None = None,
               authorize: bool = True, id: str | None = None) -> v.Record:
        values = self.with_id(self.checked({"public": public, "webhook": webhook}), id)
        tokens = {column: v.new_token() for column in TOKEN_COLUMNS.values()}
        return self.insert({**values, **tokens}, authorize)

    def regenerate_token(self, id: str, role: str) -> v.Record:
        """Replace the access's token for `role`; the old one stops working at once."""
        column = TOKEN_COLUMNS[v.check_role(role)]
        with self.store.transaction():
            self.store.authorize("regenerate", "access", self.get(id))
            self.write_update(id, {column: v.new_token()})
            return self.get(id)


class Organizations(OwnsAccess):
    table_name = "organization"
    settable = {"name": v.check_name, "ownerId": reference("ownerId")}
    references = {"ownerId": "user"}

    def create(self, name: str, owner_id: str | None = None, public: str | None = None,
               webhook: str | None = None, id: str | None = None) -> v.Record:
        values = self.with_id(self.checked({"name": name, "ownerId": owner_id}), id)
        return self.insert_with_access(values, public, webhook)


class Teams(OwnsAccess):
    table_name = "team"
    settable = {"name": v.check_name, "organizationId": lambda i: v.check_id(i, "organizationId")}
    references = {"organizationId": "organization"}

    def create(self, organization_id: str, name: str, members: list[str] = (),
               public: str | None = None, webhook: str | None = None,
               id: str | None = None) -> v.Record:
        values = self.with_id(self.checked({"name": name, "organizationId": organization_id}), id)
        with self.store.transaction():
            team = self.insert_with_access(values, public, webhook)
            for user_id in members:
                self.store.team_members.create(team["id"], user_id)
            return team

    def add_member(self, team_id: str, user_id: str) -> v.Record:
        return self.store.team_members.create(team_id, user_id)

    def remove_member(self, team_id: str, user_id: str) -> v.Record:
        return self.store.team_members.delete(team_id, user_id)

    def members(self, team_id: str) -> list[v.Record]:
        return self.store.users.list(where={"teams": {"id": {"_eq": v.check_id(team_id)}}})


class TeamMembers(Collection):
    table_name = "team_member"
    settable = {"teamId": lambda i: v.check_id(i, "teamId"),
                "userId": lambda i: v.check_id(i, "userId")}
    references = {"teamId": "team", "userId": "user"}

    def create(self, team_id: str, user_id: str) -> v.Record:
        values = self.checked({"teamId": team_id, "userId": user_id})
        stamp = v.now()
        with self.store.transaction():
            self.store.authorize("insert", "team_member", values)
            self._run('INSERT INTO team_member (teamId, userId, createdAt, updatedAt) '
                      'VALUES (?, ?, ?, ?)', [values["teamId"], values["userId"], stamp, stamp],
                      {"userId": user_id})
            return self.get(team_id, user_id)

    def get(self, team_id: str, user_id: str) -> v.Record:  # type: ignore[override]
        rows = self.list(teamId=v.check_id(team_id), userId=v.check_id(user_id))
        if not rows:
            raise NotFound(f"user {user_id} is not a member of team {team_id}")
        return rows[0]

    def delete(self, team_id: str, user_id: str) -> v.Record:  # type: ignore[override]
        with self.store.transaction():
            row = self.get(team_id, user_id)
            self.store.authorize("delete", "team_member", row)
            self.db.execute("DELETE FROM team_member WHERE teamId = ? AND userId = ?",
                            (row["teamId"], row["userId"]))
            return row

    def update(self, *args, **kwargs):
        raise InvalidValue("a team membership has nothing to update: delete and create it")


class Memberships(Collection):
    table_name = "membership"
    settable = {"accessId": lambda i: v.check_id(i, "accessId"), "userId": reference("userId"),
                "teamId": reference("teamId"), "role": v.check_role, "webhook": v.check_webhook,
                "follow": lambda f: v.check_bool(f, "follow")}
    references = {"accessId": "access", "userId": "user", "teamId": "team"}

    def create(self, access_id: str, role: str, user_id: str | None = None,
               team_id: str | None = None, webhook: str | None = None,
               follow: bool = False, id: str | None = None) -> v.Record:
        if (user_id is None) == (team_id is None):
            raise InvalidValue("a membership names exactly one of user_id or team_id")
        values = self.checked({"accessId": access_id, "role": role, "userId": user_id,
                               "teamId": team_id, "webhook": webhook, "follow": follow})
        return self.insert(self.with_id(values, id))

    def update(self, id: str, **changes) -> v.Record:
        if {camel(k) for k in changes} & {"accessId", "userId", "teamId"}:
            raise InvalidValue("a membership's access, user and team cannot change: "
                               "delete it and create another")
        return super().update(id, **changes)
