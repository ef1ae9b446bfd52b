"""The wire contract of `POST /v1/graphql`, as Hasura keeps it: every GraphQL error is
answered with HTTP 200 and `{"errors": [{"message", "extensions": {"path", "code"}}]}`
(Apollo and other clients then hand `extensions.code` to the application instead of a
network error), and a JSON array of operations is a batch, answered by an array in the
same order. Only refusals of the transport itself (a body too large, not JSON's
content type, too many large bodies at once) keep their 4xx status."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.responses import Response

ROOT = "$"


def error_body(code: str, message: str, path: str = ROOT) -> dict:
    """One error of the request as a whole, in Hasura's shape."""
    return {"errors": [{"message": message, "extensions": {"path": path, "code": code}}]}


def dumps(value: Any) -> str:
    """JSON text as Starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def answer_json(text: str) -> Response:
    """An answer of /v1/graphql: 200, whatever errors it holds."""
    return Response(text, 200, media_type="application/json")


async def respond(data: Any, answer: Callable[[Any], Awaitable[str]]) -> Response:
    """The response to a decoded request body; `answer` gives the JSON text of one
    operation's answer."""
    return answer_json(await answer(data))
