"""The transport process of a Channels connection, as Phoenix's ``Phoenix.Socket``.

Each WebSocket connection is one transport process. It takes its places under the handler's
connection caps, runs ``connect``, and once upgraded answers heartbeats, starts one channel
process per joined topic (linked to it), forwards the client's messages to them, and turns
their exits into ``phx_error`` (a crash: phoenix.js rejoins) or nothing more (they already sent
``phx_close``). When the connection ends, the transport exits and its channels stop with
``("shutdown", "closed")``.

The connection's trio task (the server's, not a process) and the transport talk through one
:class:`Connection`: frames and the close go to the transport as messages; the transport
refuses, accepts or closes the WebSocket through the connection's methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio

import beam

from ..http import Outbox, Request, Response, WebSocket, frame
from ._caps import admit, admit_id
from ._channel import (
    Channel,
    ChannelStart,
    CloseConnection,
    JoinAnswered,
    PushesHandled,
    Wire,
    run_channel,
)
from ._pools import CHANNELS, PoolsStopped, start_supervised
from ._protocol import (
    HEARTBEAT,
    PHOENIX_TOPIC,
    PHX_ERROR,
    PHX_JOIN,
    PHX_LEAVE,
    Broadcast,
    Message,
    ProtocolError,
    Reply,
    Serializer,
)

if TYPE_CHECKING:  # the socket module spawns transports: it imports this one
    from ._socket import Socket

__all__ = ["ConnectInfo", "Connection", "transport"]

logger = logging.getLogger("web.socket")

_DUPLICATE_JOIN: Final = ("shutdown", "duplicate_join")
_JOIN_WAIT: Final = 5.0
_UPGRADE_WAIT: Final = 10.0
#: Stands in for a connection's set-up Events once they have fired.
_HAPPENED: Final = trio.Event()
_HAPPENED.set()


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What ``connect`` may look at besides the params: the peer, headers, origin, and the
    token phoenix.js sends with its ``authToken`` option (in the WebSocket subprotocols).

    >>> async def connect(self, params, connect_info):      # in a web.Socket subclass
    ...     if connect_info.origin != "https://chat.example.com":
    ...         return None                                 # refused: HTTP 403
    ...     return {"token": params.get("token") or connect_info.auth_token}
    """

    peer: tuple[str, int] | None
    headers: tuple[tuple[str, str], ...]
    origin: str | None
    auth_token: str | None
    path: str


def _route(channels: Mapping[str, type[Channel]], topic: str) -> type[Channel] | None:
    """The channel class of *topic* in a socket's route table: the first pattern that
    matches, an exact topic or a prefix ending in ``*``."""
    for pattern, channel in channels.items():
        if pattern.endswith("*"):
            if topic.startswith(pattern[:-1]):
                return channel
        elif topic == pattern:
            return channel
    return None


def _ref_order(ref: str) -> tuple[int, str]:
    """Refs are counters as strings: answer them in the order they were sent."""
    return (int(ref), ref) if ref.isdigit() else (0, ref)


