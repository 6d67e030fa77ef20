"""Sockets: authenticate a WebSocket connection and route its topics to channels.

A :class:`Socket` subclass is what Phoenix calls a socket handler: it says which channel
serves which topics, and ``connect`` decides, before the WebSocket upgrade, whether the client
may connect and what the connection's *assigns* are (who the user is)::

    class UserSocket(web.Socket):
        channels = {"room:*": RoomChannel}

        async def connect(self, params, connect_info):
            try:
                user_id = web.Token.verify(SECRET, "user socket", params.get("token", ""))
            except web.InvalidToken:
                return None                     # refused: HTTP 403
            return {"user_id": user_id}

        def id(self, assigns):
            return f"user_socket:{assigns['user_id']}"   # web.disconnect(...) closes them

    endpoint.socket("/socket", UserSocket())    # clients connect to /socket/websocket

Each connection is a *transport process*. It answers heartbeats, starts one channel process per
joined topic (linked to it), forwards the client's messages to them, and turns their exits
into ``phx_error`` (a crash: phoenix.js rejoins) or nothing more (they already sent
``phx_close``). When the connection ends, the transport exits and its channels stop with
``("shutdown", "closed")``.

Limits, each with a clear error reply or close reason, and a log line: ``max_channels`` joined
topics per connection, ``rate_limit`` messages per window (over it, pushes are answered
``{"reason": "rate limit exceeded ..."}``), ``idle_timeout`` without any frame (heartbeats
count), ``check_origin`` for browsers, plus the endpoint's frame size and backlog limits.

Connection caps refuse the upgrade itself (before the ``101``), with a body that names the cap
and the attribute that raises it: ``max_connections`` per socket handler (``503``),
``max_connections_per_address`` per client IP and ``max_connections_per_id`` per socket
``id`` (one user; ``429``). A connection counts from the moment ``connect`` starts until its
transport exits, whatever the exit (a close, a crash, a kill). The per-address and per-id
counts are entries of the transports themselves in a node-wide duplicate
:class:`beam.Registry` (``"web.sockets"``), which vanish with the process; the per-handler
count is one integer, given back in the transport's ``finally``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import trio

import beam
from beam import lowlevel

from ._channel import Channel, ChannelSocket, Joined, run_channel
from ._outbox import Outbox, frame
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
    serializer_for,
)
from ._server import Request, Response, SocketHandler, WebSocket

__all__ = ["ConnectInfo", "Socket", "disconnect"]

logger = logging.getLogger("web.socket")

_BEARER: Final = "base64url.bearer.phx."
_DUPLICATE_JOIN: Final = ("shutdown", "duplicate_join")
_JOIN_WAIT: Final = 5.0
_UPGRADE_WAIT: Final = 10.0
#: Stands in for a connection's set-up Events once they have fired.
_HAPPENED: Final = trio.Event()
_HAPPENED.set()


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What ``connect`` may look at besides the params: the peer, headers, origin, and the
    token phoenix.js sends with its ``authToken`` option (in the WebSocket subprotocols)."""

    peer: tuple[str, int] | None
    headers: tuple[tuple[str, str], ...]
    origin: str | None
    auth_token: str | None
    path: str


