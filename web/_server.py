"""The HTTP/1.1 and WebSocket server: one trio listener, h11 and wsproto, no ASGI in the way.

h11 parses requests and writes responses; wsproto does the WebSocket handshake, framing,
pings and closes. This module only moves bytes between them and the socket, routes requests
to an :class:`Endpoint`, and enforces the limits (request size, idle keep-alive, frame size)::

    endpoint = Endpoint()
    endpoint.get("/", lambda request: Response(200, b"hello"))

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    endpoint.websocket("/echo", echo)

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, endpoint, "127.0.0.1", 0)
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, parse_qsl, urlsplit

import h11
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

import beam

from ._outbox import Outbox, frame

__all__ = ["Endpoint", "Request", "Response", "Upgrader", "WebSocket", "WebSocketClosed", "serve"]

logger = logging.getLogger("web.server")

#: Close code for "going away": phoenix.js reconnects after it (never close with 1000).
GOING_AWAY: Final = 1001
_READ: Final = 65_536
_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)
_CLOSE_WAIT: Final = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as a handler sees it (the body is read in full, within the limit)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    #: The peer's ``(host, port)``, when the transport knows it.
    client: tuple[str, int] | None = None
    #: The query string as it came, undecoded (``query`` is its parsed form).
    query_string: str = ""

    def header(self, name: str) -> str | None:
        """The first header called *name* (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def cookie(self, name: str) -> str | None:
        """The value of the cookie called *name*, or ``None``.

        >>> token = request.cookie("session")
        """
        jar = SimpleCookie()
        for key, value in self.headers:
            if key == "cookie":
                with contextlib.suppress(CookieError):
                    jar.load(value)
        morsel = jar.get(name)
        return None if morsel is None else morsel.value

    def form(self) -> dict[str, str]:
        """The body as an URL-encoded form (the last value of a repeated field wins).

        >>> name = request.form().get("username", "")
        """
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler returns: status, body and headers (content-length is added)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("content-type", "text/plain; charset=utf-8"),)


HttpHandler = Callable[[Request], Response | Awaitable[Response]]
SocketHandler = Callable[["WebSocket"], Awaitable[None]]


class Upgrader(Protocol):
    """Decides on a WebSocket upgrade before it happens (a Channels socket is one).

    ``accept(request)`` returns the handler that will serve the accepted WebSocket, or a
    :class:`Response` that refuses the upgrade (a 403 for a failed ``connect``).
    """

    async def accept(self, request: Request) -> SocketHandler | Response:
        """The handler for this upgrade, or the response that refuses it."""
        ...


@dataclass(frozen=True, slots=True)
class _Always:
    handler: SocketHandler

    async def accept(self, request: Request) -> SocketHandler | Response:
        return self.handler


