"""The HTTP/1.1 and WebSocket server: one trio listener, our sans-I/O HTTP/1.1 layer on
``httptools`` and the ``websockets`` library's sans-I/O protocol, no ASGI in the way.

:mod:`web.http._h1` parses requests (llhttp, in C) and writes responses (the WebSocket
handshake's 101 too); the ``websockets`` sans-I/O protocol does the framing (unmasking in
C), pings and closes. This module only moves bytes between them and the socket, routes requests
to an :class:`Endpoint`, and enforces the limits (request head and body size, header count,
form fields, head/body/keep-alive timeouts, frame size)::

    endpoint = Endpoint()
    endpoint.get("/", lambda request: Response(200, b"hello"))

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    endpoint.websocket("/echo", echo)

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, endpoint, "127.0.0.1", 0)

Each connection is a failure domain of its own, as in Cowboy: bad input is answered with a
4xx and closes that connection; an exception in our code (or a handler's response that
cannot be sent) is logged once with its traceback, answered with a 500 when no byte of a
response has gone out yet, and closes that connection only. The server keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import gc
import logging
import math
import os
from functools import partial
from typing import Final
from urllib.parse import parse_qs, urlsplit

import trio
from websockets.protocol import Protocol as FrameLayer
from websockets.utils import accept_key

import beam
from beam import lowlevel

from ._endpoint import Endpoint
from ._errors import HTTPError
from ._h1 import (
    END,
    NEED_DATA,
    H1Connection,
    ProtocolError,
    RequestHead,
    encode_header,
    informational,
)
from ._listener import serve_supervised
from ._outbox import Outbox
from ._request import HttpHandler, Request, Response
from ._websocket import (
    GOING_AWAY,
    SocketHandler,
    Upgrader,
    WebSocket,
    WebSocketClosed,
    frame_layer,
)

__all__ = ["serve"]

logger = logging.getLogger("web.server")

_READ: Final = 65_536
#: What a response that does not fit the socket's buffer is written in, each piece within
#: ``Endpoint.send_timeout``.
_SEND_PIECE: Final = 65_536
_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)
_CLOSE_WAIT: Final = 2.0
#: The accept queue asked for with SO_REUSEPORT (the kernel caps it at net.core.somaxconn).
_BACKLOG: Final = 0xFFFF
#: Framing headers the server writes itself (a handler's own would conflict with them).
_FRAMING: Final = frozenset({"content-length", "transfer-encoding"})
_TEXT: Final = ("content-type", "text/plain; charset=utf-8")


async def serve(
    endpoint: Endpoint,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on *host*:*port* and serve *endpoint* until cancelled; reports the bound port.

    With *reuse_port*, the socket is opened with ``SO_REUSEPORT``: several processes (the
    nodes of ``python -m web --nodes N``) listen on one port and the kernel spreads new
    connections among them.

    In a node, the endpoint runs under its supervision tree ``web.endpoint`` (the children
    of :meth:`Endpoint.supervise`, then the listener), which stops in order when this is
    cancelled: see :mod:`web.http._listener`.

    >>> async def main():
    ...     async with trio.open_nursery() as nursery:
    ...         port = await nursery.start(serve, endpoint, "127.0.0.1", 0)
    """

    async def listen(at: int) -> list[trio.SocketListener]:
        if reuse_port:
            return await _reuse_port_listeners(host, at)
        return await trio.open_tcp_listeners(at, host=host)

    listeners = await listen(port)
    bound = listeners[0].socket.getsockname()[1]
    _freeze_boot_objects()
    if lowlevel.in_node():  # the listener runs under the endpoint's supervision tree
        await serve_supervised(
            endpoint, listeners, partial(listen, bound), _connection, task_status
        )
        return
    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        await trio.serve_listeners(
            partial(_connection, endpoint, nursery), listeners, handler_nursery=nursery
        )


_frozen = False


