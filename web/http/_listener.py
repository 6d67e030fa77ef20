"""The endpoint's supervision tree, and the listener (the accept loop) as a process in it.

In a node, :func:`~web.serve` runs the endpoint under one supervision tree, as Phoenix's
``Endpoint.Supervisor`` does (one_for_one)::

    web.endpoint                the endpoint's tree (one per serve; named if the name is free)
    ├── web.socket_sup          children given to Endpoint.supervise, in order (a Channels
    │                           socket gives its pools: web.transports, web.channels)
    └── web.listener            the accept loop: one trio task per listening socket

The listener only accepts. Each accepted connection is served by a trio task of ``serve``
(not a process: a connection outlives the listener, and an HTTP request runs in a process
of its own anyway). A listener that crashes is restarted by ``web.endpoint`` and listens
again on the port it had.

Shutdown (``serve`` cancelled: the node stops) goes in the reverse of the start order, and
only then are the remaining connections ended:

1. the listener stops accepting: its listening sockets close, so a new connection goes to
   another node on the port (``SO_REUSEPORT``) or is refused, and none lands on a node whose
   channels are stopping;
2. ``web.socket_sup``: the channels stop first (each runs ``terminate``), then the transports,
   each closing its WebSocket with 1001 (phoenix.js reconnects, to another node);
3. ``serve`` ends the HTTP connections still open (keep-alive, requests in flight).

Phoenix stops its listener first too (the endpoint starts each socket's pool before the
server, so stops the server before the pools), but its transports are the server's connection
processes and stop with the listener, before the channel pools; and a drainer before the
listener disconnects sockets in batches while the listener still accepts. Here the
transports are supervised in ``web.socket_sup``: the listener stops accepting, then the
channels, then the transports, so a channel's ``terminate`` runs while its client is still
connected.

Outside any node, ``serve`` keeps a plain accept loop (HTTP works, without processes).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

import beam
from beam import lowlevel
from supervisors import ChildSpec, Supervisor

from ._endpoint import Endpoint

__all__ = ["ENDPOINT", "LISTENER", "listener", "serve_supervised"]

logger = logging.getLogger("web.server")

#: The registered names of the endpoint's tree and of its listener (the first ``serve`` of a
#: node takes them; another one in the same node runs unnamed).
ENDPOINT: Final = "web.endpoint"
LISTENER: Final = "web.listener"
#: How long ``serve`` waits for its tree to stop before ending the connections anyway.
STOP_WAIT: Final = 30.0
#: Accept errors that mean "out of resources for now": wait, then accept again (as trio's
#: ``serve_listeners`` does).
_RESOURCE_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_RESOURCE_WAIT: Final = 0.1

Listeners = list[trio.SocketListener]
Connection = Callable[[Endpoint, trio.Nursery, trio.SocketStream], Awaitable[None]]


class _Sockets:
    """The listening sockets of one ``serve``: those it opened, then, for a listener started
    again after a crash, new ones on the port it got."""

    def __init__(
        self, opened: Listeners, reopen: Callable[[], Awaitable[Listeners]], port: int
    ) -> None:
        self._opened: Listeners | None = opened
        self._reopen = reopen
        self.port = port

    def __repr__(self) -> str:
        return f"<listening sockets on port {self.port}>"

    async def take(self) -> Listeners:
        opened = self._opened
        if opened is None:
            return await self._reopen()
        self._opened = None
        return opened

    def close_unused(self) -> None:
        for sock in self._opened or ():
            sock.socket.close()
        self._opened = None


class _Spawner:
    """Starts a connection's task in the connections' nursery, in ``serve``'s context (its
    process, if any), not the listener's: a connection outlives the listener."""

    def __init__(self, connection: Connection, endpoint: Endpoint, nursery: trio.Nursery) -> None:
        self._connection = connection
        self._endpoint = endpoint
        self._nursery = nursery
        self._context = contextvars.copy_context()

    def __repr__(self) -> str:
        return "<the server's connection tasks>"

    def __call__(self, stream: trio.SocketStream) -> None:
        try:
            self._context.run(
                self._nursery.start_soon, self._connection, self._endpoint, self._nursery, stream
            )
        except RuntimeError:  # the connections' nursery is closed: the server is stopping
            stream.socket.close()


async def listener(sockets: _Sockets, spawn: Callable[[trio.SocketStream], None]) -> None:
    """The body of the listener process: accept on every listening socket, hand each
    connection to *spawn*. An exit signal closes the sockets (no more accepts)."""
    taken = await sockets.take()
    async with trio.open_nursery() as nursery:
        for each in taken:
            nursery.start_soon(_accept_loop, each, spawn)


