"""The JSON error answers of the server's routes: `{"error": message, "code": code}`
for the plain HTTP routes (the Arrow endpoints, the guard), GraphQL's shape for
/v1/graphql."""

from __future__ import annotations

from starlette.responses import JSONResponse

from ..access.http import AuthError
from ..errors import ClustoreError, NotFound, PermissionDenied

STATUS = {NotFound: 404, PermissionDenied: 403, AuthError: 401}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def store_error_response(error: ClustoreError) -> JSONResponse:
    status = getattr(error, "status", None) or \
        next((code for cls, code in STATUS.items() if isinstance(error, cls)), 400)
    return error_response(status, error.code, str(error))


def graphql_error_response(status: int, code: str, message: str) -> JSONResponse:
    """A refusal of /v1/graphql by the transport (413, 415, 429), in Hasura's shape."""
    return JSONResponse({"errors": [{"message": message, "extensions": {"path": "$", "code": code}}]},
                        status_code=status)