@dataclass
class Endpoint:
    """Routes and limits: exact-path HTTP handlers and WebSocket handlers."""

    max_request_bytes: int = 1_048_576
    max_frame_bytes: int = 1_048_576
    #: Bytes a WebSocket may have waiting for a peer that does not read before it is dropped.
    max_backlog_bytes: int = 4 * 1_048_576
    keep_alive_timeout: float = 60.0
    _http: dict[tuple[str, str], HttpHandler] = field(default_factory=dict)
    _sockets: dict[str, Upgrader] = field(default_factory=dict)
    _fallback: HttpHandler | None = None
    _static: list[Any] = field(default_factory=list)
    _live: Any = None
    #: Signs LiveView sessions and CSRF tokens. Random per process by default: set it (the
    #: same on every node) so that pages survive a restart without a reload.
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def get(self, path: str, handler: HttpHandler) -> None:
        """Answer ``GET path`` with ``handler(request)`` (sync or async)."""
        self.route("GET", path, handler)

    def route(self, method: str, path: str, handler: HttpHandler) -> None:
        """Answer ``method path`` with ``handler(request)`` (sync or async)."""
        if not path.startswith("/"):
            raise ValueError(f"a route path starts with '/', got {path!r}")
        self._http[(method.upper(), path)] = handler

    def static(self, prefix: str, directory: str | os.PathLike[str]) -> None:
        """Serve the files under *directory* at *prefix* (``GET <prefix>/<file path>``).

        >>> endpoint.static("/assets", "priv/static")
        """
        from ._static import StaticFiles  # a handler built on this module's Request/Response

        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(
                f"a static prefix starts with '/' and does not end with one: {prefix!r}"
            )
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(
                f"static directory {str(root)!r} does not exist (or is not a directory)"
            )
        self._static.append(StaticFiles(prefix, root.resolve()))

    def live(
        self,
        path: str,
        view: Any,
        *,
        layout: str | None = None,
        head: str = "",
        session: Callable[[Request], Any] | None = None,
    ) -> None:
        """Serve the LiveView class *view* at *path*: the full page over HTTP, then live over
        ``/live/websocket`` with the official client (served under ``/assets``).

        *layout* is the page around the view (see ``web._live_page.DEFAULT_LAYOUT``); *head*
        is extra markup for its ``<head>`` (styles). ``session(request)`` gives the session
        the view mounts with (say, the signed-in user from a cookie), or a :class:`Response`
        to send instead of the page (a redirect to sign in).

        >>> endpoint.live("/counter", Counter)
        """
        from ._live_page import DEFAULT_LAYOUT, mount_live  # LiveView builds on this module

        mount_live(self, path, view, layout=layout or DEFAULT_LAYOUT, head=head, session=session)

    def mount(self, app: Any) -> None:
        """Send every HTTP request no route of ours answers to the ASGI application *app*
        (Starlette, FastAPI...), so users keep their usual HTTP routes.

        >>> endpoint.mount(Starlette(routes=[Route("/health", health)]))
        """
        from ._asgi import call_asgi  # the bridge needs this module's Request and Response

        self._fallback = partial(call_asgi, app)

    def websocket(self, path: str, handler: SocketHandler) -> None:
        """Accept WebSocket upgrades on *path* and run ``await handler(ws)`` for each."""
        self.upgrade(path, _Always(handler))

    def upgrade(self, path: str, upgrader: Upgrader) -> None:
        """Let *upgrader* accept or refuse each WebSocket upgrade on *path*."""
        if not path.startswith("/"):
            raise ValueError(f"a WebSocket path starts with '/', got {path!r}")
        self._sockets[path] = upgrader

    def socket(self, path: str, socket: Upgrader) -> None:
        """Mount a Channels :class:`~web.Socket` at *path*, as Phoenix's ``socket "/socket"``:
        clients connect to ``<path>/websocket`` (``new Socket("/socket")`` in phoenix.js).

        >>> endpoint.socket("/socket", UserSocket())
        """
        self.upgrade(path.rstrip("/") + "/websocket", socket)


class WebSocketClosed(Exception):
    """The peer closed the WebSocket (``code`` and ``reason`` say how)."""

    def __init__(self, code: int, reason: str | None) -> None:
        super().__init__(f"WebSocket closed: {code} {reason or ''}".strip())
        self.code = code
        self.reason = reason