def _freeze_boot_objects() -> None:
    """Once per process, when it first serves: move every object built so far (modules,
    routes, resources' tables, compiled statements...) to the GC's permanent generation, so
    that a full collection walks what requests made, not the ~100k objects of the boot (it
    took ~60 ms each time, a pause every few thousand requests: the p99)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


async def _reuse_port_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """As :func:`trio.open_tcp_listeners`, each socket with ``SO_REUSEPORT`` set before it binds."""
    addresses = await trio.socket.getaddrinfo(
        host, port, type=trio.socket.SOCK_STREAM, flags=trio.socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    try:
        for family, kind, proto, _, address in addresses:
            sock = trio.socket.socket(family, kind, proto)
            try:
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEPORT, 1)
                if family == trio.socket.AF_INET6:
                    sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 1)
                await sock.bind(address)
                sock.listen(_BACKLOG)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


async def _connection(endpoint: Endpoint, nursery: trio.Nursery, stream: trio.SocketStream) -> None:
    # The failure domain of one connection: nothing that goes wrong here reaches the server's
    # nursery (that would end every other connection and the node with them).
    try:
        held = await _serve_http(endpoint, stream)
        if held:  # no frame of the HTTP side stays alive under an open WebSocket
            await _upgrade(endpoint, nursery, stream, held)
    except _GONE:
        pass
    except Exception:
        logger.exception("connection from %s failed; closed it", _peer(stream))
    finally:
        await stream.aclose()


# What the HTTP side hands to the WebSocket side: the 101 response, the frame-level
# connection, bytes that came after the handshake, the request and the handler.
_Upgrade = tuple[bytes, FrameLayer, bytes, Request, SocketHandler]


class _Wire:
    """One connection's socket and HTTP/1.1 state, and the peer's address (asked once)."""

    __slots__ = (
        "answered",
        "conn",
        "fd",
        "late",
        "peer",
        "send_timeout",
        "sock",
        "stream",
        "timer",
    )

    def __init__(self, endpoint: Endpoint, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.sock = stream.socket
        self.fd = stream.socket.fileno()
        self.peer = _peer(stream)
        self.conn = H1Connection(
            max_head_bytes=endpoint.max_head_bytes,
            max_headers=endpoint.max_headers,
            max_body_bytes=endpoint.max_request_bytes,
        )
        #: Whether a response (or part of one) to the current request went out.
        self.answered = False
        #: The connection's one cancel scope for its timeouts (idle, head, body): its
        #: deadline moves, cheaper than a new scope per request; ``late`` is the 408's
        #: message when it fires (``None``: an idle connection, closed quietly).
        self.timer = trio.CancelScope()
        self.late: str | None = None
        self.send_timeout = endpoint.send_timeout

    def wait_until(self, seconds: float, late: str | None) -> None:
        """Give up on the peer in *seconds* (then answer 408 *late*, or close quietly)."""
        self.timer.deadline = trio.current_time() + seconds
        self.late = late

    def arrived(self) -> None:
        """What was waited for arrived: no deadline until the next wait."""
        self.timer.deadline = math.inf

    async def receive(self) -> bytes:
        """The next bytes from the peer (``b""`` once it is gone). A client mostly waits
        for the answer before it sends again: wait for the socket to be readable and read it
        once, with no failing read first (what ``receive_some`` costs)."""
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            try:
                return os.read(self.fd, _READ)
            except BlockingIOError:
                continue
            except OSError:
                return b""

    async def send(self, data: bytes) -> None:
        """Write *data*: straight into the socket when it takes it all (a response mostly
        fits its buffer), the rest through the stream, waiting until it can be written, at
        most ``Endpoint.send_timeout`` for each 64 KiB (a peer that does not read is gone)."""
        self.answered = True
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"the peer is gone: {exc}") from None
        rest = memoryview(data)[sent:]
        for start in range(0, len(rest), _SEND_PIECE):
            with trio.move_on_after(self.send_timeout) as waited:
                await self.stream.send_all(rest[start : start + _SEND_PIECE])
            if waited.cancelled_caught:
                raise trio.BrokenResourceError(
                    f"the peer took no more of the response in {self.send_timeout} s "
                    "(Endpoint.send_timeout)"
                )


async def _serve_http(endpoint: Endpoint, stream: trio.SocketStream) -> list[_Upgrade] | None:
    """Serve HTTP requests until the connection should close (``None``) or a WebSocket
    upgrade was accepted (returned in a list that :func:`_upgrade` empties)."""
    wire = _Wire(endpoint, stream)
    try:
        with wire.timer:
            return await _serve_requests(endpoint, wire)
        # Only a deadline of the timer gets here (the server's own cancellation goes on).
        if wire.late is not None:
            error = HTTPError(408, wire.late)
            logger.debug("refused a request from %s: %s", wire.peer, error)
            await _send_error(endpoint, wire, error)
        return None
    finally:
        wire.conn.close()


async def _serve_requests(endpoint: Endpoint, wire: _Wire) -> list[_Upgrade] | None:
    while True:
        wire.answered = False
        try:
            outcome = await _exchange(endpoint, wire)
        except HTTPError as exc:  # bad input: answer, close this connection
            wire.arrived()
            logger.debug("refused a request from %s: %s", wire.peer, exc)
            await _send_error(endpoint, wire, exc)
            return None
        except _GONE:
            raise
        except Exception:
            wire.arrived()
            logger.exception("request from %s failed; answered 500", wire.peer)
            await _send_error(endpoint, wire, HTTPError(500, "internal server error"))
            return None
        if outcome is None:
            return None
        if isinstance(outcome, tuple):
            # An open WebSocket keeps no HTTP state, and the request only as long as the
            # WebSocket holds it (a handler may let it go).
            return [outcome]
        if not wire.conn.keep_alive:
            return None


async def _exchange(endpoint: Endpoint, wire: _Wire) -> Request | _Upgrade | None:
    """One request and its response: the request (the connection may go on), the upgrade
    to run, or ``None`` (close). Bad input raises :class:`HTTPError`."""
    read = await _read_request(endpoint, wire)
    if read is None:
        return None
    request, keep_alive = read
    upgrader = endpoint.upgrader(request.path)
    if upgrader is not None and "websocket" in _tokens(request, "upgrade"):
        return await _start_upgrade(endpoint, wire, upgrader, request)
    response = await _respond(endpoint, request)
    await _send_response(endpoint, wire, response, request, keep_alive)
    return request


async def _read_request(endpoint: Endpoint, wire: _Wire) -> tuple[Request, bool] | None:
    """The next request and whether the connection may go on after it; ``None`` when the
    peer closed or stayed idle; bad input raises :class:`HTTPError` (400, 408, 413, 431...)."""
    head = await _read_head(endpoint, wire)
    if head is None:
        return None
    method = head.method
    path, query_string = _split_target(head.target, method)
    if query_string:
        try:
            query = parse_qs(query_string, max_num_fields=endpoint.max_form_fields)
        except ValueError:
            limit = endpoint.max_form_fields
            raise HTTPError(
                400, f"the query string has more than {limit} fields (Endpoint.max_form_fields)"
            ) from None
    else:
        query = {}
    body = await _read_body(endpoint, wire, head)
    if body is None:
        return None
    request = Request(
        method,
        path,
        query,
        head.headers,
        body,
        wire.peer,
        query_string,
        endpoint.max_form_fields,
        head.http_version,
    )
    return request, head.keep_alive


async def _read_head(endpoint: Endpoint, wire: _Wire) -> RequestHead | None:
    # Idle (no byte of the next request yet): keep_alive_timeout, then close quietly. From
    # the first byte on: head_timeout for the whole head, then 408.
    conn = wire.conn
    event = conn.next_event()
    if type(event) is RequestHead:  # pipelined: parsed with the bytes of the last one
        return event
    late = (
        f"the request head did not arrive within {endpoint.head_timeout} s (Endpoint.head_timeout)"
    )
    started = conn.started
    if started:
        wire.wait_until(endpoint.head_timeout, late)
    else:
        wire.wait_until(endpoint.keep_alive_timeout, None)
    while True:
        if event is NEED_DATA:
            data = await wire.receive()
            if not data:
                return None
            if not started:
                started = True
                wire.wait_until(endpoint.head_timeout, late)
            conn.receive_data(data)
        elif type(event) is RequestHead:
            wire.arrived()
            return event
        elif isinstance(event, ProtocolError):
            raise HTTPError(event.status, event.message)
        else:  # a body or its end without a head: cannot happen
            return None
        event = conn.next_event()


def _split_target(target: str, method: str) -> tuple[str, str]:
    """The path and the raw query string of a request target (origin-form ``/p?q``,
    absolute-form ``http://host/p?q``, or ``*`` for ``OPTIONS``)."""
    if target.startswith("/"):
        path, _, query = target.partition("#")[0].partition("?")
        return path, query
    if target == "*" and method == "OPTIONS":
        return "*", ""
    if target[:8].lower().startswith(("http://", "https://")):
        try:
            parts = urlsplit(target)
        except ValueError as exc:
            raise HTTPError(
                400, f"the request target {target[:100]!r} is malformed: {exc}"
            ) from None
        return parts.path or "/", parts.query
    raise HTTPError(
        400, f"the request target {target[:100]!r} is not a path (a path starts with '/')"
    )


async def _read_body(endpoint: Endpoint, wire: _Wire, head: RequestHead) -> bytes | None:
    conn = wire.conn
    event = conn.next_event()
    if event is END:  # no body (or all of it came with the head)
        return b""
    parts: list[bytes] = []
    wire.wait_until(
        endpoint.body_timeout,
        f"the request body did not arrive within {endpoint.body_timeout} s (Endpoint.body_timeout)",
    )
    while True:
        if event is NEED_DATA:
            if head.expects_continue and (answer := conn.continue_once()):
                await wire.send(answer)
                wire.answered = False  # a 100 is no answer yet
            data = await wire.receive()
            if not data:
                return None
            conn.receive_data(data)
        elif event is END:
            wire.arrived()
            return b"".join(parts)
        elif type(event) is bytes:
            parts.append(event)
        elif isinstance(event, ProtocolError):
            raise HTTPError(event.status, event.message)
        else:
            return None
        event = conn.next_event()


def _tokens(request: Request, name: str) -> list[str]:
    """The comma-separated, case-insensitive tokens of every *name* header."""
    return [
        token.strip().lower()
        for key, value in request.headers
        if key == name
        for token in value.split(",")
    ]


def _peer(stream: trio.SocketStream) -> tuple[str, int] | None:
    try:
        peer = stream.socket.getpeername()
        return (str(peer[0]), int(peer[1]))
    except (OSError, IndexError, TypeError, ValueError):
        return None


async def _respond(endpoint: Endpoint, request: Request) -> Response:
    handler = endpoint.resolve(request.method, request.path)
    if handler is None:
        allowed = endpoint.allowed_methods(request.path)
        if allowed:
            allow = ", ".join(sorted(allowed))
            message = f"method {request.method} not allowed on {request.path} (allowed: {allow})"
            return Response(405, f"{message}\n".encode(), (_TEXT, ("allow", allow)))
        return Response(404, f"no route for {request.method} {request.path}\n".encode())
    return await _in_process(handler, request)


def _error_response(error: HTTPError) -> Response:
    return Response(error.status, f"{error.message}\n".encode(), (_TEXT, *error.headers))


async def _in_process(handler: HttpHandler, request: Request) -> Response:
    """Run *handler* in a process of its own (as Phoenix runs each request), so that it can
    call other processes (a GenServer, the domain's connection pool); a crash is a 500, an
    :class:`HTTPError` its own status."""
    done = trio.Event()
    result: list[Response] = []

    async def run() -> None:
        try:
            answer = handler(request)
            if not isinstance(answer, Response):
                answer = await answer
            result.append(answer)
        except HTTPError as exc:
            result.append(_error_response(exc))
        except (Exception, SystemExit):  # SystemExit: a handler's bug, not the node's end
            logger.exception("handler for %s %s failed", request.method, request.path)
        finally:
            done.set()

    if not lowlevel.in_node():  # a server outside any node: plain HTTP still works, in-task
        await run()
        return result[0] if result else Response(500, b"internal server error\n")
    pid = lowlevel.spawn_opt(run, detached=True, initial_call=handler)
    try:
        await done.wait()
    finally:
        if not done.is_set():  # the connection went away: so does the request's process
            beam.exit(pid, "kill")
    if not result:
        return Response(500, b"internal server error\n")
    return result[0]


def _encode(endpoint: Endpoint, response: Response) -> tuple[list[bytes], bool]:
    """The header lines of *response* (framing headers ours, security headers added, every
    header checked: a token name, no CR/LF, latin-1 only) and whether it asks to close the
    connection; raises if the response cannot be sent."""
    body = response.body
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"a Response body is bytes, got {type(body).__name__}")
    given = set()
    lines: list[bytes] = []
    close = False
    for name, value in response.headers:
        lower = name.lower()
        given.add(lower)
        if lower in _FRAMING:
            continue
        if lower == "connection" and "close" in value.lower():
            close = True
        line = _LINES.get((name, value))
        if line is None:
            line = encode_header(name, value)
            if len(value) <= 200:  # the usual ones (content types...) repeat: keep them
                if len(_LINES) >= 512:
                    _LINES.clear()
                _LINES[name, value] = line
        lines.append(line)
    for name, line in _security_lines(endpoint):
        if name not in given:
            lines.append(line)
    return lines, close


