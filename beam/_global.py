"""Global names: one process per name across the whole cluster, as OTP's ``global``.

A global name is a ``str`` that names one process of the cluster. Registering it is atomic
cluster-wide: the cluster's Redis is the arbiter, so of several nodes registering one name
at once exactly one gets ``True``. Every node keeps a replica of the name table, so
:func:`whereis_global` and :func:`send_global` are local lookups with no round trip::

    async def main():
        if await beam.register_global("scheduler", beam.self()):
            ...                                   # this process is the cluster's scheduler
        beam.send_global("scheduler", ("job", 42))   # from any process of any node

**The server.** Each node runs one global name server (registered locally as
``"beam.global"``). A node that joins a cluster starts it (a cluster service, see
:func:`beam.cluster.add_cluster_service`); a node alone starts it at its first
registration, and its global names are then just node-wide (no Redis: one node is the whole
cluster). The server of a process's node owns its registration: it claims the name in
Redis, monitors the process, and tells the other nodes' servers (one broadcast on the PubSub
topic ``"beam.global"``); registering or unregistering a name of a pid of another node asks
that node's server. A process holds at most one global name. A server that is restarted
takes over its node's names (the live ones it finds in Redis, or on a node alone in the
node's table).

**Freed** when the owner exits (its server releases the name in Redis and tells the
others), when it is unregistered, or when its node goes down: every other node drops that
node's names from its table at ``NodeDown``, and in Redis an entry whose node's name key
(``<namespace>:node:<name>``, kept by the node's heartbeats) no longer holds the node's
incarnation is free for anyone (and swept).

**Merges.** A node cut off from the cluster long enough to be declared down (its Redis name
key expired) loses its names everywhere else; meanwhile another process may register one of
them. When the node comes back, its server learns it: from a peer's registration broadcast
(if it was only paused), from the names a peer sends it on ``NodeUp`` (and it sends its own
back), or at the latest from its periodic check of its names against Redis (every cluster
``timeout``). It then resolves the conflict: **the registration held in Redis wins**. The
losing process, on the node that comes back, is unregistered and told, as its
registration's *resolve* option says, and a warning naming the name and both pids is logged
(logger ``beam.global``):

* ``resolve="kill"`` (the default, as OTP's ``random_exit_name``): the global server sends
  it an exit signal with reason ``("global_name_conflict", name)``. Unlike OTP's untrappable
  ``kill``, the reason names the conflict, so a process that traps exits receives it as an
  ``Exit`` message and lives on, without the name;
* ``resolve="notify"`` (as OTP's ``random_notify_name``): it gets the message
  ``GlobalNameConflict(name, other)``, ``other`` being the winner, and lives on.

Unlike OTP, which picks the winner at random, the winner is always the one Redis holds (the
later registration, made while the loser's node was down). A name that only the returning
node holds (nobody took it meanwhile) is claimed again in Redis, and is its own again
everywhere: a partition nobody exploited loses nothing.

**Consistency.** :func:`register_global` returns once the name is claimed in Redis and in
the owner node's table; the other nodes' tables have it a broadcast later (milliseconds).
Each registration has a claim number from a counter in Redis, so news that comes late or out
of order never overwrites a newer registration, and each server checks that counter every
cluster ``timeout``, reloading the live names if it moved: a node that missed broadcasts (a
lost Redis connection) catches up within that time. When Redis cannot be reached,
:func:`register_global` raises :class:`GlobalNamesUnavailable` within a few seconds, never
hangs; lookups keep answering from the table.

In Redis, the names live in the hash ``<namespace>:global`` (field: the name; value:
``"<claim number> <incarnation> <pid number> <node name>"`` of its owner), the counter in
``<namespace>:global:seq``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import trio

from ._api import (
    demonitor,
    is_alive,
    monitor,
    monitor_nodes,
    receive,
    register,
    send,
    send_after,
)
from ._api import exit as exit_process
from ._api import self as self_pid
from ._call import CallRequest, call, reply
from ._codec import register as register_type
from ._errors import CallTimeout, ProcessExit, UnknownName
from ._node import Node, current_node
from ._pubsub import _pubsub, broadcast_from, subscribe
from ._redis_pubsub import RedisPubSub, _describe, add_cluster_service
from ._resp import RedisError, connect
from ._types import Down, From, NodeDown, NodeId, NodeUp, Pid, Ref
from .lowlevel import spawn_opt

__all__ = [
    "GlobalNameConflict",
    "GlobalNamesUnavailable",
    "register_global",
    "registered_global",
    "send_global",
    "unregister_global",
    "whereis_global",
]

logger = logging.getLogger("beam.global")

#: The name each node's global name server is registered under (peers reach ``(it, node)``).
SERVER: Final = "beam.global"
#: The PubSub topic the servers tell each other registrations and releases on.
TOPIC: Final = "beam.global"
#: How long one Redis operation of the server may take before it counts as a failure (s).
REDIS_TIMEOUT: Final = 2.0
#: How long register_global/unregister_global wait for a server's answer (s).
CALL_TIMEOUT: Final = 5.0

Resolve = Literal["kill", "notify"]
_RESOLVES: Final = ("kill", "notify")


# -- public types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GlobalNameConflict:
    """Told to a process registered with ``resolve="notify"`` that lost its global *name* in
    a merge: *other* holds it now, and the receiver is no longer registered.

    >>> async def main():
    ...     await beam.register_global("leader", beam.self(), resolve="notify")
    ...     conflict = await beam.receive(beam.GlobalNameConflict)
    ...     print(conflict.name, "now held by", conflict.other)
    """

    name: str
    other: Pid


class GlobalNamesUnavailable(ConnectionError):
    """A global name could not be registered or unregistered: the cluster's Redis (or the
    owning node's global name server) did not answer in time. Lookups still work.

    >>> async def main():
    ...     try:
    ...         await beam.register_global("scheduler", beam.self())
    ...     except beam.GlobalNamesUnavailable as error:
    ...         print(error)
    """


# -- messages between processes and servers (every node registers them with the codec) ---


@dataclass(frozen=True, slots=True)
class _Register:
    name: str
    pid: Pid
    resolve: str


@dataclass(frozen=True, slots=True)
class _Unregister:
    name: str


@dataclass(frozen=True, slots=True)
class _Failed:
    """A server's answer when Redis failed: the caller raises GlobalNamesUnavailable."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Registered:
    """Broadcast by the owner's server: *name* is *pid*'s now, by claim number *seq*."""

    name: str
    pid: Pid
    seq: int


