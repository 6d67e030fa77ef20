"""Channels: the behaviour a user writes, and the process that runs each joined channel.

A client joins a topic; the socket's route table picks the :class:`Channel` class for it,
and a *channel process* (linked to the connection's transport process) runs one instance of
it for as long as the client stays joined. The instance keeps whatever state it likes on
``self``; the :class:`ChannelSocket` passed to every callback says where it is (topic,
join_ref, the socket's assigns) and how to talk back (push, broadcast)::

    class RoomChannel(web.Channel):
        async def join(self, topic, params, socket):
            if topic == "room:secret":
                return web.error({"reason": "unauthorized"})
            beam.send(beam.self(), "after_join")
            return web.ok()

        async def handle_in(self, event, payload, socket):
            if event == "new_msg":
                socket.broadcast("new_msg", {"body": payload["body"]})
                return web.ok({"sent": True})        # the reply to the client's push
            return None                               # no reply

        async def handle_info(self, message, socket):
            if message == "after_join":
                socket.push("presence_state", presence.list(socket.topic))

Callbacks and what they may return:

* ``join(topic, params, socket)``: ``web.ok(response)`` (or ``None``, meaning ``ok({})``) to
  accept, ``web.error(response)`` to refuse. An exception answers ``{"reason": "join
  crashed"}``.
* ``handle_in(event, payload, socket)``: ``None`` (no reply), ``web.ok(...)``/``web.error(...)``
  (the reply), or :class:`Stop`.
* ``handle_out(event, payload, socket)``: for events listed in ``intercept``, called with
  each broadcast instead of forwarding it; push it (changed or not) or drop it. ``None`` or
  :class:`Stop`.
* ``handle_info(message, socket)``: any other message. ``None`` or :class:`Stop`.
* ``terminate(reason, socket)``: the channel is stopping (leave, stop, duplicate join, closed
  socket).

A crash (an exception, or a :class:`Stop` with an abnormal reason) reaches the client as
``phx_error``; phoenix.js then rejoins. A clean stop (``"normal"``, ``"shutdown"``,
``("shutdown", why)``) sends ``phx_close`` and the client does not rejoin. A channel that its
supervisor stops (the server shutting down, ``terminate_child``) sends ``phx_error``, as
Phoenix's socket does for a channel that went down: the client rejoins, on this connection
or, once the server closed it, on the next.

Broadcasts take the *fast lane*: the channel subscribes to its topic with its connection's
:class:`Lane`, and :func:`broadcast` encodes a broadcast once per serializer and writes the same
frame to every subscribed socket, without waking any channel process. Presence diffs
(``presence_diff``) take it too: the tracker delivers through the dispatcher the subscription
offers (:meth:`Lane.dispatcher`). Events named in ``intercept`` go through ``handle_out`` in
each channel process instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import beam

from ..http import Outbox, frame
from ._protocol import (
    PHX_CLOSE,
    PHX_ERROR,
    PHX_LEAVE,
    Broadcast,
    Message,
    Outgoing,
    ProtocolError,
    Reply,
    Serializer,
)

__all__ = [
    "Channel",
    "ChannelReply",
    "ChannelSocket",
    "Lane",
    "Stop",
    "broadcast",
    "broadcast_from",
    "error",
    "ok",
]

logger = logging.getLogger("web.channel")

Payload = Mapping[str, Any] | bytes


@dataclass(frozen=True, slots=True)
class ChannelReply:
    """A reply to a client's join or push: a status (``"ok"``, ``"error"``) and a response.

    Make them with :func:`ok` and :func:`error`.

    >>> ok({"id": 7}) == ChannelReply("ok", {"id": 7})
    True
    """

    status: str
    response: Payload


def ok(response: Payload | None = None) -> ChannelReply:
    """An ``ok`` reply carrying *response* (``{}`` by default).

    >>> ok({"id": 7})
    ChannelReply(status='ok', response={'id': 7})
    """
    return ChannelReply("ok", {} if response is None else response)


def error(response: Payload | None = None) -> ChannelReply:
    """An ``error`` reply carrying *response*, e.g. ``{"reason": "unauthorized"}``.

    >>> error({"reason": "unauthorized"})
    ChannelReply(status='error', response={'reason': 'unauthorized'})
    """
    return ChannelReply("error", {} if response is None else response)


@dataclass(frozen=True, slots=True)
class Stop:
    """Returned by a callback to stop the channel with *reason*, after sending *reply*.

    ``"normal"``, ``"shutdown"`` or ``("shutdown", why)`` close the channel cleanly
    (``phx_close``); any other reason is a crash (``phx_error``, and the client rejoins).

    >>> Stop("normal", reply=ok({"bye": True}))
    Stop(reason='normal', reply=ChannelReply(status='ok', response={'bye': True}))
    """

    reason: Any = "normal"
    reply: ChannelReply | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Lane:
    """A channel's PubSub subscription metadata: where its connection's bytes go.

    :func:`broadcast` writes a broadcast's frame straight to ``outbox`` unless the event is in
    ``intercept`` (then the channel process gets the broadcast and calls ``handle_out``).
    Other publishers reach the fast lane through :meth:`dispatcher`, which a subscription's
    metadata offers to whoever delivers to it: presence diffs (``presence.PresenceDiff``, a
    ``presence_diff`` event) take it so.
    """

    outbox: Outbox
    serializer: Serializer
    intercept: frozenset[str]

    @staticmethod
    def dispatcher(
        entries: list[tuple[beam.Pid, Any]], exclude: beam.Pid | None, message: Any
    ) -> None:
        """The dispatcher that delivers to channel subscriptions (a :data:`beam.Dispatcher`):
        a message shaped as a broadcast (``topic``, ``event``, ``payload``) is framed once per
        serializer and written to every fast-lane socket; anything else becomes a message.

        >>> beam.local_broadcast(topic, diff, dispatcher=Lane.dispatcher)
        """
        _dispatch(entries, exclude, message)


def _dispatch(entries: list[tuple[beam.Pid, Any]], exclude: beam.Pid | None, message: Any) -> None:
    """The PubSub dispatcher of channel broadcasts: one encoding per serializer, one frame
    written to every fast-lane socket; everything else is delivered as a message."""
    frames: dict[int, bytes] = {}
    wire = _on_the_wire(message)
    for pid, meta in entries:
        if pid == exclude:
            continue
        if wire is not None and type(meta) is Lane and wire.event not in meta.intercept:
            key = id(meta.serializer)
            data = frames.get(key)
            if data is None:
                try:
                    data = frames[key] = frame(meta.serializer.encode(wire))
                except ProtocolError:
                    if wire is message:
                        raise  # web.broadcast: the caller passed a payload that is not JSON
                    logger.error(
                        "dropping %r on %r for %s clients: %s",
                        wire.event,
                        wire.topic,
                        meta.serializer.vsn,
                        beam.bounded_repr(wire.payload),
                    )
                    data = frames[key] = b""
            if data:
                meta.outbox.write_nowait(data)
        else:
            beam.send(pid, message)


def _on_the_wire(message: Any) -> Broadcast | None:
    """*message* as the :class:`Broadcast` a fast lane writes, or ``None`` if it is not one."""
    if type(message) is Broadcast:
        return message
    topic = getattr(message, "topic", None)
    if isinstance(topic, str) and _is_broadcast(message, topic):
        return Broadcast(topic, message.event, message.payload)
    return None


# On a cluster, a broadcast travels with its dispatcher's name and each node dispatches it
# with its own fast lane; its message is a Broadcast value (registered with the codec).
beam.cluster.register(Broadcast, "web.Broadcast")
beam.cluster.register_dispatcher(_dispatch, "web.fastlane")


def broadcast(topic: str, event: str, payload: Payload) -> None:
    """Send *event* with *payload* to every client joined to *topic* (and every process
    subscribed to it, which receives a :class:`~web.Broadcast`).

    >>> async def announce():
    ...     web.broadcast("room:lobby", "new_msg", {"body": "server restarting"})
    """
    beam.broadcast(topic, Broadcast(topic, event, payload), dispatcher=_dispatch)


def broadcast_from(pid: beam.Pid, topic: str, event: str, payload: Payload) -> None:
    """Like :func:`broadcast`, skipping the subscriber *pid* (a channel process).

    >>> async def relay(channel_pid):
    ...     web.broadcast_from(channel_pid, "room:lobby", "typing", {"user": "ann"})
    """
    beam.broadcast_from(pid, topic, Broadcast(topic, event, payload), dispatcher=_dispatch)


@dataclass(frozen=True, slots=True)
class Wire:
    """Where one channel's messages to its client go: its connection's outbox and serializer,
    or, for an in-process test client (:mod:`web.channels.testing`), a *sink* function.

    An immutable value: the channel process's :class:`ChannelSocket` and its runner write
    through the same one.

    >>> Wire("room:lobby", "1", outbox, V2).reply("2", ok({"id": 7}))
    """

    topic: str
    join_ref: str | None
    #: The connection's outbox and serializer; ``None`` for an in-process test client.
    outbox: Outbox | None
    serializer: Serializer | None
    #: Where messages go when there is no connection (``web.testing``).
    sink: Callable[[Outgoing], None] | None = None

    def write(self, message: Outgoing) -> None:
        """Send *message* to the client (dropped if its connection is gone).

        >>> wire.write(Message("1", None, "room:lobby", "new_msg", {"body": "hi"}))
        """
        outbox, serializer = self.outbox, self.serializer
        if outbox is not None and serializer is not None:
            outbox.write_nowait(frame(serializer.encode(message)))
        elif self.sink is not None:
            self.sink(message)

    def reply(self, ref: str | None, reply: ChannelReply) -> None:
        """Answer the client's message *ref* (a join or a push) with *reply*.

        >>> wire.reply("2", ok({"id": 7}))
        """
        self.write(Reply(self.join_ref, ref, self.topic, reply.status, reply.response))


class ChannelSocket:
    """One joined channel as its callbacks see it: where it is and how to talk back.

    ``assigns`` starts as a copy of what the socket's ``connect`` returned; the channel may add
    to it. ``topic``, ``join_ref``, ``transport_pid`` (the connection's process) and ``id``
    (the socket's id, if any) are read-only by convention.

    A ChannelSocket belongs to the one channel process that runs it: that process makes it
    when it starts (from its :class:`ChannelStart`) and nobody else reads or writes it. What
    the connection's transport needs to know (the join was answered, a push was handled)
    reaches it as messages (:class:`JoinAnswered`, :class:`PushesHandled`).

    >>> socket.push("presence_state", presence.list(socket.topic))
    """

    __slots__ = ("_wire", "assigns", "id", "join_ref", "joined", "topic", "transport_pid")

    def __init__(
        self,
        topic: str,
        join_ref: str | None,
        assigns: Mapping[str, Any],
        transport_pid: beam.Pid,
        socket_id: str | None,
        wire: Wire,
    ) -> None:
        self.topic = topic
        self.join_ref = join_ref
        self.assigns: dict[str, Any] = dict(assigns)
        self.transport_pid = transport_pid
        self.id = socket_id
        #: Set by the channel's runner once the join succeeded (pushes are allowed from then).
        self.joined = False
        self._wire = wire

    def __repr__(self) -> str:
        return f"<ChannelSocket {self.topic!r} join_ref={self.join_ref!r}>"

    def push(self, event: str, payload: Payload) -> None:
        """Send *event* with *payload* to this client only.

        >>> socket.push("presence_state", presence.list(socket.topic))
        """
        if not self.joined:
            raise RuntimeError(
                f"push({event!r}) on {self.topic!r} before the join finished; send yourself a "
                "message in join (beam.send(beam.self(), 'after_join')) and push from handle_info"
            )
        self._wire.write(Message(self.join_ref, None, self.topic, event, payload))

    def broadcast(self, event: str, payload: Payload) -> None:
        """Send *event* with *payload* to every client joined to this topic, this one too.

        >>> socket.broadcast("new_msg", {"body": "hi"})
        """
        broadcast(self.topic, event, payload)

    def broadcast_from(self, event: str, payload: Payload) -> None:
        """Send *event* with *payload* to every client joined to this topic but this one.

        >>> socket.broadcast_from("typing", {"user": "ann"})
        """
        broadcast_from(beam.self(), self.topic, event, payload)

    def close_connection(self, reason: str = "disconnected") -> None:
        """Ask this channel's connection to close with 1001 and *reason*: every channel of the
        connection stops, and the client reconnects and rejoins (``connect`` and ``join``
        decide again). LiveView does this when its user's session is revoked.

        >>> socket.close_connection("signed out")
        """
        beam.send(self.transport_pid, CloseConnection(reason))


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Channel process -> its transport: close the connection (1001, *reason*), as
    ``web.disconnect`` of the socket id would.

    >>> beam.send(socket.transport_pid, CloseConnection("signed out"))
    """

    reason: str


class Channel:
    """Subclass it and override the callbacks you need (see the module documentation).

    ``intercept`` names the broadcast events this channel wants to see in ``handle_out``
    instead of having them forwarded to its client as they are.

    >>> class RoomChannel(web.Channel):
    ...     async def join(self, topic, params, socket):
    ...         return web.ok({"welcome": socket.assigns["user"]})
    """

    intercept: ClassVar[frozenset[str] | tuple[str, ...]] = frozenset()

    async def join(
        self, topic: str, params: Mapping[str, Any], socket: ChannelSocket
    ) -> ChannelReply | None:
        """Accept (``web.ok(...)``, or ``None``) or refuse (``web.error(...)``) the join.

        The default accepts every join.
        """
        return None

    async def handle_in(
        self, event: str, payload: Any, socket: ChannelSocket
    ) -> ChannelReply | Stop | None:
        """A message pushed by the client. The default answers ``error`` naming the event."""
        return error({"reason": f"no handle_in for event {event!r}"})

    async def handle_out(self, event: str, payload: Any, socket: ChannelSocket) -> Stop | None:
        """An intercepted broadcast. The default pushes it unchanged."""
        socket.push(event, payload)
        return None

    async def handle_info(self, message: Any, socket: ChannelSocket) -> Stop | None:
        """Any other message sent to the channel process. The default logs and drops it."""
        logger.warning(
            "channel %s on %r got an unexpected message: %s",
            type(self).__name__,
            socket.topic,
            beam.bounded_repr(message),
        )
        return None

    async def terminate(self, reason: Any, socket: ChannelSocket) -> None:
        """The channel is stopping with *reason*; release what it holds. Default: nothing."""


@dataclass(frozen=True, slots=True)
class ChannelStart:
    """Transport (or :mod:`web.channels.testing`) -> a new channel process, as its spawn
    argument: everything the channel needs to join. The spawner keeps no part of the channel's
    state; the channel process builds its own :class:`ChannelSocket` from this.

    ``ref`` is the join's ref (its reply carries it); ``report`` says whether the channel
    tells ``transport_pid`` about its join and pushes (:class:`JoinAnswered`,
    :class:`PushesHandled`): a real connection's transport does, a test client does not.

    >>> lowlevel.spawn_opt(run_channel, RoomChannel(), start, link=True)
    """

    topic: str
    join_ref: str | None
    ref: str | None
    params: Mapping[str, Any]
    assigns: Mapping[str, Any]
    transport_pid: beam.Pid
    socket_id: str | None
    wire: Wire
    report: bool


@dataclass(frozen=True, slots=True)
class JoinAnswered:
    """Channel process -> transport: the join is answered; ``joined`` says whether it
    succeeded (from now on a crash means ``phx_error``) or was refused (the channel exits
    next). Until it arrives, the transport answers ``"join crashed"`` if the channel dies.

    >>> JoinAnswered("room:lobby", beam.self(), joined=True)
    """

    topic: str
    pid: beam.Pid
    joined: bool


@dataclass(frozen=True, slots=True)
class PushesHandled:
    """Channel process -> transport: ``handle_in`` returned for the client's pushes *refs*,
    so the transport need not answer them with ``"channel crashed"`` if the channel dies.

    Sent in batches, to keep a push as cheap as it was: once :data:`ACK_BATCH` pushes are
    handled, and whenever the channel stops, however it stops (a kill too: the flush is in a
    ``finally``, and a kill unwinds the process). So when the transport gets the channel's
    exit, the refs it still holds are exactly the pushes the channel never handled.

    >>> PushesHandled("room:lobby", beam.self(), ("7", "8"))
    """

    topic: str
    pid: beam.Pid
    refs: tuple[str, ...]


#: How many handled pushes a channel acknowledges at once (:class:`PushesHandled`).
ACK_BATCH: Final = 16

#: Why a channel stops when the client leaves, and when its connection is gone.
LEFT: Final = ("shutdown", "left")
CLOSED: Final = ("shutdown", "closed")


async def run_channel(channel: Channel, start: ChannelStart) -> None:
    """The body of a channel process: join, then serve messages until the channel stops.

    >>> lowlevel.spawn_opt(run_channel, RoomChannel(), start, link=True)
    """
    beam.trap_exit(True)
    wire = start.wire
    socket = ChannelSocket(
        start.topic, start.join_ref, start.assigns, start.transport_pid, start.socket_id, wire
    )
    # Who hears about the join and the pushes: the transport of a real connection.
    tell = start.transport_pid if start.report else None
    ref = start.ref
    try:
        result = await channel.join(socket.topic, start.params, socket)
    except Exception:
        _answer_join(wire, tell, ref, error({"reason": "join crashed"}))
        raise
    if result is None:
        result = ok()
    if not isinstance(result, ChannelReply):
        _answer_join(wire, tell, ref, error({"reason": "join crashed"}))
        raise beam.BadReturnValue(
            f"{type(channel).__name__}.join", result, "web.ok(...), web.error(...) or None"
        )
    if result.status != "ok":
        _answer_join(wire, tell, ref, result)
        return
    del start  # the join's params need not live as long as the channel
    intercept = frozenset(channel.intercept)
    lane = None
    if wire.outbox is not None and wire.serializer is not None:
        lane = Lane(wire.outbox, wire.serializer, intercept)
    beam.subscribe(socket.topic, metadata=lane)
    socket.joined = True
    _answer_join(wire, tell, ref, result)
    stop = await _serve(channel, socket, wire, tell, intercept)
    await _stop(channel, socket, wire, stop)


def _answer_join(wire: Wire, tell: beam.Pid | None, ref: str | None, reply: ChannelReply) -> None:
    """Answer the join, then tell the transport (nothing may run in between: a channel that
    dies after the answer must not have it answered twice)."""
    wire.reply(ref, reply)
    if tell is not None:
        beam.send(tell, JoinAnswered(wire.topic, beam.self(), reply.status == "ok"))


async def _serve(
    channel: Channel,
    socket: ChannelSocket,
    wire: Wire,
    tell: beam.Pid | None,
    intercept: frozenset[str],
) -> Stop:
    """Serve the joined channel's messages until a callback stops it (or an exit does),
    acknowledging handled pushes to *tell* (if any) in batches, and all of them at the end."""
    name = type(channel).__name__
    topic = socket.topic
    handled: list[str] | None = None  # made on the first push: an idle channel has none
    try:
        while True:
            message = await beam.receive()
            kind = type(message)
            if kind is Message:
                if message.event == PHX_LEAVE:
                    wire.reply(message.ref, ok())
                    return Stop(LEFT)
                result: Any = await channel.handle_in(message.event, message.payload, socket)
                if tell is not None and message.ref is not None:
                    if handled is None:
                        handled = []
                    handled.append(message.ref)
                    if len(handled) >= ACK_BATCH:
                        beam.send(tell, PushesHandled(topic, beam.self(), tuple(handled)))
                        handled.clear()
                if result is None:
                    continue
                if isinstance(result, ChannelReply):
                    wire.reply(message.ref, result)
                    continue
                if isinstance(result, Stop):
                    if result.reply is not None:
                        wire.reply(message.ref, result.reply)
                    return result
                raise beam.BadReturnValue(
                    f"{name}.handle_in",
                    result,
                    "None, web.ok(...), web.error(...) or web.Stop(...)",
                )
            if kind is beam.Exit:
                if message.pid == socket.transport_pid and message.reason == "normal":
                    return Stop(CLOSED)
                if message.reason != "normal":
                    if beam.is_normal_exit(message.reason) and message.pid == _parent():
                        return _StoppedBySupervisor(message.reason)
                    return Stop(message.reason)  # as an exit signal stops a process not trapping
                continue
            if _is_broadcast(message, topic):
                if message.event in intercept:
                    result = await channel.handle_out(message.event, message.payload, socket)
                else:
                    wire.write(Broadcast(topic, message.event, message.payload))
                    continue
            else:
                result = await channel.handle_info(message, socket)
            if result is None:
                continue
            if isinstance(result, Stop):
                return result
            callback = "handle_out" if _is_broadcast(message, topic) else "handle_info"
            raise beam.BadReturnValue(f"{name}.{callback}", result, "None or web.Stop(...)")
    finally:  # also when killed: a kill unwinds the process, and sending never blocks
        if tell is not None and handled:
            beam.send(tell, PushesHandled(topic, beam.self(), tuple(handled)))


@dataclass(frozen=True, slots=True)
class _StoppedBySupervisor(Stop):
    """The channel's supervisor stops it: the client hears ``phx_error`` and rejoins."""


def _parent() -> beam.Pid | None:
    info = beam.process_info(beam.self())
    return None if info is None else info.parent


def _is_broadcast(message: Any, topic: str) -> bool:
    """A Broadcast, or a look-alike such as presence's PresenceDiff, for this topic."""
    return (
        getattr(message, "topic", None) == topic
        and isinstance(getattr(message, "event", None), str)
        and hasattr(message, "payload")
    )


async def _stop(channel: Channel, socket: ChannelSocket, wire: Wire, stop: Stop) -> None:
    try:
        await channel.terminate(stop.reason, socket)
    except Exception:
        logger.exception("%s.terminate failed on %r", type(channel).__name__, socket.topic)
    if not beam.is_normal_exit(stop.reason):
        raise beam.ProcessExit(stop.reason)
    if type(stop) is _StoppedBySupervisor:
        wire.write(Message(socket.join_ref, socket.join_ref, socket.topic, PHX_ERROR, {}))
    elif stop.reason != CLOSED:
        wire.write(Message(socket.join_ref, socket.join_ref, socket.topic, PHX_CLOSE, {}))
    if wire.outbox is None:
        # An in-process test client (web.testing) is not a transport trapping exits: a clean
        # stop must not take the test down with it.
        beam.unlink(socket.transport_pid)
    raise beam.ProcessExit(stop.reason)
