"""uvicorn's HTTP protocol (httptools), with the two bounds it lacks: a request's head
(request line and headers) must arrive within HEAD_SECONDS and fit in HEAD_BYTES. A
client that sends its headers a byte at a time (slowloris), or a 32 MB header, is
answered 408 or 431 and its connection closed, instead of holding it open forever or
filling memory."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_SECONDS = 10.0
HEAD_BYTES = 64 << 10


class BoundedHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._awaiting_head()

    def _awaiting_head(self) -> None:
        self._head_bytes = 0
        self._head_done = False
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._refuse, 408,
                                                "Request Timeout")

    def data_received(self, data: bytes) -> None:
        waiting = not self._head_done
        super().data_received(data)  # a body may follow the head in the same read
        if waiting and not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_BYTES:
                self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_done:  # the next request on a kept-alive connection
            self._awaiting_head()

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._head_timer.cancel()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.cancel()
        super().connection_lost(exc)

    def _refuse(self, status: int, reason: str) -> None:
        if self._head_done or self.transport.is_closing():
            return
        self._head_done = True
        self._head_timer.cancel()
        body = f"{reason}: the request head must arrive within {HEAD_SECONDS:g} s and fit " \
               f"in {HEAD_BYTES} bytes\n".encode()
        self.transport.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n"
                             f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                             + body)
        self.transport.close()
