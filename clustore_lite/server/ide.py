"""The GraphQL IDE: GraphiQL's page at GET /v1/graphql, and its scripts and styles,
shipped inside the package (static/assets), so the IDE works with no internet."""

from __future__ import annotations

import functools
import gzip
from importlib import resources

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = resources.files(__package__).joinpath("static")

# The policy makes the browser refuse anything from another origin.
IDE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
ASSET_HEADERS = {"Cache-Control": "public, max-age=86400, must-revalidate",
                 "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}


def ide_page() -> HTMLResponse:
    return HTMLResponse(STATIC.joinpath("ide.html").read_text(), headers=IDE_HEADERS)


class IdeAssets(StaticFiles):
    """Starlette's StaticFiles (paths, types, ETags, 304s) over static/assets, cached by
    browsers for a day; gzipped once per file (graphiql.min.js is 1.4 MB) when the
    browser takes gzip."""

    def __init__(self) -> None:
        super().__init__(directory=str(STATIC.joinpath("assets")))

    def file_response(self, full_path, stat_result, scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(ASSET_HEADERS)
        if response.status_code != 200 or "gzip" not in Headers(scope=scope).get("accept-encoding", ""):
            return response
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        headers["Content-Encoding"] = "gzip"
        return Response(_gzipped(str(full_path), stat_result.st_mtime), status_code, headers)


@functools.cache
def _gzipped(path: str, mtime: float) -> bytes:
    with open(path, "rb") as file:
        return gzip.compress(file.read(), 6, mtime=0)