@dataclass(frozen=True, slots=True)
class _Unregistered:
    """Broadcast by the owner's server: *pid* no longer holds *name*; *winner* does (by
    claim number *seq*) if it lost a merge, else nobody."""

    name: str
    pid: Pid
    winner: Pid | None
    seq: int


@dataclass(frozen=True, slots=True)
class _Sync:
    """All the names a server owns, ``(name, pid, seq)``, sent to a node that came up;
    *answer*: send yours back."""

    node: str
    names: tuple[tuple[str, Pid, int], ...]
    answer: bool


@dataclass(frozen=True, slots=True)
class _Join:
    """To this node's server: the node has joined a cluster, switch to Redis."""


for _cls in (_Register, _Unregister, _Failed, _Registered, _Unregistered, _Sync):
    register_type(_cls, f"beam.global.{_cls.__name__.lstrip('_')}")
register_type(GlobalNameConflict, "beam.GlobalNameConflict")

_TICK: Final = ("beam.global", "tick")


# -- the node's table ------------------------------------------------------------------------


class _Table:
    """A node's replica of the global names and their claim numbers (written by its server
    only; kept if the server is restarted), and its server."""

    __slots__ = ("names", "seqs", "server")

    def __init__(self) -> None:
        self.names: dict[str, Pid] = {}
        self.seqs: dict[str, int] = {}
        self.server: Pid | None = None


_tables: weakref.WeakKeyDictionary[Node, _Table] = weakref.WeakKeyDictionary()


def _table(node: Node) -> _Table:
    table = _tables.get(node)
    if table is None:
        table = _tables[node] = _Table()
    return table


def _ensure_server(node: Node) -> Pid:
    """The node's global name server, started now (detached) if it is not running."""
    table = _table(node)
    server = table.server
    if server is None or not is_alive(server):
        server = spawn_opt(_serve, table, detached=True, initial_call=_Server)
        table.server = server
    return server


