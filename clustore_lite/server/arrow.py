"""Dataframes as Arrow IPC streams over HTTP: GET /v1/dataframes/{id}.arrow sends the
chunks as one stream, POST /v1/dataframes/{id}/chunks appends one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import ClustoreError
from ..store import Store
from .bodies import Bodies, BodyRefused
from .errors import error_response, store_error_response

ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_BATCH_BYTES = 256 << 20  # one record batch of a body, once decompressed


async def read_response(store: Store, frame_id: str) -> Response:
    try:
        pieces = await run_in_threadpool(store.dataframes.ipc_stream, frame_id)
    except ClustoreError as error:
        return store_error_response(error)
    return StreamingResponse(pieces, media_type=ARROW_STREAM)


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
