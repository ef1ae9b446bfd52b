"""Who is calling the server, from its headers (SPEC section 4):

- the store admin: the admin secret in `X-Clustore-Admin-Secret` (or Hasura's
  `X-Hasura-Admin-Secret`), or any caller when no admin secret is configured (the
  embedded default, which only listens on 127.0.0.1) and no token narrows it;
- an authenticated user: a JWT (HS256, the server's JWT secret) in `X-Clusauth-Token`,
  `sub` a user id or `email` a user's email, the user created on first sight;
- the holder of a resource token in `X-Clusauth-Token`;
- anonymous: no token, with an admin secret configured.

Secrets come from flags or the environment, never from the store file."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

import jwt

from ..errors import ClustoreError, NotFound, PermissionDenied
from ..store import Store
from ..values import check_email, check_id

ADMIN_HEADERS = ("x-clustore-admin-secret", "x-hasura-admin-secret")
TOKEN_HEADER = "x-clusauth-token"


class AuthError(ClustoreError):
    """The request's credentials are wrong: answered with 401, nothing runs."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


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
        headers = {k.lower(): v for k, v in headers.items()}
        presented = next((headers[h] for h in ADMIN_HEADERS if h in headers), None)
        if presented is not None:
            if self.admin_secret is None or not hmac.compare_digest(presented, self.admin_secret):
                raise AuthError("access-denied", "invalid admin secret")
            return self.store
        token = headers.get(TOKEN_HEADER)
        if not token:
            return self.store if self.admin_secret is None else self.store.anonymous()
        if token.count(".") == 2:
            return self.store.as_user(self.user_of(token))
        try:
            return self.store.with_token(token)
        except PermissionDenied as error:
            raise AuthError("invalid-token", str(error)) from None

    def user_of(self, token: str) -> str:
        """The user id a JWT names, creating the user on first sight."""
        if self.jwt_secret is None:
            raise AuthError("invalid-jwt", "this server has no JWT secret configured")
        try:
            claims = jwt.decode(token, self.jwt_secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise AuthError("invalid-jwt", "the JWT has expired") from None
        except jwt.InvalidTokenError as error:
            raise AuthError("invalid-jwt", f"the JWT is not valid: {error}") from None
        name = claims.get("name")
        try:
            if claims.get("sub"):
                user_id = check_id(claims["sub"], "the JWT's sub")
                try:
                    return self.store.users.get(user_id)["id"]
                except NotFound:
                    return self.store.users.create(name or claims.get("email") or user_id,
                                                   email=claims.get("email"), id=user_id)["id"]
            if claims.get("email"):
                email = check_email(claims["email"])
                found = self.store.users.list(email=email)
                if found:
                    return found[0]["id"]
                return self.store.users.create(name or email.split("@")[0], email=email)["id"]
        except ClustoreError as error:
            raise AuthError("invalid-jwt", f"the JWT names no usable user: {error}") from None
        raise AuthError("invalid-jwt", "the JWT has neither sub nor email")