async def _accept_loop(
    sock: trio.SocketListener, spawn: Callable[[trio.SocketStream], None]
) -> None:
    async with sock:
        while True:
            try:
                stream = await sock.accept()
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                logger.error(
                    "accept failed (%s); accepting again in %s s",
                    errno.errorcode[exc.errno],
                    _RESOURCE_WAIT,
                )
                await trio.sleep(_RESOURCE_WAIT)
            else:
                spawn(stream)


async def _start_listener(
    sockets: _Sockets, spawn: Callable[[trio.SocketStream], None]
) -> beam.Pid:
    pid = lowlevel.spawn_opt(listener, sockets, spawn, link=True, initial_call=listener)
    if beam.whereis(LISTENER) is None:
        beam.register(LISTENER, pid)
    return pid


async def _start_tree(children: list[ChildSpec]) -> beam.Pid:
    name = ENDPOINT if beam.whereis(ENDPOINT) is None else None
    pid = await Supervisor.start_link(children, name=name)
    beam.unlink(pid)  # the tree outlives the process that started it: serve stops it
    return pid


async def _until_down(pid: beam.Pid) -> Any:
    ref = beam.monitor(pid)
    down = await beam.receive(lambda m: type(m) is beam.Down and m.ref == ref)
    return down.reason


async def _stop_tree(pid: beam.Pid) -> None:
    with contextlib.suppress(beam.ProcessExit):  # it had exited already
        await Supervisor.stop(pid, beam.SHUTDOWN)


async def _in_process(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``await fn(*args)`` in a process of its own (``serve`` runs in a trio task, which
    may not be a process); its result, or its exception raised here."""
    box: list[tuple[bool, Any]] = []
    done = trio.Event()

    async def run() -> None:
        try:
            box.append((True, await fn(*args)))
        except Exception as exc:
            box.append((False, exc))
        finally:
            done.set()

    lowlevel.spawn_opt(run, detached=True, initial_call=fn)
    await done.wait()
    if not box:
        raise RuntimeError(f"the process running {fn.__qualname__} was killed before it finished")
    ok, value = box[0]
    if not ok:
        raise value
    return value


async def _hold(
    scope: trio.CancelScope, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
) -> None:
    """The connections' nursery, inside *scope*: shielded, so cancelling ``serve`` does not
    end the connections before the tree has stopped; cancelling *scope* ends them."""
    with scope:
        async with trio.open_nursery() as connections:
            task_status.started(connections)
            await trio.sleep_forever()


async def serve_supervised(
    endpoint: Endpoint,
    opened: Listeners,
    reopen: Callable[[], Awaitable[Listeners]],
    connection: Connection,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``serve`` in a node: run the endpoint's tree (its children, then the listener on the
    sockets *opened*) until cancelled, then stop it in order (see the module documentation).
    Each accepted connection runs ``connection(endpoint, nursery, stream)`` in a task of its
    own. Raises if the tree exits by itself (it gave up restarting a child).

    >>> port = await nursery.start(serve_supervised, endpoint, opened, reopen, connection)
    """
    bound = opened[0].socket.getsockname()[1]
    sockets = _Sockets(opened, reopen, bound)
    ending = trio.CancelScope(shield=True)
    failure: Exception | None = None  # raised once the nursery is closed: not in a group
    async with trio.open_nursery() as nursery:
        connections: trio.Nursery = await nursery.start(_hold, ending)
        spawn = _Spawner(connection, endpoint, connections)
        children = [
            *endpoint.children(),
            ChildSpec(LISTENER, _start_listener, (sockets, spawn), shutdown=5.0),
        ]
        try:
            tree = await _in_process(_start_tree, children)
        except Exception as exc:
            sockets.close_unused()
            ending.cancel()
            failure = exc
        else:
            task_status.started(bound)
            try:
                reason = await _in_process(_until_down, tree)
                failure = RuntimeError(
                    f"the endpoint's supervision tree {tree} exited "
                    f"({beam.bounded_repr(reason)}): the server on port {bound} stops (see "
                    "the supervisor report above)"
                )
            finally:
                # RuntimeError: the node is closing already (no process can be started).
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(STOP_WAIT),
                    contextlib.suppress(RuntimeError),
                ):
                    await _in_process(_stop_tree, tree)
                ending.cancel()
    if failure is not None:
        raise failure
