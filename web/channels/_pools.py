"""Where connection and channel processes live: partitioned DynamicSupervisor pools.

As Phoenix does, each node runs one supervision tree for its sockets, registered as
``web.socket_sup`` (one_for_one): under the endpoint's tree when a server runs
(``web.endpoint``, before the listener: see :mod:`web.http._listener`), else started by the
first connection::

    web.socket_sup
    ├── web.transports        (Supervisor of PARTITIONS DynamicSupervisors)
    │   ├── web.transports.0  ... one transport process per connection
    │   └── ...
    └── web.channels          (Supervisor of PARTITIONS DynamicSupervisors)
        ├── web.channels.0    ... one channel (or LiveView) process per joined topic
        └── ...

so the processes appear in the supervision tree, ``which_children``/``count_children`` of a
partition count them, and stopping the tree stops the channels first, then the transports
(a supervisor stops its children in reverse start order). Both kinds are ``temporary``: a
connection or a channel that ends is not restarted (the client rejoins). The links stay as
before: a channel is linked to its transport too, so a transport's death stops its channels,
and a channel's crash reaches its transport as an ``Exit`` (a ``phx_error`` to the client).

Partitions: Phoenix uses one per scheduler, so that starts spread over cores. trio runs one
thread, so partitions buy no parallelism here; they bound what one partition holds and how
long its ``which_children`` takes, and they spread starts over mailboxes so a burst of joins
does not queue behind one supervisor: :data:`PARTITIONS` is 4, and a connection's transport
and all its channels go to the partition of the connection's number.
"""

from __future__ import annotations

import weakref
from typing import Any, Final

import trio

import beam
from beam import lowlevel
from supervisors import ChildSpec, DynamicSupervisor, Supervisor

__all__ = [
    "CHANNELS",
    "PARTITIONS",
    "TRANSPORTS",
    "TREE",
    "PoolsStopped",
    "partition",
    "start_detached",
    "start_supervised",
    "tree_spec",
]

#: The partitions of each pool (see the module's docstring for why 4).
PARTITIONS: Final = 4
#: The registered names of the tree and of its two pools (partition ``i`` is ``f"{pool}.{i}"``).
TREE: Final = "web.socket_sup"
TRANSPORTS: Final = "web.transports"
CHANNELS: Final = "web.channels"


def partition(pool: str, key: int) -> str:
    """The registered name of the partition of *pool* for *key* (a connection's number).

    >>> partition(CHANNELS, 5)
    'web.channels.1'
    """
    return f"{pool}.{key % PARTITIONS}"


def _pool_spec(pool: str) -> ChildSpec:
    children = [
        DynamicSupervisor.child_spec(id=i, name=f"{pool}.{i}", max_restarts=1_000, max_seconds=1)
        for i in range(PARTITIONS)
    ]
    return Supervisor.child_spec(children, id=pool, name=pool)


async def _start_tree() -> beam.Pid:
    return await Supervisor.start_link([_pool_spec(TRANSPORTS), _pool_spec(CHANNELS)], name=TREE)


def tree_spec() -> ChildSpec:
    """The child spec of this node's tree, for the endpoint's supervision tree
    (``web.endpoint``, see :mod:`web.http._listener`): a :class:`Socket` hands it to the
    endpoint it is mounted on, so the pools start before the listener accepts a connection
    and stop after it stopped accepting. When the node's tree runs already (another
    endpoint's, or one started by a connection without a server), the child is ignored.

    >>> tree_spec().id
    'web.socket_sup'
    """
    return ChildSpec(
        id=TREE, start=_start_tree_unless_running, shutdown="infinity", type="supervisor"
    )


async def _start_tree_unless_running() -> beam.Pid | None:
    node = beam.current_node()
    starting = _starting.get(node)
    if starting is not None:  # a connection is starting it, detached: leave it be
        await starting.wait()
    if beam.whereis(TREE) is not None:
        return None
    _owners[node] = beam.self()  # the endpoint's supervisor
    return await _start_tree()


#: Per node, the supervisor (an endpoint's tree) that runs the node's tree as its child.
_owners: weakref.WeakKeyDictionary[beam.Node, beam.Pid] = weakref.WeakKeyDictionary()


class PoolsStopped(RuntimeError):
    """The pools are not running and their supervisor (the endpoint's tree) is alive: the
    server is stopping (or restarting them). Nothing may start a tree of its own meanwhile."""


#: Per node, the start of its tree in progress (first connections arrive together).
_starting: weakref.WeakKeyDictionary[beam.Node, trio.Event] = weakref.WeakKeyDictionary()


async def _ensure_tree() -> None:
    """Start this node's tree if it is not running (from a process; the tree has no parent
    that could take it down: its starter unlinks it). Returns once every partition runs."""
    last = f"{CHANNELS}.{PARTITIONS - 1}"  # the supervisor registers its name first, and
    if beam.whereis(last) is not None:  # starts its children in order: this one comes last
        return
    node = beam.current_node()
    owner = _owners.get(node)
    if owner is not None and beam.is_alive(owner):
        raise PoolsStopped(
            f"the {TREE} pools are stopped while their supervisor {owner} runs: the server "
            "is shutting down (or restarting them)"
        )
    starting = _starting.get(node)
    if starting is not None:  # another process is starting it: wait for that
        await starting.wait()
        if beam.whereis(last) is None:
            raise RuntimeError("the web.socket_sup supervision tree failed to start")
        return
    starting = _starting[node] = trio.Event()
    try:
        pid = await _start_tree()
        beam.unlink(pid)
    finally:
        del _starting[node]
        starting.set()


async def _spawn_linked(fn: Any, args: tuple[Any, ...], initial_call: Any) -> beam.Pid:
    """A pool's start function: runs in the partition, which becomes the parent (linked)."""
    return lowlevel.spawn_opt(fn, *args, link=True, initial_call=initial_call)


async def start_supervised(
    pool: str, key: int, fn: Any, args: tuple[Any, ...], initial_call: Any
) -> beam.Pid:
    """Start ``fn(*args)`` as a temporary child of *pool*'s partition for *key*, from a process.

    >>> pid = await start_supervised(CHANNELS, 3, run_channel, (channel, start), RoomChannel)
    """
    await _ensure_tree()
    spec = ChildSpec(
        id=initial_call,
        start=_spawn_linked,
        args=(fn, args, initial_call),
        restart="temporary",
        shutdown=5.0,
    )
    pid = await DynamicSupervisor.start_child(partition(pool, key), spec)
    assert pid is not None
    return pid


async def start_detached(
    pool: str, key: int, fn: Any, args: tuple[Any, ...], initial_call: Any
) -> beam.Pid:
    """:func:`start_supervised` from code that is not a process (the server's tasks)."""
    result: list[Any] = []
    done = trio.Event()

    async def starter() -> None:
        try:
            result.append(await start_supervised(pool, key, fn, args, initial_call))
        except BaseException as exc:
            result.append(exc)
            raise
        finally:
            done.set()

    lowlevel.spawn_opt(starter, detached=True, initial_call=start_detached)
    await done.wait()
    if isinstance(result[0], BaseException):
        raise result[0]
    pid: beam.Pid = result[0]
    return pid
