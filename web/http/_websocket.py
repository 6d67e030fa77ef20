"""An accepted WebSocket, and what decides on an upgrade before it is accepted.

wsproto does the framing, pings and closes; :class:`WebSocket` moves whole messages between
it and the connection, and writes through an :class:`~web.http._outbox.Outbox`::

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    endpoint.websocket("/echo", echo)
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import trio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ._outbox import Outbox, frame
from ._request import Request, Response

__all__ = ["GOING_AWAY", "Always", "SocketHandler", "Upgrader", "WebSocket", "WebSocketClosed"]

#: Close code for "going away": phoenix.js reconnects after it (never close with 1000).
GOING_AWAY: Final = 1001
_READ: Final = 65_536
_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)
_CLOSE_WAIT: Final = 2.0

SocketHandler = Callable[["WebSocket"], Awaitable[None]]


class Upgrader(Protocol):
    """Decides on a WebSocket upgrade before it happens (a Channels socket is one).

    ``accept(request)`` returns the handler that will serve the accepted WebSocket, or a
    :class:`Response` that refuses the upgrade (a 403 for a failed ``connect``).

    >>> class SameOrigin:
    ...     async def accept(self, request):
    ...         return echo if request.header("origin") == ORIGIN else Response(403)
    >>> endpoint.upgrade("/echo", SameOrigin())
    """

    async def accept(self, request: Request) -> SocketHandler | Response:
        """The handler for this upgrade, or the response that refuses it."""
        ...


@dataclass(frozen=True, slots=True)
class Always:
    """The upgrader of :meth:`~web.Endpoint.websocket`: accepts every upgrade."""

    handler: SocketHandler

    async def accept(self, request: Request) -> SocketHandler | Response:
        return self.handler


class WebSocketClosed(Exception):
    """The peer closed the WebSocket (``code`` and ``reason`` say how).

    >>> try:
    ...     message = await ws.receive()
    ... except WebSocketClosed as exc:
    ...     print(exc.code, exc.reason)          # e.g. 1006 connection lost
    """

    def __init__(self, code: int, reason: str | None) -> None:
        super().__init__(f"WebSocket closed: {code} {reason or ''}".strip())
        self.code = code
        self.reason = reason


class WebSocket:
    """One accepted WebSocket: receive and send whole messages, close with a code.

    Writes go through :attr:`outbox` (see :class:`~web.http._outbox.Outbox`): :meth:`send` waits
    until the kernel took the bytes, ``outbox.write_nowait(frame(...))`` does not wait at all.

    >>> async def echo(ws: WebSocket) -> None:
    ...     async for message in ws:
    ...         await ws.send(message)
    >>> endpoint.websocket("/echo", echo)
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
        *,
        scope: trio.CancelScope | None = None,
    ) -> None:
        self.request = request
        self.outbox = outbox
        #: The cancel scope around the handler (*scope*, or a new one): its deadline may be
        #: moved (an idle timeout); when it fires, the connection closes with 1001 "idle
        #: timeout".
        self.scope = trio.CancelScope() if scope is None else scope
        self._closing: tuple[int, str] | None = None
        self._stream = stream
        self._ws = ws
        self._max_frame = max_frame
        self._parts: list[str | bytes] = []
        self._size = 0
        self.closed: WebSocketClosed | None = None

    @property
    def closing(self) -> tuple[int, str] | None:
        """The code and reason :meth:`close_soon` asked for, or ``None`` if it was not called.

        >>> ws.close_soon(1008, "policy violation")
        >>> ws.closing
        (1008, 'policy violation')
        """
        return self._closing

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