@dataclass(frozen=True, slots=True)
class _Frame:
    """Connection task -> transport: one frame from the client."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class _Decoded:
    """Connection task -> transport: a frame from the client, decoded (and counted against
    the rate limit) by :meth:`_Transport.deliver`, which only the transport can handle."""

    message: Message


@dataclass(frozen=True, slots=True)
class _Gone:
    """Connection task -> transport: the WebSocket is closed."""

    code: int


@dataclass(slots=True)
class Connection:
    """What the connection's task and its transport process share (both on one trio thread)."""

    socket: Socket
    serializer: Serializer
    pid: beam.Pid | None = None
    decided: trio.Event = field(default_factory=trio.Event)
    refusal: Response | None = None
    upgraded: trio.Event = field(default_factory=trio.Event)
    ws: WebSocket | None = None
    close_with: tuple[int, str] | None = None
    #: The transport once it serves the connection: the connection task delivers frames
    #: through it (:meth:`_Transport.deliver`).
    serving: _Transport | None = None
    #: Frames handed to the transport process and not yet handled by it: while there are
    #: any, the next frames go the same way, so that each channel gets its pushes in order.
    queued: int = 0

    async def session(self, ws: WebSocket) -> None:
        """The connection task after the upgrade: read frames, hand them to the transport.

        The WebSocket's cancel scope serves both ends: its deadline moves with every frame
        (the idle timeout), and the transport cancels it to close the connection
        (:meth:`close`).
        """
        self.ws = ws
        self.upgraded.set()
        # connect has seen the headers; an idle connection need not keep them.
        seen = ws.request
        ws.request = Request(seen.method, seen.path, {}, (), b"", seen.client)
        del seen
        pid = self.pid
        assert pid is not None
        if self.close_with is not None:  # the transport is gone already
            ws.close_soon(*self.close_with)
        idle = self.socket.idle_timeout
        # The deadline moves with the frames, but at most every *slack* seconds (moving a
        # trio deadline costs more than the rest of a frame's trip to the transport): the
        # connection closes between idle - slack and idle seconds after its last frame.
        slack = idle / 64
        scope = ws.scope
        code = 1006
        try:
            moved = trio.current_time()
            scope.deadline = moved + idle
            while True:
                data = await ws.receive()
                now = trio.current_time()
                if now - moved > slack:
                    scope.deadline = now + idle
                    moved = now
                serving = self.serving
                if serving is not None:
                    serving.deliver(data)
                else:  # connect is still running: the transport takes the frame when it serves
                    self.queued += 1
                    beam.send(pid, _Frame(data))
        except BaseException as exc:
            code = getattr(exc, "code", 1006)
            raise
        finally:
            beam.send(pid, _Gone(code))

    def refuse(self, response: Response) -> None:
        """Transport -> connection task: answer the upgrade request with *response*."""
        self.refusal = response
        self.decided.set()

    def close(self, code: int, reason: str) -> None:
        """Transport -> connection task: close the WebSocket with *code* and *reason*."""
        if self.close_with is None:
            self.close_with = (code, reason)
        if self.ws is not None:
            self.ws.close_soon(code, reason)

    @property
    def outbox(self) -> Outbox:
        assert self.ws is not None, "the WebSocket is not upgraded yet"
        return self.ws.outbox

    def write(self, message: Message | Reply) -> None:
        """Send *message* to the client (dropped if the connection is closed)."""
        self.outbox.write_nowait(frame(self.serializer.encode(message)))


@dataclass(slots=True)
class _Entry:
    """The transport's own bookkeeping of one joined topic (only the transport touches it)."""

    pid: beam.Pid
    join_ref: str | None
    #: The join's ref until the channel answers it (:class:`JoinAnswered`): if the channel
    #: dies first (killed in ``join``, or before it ever ran), the transport answers "join
    #: crashed", as Phoenix does.
    join_pending: str | None
    #: Refs of pushes handed to the channel and not yet acknowledged (:class:`PushesHandled`):
    #: if the channel crashes, the transport answers them with an error instead of leaving
    #: them hanging. A list: short (acknowledgements come in small batches), in order.
    unanswered: list[str] = field(default_factory=list)
    joined: bool = False

    def handled(self, refs: tuple[str, ...]) -> None:
        """The channel acknowledged *refs*: forget them (they are the oldest, in order,
        unless a channel took a push out of its mailbox out of turn)."""
        unanswered = self.unanswered
        count = len(refs)
        if unanswered[:count] == list(refs):
            del unanswered[:count]
            return
        for ref in refs:
            if ref in unanswered:
                unanswered.remove(ref)