class Socket:
    """Subclass it: declare ``channels``, override ``connect`` and ``id`` as needed.

    ``channels`` maps topic patterns to channel classes: an exact topic (``"lobby"``) or a
    prefix ending in ``*`` (``"room:*"``). The first matching pattern wins.

    >>> class UserSocket(web.Socket):
    ...     channels = {"room:*": RoomChannel}
    """

    channels: ClassVar[Mapping[str, type[Channel]]] = {}
    #: ``True``: a browser's Origin must name the host it connected to; ``False``: any;
    #: or a list of allowed origins (``"https://example.com"``, or ``"//example.com"`` for
    #: any scheme and port).
    check_origin: ClassVar[bool | Sequence[str]] = True
    #: Topics one connection may join at once (Phoenix's ``max_channels_per_transport``).
    max_channels: ClassVar[int] = 100
    #: ``(messages, seconds)``: how many client messages a connection may send per window;
    #: ``None`` for no limit. Heartbeats do not count.
    rate_limit: ClassVar[tuple[int, float] | None] = (200, 1.0)
    #: Seconds without any frame from the client before the connection is closed.
    idle_timeout: ClassVar[float] = 60.0
    #: Connections this socket handler serves at once (those still in ``connect`` too); over
    #: it the upgrade is answered ``503``. ``None``: no cap.
    max_connections: ClassVar[int | None] = 10_000
    #: Connections from one client IP address; over it the upgrade is answered ``429``.
    #: Behind a reverse proxy every client has the proxy's address: raise it, or ``None``.
    max_connections_per_address: ClassVar[int | None] = 100
    #: Connections with one socket ``id`` (one user, many tabs); over it the upgrade is
    #: answered ``429`` (``connect`` runs before the upgrade is accepted). Connections
    #: without an id are not counted. ``None``: no cap.
    max_connections_per_id: ClassVar[int | None] = 50

    async def connect(
        self, params: Mapping[str, str], connect_info: ConnectInfo
    ) -> Mapping[str, Any] | None:
        """Accept the connection by returning its assigns, or refuse it with ``None`` (the
        client gets HTTP 403). Runs in the connection's transport process, so it may call
        other processes. The default accepts everyone with no assigns."""
        return {}

    def id(self, assigns: Mapping[str, Any]) -> str | None:
        """A name shared by all of one user's connections, so that
        ``web.disconnect(name)`` closes them all; ``None`` (the default) for no name."""
        return None

    # -- the Upgrader protocol of Endpoint -------------------------------------------------

    async def accept(self, request: Request) -> SocketHandler | Response:
        """Decide on a WebSocket upgrade (called by the server, not by users)."""
        params = {key: values[-1] for key, values in request.query.items()}
        try:
            serializer = serializer_for(params.get("vsn"))
        except ProtocolError as exc:
            return _refuse(request, 403, f"{exc}")
        origin = request.header("origin")
        if not self._origin_allowed(origin, request.header("host")):
            return _refuse(
                request,
                403,
                f"origin {origin!r} is not allowed (set check_origin on {type(self).__name__})",
            )
        info = ConnectInfo(
            request.client, request.headers, origin, _auth_token(request), request.path
        )
        connection = _Connection(self, serializer)
        pid = lowlevel.spawn_opt(
            _transport, self, connection, params, info, detached=True, initial_call=type(self)
        )
        connection.pid = pid
        await connection.decided.wait()
        if connection.refusal is not None:
            return connection.refusal
        return connection.session

    def _origin_allowed(self, origin: str | None, host: str | None) -> bool:
        check = self.check_origin
        if check is False or origin is None:  # not a browser: there is no origin to check
            return True
        parts = urlsplit(origin)
        if check is True:
            return host is not None and parts.netloc.lower() == host.lower()
        for allowed in check:
            want = urlsplit(allowed)
            if want.scheme and want.scheme != parts.scheme:
                continue
            if want.hostname == parts.hostname and (want.port is None or want.port == parts.port):
                return True
        return False

    def _route(self, topic: str) -> type[Channel] | None:
        for pattern, channel in self.channels.items():
            if pattern.endswith("*"):
                if topic.startswith(pattern[:-1]):
                    return channel
            elif topic == pattern:
                return channel
        return None


# -- connection caps ----------------------------------------------------------------------------

_REGISTRY: Final = "web.sockets"
#: Seconds between two log lines about refusals by the same cap of the same handler.
_REFUSAL_LOG_EVERY: Final = 60.0


class _Census:
    """How many connections one socket handler serves, and when it last logged a refusal.

    Only transports of this trio thread touch it, between two awaits: no lock needed.
    """

    __slots__ = ("live", "logged")

    def __init__(self) -> None:
        self.live = 0
        #: cap -> (when a refusal was last logged, refusals not logged since)
        self.logged: dict[str, tuple[float, int]] = {}


#: id(socket handler) -> its census, while it has connections (or refusals being counted).
_CENSUS: dict[int, _Census] = {}


def _connections() -> beam.Registry:
    """The node's registry of live Channels connections (duplicate keys)."""
    try:
        return beam.Registry.named(_REGISTRY)
    except LookupError:
        return beam.Registry("duplicate", name=_REGISTRY)


