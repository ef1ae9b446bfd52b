"""Who is calling the server, from its headers (SPEC section 4):

- the store admin: the admin secret in `X-Clustore-Admin-Secret` (or Hasura's
  `X-Hasura-Admin-Secret`), or any caller when no admin secret is configured (the
  embedded default, which only listens on 127.0.0.1) and no token narrows it;
- an authenticated user: a JWT (HS256, the server's JWT secret) in `X-Clusauth-Token`,
  `sub` a user id or `email` a user's proved email, the user created on first sight;
- the holder of a resource token in `X-Clusauth-Token`;
- anonymous: no token, with an admin secret configured.

The store admin may act as someone else with Hasura's `X-Hasura-Role` (`admin`, `user`
with `X-Hasura-User-Id`, `anonymous`); anyone else may only restate who it is.

Secrets come from flags or the environment, never from the store file."""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass

import jwt

from ..errors import ClustoreError, InvalidValue, NotFound, PermissionDenied
from ..store import Store
from ..values import check_email, check_id

ADMIN_HEADERS = ("x-clustore-admin-secret", "x-hasura-admin-secret")
TOKEN_HEADER = "x-clusauth-token"
ROLE_HEADER, USER_HEADER = "x-hasura-role", "x-hasura-user-id"
HASURA_ROLES = ("admin", "user", "anonymous")


class AuthError(ClustoreError):
    """The request's credentials are wrong (401) or its session headers make no
    sense (400): answered at once, nothing runs."""

    def __init__(self, code: str, message: str, status: int = 401):
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Identity:
    """Who a request is: the view of the store it gets, and until when its
    credentials hold (a JWT's `exp`; a resource token holds until regenerated)."""

    store: Store
    expires: float | None = None

    @property
    def can_lapse(self) -> bool:
        caller = self.store.caller
        return self.expires is not None or (caller is not None and caller.token is not None)

    @property
    def role(self) -> str:
        """Hasura's name for it: admin, user or anonymous (a token's holder)."""
        caller = self.store.caller
        return "admin" if caller is None else "user" if caller.user_id else "anonymous"