# -- the public functions ---------------------------------------------------------------------


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what}: a global name is a non-empty str, got {name!r}")
    return name


async def register_global(name: str, pid: Pid, *, resolve: Resolve = "kill") -> bool:
    """Register *name* for *pid* across the cluster; ``False`` if the name is taken or *pid*
    already has a global name (as ``global:register_name`` answers ``no``).

    The name is freed when *pid* exits, when its node goes down, or by
    :func:`unregister_global`. *resolve* says how *pid* is told if it loses the name when
    partitions merge (see the module's docs): ``"kill"`` (default: an exit signal with reason
    ``("global_name_conflict", name)``) or ``"notify"`` (a :class:`GlobalNameConflict`
    message). A pid that is not alive gets ``True`` and no name, as in OTP. Raises
    :class:`GlobalNamesUnavailable` if Redis (or, for a pid of another node, that node)
    does not answer within a few seconds. Call it from a process.

    >>> async def main():
    ...     assert await beam.register_global("scheduler", beam.self())
    ...     assert not await beam.register_global("scheduler", beam.spawn(worker))
    """
    _check_name(name, "beam.register_global")
    if type(pid) is not Pid:
        raise TypeError(f"beam.register_global({name!r}, ...) needs a beam.Pid, got {pid!r}")
    if resolve not in _RESOLVES:
        raise ValueError(f"resolve must be one of {_RESOLVES}, got {resolve!r}")
    node = current_node("beam.register_global")
    answer = await _ask(node, pid, _Register(name, pid, resolve), "register", name)
    return bool(answer)


async def unregister_global(name: str) -> None:
    """Remove the global *name*, whoever holds it (nothing if nobody does), as
    ``global:unregister_name``. Its owner's node does it; raises
    :class:`GlobalNamesUnavailable` if that node does not answer. Call it from a process.

    >>> async def main():
    ...     await beam.unregister_global("scheduler")
    """
    _check_name(name, "beam.unregister_global")
    node = current_node("beam.unregister_global")
    holder = _table(node).names.get(name)
    if holder is None:
        return
    await _ask(node, holder, _Unregister(name), "unregister", name)


async def _ask(node: Node, pid: Pid, request: Any, what: str, name: str) -> Any:
    """Call the global name server of *pid*'s node with *request*; its answer."""
    dest: Pid | tuple[str, str]
    if pid.node is None or pid.node == _identity(node):
        dest, where = _ensure_server(node), "this node"
    else:
        dest, where = (SERVER, pid.node.name), f"node {pid.node.name!r}"
    try:
        answer = await call(dest, request, timeout=CALL_TIMEOUT)
    except ProcessExit as error:  # no answer in time, or that node is down
        reason = error.reason[0] if isinstance(error.reason, tuple) else error.reason
        raise GlobalNamesUnavailable(
            f"cannot {what} the global name {name!r}: the global name server of {where} "
            f"did not answer ({reason}; is the cluster's Redis reachable?)"
        ) from None
    if type(answer) is _Failed:
        raise GlobalNamesUnavailable(f"cannot {what} the global name {name!r}: {answer.reason}")
    return answer


def whereis_global(name: str) -> Pid | None:
    """The pid registered as the global *name*, or ``None``, from this node's replica of the
    name table (no round trip, as ``global:whereis_name``).

    >>> async def main():
    ...     pid = beam.whereis_global("scheduler")
    """
    _check_name(name, "beam.whereis_global")
    pid = _table(current_node("beam.whereis_global")).names.get(name)
    if pid is not None and pid.node is None and not is_alive(pid):
        return None  # exited; its server has not processed the Down yet
    return pid


def send_global(name: str, message: Any) -> Pid:
    """Send *message* to the process registered as the global *name*; returns its pid.

    Raises :class:`beam.UnknownName` naming *name* if nobody holds it (as ``global:send``
    exits with ``badarg``). Otherwise it is a :func:`beam.send` to that pid: never blocks.

    >>> async def main():
    ...     beam.send_global("scheduler", ("job", 42))
    """
    pid = whereis_global(name)
    if pid is None:
        raise UnknownName(
            f"cannot send to the global name {name!r}: no process of the cluster is registered "
            "under it (check beam.whereis_global(name))"
        )
    send(pid, message)
    return pid