def _over(registry: beam.Registry, key: tuple[Any, ...], cap: int | None) -> bool:
    return cap is not None and len(registry.lookup(key)) >= cap


def _refusal(socket: Socket, census: _Census, cap: str, status: int, why: str) -> Response:
    """The response that refuses an upgrade over *cap*; logged once a minute per cap."""
    name = type(socket).__name__
    text = f"{why} (raise {name}.{cap} to allow more)"
    now = time.monotonic()
    last, quiet = census.logged.get(cap, (-_REFUSAL_LOG_EVERY, 0))
    if now - last >= _REFUSAL_LOG_EVERY:
        more = f"; {quiet} more refused since the last report" if quiet else ""
        logger.warning("refusing WebSocket connections to %s: %s%s", name, text, more)
        census.logged[cap] = (now, 0)
    else:
        census.logged[cap] = (last, quiet + 1)
    headers = (("content-type", "text/plain; charset=utf-8"), ("retry-after", "10"))
    return Response(status, f"{text}\n".encode(), headers)


def _admit(socket: Socket, peer: tuple[str, int] | None) -> _Census | Response:
    """In the new transport: take a place under the handler's cap and its address's cap, or
    the response that refuses the upgrade. The place is the caller's until it exits."""
    census = _CENSUS.get(id(socket))
    if census is None:
        census = _CENSUS[id(socket)] = _Census()
    cap = socket.max_connections
    if cap is not None and census.live >= cap:
        why = f"too many connections: {type(socket).__name__} serves at most {cap} at once"
        return _refusal(socket, census, "max_connections", 503, why)
    if peer is not None:
        registry = _connections()
        key = (id(socket), "address", peer[0])
        per_address = socket.max_connections_per_address
        if _over(registry, key, per_address):
            why = f"too many connections from {peer[0]}: at most {per_address} per client address"
            return _refusal(socket, census, "max_connections_per_address", 429, why)
        registry.register(key)
    census.live += 1
    return census


def _admit_id(socket: Socket, census: _Census, socket_id: str) -> Response | None:
    """After ``connect``: take a place under the cap of *socket_id*, or refuse."""
    registry = _connections()
    key = (id(socket), "id", socket_id)
    cap = socket.max_connections_per_id
    if _over(registry, key, cap):
        why = f"too many connections for socket id {socket_id!r}: at most {cap} per id"
        return _refusal(socket, census, "max_connections_per_id", 429, why)
    registry.register(key)
    return None


def _release(socket: Socket, census: _Census) -> None:
    census.live -= 1
    if census.live <= 0 and _CENSUS.get(id(socket)) is census:
        del _CENSUS[id(socket)]


def disconnect(socket_id: str) -> None:
    """Close every connection whose socket ``id`` is *socket_id* (phoenix.js reconnects, and
    ``connect`` decides again: use it after logging a user out or revoking a token).

    >>> async def log_out(user_id):
    ...     web.disconnect(f"user_socket:{user_id}")
    """
    beam.broadcast(socket_id, Broadcast(socket_id, "disconnect", {}))


def _ref_order(ref: str) -> tuple[int, str]:
    """Refs are counters as strings: answer them in the order they were sent."""
    return (int(ref), ref) if ref.isdigit() else (0, ref)


def _refuse(request: Request, status: int, why: str) -> Response:
    logger.info("refused WebSocket on %s from %s: %s", request.path, request.client, why)
    return Response(status, f"{why}\n".encode())


def _auth_token(request: Request) -> str | None:
    offered = request.header("sec-websocket-protocol") or ""
    for protocol in (p.strip() for p in offered.split(",")):
        if protocol.startswith(_BEARER):
            encoded = protocol[len(_BEARER) :]
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return raw.decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


# -- the transport process --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Frame:
    """Connection task -> transport: one frame from the client."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class _Gone:
    """Connection task -> transport: the WebSocket is closed."""

    code: int


@dataclass(slots=True)
class _Connection:
    """What the connection's task and its transport process share (both on one trio thread)."""

    socket: Socket
    serializer: Serializer
    pid: beam.Pid | None = None
    decided: trio.Event = field(default_factory=trio.Event)
    refusal: Response | None = None
    upgraded: trio.Event = field(default_factory=trio.Event)
    ws: WebSocket | None = None
    close_with: tuple[int, str] | None = None

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
        scope = ws.scope
        code = 1006
        try:
            scope.deadline = trio.current_time() + idle
            while True:
                data = await ws.receive()
                scope.deadline = trio.current_time() + idle
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
    pid: beam.Pid
    join_ref: str | None
    context: ChannelSocket
    joined: bool = False


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