class _RateLimit:
    """A fixed window: at most *limit* messages per *window* seconds."""

    __slots__ = ("count", "limit", "start", "warned", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.start = time.monotonic()
        self.count = 0
        self.warned = False

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self.start >= self.window:
            self.start, self.count, self.warned = now, 0, False
        self.count += 1
        return self.count <= self.limit


async def transport(
    socket: Socket, conn: Connection, params: dict[str, str], info: ConnectInfo
) -> None:
    """The transport process: take a place under the caps, ``connect``, wait for the upgrade,
    then serve the connection."""
    try:
        refusal = admit(socket, info.peer)
        if refusal is not None:
            conn.refuse(refusal)
            return
        connected = await _connect(socket, conn, params, info)
        del params, info  # connect has seen them; a long-lived transport need not keep them
        if connected is None:
            return
        with trio.move_on_after(_UPGRADE_WAIT):
            await conn.upgraded.wait()
        if conn.ws is None:
            return  # the upgrade never completed (the client went away)
        conn.decided = conn.upgraded = _HAPPENED  # an idle connection keeps no spare Events
        await _Transport(socket, conn, *connected).run()
    finally:
        if not conn.decided.is_set():
            conn.refuse(Response(500, b"internal server error\n"))
        conn.close(1001, "server closing")


async def _connect(
    socket: Socket,
    conn: Connection,
    params: dict[str, str],
    info: ConnectInfo,
) -> tuple[dict[str, Any], str | None] | None:
    """``connect``, then the per-id cap: the assigns and the socket id, or ``None`` once the
    upgrade is refused."""
    name = type(socket).__name__
    assigns = await socket.connect(params, info)
    if assigns is None or assigns is False:
        logger.info(
            "refused WebSocket on %s from %s: %s.connect said no", info.path, info.peer, name
        )
        conn.refuse(Response(403, f"{name}.connect refused the connection\n".encode()))
        return None
    if not isinstance(assigns, Mapping):
        raise beam.BadReturnValue(f"{name}.connect", assigns, "a mapping of assigns, or None")
    assigns = dict(assigns)
    socket_id = socket.id(assigns)
    if socket_id is not None:
        refusal = admit_id(socket, socket_id)
        if refusal is not None:
            conn.refuse(refusal)
            return None
    conn.decided.set()
    return assigns, socket_id


class _Transport:
    """The state of one transport process (see the module documentation)."""

    __slots__ = ("assigns", "channels", "conn", "id", "pid", "rate", "socket")

    def __init__(
        self, socket: Socket, conn: Connection, assigns: dict[str, Any], socket_id: str | None
    ) -> None:
        self.socket = socket
        self.conn = conn
        self.assigns = assigns
        self.id = socket_id
        self.channels: dict[str, _Entry] = {}
        limit = socket.rate_limit
        self.rate = None if limit is None else _RateLimit(*limit)
        self.pid = beam.self()

    async def run(self) -> None:
        beam.trap_exit(True)
        if self.id is not None:
            beam.subscribe(self.id)
        conn = self.conn
        conn.serving = self
        try:
            await self._serve()
        finally:
            conn.serving = None

    async def _serve(self) -> None:
        conn = self.conn
        while True:
            message = await beam.receive()
            kind = type(message)
            if kind is _Frame:
                try:
                    decoded = self._decode(message.data)
                    if decoded is not None:
                        await self._route(decoded)
                finally:
                    conn.queued -= 1
            elif kind is _Decoded:
                try:
                    await self._route(message.message)
                finally:
                    conn.queued -= 1
            elif kind is PushesHandled:
                entry = self.channels.get(message.topic)
                if entry is not None and entry.pid == message.pid:
                    entry.handled(message.refs)
            elif kind is beam.Exit:
                topic = self._topic_of(message.pid)
                if topic is not None:
                    self._channel_exit(topic, message)
                elif message.reason != "normal":
                    self._stopped_by(message.reason)
            elif kind is JoinAnswered:
                entry = self.channels.get(message.topic)
                if entry is not None and entry.pid == message.pid:
                    entry.join_pending = None
                    entry.joined = message.joined
            elif kind is _Gone:
                return
            elif kind is Broadcast and message.topic == self.id and message.event == "disconnect":
                self.conn.close(1001, "disconnected")
                return
            elif kind is CloseConnection:
                self.conn.close(1001, message.reason[:120])
                return

    def deliver(self, data: str | bytes) -> None:
        """The connection task hands over a frame from the client (both run on one trio
        thread, so this is plain, uninterrupted code in that task): a push for a joined
        channel goes straight to the channel's process, as the transport would have sent it,
        without waking the transport; anything else (a join, a leave, an unknown topic) goes
        to the transport process. While the transport has frames to handle, every frame
        queues behind them."""
        conn = self.conn
        if conn.queued:
            conn.queued += 1
            beam.send(self.pid, _Frame(data))
            return
        message = self._decode(data)
        if message is None:
            return
        entry = self.channels.get(message.topic)
        if (
            entry is not None
            and entry.joined
            and message.event != PHX_JOIN
            and message.event != PHX_LEAVE
            and (message.join_ref is None or message.join_ref == entry.join_ref)
        ):
            if message.ref is not None:
                entry.unanswered.append(message.ref)
            beam.send(entry.pid, message)
            return
        conn.queued += 1
        beam.send(self.pid, _Decoded(message))

    def _decode(self, data: str | bytes) -> Message | None:
        """A frame as a message, or ``None`` when it is handled already: a malformed frame
        (the connection closes), a heartbeat (answered), a message over the rate limit
        (answered with an error)."""
        try:
            message = self.conn.serializer.decode(data)
        except ProtocolError as exc:
            logger.warning("closing WebSocket after a malformed frame: %s", exc)
            self.conn.close(1007, f"malformed frame: {exc}"[:120])
            return None
        if message.topic == PHOENIX_TOPIC and message.event == HEARTBEAT:
            self._reply(message, "ok", {})
            return None
        rate = self.rate
        if rate is not None and not rate.allow():
            if not rate.warned:
                rate.warned = True
                logger.warning(
                    "rate limit: over %d messages in %s s on one connection; answering errors",
                    rate.limit,
                    rate.window,
                )
            reason = f"rate limit exceeded: at most {rate.limit} messages per {rate.window} s"
            self._reply(message, "error", {"reason": reason})
            return None
        return message

    async def _route(self, message: Message) -> None:
        """A decoded message from the client: a join, a leave, or a push for its channel."""
        entry = self.channels.get(message.topic)
        if message.event == PHX_JOIN:
            await self._join(message, entry)
        elif entry is None:
            if message.event == PHX_LEAVE:
                self._reply(message, "ok", {})
            else:
                self._unmatched(message)
        elif message.join_ref is not None and message.join_ref != entry.join_ref:
            logger.debug("dropping a message for an earlier join of %r", message.topic)
        else:
            if message.ref is not None:
                entry.unanswered.append(message.ref)
            beam.send(entry.pid, message)

    async def _join(self, message: Message, entry: _Entry | None) -> None:
        topic = message.topic
        channel = _route(self.socket.channels, topic)
        if channel is None:
            logger.warning("ignoring a join of %r: no channel route matches it", topic)
            self._unmatched(message)
            return
        if entry is not None:
            await self._stop_channel(entry)
        elif len(self.channels) >= self.socket.max_channels:
            logger.warning("refusing a join of %r: %d channels joined", topic, len(self.channels))
            self._reply(message, "error", {"reason": "too many channels joined"})
            return
        payload = message.payload if isinstance(message.payload, Mapping) else {}
        start = ChannelStart(
            topic,
            message.join_ref,
            message.ref,
            payload,
            self.assigns,
            beam.self(),
            self.id,
            Wire(topic, message.join_ref, self.conn.outbox, self.conn.serializer),
            report=True,
        )
        # Under the channels' pool (see _pools), and linked to this transport as well: the
        # join is pending from the start, so a channel killed before it first runs still
        # gets its "join crashed".
        try:
            pid = await start_supervised(
                CHANNELS, beam.self().id, run_channel, (channel(), start), channel
            )
        except PoolsStopped:  # the server is shutting down: the client joins again later
            self._reply(message, "error", {"reason": "server shutting down"})
            return
        self.channels[topic] = _Entry(pid, message.join_ref, message.ref)
        try:
            beam.link(pid)
        except Exception:  # gone already (noproc): as its exit would have said
            self._channel_exit(topic, beam.Exit(pid, "noproc"))

    async def _stop_channel(self, entry: _Entry) -> None:
        """A second join of a joined topic: stop the first channel (it sends its phx_close)."""
        beam.exit(entry.pid, _DUPLICATE_JOIN)
        try:
            await beam.receive(
                lambda m: type(m) is beam.Exit and m.pid == entry.pid, timeout=_JOIN_WAIT
            )
        except beam.ReceiveTimeout:
            beam.exit(entry.pid, "kill")
            await beam.receive(lambda m: type(m) is beam.Exit and m.pid == entry.pid)
        topic = self._topic_of(entry.pid)
        if topic is not None:
            del self.channels[topic]

    def _topic_of(self, pid: beam.Pid) -> str | None:
        """The topic of the channel process *pid* (a scan: a socket joins few topics, and a
        second dict would cost every idle connection more than the scan costs an exit)."""
        return next((t for t, entry in self.channels.items() if entry.pid == pid), None)

    def _channel_exit(self, topic: str, message: beam.Exit) -> None:
        entry = self.channels.pop(topic)
        pending = entry.join_pending
        if pending is not None:  # died in join, before answering it (killed, say)
            reply = Reply(entry.join_ref, pending, topic, "error", {"reason": "join crashed"})
            self.conn.write(reply)
            return
        if entry.joined and not beam.is_normal_exit(message.reason):
            # The pushes it was given and never answered get an error now, not a timeout.
            for ref in sorted(entry.unanswered, key=_ref_order):
                reply = Reply(entry.join_ref, ref, topic, "error", {"reason": "channel crashed"})
                self.conn.write(reply)
            self.conn.write(Message(entry.join_ref, entry.join_ref, topic, PHX_ERROR, {}))

    def _stopped_by(self, reason: Any) -> None:
        """An exit signal from outside (a supervisor, a linked process): close and exit."""
        clean = beam.is_normal_exit(reason)
        if not clean:
            logger.error("transport stopped by an exit signal: %s", beam.bounded_repr(reason))
        self.conn.close(1001 if clean else 1011, "server closing" if clean else "internal error")
        raise beam.ProcessExit(reason)

    def _reply(self, message: Message, status: str, response: Any) -> None:
        self.conn.write(Reply(message.join_ref, message.ref, message.topic, status, response))

    def _unmatched(self, message: Message) -> None:
        reply = Reply(None, message.ref, message.topic, "error", {"reason": "unmatched topic"})
        self.conn.write(reply)
