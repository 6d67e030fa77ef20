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
``("shutdown", why)``) sends ``phx_close`` and the client does not rejoin.

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


class ChannelSocket:
    """One joined channel as its callbacks see it: where it is and how to talk back.

    ``assigns`` starts as a copy of what the socket's ``connect`` returned; the channel may add
    to it. ``topic``, ``join_ref``, ``transport_pid`` (the connection's process) and ``id``
    (the socket's id, if any) are read-only by convention.
    """

    __slots__ = (
        "_join_pending",
        "_sink",
        "_unanswered",
        "_wire",
        "assigns",
        "id",
        "join_ref",
        "joined",
        "topic",
        "transport_pid",
    )

    def __init__(
        self,
        topic: str,
        join_ref: str | None,
        assigns: Mapping[str, Any],
        transport_pid: beam.Pid,
        socket_id: str | None,
        wire: tuple[Outbox, Serializer] | None,
        sink: Callable[[Outgoing], None] | None = None,
    ) -> None:
        self.topic = topic
        self.join_ref = join_ref
        self.assigns: dict[str, Any] = dict(assigns)
        self.transport_pid = transport_pid
        self.id = socket_id
        self.joined = False
        #: The connection's outbox and serializer; ``None`` for an in-process test client.
        self._wire = wire
        #: Where messages go when there is no wire (``web.testing``).
        self._sink = sink
        #: Refs of client pushes handed to the channel and not yet handled: if the channel
        #: dies, its transport answers them with an error instead of leaving them hanging.
        self._unanswered: list[str] = []  # a list: usually empty, and smaller than a set
        #: The ref of the join until it is answered (set by the transport before the
        #: spawn): if the channel dies first (killed in ``join``), its transport answers
        #: "join crashed", as Phoenix does.
        self._join_pending: str | None = None

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
        self._write(Message(self.join_ref, None, self.topic, event, payload))

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

    def _write(self, message: Outgoing) -> None:
        if self._wire is not None:
            outbox, serializer = self._wire
            outbox.write_nowait(frame(serializer.encode(message)))
        elif self._sink is not None:
            self._sink(message)

    def _reply(self, ref: str | None, reply: ChannelReply) -> None:
        self._write(Reply(self.join_ref, ref, self.topic, reply.status, reply.response))


class Channel:
    """Subclass it and override the callbacks you need (see the module documentation).

    ``intercept`` names the broadcast events this channel wants to see in ``handle_out``
    instead of having them forwarded to its client as they are.
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
class Joined:
    """Channel process -> transport: the join succeeded (a crash now means ``phx_error``)."""

    topic: str
    pid: beam.Pid


#: Why a channel stops when the client leaves, and when its connection is gone.
LEFT: Final = ("shutdown", "left")
CLOSED: Final = ("shutdown", "closed")


async def run_channel(
    channel: Channel, socket: ChannelSocket, params: Mapping[str, Any], ref: str | None
) -> None:
    """The body of a channel process: join, then serve messages until the channel stops."""
    beam.trap_exit(True)
    try:
        result = await channel.join(socket.topic, params, socket)
    except Exception:
        _answer_join(socket, ref, error({"reason": "join crashed"}))
        raise
    if result is None:
        result = ok()
    if not isinstance(result, ChannelReply):
        _answer_join(socket, ref, error({"reason": "join crashed"}))
        raise beam.BadReturnValue(
            f"{type(channel).__name__}.join", result, "web.ok(...), web.error(...) or None"
        )
    if result.status != "ok":
        _answer_join(socket, ref, result)
        return
    intercept = frozenset(channel.intercept)
    wire = socket._wire
    beam.subscribe(socket.topic, metadata=None if wire is None else Lane(*wire, intercept))
    socket.joined = True
    _answer_join(socket, ref, result)
    if wire is not None:  # a real connection's transport tracks its joined channels
        beam.send(socket.transport_pid, Joined(socket.topic, beam.self()))
    stop = await _serve(channel, socket, intercept)
    await _stop(channel, socket, stop)


def _answer_join(socket: ChannelSocket, ref: str | None, reply: ChannelReply) -> None:
    socket._join_pending = None
    socket._reply(ref, reply)


async def _serve(channel: Channel, socket: ChannelSocket, intercept: frozenset[str]) -> Stop:
    name = type(channel).__name__
    while True:
        message = await beam.receive()
        kind = type(message)
        if kind is Message:
            if message.event == PHX_LEAVE:
                socket._reply(message.ref, ok())
                return Stop(LEFT)
            result: Any = await channel.handle_in(message.event, message.payload, socket)
            if message.ref in socket._unanswered:
                socket._unanswered.remove(message.ref)
            if result is None:
                continue
            if isinstance(result, ChannelReply):
                socket._reply(message.ref, result)
                continue
            if isinstance(result, Stop):
                if result.reply is not None:
                    socket._reply(message.ref, result.reply)
                return result
            raise beam.BadReturnValue(
                f"{name}.handle_in", result, "None, web.ok(...), web.error(...) or web.Stop(...)"
            )
        if kind is beam.Exit:
            if message.pid == socket.transport_pid and message.reason == "normal":
                return Stop(CLOSED)
            if message.reason != "normal":
                return Stop(message.reason)  # as an exit signal stops a process not trapping
            continue
        if _is_broadcast(message, socket.topic):
            if message.event in intercept:
                result = await channel.handle_out(message.event, message.payload, socket)
            else:
                socket._write(Broadcast(socket.topic, message.event, message.payload))
                continue
        else:
            result = await channel.handle_info(message, socket)
        if result is None:
            continue
        if isinstance(result, Stop):
            return result
        callback = "handle_out" if _is_broadcast(message, socket.topic) else "handle_info"
        raise beam.BadReturnValue(f"{name}.{callback}", result, "None or web.Stop(...)")


def _is_broadcast(message: Any, topic: str) -> bool:
    """A Broadcast, or a look-alike such as presence's PresenceDiff, for this topic."""
    return (
        getattr(message, "topic", None) == topic
        and isinstance(getattr(message, "event", None), str)
        and hasattr(message, "payload")
    )


async def _stop(channel: Channel, socket: ChannelSocket, stop: Stop) -> None:
    try:
        await channel.terminate(stop.reason, socket)
    except Exception:
        logger.exception("%s.terminate failed on %r", type(channel).__name__, socket.topic)
    if not beam.is_normal_exit(stop.reason):
        raise beam.ProcessExit(stop.reason)
    if stop.reason != CLOSED:
        socket._write(Message(socket.join_ref, socket.join_ref, socket.topic, PHX_CLOSE, {}))
    if socket._wire is None:
        # An in-process test client (web.testing) is not a transport trapping exits: a clean
        # stop must not take the test down with it.
        beam.unlink(socket.transport_pid)
    raise beam.ProcessExit(stop.reason)
