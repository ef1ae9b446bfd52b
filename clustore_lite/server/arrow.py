"""Dataframes as Arrow IPC streams over HTTP: GET /v1/dataframes/{id}.arrow sends the
chunks as one stream, POST /v1/dataframes/{id}/chunks appends one."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Send

from ..errors import ClustoreError
from ..store import Store
from .bodies import Bodies, BodyRefused
from .errors import error_response, store_error_response

ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_BATCH_BYTES = 256 << 20  # one record batch of a body, once decompressed
log = logging.getLogger(__name__)


class CutShortOnError(StreamingResponse):
    """A stream whose status line is already sent when a store error (a corrupt
    chunk) comes: it ends WITHOUT the last empty piece of its chunked encoding, so the
    server closes the connection and the client sees a broken answer. Ending it
    normally would send a valid-looking shorter Arrow stream (readers accept a
    stream without its end-of-stream marker)."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        try:
            async for piece in self.body_iterator:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except ClustoreError as error:
            log.error("an Arrow stream was cut short: %s", error)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def read_response(store: Store, frame_id: str) -> Response:
    try:
        pieces = await run_in_threadpool(store.dataframes.ipc_stream, frame_id)
    except ClustoreError as error:
        return store_error_response(error)
    return CutShortOnError(pieces, media_type=ARROW_STREAM)


async def append_response(store: Store, frame_id: str, request: Request, bodies: Bodies,
                          max_decoded_bytes: int) -> Response:
    """Append the body's rows; whether the caller may is known before it is read."""
    try:
        await run_in_threadpool(_may_append, store, frame_id)
        body = await bodies.read(request)
        frame = await run_in_threadpool(
            lambda: store.dataframes.append_ipc(  # checks the whole stream first
                frame_id, body, max_batch_bytes=min(MAX_BATCH_BYTES, max_decoded_bytes),
                max_bytes=max_decoded_bytes))
    except ClustoreError as error:
        return store_error_response(error)
    except BodyRefused as error:
        return error_response(error.status, "validation-failed", str(error))
    return JSONResponse({"id": frame["id"], "rows": frame["rows"], "size": frame["size"]})


def _may_append(store: Store, frame_id: str) -> None:
    store.authorize("append", "dataframe", store.dataframes.get(frame_id))
