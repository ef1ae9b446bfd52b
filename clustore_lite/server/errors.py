"""The JSON error answers of the server's routes: `{"error": message, "code": code}`
for the plain HTTP routes (the Arrow endpoints, the guard), GraphQL's shape for
/v1/graphql; and the answer to SQLite's errors that escape a route (a damaged file
found while authenticating, say)."""

from __future__ import annotations

import logging

import apsw
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..access.http import AuthError
from ..db.sqlite_errors import CORRUPTION, translated
from ..errors import ClustoreError, NotFound, PermissionDenied

STATUS = {NotFound: 404, PermissionDenied: 403, AuthError: 401}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def store_error_response(error: ClustoreError) -> JSONResponse:
    status = getattr(error, "status", None) or \
        next((code for cls, code in STATUS.items() if isinstance(error, cls)), 400)
    return error_response(status, error.code, str(error))


def graphql_error_body(code: str, message: str, path: str = "$") -> dict:
    """One error of a GraphQL request as a whole, in Hasura's shape."""
    return {"errors": [{"message": message, "extensions": {"path": path, "code": code}}]}


def graphql_error_response(code: str, message: str, status: int = 200) -> JSONResponse:
    """A GraphQL request refused as a whole: 200 as Hasura answers every GraphQL error
    (credentials, a body not JSON, a damaged file), or the status of a refusal by the
    transport itself (413, 415, 429)."""
    return JSONResponse(graphql_error_body(code, message), status_code=status)


def sqlite_error_response(request: Request, error: apsw.Error) -> JSONResponse:
    """A damaged file is answered as such (GraphQL's shape on /v1/graphql), never as a 500."""
    ours = translated(error)
    logging.getLogger("clustore_lite.server").error("%s %s: %s", request.method,
                                                    request.url.path, error)
    if request.url.path.startswith("/v1/graphql"):
        return graphql_error_response(ours.code, str(ours))
    return error_response(409, ours.code, str(ours))


EXCEPTION_HANDLERS = {cls: sqlite_error_response for cls in CORRUPTION}
