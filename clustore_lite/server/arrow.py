"""Dataframes as Arrow IPC streams over HTTP: GET /v1/dataframes/{id}.arrow sends the
chunks as one stream, POST /v1/dataframes/{id}/chunks appends one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import ClustoreError
from ..store import Store
from .errors import store_error_response

ARROW_STREAM = "application/vnd.apache.arrow.stream"


async def read_response(store: Store, frame_id: str) -> Response:
    try:
        pieces = await run_in_threadpool(store.dataframes.ipc_stream, frame_id)
    except ClustoreError as error:
        return store_error_response(error)
    return StreamingResponse(pieces, media_type=ARROW_STREAM)


async def append_response(store: Store, frame_id: str, body: bytes) -> Response:
    try:
        frame = await run_in_threadpool(_append, store, frame_id, body)
    except ClustoreError as error:
        return store_error_response(error)
    return JSONResponse({"id": frame["id"], "rows": frame["rows"], "size": frame["size"]})


def _append(store: Store, frame_id: str, body: bytes):
    store.dataframes.get(frame_id)
    return store.dataframes.append_ipc(frame_id, body)  # checks the whole stream first
