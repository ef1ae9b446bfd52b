"""Request bodies, read only after the caller is known and within bounds: a body is
refused as soon as it passes the limit (declared or streamed), large bodies are read
a few at a time, and JSON is decoded off the event loop when it is large."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

LARGE_BYTES = 1 << 20  # bodies from here on count as large ...
MAX_LARGE = 4  # ... and at most this many are read at once
MAX_JSON_BYTES = 8 << 20  # a GraphQL request, JSON rows included: big data goes as Arrow
THREAD_JSON_BYTES = 64 << 10  # JSON this large is decoded in a thread


class BodyRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class Bodies:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._large: asyncio.Semaphore | None = None  # made in the server's event loop

    async def read(self, request: Request, limit: int | None = None) -> bytearray:
        """The body (not copied again: a bytearray), within `limit` (the server's
        body limit by default)."""
        limit = min(limit or self.max_bytes, self.max_bytes)
        declared = request.headers.get("content-length")
        size = int(declared) if declared and declared.isdigit() else None
        if size is not None and size > limit:
            raise BodyRefused(413, f"request body larger than {limit} bytes")
        if size is not None and size < LARGE_BYTES:
            return await self._stream(request, limit)
        self._large = self._large or asyncio.Semaphore(MAX_LARGE)
        if self._large.locked():
            raise BodyRefused(429, f"{MAX_LARGE} large request bodies are being received "
                                   "already; send this one again in a moment")
        async with self._large:
            return await self._stream(request, limit)

    async def _stream(self, request: Request, limit: int) -> bytearray:
        body = bytearray()
        try:
            async for part in request.stream():
                body += part
                if len(body) > limit:
                    raise BodyRefused(413, f"request body larger than {limit} bytes")
        except ClientDisconnect:  # nobody is left to answer: a short note will do
            raise BodyRefused(400, "the client went away before sending its whole body") from None
        return body


async def decode_json(body: bytes | bytearray) -> Any:
    """The JSON value of `body`; NotJSON with a message and a code when it is not."""
    if len(body) < THREAD_JSON_BYTES:
        return _decode(body)
    return await run_in_threadpool(_decode, body)


class NotJSON(ValueError):
    """The body is not JSON we take: `code` says why (Hasura's invalid-json, or a limit)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _decode(body: bytes | bytearray) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise NotJSON("validation-failed", "the request's JSON is nested deeper than the JSON "
                      "decoder allows (about 1000 levels)") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise NotJSON("invalid-json", f"the body is not valid JSON: {error}") from None
