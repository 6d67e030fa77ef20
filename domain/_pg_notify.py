"""PostgreSQL ``LISTEN``/``NOTIFY`` delivered to processes as messages.

A repo's *listener* (``"<repo>.listener"``, a process under the repo's supervisor, started
when a process first listens) holds one connection of its own in autocommit mode. A process
that listens to a channel is subscribed and monitored; the listener runs ``LISTEN`` for the
first subscriber of a channel and ``UNLISTEN`` after the last one leaves or dies. Each
notification becomes a :class:`Notify` message to every subscriber of its channel::

    await repo.listen("jobs")
    await repo.notify("jobs", "42")                 # or NOTIFY inside a transaction
    note = await beam.receive(domain.Notify)        # Notify(channel="jobs", payload="42", ...)

The listener's connection is read by a task of the listener's process that waits on its
socket, on trio; the process itself answers subscriptions. If the connection is lost, the
listener reconnects (with backoff) and listens again to every channel: notifications sent
while it was away are lost (PostgreSQL keeps none for a listener that is not connected).
NOTIFY is a wake-up signal, not a message bus: payloads are at most 8000 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import trio
from psycopg import sql

import beam

from ._pg_conn import TaskLock, TrioConnection

__all__ = ["LISTEN_TIMEOUT", "Notify", "listen", "start_listener"]

#: How long ``listen`` waits for the listener to confirm, in seconds.
LISTEN_TIMEOUT = 10.0
_BACKOFF = (0.05, 2.0)


@dataclass(frozen=True)
class Notify:
    """A PostgreSQL notification, as the message a listening process receives: the
    ``channel``, the ``payload`` and the ``backend_pid`` of the session that sent it::

        note = await beam.receive(domain.Notify)
        if note.channel == "jobs":
            await run_job(note.payload)
    """

    channel: str
    payload: str
    backend_pid: int


@dataclass(frozen=True)
class _Subscribe:
    channel: str
    pid: beam.Pid
    ref: beam.Ref
    on: bool


@dataclass(frozen=True)
class _Subscribed:
    ref: beam.Ref
    error: BaseException | None


@dataclass(frozen=True)
class _Started:
    pid: beam.Pid
    error: BaseException | None


async def listen(listener: str, channel: str, on: bool) -> None:
    """Subscribe (``on``) or unsubscribe the calling process to *channel* at the listener
    registered as *listener*; returns once the listener confirmed (``LISTEN`` is active)."""
    me = beam.self()
    ref = beam.make_ref()
    watch = beam.monitor(listener)
    try:
        beam.send(listener, _Subscribe(channel, me, ref, on))
        reply = await beam.receive(
            lambda m: (
                (type(m) is _Subscribed and m.ref == ref)
                or (type(m) is beam.Down and m.ref == watch)
            ),
            timeout=LISTEN_TIMEOUT,
        )
    finally:
        beam.demonitor(watch, flush=True)
    if type(reply) is beam.Down:
        raise psycopg.OperationalError(f"the listener {listener} is gone ({reply.reason})")
    if reply.error is not None:
        raise reply.error


async def start_listener(conninfo: str, options: str, name: str) -> beam.Pid:
    """Start the listener registered as *name*, linked to the caller (a supervisor), once
    connected::

        ChildSpec(id=name, start=start_listener, args=(conninfo, options, name))
    """
    me = beam.self()
    pid = beam.spawn_link(_listener, conninfo, options, name, me)
    ref = beam.monitor(pid)
    try:
        message = await beam.receive(
            lambda m: (
                (type(m) is _Started and m.pid == pid) or (type(m) is beam.Down and m.ref == ref)
            )
        )
    finally:
        beam.demonitor(ref, flush=True)
    if type(message) is beam.Down:
        raise beam.StartError(message.reason)
    if message.error is not None:
        raise beam.StartError(message.error)
    return pid


class _Listener:
    """The listener's state: its connection, its channels and who listens to each."""

    def __init__(self, conninfo: str, options: str, name: str) -> None:
        self.conninfo = conninfo
        self.options = options
        self.name = name
        self.conn: TrioConnection[Any] | None = None
        self.channels: dict[str, set[beam.Pid]] = {}
        self.watching: dict[beam.Pid, beam.Ref] = {}
        self.lock = TaskLock()  # one command or reconnection at a time
        self.resume = trio.Event()
        self.scope = trio.CancelScope()

    async def connect(self) -> None:
        self.conn = await TrioConnection.connect(
            self.conninfo, autocommit=True, application_name=self.name, options=self.options
        )
        self.conn.add_notify_handler(self.deliver)

    def deliver(self, note: psycopg.Notify) -> None:
        message = Notify(note.channel, note.payload, note.pid)
        for pid in self.channels.get(note.channel, ()):
            beam.send(pid, message)

    async def command(self, text: sql.Composed) -> None:
        """Run *text* on the connection while the reader stands aside."""
        async with self.lock:
            self.resume = trio.Event()
            self.scope.cancel()  # the reader stops waiting on the socket at once
            try:
                assert self.conn is not None
                await self.conn.execute(text)
            finally:
                self.resume.set()

    async def read(self) -> None:
        """Wait on the socket, deliver what arrives; reconnect when the connection is lost."""
        while True:
            # A command may have started (with an event of its own) between the set of the
            # event this task waited on and this task running: wait for the current one, so
            # that only one task ever waits on the socket.
            while not self.resume.is_set():
                await self.resume.wait()
            conn = self.conn
            assert conn is not None
            with trio.CancelScope() as self.scope:
                try:
                    await trio.lowlevel.wait_readable(conn.pgconn.socket)
                    conn.pgconn.consume_input()
                except (psycopg.OperationalError, OSError, trio.ClosedResourceError):
                    pass
            if self.scope.cancelled_caught:
                continue
            encoding = conn.info.encoding
            while (raw := conn.pgconn.notifies()) is not None:
                self.deliver(
                    psycopg.Notify(
                        raw.relname.decode(encoding), raw.extra.decode(encoding), raw.be_pid
                    )
                )
            if conn.broken or conn.pgconn.status == psycopg.pq.ConnStatus.BAD:
                await self.reconnect()

    async def reconnect(self) -> None:
        async with self.lock:
            if self.conn is not None:
                self.conn._finish()
            backoff = _BACKOFF[0]
            while True:
                try:
                    await self.connect()
                    assert self.conn is not None
                    for channel in self.channels:
                        await self.conn.execute(_listen_sql(channel, True))
                    return
                except (psycopg.Error, OSError):
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF[1])

    async def subscribe(self, message: _Subscribe) -> None:
        error: BaseException | None = None
        channel, pid = message.channel, message.pid
        listeners = self.channels.get(channel)
        try:
            if message.on:
                if listeners is None:
                    await self.command(_listen_sql(channel, True))
                    listeners = self.channels[channel] = set()
                listeners.add(pid)
                if pid not in self.watching:
                    self.watching[pid] = beam.monitor(pid)
            elif listeners is not None and pid in listeners:
                await self.forget(pid, [channel])
        except psycopg.Error as exc:
            error = exc
        beam.send(pid, _Subscribed(message.ref, error))

    async def forget(self, pid: beam.Pid, channels: list[str]) -> None:
        for channel in channels:
            listeners = self.channels.get(channel)
            if listeners is None:
                continue
            listeners.discard(pid)
            if not listeners:
                del self.channels[channel]
                await self.command(_listen_sql(channel, False))
        if not any(pid in listeners for listeners in self.channels.values()):
            ref = self.watching.pop(pid, None)
            if ref is not None:
                beam.demonitor(ref, flush=True)


def _listen_sql(channel: str, on: bool) -> sql.Composed:
    return sql.SQL("LISTEN {}" if on else "UNLISTEN {}").format(sql.Identifier(channel))


async def _listener(conninfo: str, options: str, name: str, starter: beam.Pid) -> None:
    me = beam.self()
    beam.register(name, me)
    state = _Listener(conninfo, options, name)
    try:
        try:
            await state.connect()
        except (psycopg.Error, OSError) as exc:
            beam.send(starter, _Started(me, exc))
            return
        state.resume.set()
        beam.send(starter, _Started(me, None))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(state.read)
            while True:
                message = await beam.receive()
                if type(message) is _Subscribe:
                    await state.subscribe(message)
                elif (
                    type(message) is beam.Down
                    and type(message.pid) is beam.Pid
                    and state.watching.get(message.pid) == message.ref
                ):
                    del state.watching[message.pid]
                    await state.forget(message.pid, list(state.channels))
    finally:
        if state.conn is not None:
            state.conn._finish()