class WebSocket:
    """One accepted WebSocket: receive and send whole messages, close with a code.

    Writes go through :attr:`outbox` (see :class:`~web._outbox.Outbox`): :meth:`send` waits
    until the kernel took the bytes, ``outbox.write_nowait(frame(...))`` does not wait at all.
    """

    __slots__ = (
        "_closing",
        "_max_frame",
        "_parts",
        "_size",
        "_stream",
        "_ws",
        "closed",
        "outbox",
        "request",
        "scope",
    )

    def __init__(
        self,
        stream: trio.SocketStream,
        ws: Connection,
        request: Request,
        max_frame: int,
        outbox: Outbox,
    ) -> None:
        self.request = request
        self.outbox = outbox
        #: The cancel scope around the handler: its deadline may be moved (an idle timeout);
        #: when it fires, the connection closes with 1001 "idle timeout".
        self.scope = trio.CancelScope()
        self._closing: tuple[int, str] | None = None
        self._stream = stream
        self._ws = ws
        self._max_frame = max_frame
        self._parts: list[str | bytes] = []
        self._size = 0
        self.closed: WebSocketClosed | None = None

    async def send(self, message: str | bytes) -> None:
        """Send one text (``str``) or binary (``bytes``) message."""
        if self.closed is not None:
            raise self.closed
        self.outbox.write_nowait(frame(message))
        await self.outbox.drain()

    def close_soon(self, code: int = GOING_AWAY, reason: str = "") -> None:
        """Ask for the connection to be closed with *code* and *reason*, from any task: the
        handler is cancelled and the server closes the WebSocket.

        >>> ws.close_soon(1008, "policy violation")
        """
        if self._closing is None:
            self._closing = (code, reason)
        self.scope.cancel()

    async def close(self, code: int = GOING_AWAY, reason: str = "") -> None:
        """Close with *code* (1001 by default: clients reconnect) and finish the handshake:
        wait briefly for the peer's close frame, then close the TCP connection."""
        if self.closed is None and self.outbox.failed is None:
            self.closed = WebSocketClosed(code, reason)
            with contextlib.suppress(*_GONE, LocalProtocolError):
                self.outbox.write_nowait(self._ws.send(CloseConnection(code, reason)))
                with trio.move_on_after(_CLOSE_WAIT):
                    await self.outbox.drain()
                    await self._await_peer_close()
        self.outbox.close()
        await self._stream.aclose()

    async def _await_peer_close(self) -> None:
        while self._ws.state is not ConnectionState.CLOSED:
            data = await self._stream.receive_some(_READ)
            if not data:
                return
            self._ws.receive_data(bytes(data))
            for _ in self._ws.events():
                pass

    async def receive(self) -> str | bytes:
        """The next whole message; raises :class:`WebSocketClosed` once the peer closed."""
        while True:
            for event in self._ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    self._size += len(event.data)
                    if self._size > self._max_frame:
                        reason = f"message over {self._max_frame} bytes"
                        await self.close(1009, reason)
                        raise WebSocketClosed(1009, reason)
                    self._parts.append(
                        bytes(event.data) if isinstance(event.data, bytearray) else event.data
                    )
                    if event.message_finished:
                        parts, self._parts, self._size = self._parts, [], 0
                        return parts[0] if len(parts) == 1 else type(parts[0])().join(parts)  # type: ignore[arg-type]
                elif isinstance(event, Ping):
                    self.outbox.write_nowait(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed = WebSocketClosed(event.code, event.reason)
                    with contextlib.suppress(LocalProtocolError):
                        self.outbox.write_nowait(self._ws.send(event.response()))
                    raise self.closed
            if self.closed is not None:
                raise self.closed
            try:
                data = await self._stream.receive_some(_READ)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closed = WebSocketClosed(1006, "connection lost")
                raise self.closed
            try:
                self._ws.receive_data(bytes(data))
            except RemoteProtocolError as exc:
                await self.close(1002, "protocol error")
                raise WebSocketClosed(1002, str(exc)) from None

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None


async def serve(
    endpoint: Endpoint,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on *host*:*port* and serve *endpoint* until cancelled; reports the bound port.

    >>> async def main():
    ...     async with trio.open_nursery() as nursery:
    ...         port = await nursery.start(serve, endpoint, "127.0.0.1", 0)
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        await trio.serve_listeners(
            partial(_connection, endpoint, nursery), listeners, handler_nursery=nursery
        )


async def _connection(endpoint: Endpoint, nursery: trio.Nursery, stream: trio.SocketStream) -> None:
    http = h11.Connection(h11.SERVER, max_incomplete_event_size=16_384)
    try:
        while True:
            request = await _read_request(endpoint, http, stream)
            if request is None:
                return
            upgrader = endpoint._sockets.get(request.path)
            if upgrader is not None and (request.header("upgrade") or "").lower() == "websocket":
                handler = await _accept(upgrader, request)
                if isinstance(handler, Response):
                    await _send_response(http, stream, handler)
                    return
                leftover = bytes(http.trailing_data[0])
                # An open WebSocket keeps no HTTP state, and the request only as long as the
                # WebSocket holds it (a handler may let it go).
                held = [request]
                del http, request
                await _upgrade(endpoint, nursery, stream, leftover, held, handler)
                return
            response = await _respond(endpoint, request)
            await _send_response(http, stream, response, head=request.method == "HEAD")
            if http.our_state is h11.MUST_CLOSE or http.their_state is h11.MUST_CLOSE:
                return
            http.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


async def _read_request(
    endpoint: Endpoint, http: h11.Connection, stream: trio.SocketStream
) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    with trio.move_on_after(endpoint.keep_alive_timeout) as idle:
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as exc:
                await _send_response(
                    http, stream, Response(exc.error_status_hint, f"{exc}\n".encode())
                )
                return None
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_READ)
                if not data:
                    return None
                http.receive_data(bytes(data))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > endpoint.max_request_bytes:
                    limit = endpoint.max_request_bytes
                    await _send_response(
                        http, stream, Response(413, f"request body over {limit} bytes\n".encode())
                    )
                    return None
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                target = urlsplit(head.target.decode("latin-1"))
                try:
                    peer = stream.socket.getpeername()
                    client = (str(peer[0]), int(peer[1]))
                except (OSError, IndexError, TypeError):
                    client = None
                return Request(
                    head.method.decode("ascii"),
                    target.path,
                    parse_qs(target.query),
                    tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers),
                    bytes(body),
                    client,
                    target.query,
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None
    if idle.cancelled_caught:
        return None
    return None  # pragma: no cover - the loop only returns


async def _respond(endpoint: Endpoint, request: Request) -> Response:
    handler = endpoint._http.get((request.method, request.path))
    if handler is None:
        handler = next((s for s in endpoint._static if s.owns(request.path)), None)
    if handler is None and endpoint._fallback is not None:
        handler = endpoint._fallback
    if handler is None:
        if any(path == request.path for _, path in endpoint._http):
            return Response(405, b"method not allowed\n")
        return Response(404, f"no route for {request.method} {request.path}\n".encode())
    return await _in_process(handler, request)


async def _in_process(handler: HttpHandler, request: Request) -> Response:
    """Run *handler* in a process of its own (as Phoenix runs each request), so that it can
    call other processes (a GenServer, the domain's connection pool); a crash is a 500."""
    done = trio.Event()
    result: list[Response] = []

    async def run() -> None:
        try:
            answer = handler(request)
            if not isinstance(answer, Response):
                answer = await answer
            result.append(answer)
        except Exception:
            logger.exception("handler for %s %s failed", request.method, request.path)
        finally:
            done.set()

    try:
        node = beam.current_node("web.serve")
    except beam.NotInNode:  # a server outside any node: plain HTTP still works, in-task
        await run()
        return result[0] if result else Response(500, b"internal server error\n")
    pid, _ = node.spawn(run, (), parent=None, initial_call=handler)
    try:
        await done.wait()
    finally:
        if not done.is_set():  # the connection went away: so does the request's process
            beam.exit(pid, "kill")
    if not result:
        return Response(500, b"internal server error\n")
    return result[0]


async def _send_response(
    http: h11.Connection, stream: trio.abc.Stream, response: Response, *, head: bool = False
) -> None:
    """Send *response*; for a HEAD request, its headers only (with the body's length)."""
    if http.our_state not in (h11.IDLE, h11.SEND_RESPONSE):  # IDLE: after a bad request
        return
    headers = [*response.headers, ("content-length", str(len(response.body)))]
    data = http.send(h11.Response(status_code=response.status, headers=headers))
    if response.body and not head:
        data += http.send(h11.Data(data=response.body))
    data += http.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _accept(upgrader: Upgrader, request: Request) -> SocketHandler | Response:
    try:
        return await upgrader.accept(request)
    except Exception:
        logger.exception("WebSocket upgrade on %s failed", request.path)
        return Response(500, b"internal server error\n")


async def _upgrade(
    endpoint: Endpoint,
    nursery: trio.Nursery,
    stream: trio.SocketStream,
    leftover: bytes,
    held: list[Request],
    handler: SocketHandler,
) -> None:
    request = held.pop()
    handshake = H11Handshake(ConnectionType.SERVER)
    handshake.initiate_upgrade_connection(
        [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers], request.path
    )
    offered = [
        p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",") if p.strip()
    ]
    subprotocol = "phoenix" if "phoenix" in offered else None
    await stream.send_all(handshake.send(AcceptConnection(subprotocol=subprotocol)))
    ws = handshake.connection
    assert ws is not None
    del handshake  # only the frame-level connection is needed from now on
    if leftover:
        ws.receive_data(leftover)
    outbox = Outbox(stream.socket, nursery, max_backlog=endpoint.max_backlog_bytes)
    socket = WebSocket(stream, ws, request, endpoint.max_frame_bytes, outbox)
    del request  # socket.request from now on
    # A backlog's writer task runs in the server's nursery (an idle connection has none); a
    # failed outbox (a slow consumer) ends the connection through the handler's scope.
    outbox._on_failure = socket.scope.cancel
    close_with: tuple[int, str] = (GOING_AWAY, "")
    try:
        with socket.scope:
            await handler(socket)
        if socket.scope.cancelled_caught and socket._closing is None:
            close_with = (GOING_AWAY, "idle timeout")
    except WebSocketClosed:
        pass
    except Exception:
        logger.exception("WebSocket handler for %s failed", socket.request.path)
        close_with = (1011, "internal error")
    finally:
        # Also on cancellation (the server is shutting down): say goodbye with a code that
        # makes clients reconnect, without waiting long for a peer that may be gone.
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_WAIT):
            await socket.close(*(socket._closing or close_with))