def registered_global() -> list[str]:
    """The global names known on this node, sorted (as ``global:registered_names``).

    >>> async def main():
    ...     print(beam.registered_global())     # e.g. ['scheduler']
    """
    return sorted(_table(current_node("beam.registered_global")).names)


# -- Redis: the arbiter -----------------------------------------------------------------------
#
# The hash <namespace>:global maps each name to "<seq> <incarnation> <pid number> <node>":
# its owner, and the claim's number, taken from the counter <namespace>:global:seq (bumped by
# every claim and release, so a node can tell its table is out of date with one GET). Claim
# numbers order registrations cluster-wide: what a node hears late, or out of order, never
# overwrites a newer claim. An entry is *live* while its node's name key holds its
# incarnation; a dead entry counts as absent everywhere. Each method of _Redis runs one Lua
# script on a fresh connection (registrations are rare) within REDIS_TIMEOUT; any failure
# raises _Unreachable.

_FUNCTIONS_LUA: Final = """
local function holder(value)
  return string.match(value, '^%d+ (.*)$')
end
local function live(value, prefix)
  local incarnation, node = string.match(value, '^%d+ (%d+) %d+ (.*)$')
  return incarnation ~= nil and redis.call('GET', prefix .. node) == incarnation
end
"""

# KEYS: hash, counter. ARGV: node-key prefix, then name, holder pairs. Per pair, a status and
# the entry: 0 (the holder had it already), 1 (free or dead: the holder's now), 2 (another
# live holder's).
_CLAIM: Final = (
    _FUNCTIONS_LUA
    + """
local out = {}
for i = 2, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current and holder(current) == ARGV[i + 1] then
    out[#out + 1] = 0
    out[#out + 1] = current
  elseif current and live(current, ARGV[1]) then
    out[#out + 1] = 2
    out[#out + 1] = current
  else
    local value = redis.call('INCR', KEYS[2]) .. ' ' .. ARGV[i + 1]
    redis.call('HSET', KEYS[1], ARGV[i], value)
    out[#out + 1] = 1
    out[#out + 1] = value
  end
end
return out
"""
)

# KEYS: hash, counter. ARGV: name, holder pairs: delete each name that holder still has.
_RELEASE: Final = (
    _FUNCTIONS_LUA
    + """
local released = 0
for i = 1, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current and holder(current) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    released = released + 1
  end
end
if released > 0 then redis.call('INCR', KEYS[2]) end
return released
"""
)

# KEYS: hash, counter. ARGV: node-key prefix, the counter the caller knows, '1' to sweep.
# Returns {counter} alone if it is the known one (and no sweep is asked), else {counter,
# name, entry, ...} with the live entries; a sweep deletes the dead ones (bumping the counter).
_SNAPSHOT: Final = (
    _FUNCTIONS_LUA
    + """
if ARGV[3] ~= '1' then
  local counter = redis.call('GET', KEYS[2]) or '0'
  if counter == ARGV[2] then return {tonumber(counter)} end
end
local entries = redis.call('HGETALL', KEYS[1])
local out = {0}
local dead = 0
for i = 1, #entries, 2 do
  if live(entries[i + 1], ARGV[1]) then
    out[#out + 1] = entries[i]
    out[#out + 1] = entries[i + 1]
  elseif ARGV[3] == '1' then
    redis.call('HDEL', KEYS[1], entries[i])
    dead = dead + 1
  end
end
if dead > 0 then redis.call('INCR', KEYS[2]) end
out[1] = tonumber(redis.call('GET', KEYS[2]) or '0')
return out
"""
)


class _Unreachable(Exception):
    """A Redis operation of the server failed or timed out (the text says how)."""


