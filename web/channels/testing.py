"""Test channels in-process, without a server or a WebSocket (Phoenix's ChannelTest).

:func:`join` starts the channel process exactly as a connection would, linked to the test
process, which plays the client: what the channel pushes, replies and broadcasts arrives in
the test's mailbox and the ``assert_*`` methods wait for it::

    async def test_new_messages_are_broadcast():
        async with beam.open_node():
            room = await web.testing.join(RoomChannel, "room:lobby", assigns={"user_id": 1})
            ref = room.push("new_msg", {"body": "hi"})
            await room.assert_reply(ref, "ok")
            await room.assert_broadcast("new_msg", {"body": "hi"})

Like a real connection, the channel is linked to the test process: a crash in the channel
ends the test with that crash, unless the test traps exits (``beam.trap_exit(True)``) and
waits for the :class:`beam.Exit`.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import beam
from beam import lowlevel

from ._channel import Channel, ChannelStart, Wire, run_channel
from ._protocol import PHX_LEAVE, Broadcast, Message, Outgoing, Reply

__all__ = ["ChannelClient", "JoinRefused", "join"]

_ANY: Final = object()
_refs = itertools.count(1)


class JoinRefused(Exception):
    """The channel's ``join`` answered with an error; ``response`` is what it said."""

    def __init__(self, topic: str, response: Any) -> None:
        super().__init__(f"join of {topic!r} refused: {response!r}")
        self.topic = topic
        self.response = response


@dataclass(frozen=True, slots=True)
class _Out:
    """What the channel sent to its client, delivered to the test process."""

    pid: beam.Pid
    message: Outgoing


class ChannelClient:
    """A joined channel, driven by the test process (see :func:`join`)."""

    def __init__(self, pid: beam.Pid, topic: str, join_ref: str, reply: Any) -> None:
        self.pid = pid
        self.topic = topic
        self.join_ref = join_ref
        #: The response of the join's ``ok`` reply.
        self.reply = reply

    def push(self, event: str, payload: Any = None) -> str:
        """Push *event* to the channel as the client would; returns the ref its reply carries.

        >>> ref = room.push("new_msg", {"body": "hi"})
        """
        ref = str(next(_refs))
        message = Message(self.join_ref, ref, self.topic, event, {} if payload is None else payload)
        beam.send(self.pid, message)
        return ref

    def leave(self) -> str:
        """Leave the topic as phoenix.js does; returns the ref of the leave's reply.

        >>> await room.assert_reply(room.leave(), "ok")
        """
        return self.push(PHX_LEAVE)

    async def assert_reply(
        self, ref: str, status: str = "ok", response: Any = _ANY, *, timeout: float = 1.0
    ) -> Any:
        """Wait for the reply to *ref*; check its status (and response, if given); return the
        response.

        >>> assert await room.assert_reply(ref, "ok") == {"id": 7}
        """
        out = await self._receive(
            lambda m: type(m) is Reply and m.ref == ref, timeout, f"reply {ref}"
        )
        reply = out.message
        assert isinstance(reply, Reply)
        if reply.status != status:
            raise AssertionError(
                f"the reply to {ref}: expected status {status!r}, got {reply.status!r} "
                f"with {reply.response!r}"
            )
        _check(f"the reply to {ref}", response, reply.response)
        return reply.response

    async def assert_push(self, event: str, payload: Any = _ANY, *, timeout: float = 1.0) -> Any:
        """Wait for the channel to push *event* to this client (a push, or a broadcast it
        forwarded); check the payload if given; return it.

        >>> await room.assert_push("presence_state")
        """
        out = await self._receive(
            lambda m: type(m) in (Message, Broadcast) and m.event == event,
            timeout,
            f"push of {event!r}",
        )
        message = out.message
        assert isinstance(message, Message | Broadcast)
        _check(f"the push of {event!r}", payload, message.payload)
        return message.payload

    async def receive_push(
        self, events: Collection[str], *, timeout: float = 1.0
    ) -> Message | Broadcast:
        """The next push to this client whose event is one of *events*, in the order the
        channel sent them (others stay in the mailbox); ``AssertionError`` after *timeout*.

        >>> push = await view.receive_push({"diff", "redirect"})
        """
        out = await self._receive(
            lambda m: type(m) in (Message, Broadcast) and m.event in events,
            timeout,
            f"push of any of {sorted(events)}",
        )
        message = out.message
        assert isinstance(message, Message | Broadcast)
        return message

    async def refute_push(self, event: str, *, timeout: float = 0.1) -> None:
        """Check that no push of *event* arrives within *timeout* seconds.

        >>> await room.refute_push("secret")
        """
        try:
            out = await self._receive(
                lambda m: type(m) in (Message, Broadcast) and m.event == event, timeout, ""
            )
        except AssertionError:
            return
        raise AssertionError(f"unexpected push of {event!r}: {out.message!r}")

    async def assert_broadcast(
        self, event: str, payload: Any = _ANY, *, timeout: float = 1.0
    ) -> Any:
        """Wait for a broadcast of *event* on the channel's topic (the test process is
        subscribed to it); check the payload if given; return it.

        >>> await room.assert_broadcast("new_msg", {"body": "hi"})
        """
        try:
            got = await beam.receive(
                lambda m: type(m) is Broadcast and m.topic == self.topic and m.event == event,
                timeout=timeout,
            )
        except beam.ReceiveTimeout:
            raise AssertionError(
                f"no broadcast of {event!r} on {self.topic!r} within {timeout} s"
            ) from None
        _check(f"the broadcast of {event!r}", payload, got.payload)
        return got.payload

    async def assert_close(self, *, timeout: float = 1.0) -> None:
        """Wait for the channel to close cleanly (``phx_close``), as after a leave or a stop.

        >>> await room.assert_close()
        """
        await self._receive(
            lambda m: type(m) is Message and m.event == "phx_close", timeout, "phx_close"
        )

    async def _receive(self, match: Any, timeout: float, what: str) -> _Out:
        return await _receive(self.pid, self.topic, match, timeout, what)


