"""Static files: serve a directory under a URL prefix (scripts, styles, images).

``endpoint.static("/assets", "priv/static")`` answers ``GET /assets/app.js`` with the file
``priv/static/app.js``. Paths that climb out of the directory (``..``), hidden files and
directories, control characters (``%00``) and overlong paths are not found: a request never
makes a 500 here. Files are read off the trio loop, in a worker thread.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote

import trio

from ._request import Request, Response

__all__ = ["StaticFiles"]

_NOT_FOUND = Response(404, b"not found\n")
#: Longest path (after the prefix, decoded) looked up; longer ones are not found.
_MAX_PATH: Final = 1_024
#: What no served file name holds: control characters (NUL among them) and backslashes.
_FORBIDDEN: Final = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class StaticFiles:
    """The files under *directory*, served at *prefix* (a handler for :class:`Endpoint`)."""

    prefix: str
    directory: Path

    def owns(self, path: str) -> bool:
        """Whether *path* falls under this prefix."""
        return path.startswith(self.prefix + "/")

    async def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(
                405,
                f"method {request.method} not allowed on static files\n".encode(),
                (("content-type", "text/plain; charset=utf-8"), ("allow", "GET, HEAD")),
            )
        relative = unquote(request.path[len(self.prefix) + 1 :], errors="replace")
        parts = [p for p in relative.split("/") if p]
        if (
            not parts
            or len(relative) > _MAX_PATH
            or _FORBIDDEN.search(relative)
            or any(p.startswith(".") for p in parts)
        ):
            return _NOT_FOUND
        path = self.directory.joinpath(*parts)
        try:
            body = await trio.to_thread.run_sync(path.read_bytes)
        except (OSError, ValueError):  # missing, a directory, unreadable, a name too long...
            return _NOT_FOUND
        etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:20] + '"'
        if request.header("if-none-match") == etag:
            return Response(304, b"", (("etag", etag),))
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        headers = (("content-type", kind), ("etag", etag), ("cache-control", "no-cache"))
        return Response(200, body, headers)  # the server sends no body to a HEAD request