def _security_lines(endpoint: Endpoint) -> tuple[tuple[str, bytes], ...]:
    """The endpoint's security headers as lines, encoded once per set of headers."""
    headers = endpoint.security_headers
    lines = _SECURITY.get(headers)
    if lines is None:
        lines = tuple((name, encode_header(name, value)) for name, value in headers)
        if len(_SECURITY) >= 64:
            _SECURITY.clear()
        _SECURITY[headers] = lines
    return lines


_SECURITY: dict[tuple[tuple[str, str], ...], tuple[tuple[str, bytes], ...]] = {}
#: Header lines already checked and encoded, by (name, value).
_LINES: dict[tuple[str, str], bytes] = {}


async def _send_response(
    endpoint: Endpoint, wire: _Wire, response: Response, request: Request, keep_alive: bool
) -> None:
    """Send *response* to *request*; for a HEAD request, its headers only (with the body's
    length). A response that cannot be sent (a header with CR/LF...) is logged, and a 500
    goes out instead."""
    try:
        lines, close = _encode(endpoint, response)
    except (UnicodeError, TypeError, ValueError):
        logger.exception(
            "the response to %s %s cannot be sent; answered 500 instead",
            request.method,
            request.path,
        )
        response = Response(500, b"internal server error\n")
        lines, close = _encode(endpoint, response)
    data = wire.conn.response(
        response.status,
        lines,
        bytes(response.body),
        keep_alive=keep_alive and not close,
        head=request.method == "HEAD",
    )
    await wire.send(data)


