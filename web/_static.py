"""Static files: serve a directory under a URL prefix (scripts, styles, images).

``endpoint.static("/assets", "priv/static")`` answers ``GET /assets/app.js`` with the file
``priv/static/app.js``. Paths that climb out of the directory (``..``), hidden files and
directories are not found. Files are read off the trio loop, in a worker thread.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import trio

from ._server import Request, Response

__all__ = ["StaticFiles"]

_NOT_FOUND = Response(404, b"not found\n")


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
            return Response(405, b"method not allowed\n")
        relative = unquote(request.path[len(self.prefix) + 1 :])
        parts = [p for p in relative.split("/") if p]
        if not parts or any(p.startswith(".") or "\\" in p for p in parts):
            return _NOT_FOUND
        path = self.directory.joinpath(*parts)
        try:
            body = await trio.to_thread.run_sync(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return _NOT_FOUND
        etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:20] + '"'
        if request.header("if-none-match") == etag:
            return Response(304, b"", (("etag", etag),))
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        headers = (("content-type", kind), ("etag", etag), ("cache-control", "no-cache"))
        return Response(200, body, headers)  # the server sends no body to a HEAD request
