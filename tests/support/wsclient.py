"""A small WebSocket client for tests, on wsproto: it closes its socket whatever happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)


class Closed(Exception):
    """The server closed the WebSocket with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Rejected(Exception):
    """The server answered the upgrade with an HTTP error ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Client:
    """One client connection: send and receive whole messages."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection, subprotocol: str | None):
        self.stream = stream
        self.ws = ws
        self.subprotocol = subprotocol
        self._parts: list[str | bytes] = []

    async def send(self, message: str | bytes) -> None:
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
        await self.stream.send_all(self.ws.send(event))

    async def ping(self, payload: bytes) -> bytes:
        await self.stream.send_all(self.ws.send(Ping(payload)))
        while True:
            event = await self._next_event()
            if isinstance(event, Pong):
                return bytes(event.payload)

    async def receive(self) -> str | bytes:
        while True:
            event = await self._next_event()
            if isinstance(event, Message):
                self._parts.append(event.data)
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    if isinstance(parts[0], str):
                        return "".join(p for p in parts if isinstance(p, str))
                    return b"".join(bytes(p) for p in parts if not isinstance(p, str))

    async def _next_event(self) -> object:
        while True:
            for event in self.ws.events():
                if isinstance(event, CloseConnection):
                    await self.stream.send_all(self.ws.send(event.response()))
                    raise Closed(event.code)
                return event
            data = await self.stream.receive_some(65_536)
            if not data:
                raise Closed(1006)
            self.ws.receive_data(bytes(data))


@asynccontextmanager
async def connect(
    port: int,
    path: str,
    subprotocols: list[str] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[Client]:
    """Open a WebSocket to 127.0.0.1:*port* at *path*; the socket is closed on exit."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        ws = WSConnection(ConnectionType.CLIENT)
        request = Request(
            host=f"127.0.0.1:{port}",
            target=path,
            subprotocols=subprotocols or [],
            extra_headers=headers or [],
        )
        await stream.send_all(ws.send(request))
        with trio.fail_after(5):
            while True:
                data = await stream.receive_some(65_536)
                ws.receive_data(bytes(data) if data else None)
                events = list(ws.events())
                rejected = next((e for e in events if isinstance(e, RejectConnection)), None)
                if rejected is not None:
                    raise Rejected(rejected.status_code)
                accepted = next((e for e in events if isinstance(e, AcceptConnection)), None)
                if accepted is not None:
                    break
        yield Client(stream, ws, accepted.subprotocol)