@dataclass
class Authenticator:
    store: Store
    admin_secret: str | None = None
    jwt_secret: str | None = None

    @classmethod
    def from_environment(cls, store: Store, admin_secret=None, jwt_secret=None) -> "Authenticator":
        return cls(store, admin_secret or os.environ.get("CLUSTORE_ADMIN_SECRET") or None,
                   jwt_secret or os.environ.get("CLUSTORE_JWT_SECRET") or None)

    def store_for(self, headers) -> Store:
        """The view of the store this caller gets (the store itself for the admin)."""
        return self.identify(headers).store

    def identify(self, headers) -> Identity:
        """Who the headers name. Headers may come from a WebSocket's connection_init
        payload, which is any JSON: names and values must be strings."""
        for name, value in headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise AuthError("invalid-headers", f"header {name!r} must have a string name "
                                f"and value, not {type(value).__name__}", status=400)
        headers = {k.lower(): v for k, v in headers.items()}
        return self._session(self._credentials(headers), headers)

    def lapsed(self, identity: Identity) -> str | None:
        """Why credentials accepted earlier no longer hold (an open WebSocket's), or
        None: a JWT past its `exp`, a resource token regenerated or its access gone."""
        if identity.expires is not None and time.time() >= identity.expires:
            return "the JWT has expired"
        caller = identity.store.caller
        if caller is not None and caller.token is not None and \
                self.store.token_holder(caller.token) != (caller.token_access, caller.token_role):
            return "this token is no longer a token of its access (regenerated or deleted)"
        return None

    # -- credentials ----------------------------------------------------------------------

    def _credentials(self, headers: dict) -> Identity:
        presented = next((headers[h] for h in ADMIN_HEADERS if h in headers), None)
        if presented is not None:
            if self.admin_secret is None or not hmac.compare_digest(
                    presented.encode("utf-8", "surrogateescape"),
                    self.admin_secret.encode("utf-8", "surrogateescape")):
                raise AuthError("access-denied", "invalid admin secret")
            return Identity(self.store)
        token = headers.get(TOKEN_HEADER)
        if not token:
            return Identity(self.store if self.admin_secret is None else self.store.anonymous())
        if token.count(".") == 2:
            claims = self._claims(token)
            user_id = self.user_of(claims)
            email = check_email(claims["email"]) if claims.get("email") else None
            return Identity(self.store.as_user(user_id, proved_email=email),
                            float(claims["exp"]) if claims.get("exp") is not None else None)
        try:
            return Identity(self.store.with_token(token))
        except PermissionDenied as error:
            raise AuthError("invalid-token", str(error)) from None

    def _claims(self, token: str) -> dict:
        if self.jwt_secret is None:
            raise AuthError("invalid-jwt", "this server has no JWT secret configured")
        try:
            return jwt.decode(token, self.jwt_secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise AuthError("invalid-jwt", "the JWT has expired") from None
        except jwt.InvalidTokenError as error:
            raise AuthError("invalid-jwt", f"the JWT is not valid: {error}") from None

    def user_of(self, claims: dict) -> str:
        """The user id a JWT's claims name, creating the user on first sight. An email
        claim alone names the holder of that email only if it was proved."""
        try:
            if claims.get("sub"):
                return self._user_by_id(check_id(claims["sub"], "the JWT's sub"), claims)
            if claims.get("email"):
                return self._user_by_email(check_email(claims["email"]), claims)
        except ClustoreError as error:
            raise AuthError("invalid-jwt", f"the JWT names no usable user: {error}") from None
        raise AuthError("invalid-jwt", "the JWT has neither sub nor email")

    def _user_by_id(self, user_id: str, claims: dict) -> str:
        try:
            return self.store.users.get(user_id)["id"]
        except NotFound:
            email = claims.get("email")
            held = self.store.users.holder(email) if email else None
            if held is not None and held[1]:
                email = None  # another user proved it: this one starts without an email
            return self.store.users.create(claims.get("name") or email or user_id,
                                           email=email, id=user_id)["id"]

    def _user_by_email(self, email: str, claims: dict) -> str:
        held = self.store.users.holder(email)
        if held is not None and held[1]:
            return held[0]
        # first sight of this proved address; an unproved holder gives it up (Users._prove)
        return self.store.users.create(claims.get("name") or email.split("@")[0], email=email)["id"]

    # -- Hasura's session headers ------------------------------------------------------

    def _session(self, identity: Identity, headers: dict) -> Identity:
        """Apply `X-Hasura-Role`/`X-Hasura-User-Id`: the store admin may become any
        role (Hasura's impersonation); anyone else may only restate its own."""
        role, user_id = headers.get(ROLE_HEADER), headers.get(USER_HEADER)
        if role is None and user_id is None:
            return identity
        if role is not None and role not in HASURA_ROLES:
            raise AuthError("invalid-headers", f"unknown x-hasura-role {role!r}: this server's "
                            f"roles are {', '.join(HASURA_ROLES)}", status=400)
        if identity.role != "admin":
            own = identity.store.caller.user_id
            if (role or identity.role) != identity.role or (user_id is not None and user_id != own):
                raise AuthError("access-denied", "x-hasura-role and x-hasura-user-id need the admin "
                                "secret: without it a request acts as its credentials say")
            return identity
        if role == "anonymous":
            return Identity(self.store.anonymous())
        if role != "user":
            return identity  # the admin, as Hasura: x-hasura-user-id alone changes nothing
        if user_id is None:
            raise AuthError("invalid-headers", 'x-hasura-role "user" needs an x-hasura-user-id',
                            status=400)
        try:
            return Identity(self.store.as_user(check_id(user_id, "x-hasura-user-id")))
        except InvalidValue as error:
            raise AuthError("invalid-headers", str(error), status=400) from None
        except NotFound:
            raise AuthError("invalid-headers", "x-hasura-user-id names no user of this store",
                            status=400) from None
