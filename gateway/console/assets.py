"""GET /console and /console/assets/<file>: the console's static files, with strict headers.

The files are read once per process from the package's static/ folder, into a
name -> file table: a request names a file of that table or gets 404, so no path
it sends (`..`, encoded or not) ever reaches the file system. They are small
(tens of KiB) and change only with the package.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from gateway.core.echo import echo
from gateway.core.errors import NotFound
from gateway.endpoints import error_response

STATIC = Path(__file__).parent / "static"
INDEX = "index.html"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".woff2": "font/woff2", ".json": "application/json"}
# Only our own scripts and styles, no inline code, no framing, no forms elsewhere: an
# injected value can neither run nor send anything away.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
           "referrer-policy": "no-referrer", "x-frame-options": "DENY",
           # Names are not content-hashed (no build step): revalidate each time, by ETag.
           "cache-control": "no-cache"}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


@functools.cache
def files(folder: Path = STATIC) -> dict[str, StaticFile]:
    """The folder's plain files of a known type, by name (no subfolders)."""
    table = {}
    for path in sorted(folder.iterdir()):
        media_type = TYPES.get(path.suffix)
        if media_type is not None and path.is_file():
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            table[path.name] = StaticFile(body, media_type, etag)
    return table


async def index(request: Request) -> Response:
    """The page, signed in or not: it asks GET /console/session and shows the sign-in alone
    without one."""
    return _serve(request, INDEX)


async def asset(request: Request) -> Response:
    return _serve(request, request.path_params["name"])


def _serve(request: Request, name: str) -> Response:
    found = files().get(name)
    if found is None:
        response = error_response(NotFound(f"No console file '{echo(name)}'.",
                                           code="unknown_url"))
        response.headers["x-content-type-options"] = "nosniff"
        return response
    headers = HEADERS | {"etag": found.etag}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.body, headers=headers, media_type=found.media_type)
