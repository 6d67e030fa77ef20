"""An accepted WebSocket, and what decides on an upgrade before it is accepted.

The ``websockets`` library's sans-I/O protocol (its frame parser unmasks with a C extension)
does the framing, pings and closes; :class:`WebSocket` moves whole messages between it and the
connection, and writes through an :class:`~web.http._outbox.Outbox`::

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    endpoint.websocket("/echo", echo)
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, NoReturn, Protocol, cast

import trio
from websockets.exceptions import InvalidState, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol as FrameLayer
from websockets.protocol import Side, State

from ._outbox import Outbox, frame
from ._request import Request, Response

__all__ = [
    "GOING_AWAY",
    "Always",
    "SocketHandler",
    "Upgrader",
    "WebSocket",
    "WebSocketClosed",
    "frame_layer",
]

#: Close code for "going away": phoenix.js reconnects after it (never close with 1000).
GOING_AWAY: Final = 1001
_READ: Final = 65_536
_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)
_CLOSE_WAIT: Final = 2.0
#: A close frame's reason is at most 123 bytes (125 less the code).
_REASON_BYTES: Final = 123

SocketHandler = Callable[["WebSocket"], Awaitable[None]]


def frame_layer(max_message: int) -> FrameLayer:
    """The frame layer of a server WebSocket whose handshake is done: the ``websockets``
    library's sans-I/O protocol, refusing messages over *max_message* bytes (1009).

    >>> layer = frame_layer(1_048_576)
    >>> layer.state.name
    'OPEN'
    """
    return FrameLayer(Side.SERVER, state=State.OPEN, max_size=max_message)


class Upgrader(Protocol):
    """Decides on a WebSocket upgrade before it happens (a Channels socket is one).

    ``accept(request)`` returns the handler that will serve the accepted WebSocket, or a
    :class:`Response` that refuses the upgrade (a 403 for a failed ``connect``). An upgrader
    may also have a ``child_spec()`` method: what it returns (a ``supervisors.ChildSpec``, or
    ``None``) runs under the endpoint's supervision tree (:meth:`Endpoint.supervise`).

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


def _frames_of(ws: FrameLayer) -> list[Frame]:
    """The frames parsed since the last call (after the handshake, every event is a frame)."""
    return cast("list[Frame]", ws.events_received())


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
        "_frames",
        "_parts",
        "_stream",
        "_text",
        "_ws",
        "closed",
        "outbox",
        "request",
        "scope",
    )

    def __init__(
        self,
        stream: trio.SocketStream,
        ws: FrameLayer,
        request: Request,
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
        #: Frames parsed and not yet taken (one read may bring several).
        self._frames: deque[Frame] = deque()
        #: The data of a fragmented message so far, and whether it is text.
        self._parts: list[bytes] = []
        self._text = False
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
        ws = self._ws
        if self.closed is None and self.outbox.failed is None and ws.state is State.OPEN:
            self.closed = WebSocketClosed(code, reason)
            reason = reason.encode()[:_REASON_BYTES].decode(errors="ignore")
            with contextlib.suppress(*_GONE, ProtocolError, InvalidState):
                ws.send_close(code, reason)
                self._flush()
                with trio.move_on_after(_CLOSE_WAIT):
                    await self.outbox.drain()
                    await self._await_peer_close()
        elif ws.parser_exc is not None and self.outbox.failed is None:
            # The frame layer refused what came (a message too big, bad UTF-8...) and sent
            # its close frame, perhaps while the peer was still sending: read and drop what
            # comes until the peer closes (briefly), so that closing now does not reset the
            # connection before the peer has read why.
            with contextlib.suppress(*_GONE, OSError), trio.move_on_after(_CLOSE_WAIT):
                await self.outbox.drain()
                while data := await self._stream.receive_some(_READ):
                    ws.receive_data(data)
        self.outbox.close()
        await self._stream.aclose()

    async def _await_peer_close(self) -> None:
        ws = self._ws
        while ws.close_rcvd is None and ws.parser_exc is None:
            data = await self._stream.receive_some(_READ)
            if not data:
                return
            ws.receive_data(data)
            ws.events_received()

    def _flush(self) -> None:
        """Write what the frame layer has to send (pongs, close frames); its end-of-stream
        marker is left to :meth:`close`, which closes the TCP connection."""
        for data in self._ws.data_to_send():
            if data:
                self.outbox.write_nowait(data)

    def feed(self, data: bytes) -> None:
        """Take in bytes that arrived before the WebSocket existed (with the handshake)."""
        ws = self._ws
        ws.receive_data(data)
        self._frames.extend(_frames_of(ws))
        self._flush()

    async def receive(self) -> str | bytes:
        """The next whole message; raises :class:`WebSocketClosed` once the peer closed."""
        frames = self._frames
        while True:
            while frames:
                got = frames.popleft()
                opcode = got.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                    message = self._message(got)
                    if message is not None:
                        return message
                elif opcode is Opcode.CLOSE:
                    # The frame layer answered it (the same code) when it parsed it.
                    close = self._ws.close_rcvd
                    code, why = (1005, "") if close is None else (close.code, close.reason)
                    self.closed = WebSocketClosed(code, why)
                    raise self.closed
                # PING: answered by the frame layer when parsed; PONG: nothing to do.
            if self.closed is not None:
                raise self.closed
            if self._ws.parser_exc is not None:
                # A protocol error, a message too big, bad UTF-8: the frame layer sent its
                # close frame (1002, 1009, 1007) and reads no further.
                self._failed()
            data = await self._read()
            if not data:
                self.closed = WebSocketClosed(1006, "connection lost")
                raise self.closed
            ws = self._ws
            ws.receive_data(data)
            frames.extend(_frames_of(ws))
            if ws.writes:
                self._flush()

    async def _read(self) -> bytes:
        """The next bytes from the peer (``b""`` once it is gone).

        A client that sent a message mostly waits for the answer before it sends again, so
        this waits for the socket to be readable and then reads it once, with no failing read
        first and no extra trip through the scheduler (what ``receive_some`` costs)."""
        sock = self._stream.socket
        while True:
            try:
                await trio.lowlevel.wait_readable(sock)
                return os.read(sock.fileno(), _READ)
            except BlockingIOError:
                continue
            except (*_GONE, OSError):
                return b""

    def _message(self, got: Frame) -> str | bytes | None:
        """Add a data frame to the message; the whole message once its last frame came (the
        frame layer checked the order of fragments and the message's size)."""
        parts = self._parts
        if not got.fin:
            if not parts:  # the first fragment says the message's kind
                self._text = got.opcode is Opcode.TEXT
            parts.append(bytes(got.data))
            return None
        if parts:
            parts.append(bytes(got.data))
            data = b"".join(parts)
            parts.clear()
            text = self._text
        else:
            data = bytes(got.data)
            text = got.opcode is Opcode.TEXT
        if not text:
            return data
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            self._ws.fail(1007, f"invalid UTF-8 at position {exc.start}")
            self._flush()
            self._failed()
            raise  # not reached: _failed raised

    def _failed(self) -> NoReturn:
        sent = self._ws.close_sent
        code, why = (1006, "connection lost") if sent is None else (sent.code, sent.reason)
        self.closed = WebSocketClosed(code, why)
        raise self.closed

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None
