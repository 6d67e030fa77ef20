"""A small Phoenix Channels client on trio-websocket, for the terminal client and the bots.

It speaks the V2 protocol as phoenix.js does: joins with join refs, pushes with refs whose
replies it matches, heartbeats every 30 seconds, and hands every other message to the caller.
It also recovers as phoenix.js does: when the connection drops (the server restarts, say) it
reconnects with growing delays (:data:`RECONNECT_AFTER`) and rejoins every channel; when a
channel fails on the server (its process crashed: ``phx_error``) it rejoins that channel
(:data:`REJOIN_AFTER`). A push waits while its channel is down and is sent again when a
reply was lost with the connection, so give each send a client id the server stores once::

    async with connect("http://127.0.0.1:4000", token) as socket:
        await socket.join("room:" + room_id)
        reply = await socket.push("room:" + room_id, "new_message", {"content": "hi"})
        async for topic, event, payload in socket.messages():
            ...

Besides the server's messages, :meth:`PhoenixSocket.messages` yields the client's own news
on the topic ``"phoenix"``: ``disconnected`` (``{"retry_in": seconds}``) and
``reconnected``; and ``rejoined`` on a channel's topic after it was joined again.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

__all__ = [
    "RECONNECT_AFTER",
    "REJOIN_AFTER",
    "ChannelError",
    "ConnectFailed",
    "PhoenixSocket",
    "connect",
]

HEARTBEAT_SECONDS = 30.0
#: Seconds before each reconnection attempt (the last one repeats), as phoenix.js's
#: ``reconnectAfterMs``.
RECONNECT_AFTER: Final = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0)
#: Seconds before each attempt to rejoin a channel (the last one repeats): ``rejoinAfterMs``.
REJOIN_AFTER: Final = (1.0, 2.0, 5.0)
#: How long one join or push waits for its reply before trying again.
REPLY_TIMEOUT: Final = 10.0
#: How long opening a connection may take before it counts as failed.
CONNECT_TIMEOUT: Final = 5.0
#: How long closing a connection waits for the server's close frame.
DISCONNECT_TIMEOUT: Final = 1.0


#: Error replies that say the channel went away without answering: the push is sent again.
_CHANNEL_GONE: Final = ({"reason": "unmatched topic"}, {"reason": "channel crashed"})


class ChannelError(Exception):
    """A join or push answered with an error; ``response`` says why."""

    def __init__(self, what: str, response: Any) -> None:
        super().__init__(f"{what}: {response}")
        self.response = response


class ConnectFailed(Exception):
    """The first connection could not be made (refused, or the token was rejected)."""


class _Lost(Exception):
    """The connection (or the channel) went away before the reply came."""


def after(delays: tuple[float, ...], tries: int) -> float:
    """The delay before attempt number *tries* (from 1): the last one repeats.

    >>> after(REJOIN_AFTER, 7)
    5.0
    """
    return delays[min(tries, len(delays)) - 1]


@dataclass
class _Channel:
    topic: str
    params: dict[str, Any]
    #: The ref of the current join while joined, else ``None``.
    join_ref: str | None = None
    #: Why the first join was refused (the caller is told; the channel is dropped).
    refused: Any = None
    joined_once: bool = False
    joined_response: Any = None


class PhoenixSocket:
    """One logical connection that reconnects itself; see the module documentation."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._ws: WebSocketConnection | None = None
        self._refs = itertools.count(1)
        self._channels: dict[str, _Channel] = {}
        self._waiting: dict[str, trio.MemorySendChannel[dict[str, Any] | None]] = {}
        #: The join ref each waiting push was sent under: a push in flight when its channel
        #: is lost is answered ``_Lost`` at once and sent again after the rejoin, instead of
        #: waiting :data:`REPLY_TIMEOUT` for a reply that the dead channel never sends.
        self._sent_under: dict[str, str] = {}
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[str, str, Any]](1000)
        self._change = trio.Event()
        self._nursery: trio.Nursery | None = None

    # -- the caller's side ---------------------------------------------------------------

    async def join(self, topic: str, payload: dict[str, Any] | None = None) -> Any:
        """Join *topic* (and rejoin it whenever it is lost); returns the join's response,
        raises :class:`ChannelError` when the server refuses the first join."""
        channel = self._channels[topic] = _Channel(topic, payload or {})
        assert self._nursery is not None
        self._nursery.start_soon(self._keep, channel)
        await self._until(lambda: channel.joined_once or channel.refused is not None)
        if channel.refused is not None:
            del self._channels[topic]
            raise ChannelError(f"join {topic}", channel.refused)
        return channel.joined_response

    async def push(
        self, topic: str, event: str, payload: dict[str, Any], timeout: float = 10
    ) -> Any:
        """Push *event* once its channel is joined; returns the reply's response, raises
        :class:`ChannelError` for an error reply and :class:`trio.TooSlowError` after
        *timeout* seconds. A push whose reply is lost with the connection or the channel is
        sent again after the rejoin."""
        channel = self._channels.get(topic)
        with trio.fail_after(timeout):
            while True:
                if channel is None:
                    reply = await self._request(None, topic, event, payload)
                else:
                    await self._until(lambda: self._ws is not None and channel.join_ref)
                    sent_under = channel.join_ref
                    try:
                        reply = await self._request(sent_under, topic, event, payload)
                    except _Lost:
                        continue
                    if reply["response"] in _CHANNEL_GONE:
                        # The channel died before it answered: whether it acted is unknown,
                        # so the push goes again to the rejoined channel (the chat's pushes
                        # carry a client id, so a repeat is stored once).
                        if channel.join_ref == sent_under:
                            self._lose(channel)
                        continue
                break
        if reply["status"] != "ok":
            raise ChannelError(f"{event} on {topic}", reply["response"])
        return reply["response"]

    async def messages(self) -> AsyncGenerator[tuple[str, str, Any], None]:
        """Every message that is not a reply: ``(topic, event, payload)``."""
        async for message in self._inbox:
            yield message

    # -- state -----------------------------------------------------------------------------

    def _changed(self) -> None:
        old, self._change = self._change, trio.Event()
        old.set()

    async def _until(self, ready: Callable[[], object]) -> None:
        while not ready():
            await self._change.wait()

    def _lose(self, channel: _Channel) -> None:
        lost = channel.join_ref
        if lost is not None:
            channel.join_ref = None
            for ref, join_ref in list(self._sent_under.items()):
                if join_ref == lost and (waiter := self._waiting.get(ref)) is not None:
                    with suppress(trio.WouldBlock):  # its reply came first
                        waiter.send_nowait(None)
            self._changed()

    def _note(self, topic: str, event: str, payload: Any) -> None:
        # Nobody reads the news: drop it rather than stall the connection.
        with suppress(trio.WouldBlock):
            self._inbox_send.send_nowait((topic, event, payload))

    # -- the connection ----------------------------------------------------------------------

    async def _request(
        self, join_ref: str | None, topic: str, event: str, payload: Any
    ) -> dict[str, Any]:
        """Send one message and wait for its reply; :class:`_Lost` if the connection goes
        (or no reply comes within :data:`REPLY_TIMEOUT`). A join is its own join ref."""
        ws = self._ws
        if ws is None:
            raise _Lost()
        ref = str(next(self._refs))
        if event == "phx_join":
            join_ref = ref
        send, receive = trio.open_memory_channel[dict[str, Any] | None](1)
        self._waiting[ref] = send
        if join_ref is not None:
            self._sent_under[ref] = join_ref
        try:
            try:
                await ws.send_message(json.dumps([join_ref, ref, topic, event, payload]))
            except ConnectionClosed:
                # The server's close frame is read but the session has not ended yet (and
                # send_message raises without a checkpoint): wait for it to end, or a caller
                # that tries again at once would spin and starve the reader that ends it.
                await self._until(lambda: self._ws is not ws)
                raise _Lost() from None
            with trio.move_on_after(REPLY_TIMEOUT):
                reply = await receive.receive()
                if reply is None:
                    raise _Lost()
                return reply
            raise _Lost()
        finally:
            self._waiting.pop(ref, None)
            self._sent_under.pop(ref, None)

    async def _keep(self, channel: _Channel) -> None:
        """Join *channel*, and join it again whenever it is lost, with growing delays."""
        tries = 0
        while channel.topic in self._channels and self._channels[channel.topic] is channel:
            await self._until(lambda: self._ws is not None and channel.join_ref is None)
            try:
                reply = await self._request(None, channel.topic, "phx_join", channel.params)
            except _Lost:
                continue
            if reply["status"] == "ok":
                tries = 0
                channel.join_ref = reply["ref"]
                channel.joined_response = reply["response"]
                if channel.joined_once:
                    self._note(channel.topic, "rejoined", {})
                channel.joined_once = True
                self._changed()
                continue
            if not channel.joined_once:
                channel.refused = reply["response"]
                self._changed()
                return
            tries += 1
            await trio.sleep(after(REJOIN_AFTER, tries))

    async def _read(self, ws: WebSocketConnection) -> None:
        while True:
            try:
                join_ref, ref, topic, event, payload = json.loads(await ws.get_message())
            except ConnectionClosed:
                return
            channel = self._channels.get(topic)
            if event == "phx_reply":
                if ref == join_ref and channel is not None and payload.get("status") == "ok":
                    # A join's reply: the channel is joined under this ref from now on, so
                    # what it pushes next (read before the joining task runs again) is kept.
                    channel.join_ref = ref
                waiter = self._waiting.get(ref)
                if waiter is not None:
                    waiter.send_nowait(dict(payload, ref=ref))
            elif event in ("phx_error", "phx_close") and channel is not None:
                if join_ref == channel.join_ref:
                    self._lose(channel)  # its process went: rejoin
            elif join_ref is None or channel is None or join_ref == channel.join_ref:
                await self._inbox_send.send((topic, event, payload))

    async def _heartbeat(self, ws: WebSocketConnection) -> None:
        """A heartbeat every 30 s; no reply to one closes the connection (and so reconnects)."""
        while True:
            await trio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._request(None, "phoenix", "heartbeat", {})
            except _Lost:
                await ws.aclose()
                return

    async def _session(self, ws: WebSocketConnection) -> None:
        """Serve one connection until it closes; then every channel is down."""
        self._ws = ws
        self._changed()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat, ws)
                await self._read(ws)
                nursery.cancel_scope.cancel()
        finally:
            self._ws = None
            for waiter in list(self._waiting.values()):
                with suppress(trio.WouldBlock):  # its reply came first
                    waiter.send_nowait(None)
            for channel in self._channels.values():
                channel.join_ref = None
            self._changed()

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the first connection (its failure is the starter's), then reconnect for as
        long as the socket is open."""
        assert self._nursery is not None
        async with _dial(self._nursery, self._url) as first:
            task_status.started()
            await self._session(first)
        tries = 0
        while True:
            tries += 1
            delay = after(RECONNECT_AFTER, tries)
            self._note("phoenix", "disconnected", {"retry_in": delay})
            await trio.sleep(delay)
            try:
                # Bounded: a server going down may still accept a connection it never serves.
                async with _dial(self._nursery, self._url) as ws:
                    tries = 0
                    self._note("phoenix", "reconnected", {})
                    await self._session(ws)
            except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError):
                continue


@asynccontextmanager
async def connect(base_url: str, token: str) -> AsyncIterator[PhoenixSocket]:
    """Open ``/socket/websocket`` on the server at *base_url* with the socket *token*;
    :class:`ConnectFailed` when that first connection cannot be made."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    url = f"{scheme}://{parts.netloc}/socket/websocket?vsn=2.0.0&token={quote(token)}"
    socket = PhoenixSocket(url)
    async with trio.open_nursery() as nursery:
        socket._nursery = nursery
        try:
            await nursery.start(socket._run)
        except (OSError, HandshakeError) as exc:
            raise ConnectFailed(_why(exc)) from None
        except trio.TooSlowError:
            raise ConnectFailed(f"no answer within {CONNECT_TIMEOUT:g} s") from None
        try:
            yield socket
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def _dial(nursery: trio.Nursery, url: str) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket connection to *url*, its reader task in *nursery* (opened within
    :data:`CONNECT_TIMEOUT`, else :class:`trio.TooSlowError`); its TCP connection is closed on
    the way out, which ends that task: trio-websocket leaves a client's stream open when
    the server closed the WebSocket first."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    resource = f"{parts.path}?{parts.query}" if parts.query else parts.path
    opened_by = trio.current_time() + CONNECT_TIMEOUT  # the TCP connection and handshake
    with trio.fail_at(opened_by):
        stream: trio.abc.HalfCloseableStream | trio.SSLStream[trio.SocketStream]
        if parts.scheme == "wss":
            stream = await trio.open_ssl_over_tcp_stream(host, port, https_compatible=True)
        else:
            stream = await trio.open_tcp_stream(host, port)
    try:
        with trio.fail_at(opened_by):
            ws = await wrap_client_stream(nursery, stream, parts.netloc, resource)
        try:
            yield ws
        finally:
            with trio.move_on_after(DISCONNECT_TIMEOUT) as closing:
                closing.shield = True
                await ws.aclose()
    finally:
        await trio.aclose_forcefully(stream)


def _why(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return "the server refused the sign-in token"
    return str(exc) or type(exc).__name__
