"""The HTTP/1.1 and WebSocket server: one trio listener, h11 and the ``websockets`` library's
sans-I/O protocol, no ASGI in the way.

h11 parses requests and writes responses (the WebSocket handshake's 101 too); the
``websockets`` sans-I/O protocol does the framing (unmasking in C), pings and closes. This
module only moves bytes between them and the socket, routes requests
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
import logging
from functools import partial
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import h11
import trio
from websockets.protocol import Protocol as FrameLayer
from websockets.utils import accept_key

import beam
from beam import lowlevel

from ._endpoint import Endpoint
from ._errors import HTTPError
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


async def _serve_http(endpoint: Endpoint, stream: trio.SocketStream) -> list[_Upgrade] | None:
    """Serve HTTP requests until the connection should close (``None``) or a WebSocket
    upgrade was accepted (returned in a list that :func:`_upgrade` empties)."""
    http = h11.Connection(h11.SERVER, max_incomplete_event_size=endpoint.max_head_bytes)
    while True:
        try:
            outcome = await _exchange(endpoint, http, stream)
        except HTTPError as exc:  # bad input: answer, close this connection
            logger.debug("refused a request from %s: %s", _peer(stream), exc)
            await _send_error(endpoint, http, stream, exc)
            return None
        except _GONE:
            raise
        except Exception:
            logger.exception("request from %s failed; answered 500", _peer(stream))
            await _send_error(endpoint, http, stream, HTTPError(500, "internal server error"))
            return None
        if outcome is None:
            return None
        if isinstance(outcome, tuple):
            # An open WebSocket keeps no HTTP state, and the request only as long as the
            # WebSocket holds it (a handler may let it go).
            return [outcome]
        if http.our_state is h11.MUST_CLOSE or http.their_state is h11.MUST_CLOSE:
            return None
        http.start_next_cycle()


async def _exchange(
    endpoint: Endpoint, http: h11.Connection, stream: trio.SocketStream
) -> Request | _Upgrade | None:
    """One request and its response: the request (the connection may go on), the upgrade
    to run, or ``None`` (close). Bad input raises :class:`HTTPError`."""
    request = await _read_request(endpoint, http, stream)
    if request is None:
        return None
    upgrader = endpoint.upgrader(request.path)
    if upgrader is not None and "websocket" in _tokens(request, "upgrade"):
        return await _start_upgrade(endpoint, http, stream, upgrader, request)
    response = await _respond(endpoint, request)
    await _send_response(endpoint, http, stream, response, request)
    return request


async def _read_request(
    endpoint: Endpoint, http: h11.Connection, stream: trio.SocketStream
) -> Request | None:
    """The next request, ``None`` when the peer closed or stayed idle; bad input raises
    :class:`HTTPError` (400, 408, 413, 431...)."""
    head = await _read_head(endpoint, http, stream)
    if head is None:
        return None
    _check_head(endpoint, head)
    method = head.method.decode("ascii")
    path, query_string = _split_target(head.target.decode("latin-1"), method)
    try:
        query = parse_qs(query_string, max_num_fields=endpoint.max_form_fields)
    except ValueError:
        limit = endpoint.max_form_fields
        raise HTTPError(
            400, f"the query string has more than {limit} fields (Endpoint.max_form_fields)"
        ) from None
    body = await _read_body(endpoint, http, stream)
    if body is None:
        return None
    return Request(
        method,
        path,
        query,
        tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers),
        body,
        _peer(stream),
        query_string,
        endpoint.max_form_fields,
        head.http_version.decode("ascii"),
    )


async def _read_head(
    endpoint: Endpoint, http: h11.Connection, stream: trio.SocketStream
) -> h11.Request | None:
    # Idle (no byte of the next request yet): keep_alive_timeout, then close quietly. From
    # the first byte on: head_timeout for the whole head, then 408.
    started = bool(http.trailing_data[0])
    wait = endpoint.head_timeout if started else endpoint.keep_alive_timeout
    with trio.move_on_after(wait) as scope:
        while True:
            event = _next_event(endpoint, http)
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_READ)
                if not data:
                    return None
                if not started:
                    started = True
                    scope.deadline = trio.current_time() + endpoint.head_timeout
                http.receive_data(bytes(data))
            elif isinstance(event, h11.Request):
                return event
            else:  # ConnectionClosed (or PAUSED, which cannot happen before a request)
                return None
    if started and scope.cancelled_caught:
        raise HTTPError(
            408,
            f"the request head did not arrive within {endpoint.head_timeout} s "
            f"(Endpoint.head_timeout)",
        )
    return None


def _check_head(endpoint: Endpoint, head: h11.Request) -> None:
    # h11's own limit (max_incomplete_event_size) only holds while the head is incomplete: a
    # head that arrives in one read is measured here.
    if len(head.headers) > endpoint.max_headers:
        raise HTTPError(
            431,
            f"the request has {len(head.headers)} header fields, over the limit of "
            f"{endpoint.max_headers} (Endpoint.max_headers)",
        )
    size = len(head.method) + len(head.target) + 12
    names = set()
    for name, value in head.headers:
        size += len(name) + len(value) + 4
        names.add(name)
    if size > endpoint.max_head_bytes:
        raise HTTPError(
            431,
            f"the request head is over {endpoint.max_head_bytes} bytes (Endpoint.max_head_bytes)",
        )
    if b"content-length" in names and b"transfer-encoding" in names:
        raise HTTPError(
            400,
            "the request has both Content-Length and Transfer-Encoding (a request smuggling "
            "pattern): send one of them",
        )


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


async def _read_body(
    endpoint: Endpoint, http: h11.Connection, stream: trio.SocketStream
) -> bytes | None:
    body = bytearray()
    with trio.move_on_after(endpoint.body_timeout):
        while True:
            event = _next_event(endpoint, http)
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_READ)
                if not data:
                    return None
                http.receive_data(bytes(data))
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > endpoint.max_request_bytes:
                    raise HTTPError(
                        413,
                        f"request body over {endpoint.max_request_bytes} bytes "
                        f"(Endpoint.max_request_bytes)",
                    )
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                return None
    raise HTTPError(
        408,
        f"the request body did not arrive within {endpoint.body_timeout} s (Endpoint.body_timeout)",
    )


def _next_event(endpoint: Endpoint, http: h11.Connection) -> Any:
    try:
        return http.next_event()
    except h11.RemoteProtocolError as exc:
        if exc.error_status_hint == 431:
            message = (
                f"the request head is over {endpoint.max_head_bytes} bytes "
                f"(Endpoint.max_head_bytes)"
            )
        else:
            message = str(exc)
        raise HTTPError(exc.error_status_hint, message) from None


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


def _encode(endpoint: Endpoint, response: Response) -> h11.Response:
    """The h11 event for *response*: framing headers ours, security headers added, every
    header checked (no CR/LF, latin-1 only); raises if the response cannot be sent."""
    body = response.body
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"a Response body is bytes, got {type(body).__name__}")
    given = set()
    headers: list[tuple[bytes, bytes]] = []
    for name, value in response.headers:
        lower = name.lower()
        given.add(lower)
        if lower not in _FRAMING:
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
    for name, value in endpoint.security_headers:
        if name not in given:
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    return h11.Response(status_code=response.status, headers=headers)


async def _send_response(
    endpoint: Endpoint,
    http: h11.Connection,
    stream: trio.abc.Stream,
    response: Response,
    request: Request,
) -> None:
    """Send *response* to *request*; for a HEAD request, its headers only (with the body's
    length). A response that cannot be sent (a header with CR/LF...) is logged, and a 500
    goes out instead."""
    if http.our_state is not h11.SEND_RESPONSE:
        raise RuntimeError(f"no response can be sent in h11 state {http.our_state}")
    head = request.method == "HEAD"
    try:
        event = _encode(endpoint, response)
    except (h11.LocalProtocolError, UnicodeError, TypeError, ValueError):
        logger.exception(
            "the response to %s %s cannot be sent; answered 500 instead",
            request.method,
            request.path,
        )
        response = Response(500, b"internal server error\n")
        event = _encode(endpoint, response)
    data = http.send(event)
    if response.body and not head:
        data += http.send(h11.Data(data=response.body))
    data += http.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _send_error(
    endpoint: Endpoint, http: h11.Connection, stream: trio.abc.Stream, error: HTTPError
) -> None:
    """Answer *error* and mark the connection for closing, unless a response (or part of
    one) went out already; when h11 cannot frame it (no complete request yet), the bytes
    are written directly."""
    if http.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    response = _error_response(error)
    response = Response(
        response.status, response.body, (*response.headers, ("connection", "close"))
    )
    try:
        event = _encode(endpoint, response)
        data = http.send(event) + http.send(h11.Data(data=response.body))
        data += http.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        data = _raw_error(endpoint, error)
    await stream.send_all(data)


def _raw_error(endpoint: Endpoint, error: HTTPError) -> bytes:
    body = f"{error.message}\n".encode()
    lines = [
        f"HTTP/1.1 {error.status} {error.reason}",
        f"{_TEXT[0]}: {_TEXT[1]}",
        *(f"{name}: {value}" for name, value in endpoint.security_headers),
        f"content-length: {len(body)}",
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


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
    endpoint: Endpoint,
    http: h11.Connection,
    stream: trio.SocketStream,
    upgrader: Upgrader,
    request: Request,
) -> _Upgrade | None:
    """Validate the handshake, ask the upgrader, and prepare the 101 (``None`` when the
    upgrader refused: its response was sent)."""
    _check_handshake(request)
    handler = await _accept(upgrader, request)
    if isinstance(handler, Response):
        await _send_response(endpoint, http, stream, handler, request)
        return None
    key = request.header("sec-websocket-key") or ""
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_key(key.strip()).encode("ascii")),
    ]
    offered = [p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",")]
    if "phoenix" in offered:
        headers.append((b"sec-websocket-protocol", b"phoenix"))
    accept = http.send(h11.InformationalResponse(status_code=101, headers=headers))
    if accept is None or http.our_state is not h11.SWITCHED_PROTOCOL:
        raise RuntimeError(f"h11 did not switch protocols (state {http.our_state})")
    ws = frame_layer(endpoint.max_frame_bytes)
    return (accept, ws, bytes(http.trailing_data[0]), request, handler)


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