async def _receive(pid: beam.Pid, topic: str, match: Any, timeout: float, what: str) -> _Out:
    """The next message the channel *pid* sent its client that *match* accepts."""
    try:
        out: _Out = await beam.receive(
            lambda m: type(m) is _Out and m.pid == pid and match(m.message), timeout=timeout
        )
    except beam.ReceiveTimeout:
        raise AssertionError(f"no {what} from {topic!r} within {timeout} s") from None
    return out


def _check(what: str, want: Any, got: Any) -> None:
    if want is not _ANY and want != got:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


async def join(
    channel: type[Channel] | Channel,
    topic: str,
    params: Mapping[str, Any] | None = None,
    *,
    assigns: Mapping[str, Any] | None = None,
    socket_id: str | None = None,
    timeout: float = 1.0,
) -> ChannelClient:
    """Join *topic* on a new *channel* process, linked to the caller; return its client.

    The caller is also subscribed to *topic*, for :meth:`ChannelClient.assert_broadcast`.
    Raises :class:`JoinRefused` if ``join`` answers with an error.

    >>> room = await web.testing.join(RoomChannel, "room:lobby", assigns={"user_id": 1})
    """
    instance = channel() if isinstance(channel, type) else channel
    me = beam.self()
    join_ref = str(next(_refs))
    pid_box: list[beam.Pid] = []

    def sink(message: Outgoing) -> None:
        beam.send(me, _Out(pid_box[0], message))

    start = ChannelStart(
        topic,
        join_ref,
        join_ref,
        dict(params or {}),
        dict(assigns or {}),
        me,
        socket_id,
        Wire(topic, join_ref, None, None, sink),
        report=False,  # the test process is no transport: no JoinAnswered, no PushesHandled
    )
    beam.subscribe(topic)
    pid = lowlevel.spawn_opt(run_channel, instance, start, link=True, initial_call=type(instance))
    pid_box.append(pid)
    out = await _receive(
        pid,
        topic,
        lambda m: type(m) is Reply and m.ref == join_ref,
        timeout,
        f"join reply for {topic!r}",
    )
    reply = out.message
    assert isinstance(reply, Reply)
    if reply.status != "ok":
        raise JoinRefused(topic, reply.response)
    return ChannelClient(pid, topic, join_ref, reply.response)