async def _send_error(endpoint: Endpoint, wire: _Wire, error: HTTPError) -> None:
    """Answer *error* and close the connection after it, unless a response (or part of
    one) to the current request went out already."""
    if wire.answered:
        return
    response = _error_response(error)
    lines, _ = _encode(endpoint, response)
    await wire.send(wire.conn.response(response.status, lines, response.body, keep_alive=False))


async def _accept(upgrader: Upgrader, request: Request) -> SocketHandler | Response:
    try:
        return await upgrader.accept(request)
    except HTTPError as exc:
        return _error_response(exc)
    except Exception:
        logger.exception("WebSocket upgrade on %s failed", request.path)
        return Response(500, b"internal server error\n")


def _check_handshake(request: Request) -> None:
    """Refuse a WebSocket upgrade that RFC 6455 (section 4.2.1) does not allow, before any
    upgrader or handler sees it."""
    if request.method != "GET":
        raise HTTPError(400, f"a WebSocket upgrade is a GET request, not {request.method}")
    if request.http_version != "1.1":
        raise HTTPError(
            400, f"a WebSocket upgrade needs HTTP/1.1, this request is HTTP/{request.http_version}"
        )
    if "upgrade" not in _tokens(request, "connection"):
        raise HTTPError(
            400, "a WebSocket upgrade needs the header 'Connection: Upgrade' (it is missing)"
        )
    versions = [value.strip() for key, value in request.headers if key == "sec-websocket-version"]
    if versions != ["13"]:
        raise HTTPError(
            426,
            f"WebSocket version {', '.join(versions) or '(none)'} is not supported: "
            f"send 'Sec-WebSocket-Version: 13'",
            (("sec-websocket-version", "13"), ("upgrade", "websocket")),
        )
    keys = [value.strip() for key, value in request.headers if key == "sec-websocket-key"]
    if len(keys) != 1 or not _valid_key(keys[0]):
        raise HTTPError(
            400,
            "a WebSocket upgrade needs one Sec-WebSocket-Key header holding the base64 "
            f"encoding of 16 random bytes, got {keys[:2]!r:.100}",
        )
    host = request.header("host")
    if host is None:
        raise HTTPError(400, "bad WebSocket handshake: the request has no Host header")
    try:  # an internationalised host name is IDNA (a Host that is not, is not a host)
        host.encode("latin-1").decode("idna")
    except UnicodeError as exc:
        raise HTTPError(400, f"bad WebSocket handshake: the Host is not a name: {exc}") from None