async def _transport(
    socket: Socket, conn: _Connection, params: dict[str, str], info: ConnectInfo
) -> None:
    """The transport process: take a place under the caps, ``connect``, wait for the upgrade,
    then serve the connection."""
    census: _Census | None = None
    try:
        admitted = _admit(socket, info.peer)
        if isinstance(admitted, Response):
            conn.refuse(admitted)
            return
        census = admitted
        connected = await _connect(socket, census, conn, params, info)
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
        if census is not None:
            _release(socket, census)
        if not conn.decided.is_set():
            conn.refuse(Response(500, b"internal server error\n"))
        conn.close(1001, "server closing")


async def _connect(
    socket: Socket,
    census: _Census,
    conn: _Connection,
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
        refusal = _admit_id(socket, census, socket_id)
        if refusal is not None:
            conn.refuse(refusal)
            return None
    conn.decided.set()
    return assigns, socket_id


class _Transport:
    """The state of one transport process (see the module documentation)."""

    __slots__ = ("assigns", "channels", "conn", "id", "rate", "socket")

    def __init__(
        self, socket: Socket, conn: _Connection, assigns: dict[str, Any], socket_id: str | None
    ) -> None:
        self.socket = socket
        self.conn = conn
        self.assigns = assigns
        self.id = socket_id
        self.channels: dict[str, _Entry] = {}
        limit = socket.rate_limit
        self.rate = None if limit is None else _RateLimit(*limit)

    async def run(self) -> None:
        beam.trap_exit(True)
        if self.id is not None:
            beam.subscribe(self.id)
        while True:
            message = await beam.receive()
            kind = type(message)
            if kind is _Frame:
                await self._frame(message.data)
            elif kind is beam.Exit:
                topic = self._topic_of(message.pid)
                if topic is not None:
                    self._channel_exit(topic, message)
                elif message.reason != "normal":
                    self._stopped_by(message.reason)
            elif kind is Joined:
                entry = self.channels.get(message.topic)
                if entry is not None and entry.pid == message.pid:
                    entry.joined = True
            elif kind is _Gone:
                return
            elif kind is Broadcast and message.topic == self.id and message.event == "disconnect":
                self.conn.close(1001, "disconnected")
                return

    async def _frame(self, data: str | bytes) -> None:
        try:
            message = self.conn.serializer.decode(data)
        except ProtocolError as exc:
            logger.warning("closing WebSocket after a malformed frame: %s", exc)
            self.conn.close(1007, f"malformed frame: {exc}"[:120])
            return
        if message.topic == PHOENIX_TOPIC and message.event == HEARTBEAT:
            self._reply(message, "ok", {})
            return
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
            return
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
                entry.context._unanswered.append(message.ref)
            beam.send(entry.pid, message)

    async def _join(self, message: Message, entry: _Entry | None) -> None:
        topic = message.topic
        channel = self.socket._route(topic)
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
        context = ChannelSocket(
            topic,
            message.join_ref,
            self.assigns,
            beam.self(),
            self.id,
            (self.conn.outbox, self.conn.serializer),
        )
        # Set before the spawn: killed before it first runs, it still gets "join crashed".
        context._join_pending = message.ref
        pid = lowlevel.spawn_opt(
            run_channel, channel(), context, payload, message.ref, link=True, initial_call=channel
        )
        self.channels[topic] = _Entry(pid, message.join_ref, context)

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
        pending = entry.context._join_pending
        if pending is not None:  # died in join, before answering it (killed, say)
            reply = Reply(entry.join_ref, pending, topic, "error", {"reason": "join crashed"})
            self.conn.write(reply)
            return
        if entry.joined and not beam.is_normal_exit(message.reason):
            # The pushes it was given and never answered get an error now, not a timeout.
            for ref in sorted(entry.context._unanswered, key=_ref_order):
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
