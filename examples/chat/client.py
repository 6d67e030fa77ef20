"""A small Phoenix Channels client on trio-websocket, for the terminal client and the bots.

It speaks the V2 protocol as phoenix.js does: joins with join refs, pushes with refs whose
replies it matches, heartbeats every 30 seconds, and hands every other message to the caller::

    async with connect("http://127.0.0.1:4000", token) as socket:
        await socket.join("room:" + room_id)
        reply = await socket.push("room:" + room_id, "new_message", {"content": "hi"})
        async for topic, event, payload in socket.messages():
            ...
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

__all__ = ["ChannelError", "PhoenixSocket", "connect"]

HEARTBEAT_SECONDS = 30.0


class ChannelError(Exception):
    """A join or push answered with an error; ``response`` says why."""

    def __init__(self, what: str, response: Any) -> None:
        super().__init__(f"{what}: {response}")
        self.response = response


class PhoenixSocket:
    """One connection; see the module documentation."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._refs = itertools.count(1)
        self._join_refs: dict[str, str] = {}
        self._waiting: dict[str, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[str, str, Any]](1000)

    async def join(self, topic: str, payload: dict[str, Any] | None = None) -> Any:
        """Join *topic*; returns the reply's response, raises :class:`ChannelError`."""
        ref = str(next(self._refs))
        self._join_refs[topic] = ref
        reply = await self._request(ref, ref, topic, "phx_join", payload or {})
        if reply["status"] != "ok":
            raise ChannelError(f"join {topic}", reply["response"])
        return reply["response"]

    async def push(
        self, topic: str, event: str, payload: dict[str, Any], timeout: float = 10
    ) -> Any:
        """Push *event*; returns the reply's response, raises :class:`ChannelError`."""
        ref = str(next(self._refs))
        with trio.fail_after(timeout):
            reply = await self._request(self._join_refs.get(topic), ref, topic, event, payload)
        if reply["status"] != "ok":
            raise ChannelError(f"{event} on {topic}", reply["response"])
        return reply["response"]

    async def messages(self) -> AsyncIterator[tuple[str, str, Any]]:
        """Every message that is not a reply: ``(topic, event, payload)``."""
        async for message in self._inbox:
            yield message

    async def _request(
        self, join_ref: str | None, ref: str, topic: str, event: str, payload: Any
    ) -> dict[str, Any]:
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[ref] = send
        await self._ws.send_message(json.dumps([join_ref, ref, topic, event, payload]))
        try:
            return await receive.receive()
        finally:
            self._waiting.pop(ref, None)

    async def _read(self) -> None:
        try:
            while True:
                join_ref, ref, topic, event, payload = json.loads(await self._ws.get_message())
                if event == "phx_reply" and ref in self._waiting:
                    self._waiting[ref].send_nowait(payload)
                elif join_ref is None or join_ref == self._join_refs.get(topic):
                    await self._inbox_send.send((topic, event, payload))
        except ConnectionClosed:
            await self._inbox_send.aclose()

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(HEARTBEAT_SECONDS)
            await self._request(None, str(next(self._refs)), "phoenix", "heartbeat", {})


@asynccontextmanager
async def connect(base_url: str, token: str) -> AsyncIterator[PhoenixSocket]:
    """Open ``/socket/websocket`` on the server at *base_url* with the socket *token*."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    url = f"{scheme}://{parts.netloc}/socket/websocket?vsn=2.0.0&token={quote(token)}"
    async with open_websocket_url(url) as ws, trio.open_nursery() as nursery:
        socket = PhoenixSocket(ws)
        nursery.start_soon(socket._read)
        nursery.start_soon(socket._heartbeat)
        try:
            yield socket
        finally:
            nursery.cancel_scope.cancel()