def _valid_key(key: str) -> bool:
    try:
        return len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


async def _start_upgrade(
    endpoint: Endpoint, wire: _Wire, upgrader: Upgrader, request: Request
) -> _Upgrade | None:
    """Validate the handshake, ask the upgrader, and prepare the 101 (``None`` when the
    upgrader refused: its response was sent)."""
    _check_handshake(request)
    handler = await _accept(upgrader, request)
    if isinstance(handler, Response):
        await _send_response(endpoint, wire, handler, request, False)
        return None
    key = request.header("sec-websocket-key") or ""
    headers = [
        b"upgrade: websocket\r\n",
        b"connection: Upgrade\r\n",
        b"sec-websocket-accept: %s\r\n" % accept_key(key.strip()).encode("ascii"),
    ]
    offered = [p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",")]
    if "phoenix" in offered:
        headers.append(b"sec-websocket-protocol: phoenix\r\n")
    accept = informational(101, headers)
    ws = frame_layer(endpoint.max_frame_bytes)
    return (accept, ws, wire.conn.trailing_data, request, handler)


async def _upgrade(
    endpoint: Endpoint,
    nursery: trio.Nursery,
    stream: trio.SocketStream,
    held: list[_Upgrade],
) -> None:
    accept, ws, leftover, request, handler = held.pop()
    await stream.send_all(accept)
    del accept
    # A backlog's writer task runs in the server's nursery (an idle connection has none); a
    # failed outbox (a slow consumer) ends the connection through the handler's scope.
    scope = trio.CancelScope()
    outbox = Outbox(
        stream.socket, nursery, max_backlog=endpoint.max_backlog_bytes, on_failure=scope.cancel
    )
    socket = WebSocket(stream, ws, request, outbox, scope=scope)
    del request, scope  # socket.request and socket.scope from now on
    if leftover:  # frames that came with the handshake
        socket.feed(leftover)
    del leftover
    close_with: tuple[int, str] = (GOING_AWAY, "")
    try:
        with socket.scope:
            await handler(socket)
        if socket.scope.cancelled_caught and socket.closing is None:
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
            await socket.close(*(socket.closing or close_with))