class _Redis:
    """The server's access to the cluster's Redis (the adapter's URL and namespace)."""

    def __init__(self, adapter: RedisPubSub) -> None:
        self.adapter = adapter
        self.keys = [f"{adapter.namespace}:global", f"{adapter.namespace}:global:seq"]
        self.node_prefix = f"{adapter.namespace}:node:"

    async def _eval(self, script: str, args: list[str]) -> Any:
        """Run *script* on the hash and the counter with *args* (within REDIS_TIMEOUT); its
        reply, the strings of a list decoded."""
        try:
            with trio.fail_after(REDIS_TIMEOUT):
                async with await connect(self.adapter.url, connect_timeout=REDIS_TIMEOUT) as redis:
                    result = await redis.execute("EVAL", script, len(self.keys), *self.keys, *args)
        except (RedisError, OSError, trio.TooSlowError) as error:
            how = "did not answer in time" if isinstance(error, trio.TooSlowError) else "failed"
            raise _Unreachable(
                f"Redis at {self.adapter.url} {how} ({_describe(error)}; the limit is "
                f"{REDIS_TIMEOUT} s)"
            ) from None
        if not isinstance(result, list):
            return result
        return [item.decode() if isinstance(item, bytes) else item for item in result]

    async def claim(self, pairs: list[tuple[str, str]]) -> list[tuple[int, str]]:
        """Claim each name for its holder: per pair, a status (0: had it, 1: claimed now,
        2: another live holder has it) and the entry in Redis."""
        result = await self._eval(_CLAIM, [self.node_prefix, *_flat(pairs)])
        return list(zip(result[::2], result[1::2], strict=True))

    async def release(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Delete each name its holder still has."""
        args = _flat(pairs)
        if args:
            await self._eval(_RELEASE, args)

    async def snapshot(
        self, known: int | None, *, sweep: bool
    ) -> tuple[int, dict[str, str] | None]:
        """The counter and the live entries (``None`` if the counter is *known* and no
        *sweep* of the dead entries is asked)."""
        flag = "1" if sweep else "0"
        result = await self._eval(_SNAPSHOT, [self.node_prefix, str(known), flag])
        counter, items = result[0], result[1:]
        if len(result) == 1 and not sweep and counter == known:
            return counter, None
        return counter, dict(zip(items[::2], items[1::2], strict=True))


def _flat(pairs: Iterable[tuple[str, str]]) -> list[str]:
    return [item for pair in pairs for item in pair]


def _holder(pid: Pid, identity: NodeId) -> str:
    """A pid as Redis holds it: ``"<incarnation> <number> <node name>"``."""
    node = identity if pid.node is None else pid.node
    return f"{node.incarnation} {pid.id} {node.name}"


def _parse(entry: str, identity: NodeId) -> tuple[Pid, int] | None:
    """The pid and claim number of an entry (a local pid if it is of *identity*); ``None``
    for a garbled one."""
    parts = entry.split(" ", 3)
    if len(parts) != 4 or not all(part.isdigit() for part in parts[:3]) or not parts[3]:
        return None
    seq, incarnation, number, name = parts
    node = NodeId(name, int(incarnation))
    return (Pid(int(number)) if node == identity else Pid(int(number), node)), int(seq)


def _identity(node: Node) -> NodeId | None:
    adapter = _pubsub(node).adapter
    return adapter.identity if isinstance(adapter, RedisPubSub) else None


# -- the server ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Owned:
    """A registration this node's server owns: its process, monitor, option and claim."""

    pid: Pid
    ref: Ref
    resolve: str
    seq: int


class _Server:
    """The state and handlers of a node's global name server (its process alone uses it).

    ``table.names`` is the node's replica of the cluster's names (``table.seqs`` their claim
    numbers); ``owned`` the registrations of this node's processes, which this server
    monitors and answers for.
    """

    def __init__(self, table: _Table) -> None:
        self.table = table
        self.seqs = table.seqs
        self.owned: dict[str, _Owned] = {}
        self.by_pid: dict[Pid, str] = {}
        self.by_ref: dict[Ref, str] = {}
        self.redis: _Redis | None = None
        self.identity: NodeId | None = None
        self.interval = 1.0
        #: The counter of Redis the table is up to date with (None: not loaded yet).
        self.counter: int | None = None
        #: Claim numbers on a node alone.
        self.local_seq = 0
        #: Releases Redis did not take (unreachable): retried at each tick.
        self.pending_releases: dict[str, str] = {}
        self.sweep_due = False

    # -- the table ---------------------------------------------------------------------------

    def put(self, name: str, pid: Pid, seq: int) -> None:
        self.table.names[name] = pid
        self.seqs[name] = seq

    def remove(self, name: str) -> None:
        self.table.names.pop(name, None)
        self.seqs.pop(name, None)

    def newer(self, name: str, seq: int) -> bool:
        """Whether claim *seq* of *name* is newer than what the table has."""
        return seq > self.seqs.get(name, -1)

    def holder(self, pid: Pid) -> str:
        assert self.identity is not None
        return _holder(pid, self.identity)

    def parse(self, entry: str) -> tuple[Pid, int] | None:
        assert self.identity is not None
        return _parse(entry, self.identity)

    # -- dispatch ------------------------------------------------------------------------

    async def handle(self, message: Any) -> None:
        kind = type(message)
        if kind is CallRequest:
            await self.handle_call(message.request, message.from_)
        elif kind is Down:
            name = self.by_ref.get(message.ref)
            if name is not None:
                await self.forget(name, self.owned[name])
        elif kind is _Registered:
            await self.registered(message.name, message.pid, message.seq)
        elif kind is _Unregistered:
            self.unregistered(message)
        elif kind is _Sync:
            await self.sync(message)
        elif kind is NodeUp:
            if self.redis is not None:
                self.send_sync(message.node, answer=True)
        elif kind is NodeDown:
            self.node_down(message.node)
        elif message == _TICK:
            await self.tick()
        else:
            logger.warning("beam.global: the global name server dropped %r", message)

    async def handle_call(self, request: Any, from_: From) -> None:
        kind = type(request)
        answer: Any = None
        try:
            if kind is _Register:
                answer = await self.register(request.name, request.pid, request.resolve)
            elif kind is _Unregister:
                owned = self.owned.get(request.name)
                if owned is not None:
                    demonitor(owned.ref, flush=True)
                    await self.forget(request.name, owned)
            elif kind is _Join:
                answer = await self.join()
            else:
                answer = _Failed(f"the global name server got an unknown request {request!r}")
        except _Unreachable as error:
            answer = _Failed(str(error))
        reply(from_, answer)

    # -- registrations of this node's processes --------------------------------------------

    async def register(self, name: str, pid: Pid, resolve: str) -> bool:
        if pid.node is not None or not is_alive(pid):
            return True  # a dead pid (or of an older incarnation of this node): as OTP's yes
        held = self.owned.get(name)
        if held is not None and not is_alive(held.pid):  # its Down is still in the mailbox
            demonitor(held.ref, flush=True)
            await self.forget(name, held)
        if name in self.owned or pid in self.by_pid:
            return False
        if self.redis is None:
            if name in self.table.names:
                return False
            self.local_seq += 1
            seq = self.local_seq
        else:
            ((status, entry),) = await self.redis.claim([(name, self.holder(pid))])
            parsed = self.parse(entry)
            if parsed is None:
                raise _Unreachable(f"Redis holds a garbled entry for {name!r}: {entry!r}")
            if status == 2:
                if self.newer(name, parsed[1]):
                    self.put(name, *parsed)
                return False
            seq = parsed[1]
        self.own(name, pid, resolve, seq)
        self.tell(_Registered(name, pid, seq))
        return True

    def own(self, name: str, pid: Pid, resolve: str, seq: int) -> None:
        ref = monitor(pid)
        self.owned[name] = _Owned(pid, ref, resolve, seq)
        self.by_pid[pid] = name
        self.by_ref[ref] = name
        self.put(name, pid, seq)

    async def forget(self, name: str, owned: _Owned) -> None:
        """Drop a registration of this node: here, in Redis, and on the other nodes."""
        self.drop(name, owned)
        if self.table.names.get(name) == owned.pid:
            self.remove(name)
        if self.redis is not None:
            # Free it in Redis before telling: a node told it is free can take it at once.
            self.pending_releases[name] = self.holder(owned.pid)
            await self.release_pending()
        self.tell(_Unregistered(name, owned.pid, None, 0))

    def drop(self, name: str, owned: _Owned) -> None:
        del self.owned[name]
        self.by_pid.pop(owned.pid, None)
        self.by_ref.pop(owned.ref, None)

    async def release_pending(self) -> None:
        if self.redis is None or not self.pending_releases:
            return
        pending, self.pending_releases = self.pending_releases, {}
        try:
            await self.redis.release(pending.items())
        except _Unreachable as error:
            logger.warning("beam.global: could not free %s in Redis (%s); retrying", pending, error)
            self.pending_releases = {**pending, **self.pending_releases}

    def tell(self, message: _Registered | _Unregistered) -> None:
        """Tell every other node's server (one broadcast; nothing to do on a node alone)."""
        if self.redis is not None:
            broadcast_from(self_pid(), TOPIC, message)

    # -- merges ------------------------------------------------------------------------------

    async def audit(self, names: Iterable[str] | None = None) -> None:
        """Check this node's registrations (of *names*, or all) against Redis: claim again
        those nobody holds; resolve those another live process holds (it wins)."""
        if self.redis is None:
            return
        chosen = list(self.owned) if names is None else [n for n in names if n in self.owned]
        if not chosen:
            return
        pairs = [(name, self.holder(self.owned[name].pid)) for name in chosen]
        try:
            outcomes = await self.redis.claim(pairs)
        except _Unreachable as error:
            logger.info("beam.global: could not check this node's names in Redis (%s)", error)
            return
        for (name, _), (status, entry) in zip(pairs, outcomes, strict=True):
            owned = self.owned.get(name)
            parsed = self.parse(entry)
            if owned is None or parsed is None:
                continue
            if status == 1:  # freed while this node was away: it is ours again
                owned.seq = parsed[1]
                self.put(name, owned.pid, owned.seq)
                self.tell(_Registered(name, owned.pid, owned.seq))
            elif status == 2:
                self.lose(name, owned, *parsed)
            elif self.table.names.get(name) != owned.pid:
                self.put(name, owned.pid, owned.seq)

    def lose(self, name: str, owned: _Owned, winner: Pid, seq: int) -> None:
        """*owned* lost *name* to *winner* (held in Redis): unregister it and tell it."""
        demonitor(owned.ref, flush=True)
        self.drop(name, owned)
        self.put(name, winner, seq)
        reason = ("global_name_conflict", name)
        logger.warning(
            "beam.global: name conflict on %r after a merge: %s (node %s) holds it in Redis "
            "and keeps it; %s (this node, %s) loses it and is %s",
            name,
            winner,
            "this one" if winner.node is None else winner.node.name,
            owned.pid,
            "alone" if self.identity is None else self.identity.name,
            f"sent an exit signal {reason!r}"
            if owned.resolve == "kill"
            else "sent GlobalNameConflict",
        )
        if owned.resolve == "kill":
            exit_process(owned.pid, reason)
        else:
            send(owned.pid, GlobalNameConflict(name, winner))
        self.tell(_Unregistered(name, owned.pid, winner, seq))

    # -- what the other nodes tell --------------------------------------------------------------

    async def registered(self, name: str, pid: Pid, seq: int) -> None:
        owned = self.owned.get(name)
        if owned is not None:
            if owned.pid != pid and seq > owned.seq:
                await self.audit([name])  # a newer claim of a name this node holds: who has it?
        elif self.newer(name, seq):
            self.put(name, pid, seq)

    def unregistered(self, message: _Unregistered) -> None:
        name, winner = message.name, message.winner
        if self.table.names.get(name) == message.pid:
            self.remove(name)
        if winner is not None and name not in self.owned and self.newer(name, message.seq):
            self.put(name, winner, message.seq)

    async def sync(self, message: _Sync) -> None:
        """A node's own names: take the newer claims; drop the names of that node it no
        longer has (their release was missed); resolve those this node holds too."""
        listed = {(name, pid) for name, pid, _ in message.names}
        for name, pid in list(self.table.names.items()):
            if pid.node is not None and pid.node.name == message.node and (name, pid) not in listed:
                self.remove(name)
        conflicts: list[str] = []
        for name, pid, seq in message.names:
            owned = self.owned.get(name)
            if owned is not None:
                if owned.pid != pid:
                    conflicts.append(name)
            elif self.newer(name, seq):
                self.put(name, pid, seq)
        if message.answer:
            self.send_sync(message.node, answer=False)
            await self.audit()  # that node saw this one come up: maybe after a partition
        elif conflicts:
            await self.audit(conflicts)

    def send_sync(self, node: str, *, answer: bool) -> None:
        assert self.identity is not None
        names = tuple((name, owned.pid, owned.seq) for name, owned in self.owned.items())
        send((SERVER, node), _Sync(self.identity.name, names, answer))

    def node_down(self, node: str) -> None:
        """Drop the names of a node gone down; sweep its entries in Redis at the next tick."""
        names = self.table.names
        for name in [n for n, pid in names.items() if pid.node and pid.node.name == node]:
            self.remove(name)
        self.sweep_due = True

    # -- joining a cluster, and keeping up with Redis -------------------------------------------

    async def join(self) -> bool:
        """The node joined a cluster: load the names from Redis, claim this node's own."""
        adapter = _pubsub(current_node("beam.global")).adapter
        if not isinstance(adapter, RedisPubSub):
            return False
        if self.redis is not None and self.redis.adapter is adapter:
            return True
        first = self.redis is None
        self.redis = _Redis(adapter)
        self.identity = adapter.identity
        self.interval = adapter.timeout
        self.counter = None
        if first:
            subscribe(TOPIC)
            monitor_nodes(True)
            send_after(self_pid(), _TICK, self.interval)
        await self.refresh()
        await self.audit()
        for node in adapter.nodes():
            self.send_sync(node, answer=True)
        return True

    async def refresh(self) -> None:
        """Bring the table up to date with Redis if its counter moved (or it was never
        loaded); sweep the dead entries if a node went down."""
        assert self.redis is not None
        first = self.counter is None
        try:
            counter, entries = await self.redis.snapshot(
                self.counter, sweep=first or self.sweep_due
            )
        except _Unreachable as error:
            if first:
                logger.warning("beam.global: could not load the global names (%s)", error)
            return
        self.sweep_due = False
        if entries is None:
            return
        up = set(self.redis.adapter.nodes())
        fresh: dict[str, tuple[Pid, int]] = {}
        for name, entry in entries.items():
            parsed = self.parse(entry)
            if parsed is not None:
                fresh[name] = parsed
        for name in list(self.table.names):  # released (and the news missed)
            if name not in fresh and name not in self.owned and self.seqs.get(name, 0) <= counter:
                self.remove(name)
        for name, (pid, seq) in fresh.items():
            if name in self.owned:
                continue  # the audit below decides
            if pid.node is None:
                if first:
                    self.adopt(name, pid, seq)
            elif (first or pid.node.name in up) and self.newer(name, seq):
                self.put(name, pid, seq)
        self.counter = counter

    def adopt(self, name: str, pid: Pid, seq: int) -> None:
        """An entry of this node's own that no server owns (a server before this one): own
        it if the process lives, else free it."""
        if is_alive(pid) and pid not in self.by_pid:
            self.own(name, pid, "kill", seq)
        else:
            self.pending_releases[name] = self.holder(pid)

    def adopt_table(self) -> None:
        """On a node alone: own the table's names whose process lives, drop the others."""
        self.local_seq = max(self.seqs.values(), default=0)
        for name, pid in list(self.table.names.items()):
            if name not in self.owned and is_alive(pid) and pid not in self.by_pid:
                self.own(name, pid, "kill", self.seqs.get(name, 0))
            elif name not in self.owned:
                self.remove(name)

    async def tick(self) -> None:
        send_after(self_pid(), _TICK, self.interval)
        if self.redis is None:
            return
        await self.release_pending()
        await self.refresh()
        if self.counter is not None:
            await self.audit()


async def _serve(table: _Table) -> None:
    """The body of a node's global name server."""
    register(SERVER, self_pid())
    server = _Server(table)
    try:
        if _identity(current_node("beam.global")) is not None:
            await server.join()  # started (again) on a node of a cluster
        else:
            server.adopt_table()  # a server before this one may have left names
        while True:
            message = await receive()
            try:
                await server.handle(message)
            except Exception:
                logger.exception("beam.global: handling %r failed", message)
    finally:
        if table.server == self_pid():
            table.server = None


# -- joining a cluster ---------------------------------------------------------------------------


async def _start(adapter: RedisPubSub) -> None:
    """The cluster service: have this node's global name server join the cluster."""
    server = _ensure_server(current_node("beam.global"))
    try:
        await call(server, _Join(), timeout=CALL_TIMEOUT)
    except CallTimeout:
        logger.warning("beam.global: the global name server did not join in time; it goes on")


add_cluster_service(_start)
