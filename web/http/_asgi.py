"""A small bridge to ASGI: HTTP requests our routes do not answer go to a mounted app.

Users keep their usual HTTP stack (Starlette, FastAPI: anything ASGI 3 that runs on trio,
which anyio-based frameworks do) for pages and APIs, while the sockets stay on our server::

    from starlette.applications import Starlette
    from starlette.routing import Route

    api = Starlette(routes=[Route("/health", health)])
    endpoint.mount(api)      # GET /health now reaches Starlette

The request body has been read in full already (within the endpoint's limit), and the
response is collected in full before it is sent; a streaming response that never ends would
never be sent, so long-lived streams belong on a WebSocket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import trio

from ._request import Request, Response

__all__ = ["ASGIApp", "call_asgi"]

logger = logging.getLogger("web.asgi")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def call_asgi(app: ASGIApp, request: Request) -> Response:
    """Run *app* on *request* and return its response (500 if it fails or sends nothing).

    >>> response = await call_asgi(starlette_app, request)
    """
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.http_version,
        "method": request.method,
        "scheme": "http",
        "path": unquote(request.path),
        "raw_path": request.path.encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
        "client": request.client,
        "server": None,
    }
    body_sent = False
    done = trio.Event()
    status: int | None = None
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        kind = message["type"]
        if kind == "http.response.start":
            status = int(message["status"])
            headers.extend(
                (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", ())
            )
        elif kind == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    except Exception:
        logger.exception("ASGI app failed on %s %s", request.method, request.path)
        return Response(500, b"internal server error\n")
    finally:
        done.set()
    if status is None:
        logger.error("ASGI app sent no response to %s %s", request.method, request.path)
        return Response(500, b"internal server error\n")
    kept = tuple((k, v) for k, v in headers if k != "content-length")
    return Response(status, b"".join(chunks), kept)
