"""The endpoint the HTTP hardening tests and the fuzzer serve, with handlers that misbehave.

Routes: ``/`` (200 ``ok``), ``/crlf`` (copies a query value into a header), ``/snowman`` (a
non-Latin-1 header), ``/body-str`` (a ``str`` body), ``/own-frame`` (its own
``x-frame-options``), ``POST /form`` (counts form fields), ``/teapot`` (an ``HTTPError``),
``/exit`` (``SystemExit``), ``/ws`` (a WebSocket echo), ``/members`` (an upgrade refused with
401) and ``/assets`` (static files). :data:`KEY` is RFC 6455's sample ``Sec-WebSocket-Key``.

>>> endpoint = make_endpoint(tmp_path, head_timeout=2.0)
"""

from __future__ import annotations

from pathlib import Path

import web

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key (16 bytes in base64)


async def echo(ws: web.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def crlf_header(request: web.Request) -> web.Response:
    # A handler that copies user input into a header, CR/LF included.
    name = request.query.get("name", [""])[0]
    return web.Response(200, b"hi", (("x-name", name),))


def form_size(request: web.Request) -> web.Response:
    return web.Response(200, str(len(request.form())).encode())


def teapot(request: web.Request) -> web.Response:
    raise web.HTTPError(418, "short and stout", (("x-pot", "tea"),))


def leave(request: web.Request) -> web.Response:
    raise SystemExit(3)  # a handler that calls sys.exit() must not end the node


class Members:
    """An upgrader that refuses with an HTTPError (as a failed sign-in check would)."""

    async def accept(self, request: web.Request) -> web.Response:
        raise web.HTTPError(401, "members only")


def make_endpoint(static: Path, **limits: object) -> web.Endpoint:
    endpoint = web.Endpoint(**limits)  # type: ignore[arg-type]
    endpoint.get("/", lambda request: web.Response(200, b"ok"))
    endpoint.get("/crlf", crlf_header)
    endpoint.get("/snowman", lambda request: web.Response(200, b"", (("x-snow", "\u2603"),)))
    endpoint.get("/body-str", lambda request: web.Response(200, "text"))  # type: ignore[arg-type]
    endpoint.get(
        "/own-frame", lambda request: web.Response(200, b"x", (("x-frame-options", "DENY"),))
    )
    endpoint.route("POST", "/form", form_size)
    endpoint.get("/teapot", teapot)
    endpoint.get("/exit", leave)
    endpoint.websocket("/ws", echo)
    endpoint.upgrade("/members", Members())
    endpoint.static("/assets", static)
    return endpoint
