"""Process groups as OTP's ``pg``: the scope server, its replicated table and its protocol.

One *scope server* process per scope and node (the default scope is ``"pg"``), registered
under the scope's name, owns this node's view of the scope: a table ``group -> members``
that only it writes and that :func:`members` and :func:`local_members` read without any
message. Every change goes through it, so changes are serialised per node.

Between nodes the scope servers talk as OTP's do:

* on start, and on every ``NodeUp``, a server sends ``_Discover(self)`` to the server of the
  same scope on the other node(s) (``(scope, node)``);
* a server that gets ``_Discover(peer)`` answers with ``_Sync(self, its local members)``
  and, if the peer was unknown, monitors it and sends it a ``_Discover`` of its own (so both
  sides know each other);
* a ``_Sync`` replaces everything this node knew of that peer's members;
* a join or leave of a local process is sent as ``_Join``/``_Leave`` to every known peer;
* the ``Down`` of a peer's server (its node went down: ``"noconnection"``; or the server
  died) removes all of that peer's members; the ``Down`` of a local member removes it from
  every group it joined, here and (by a ``_Leave``) on every peer.

Messages between two servers keep their order, so a peer's joins and leaves always come
after the sync they build on. The view is eventually consistent: two nodes may see
concurrent joins in different orders, as in OTP.

One addition to OTP's protocol: a server that gets a ``_Sync`` from a peer it does not know
(any more) answers with a ``_Sync`` of its own. Here a message can arrive from a node before
this node has heard that node's heartbeat, and a monitor of a node that is not up yet fires
``"noconnection"`` at once: the server then drops the peer, and the joins it makes
meanwhile go to nobody there. When the two find each other again (``NodeUp``, discover,
sync), that answer gives the peer everything it missed.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._api import demonitor as _demonitor
from ._api import monitor as _monitor
from ._api import monitor_nodes, receive, register, send, whereis
from ._api import self as self_pid
from ._call import CallRequest, call, reply
from ._codec import CodecError, encode
from ._codec import register as register_type
from ._crash import bounded_repr
from ._errors import AlreadyRegistered, ReceiveTimeout
from ._node import Node, current_node, current_process
from ._redis_pubsub import RedisPubSub, add_cluster_service, nodes
from ._types import Down, NodeDown, NodeId, NodeUp, Pid, Ref
from .lowlevel import spawn_opt

__all__ = [
    "DEFAULT_SCOPE",
    "GroupChanged",
    "demonitor",
    "join",
    "leave",
    "local_members",
    "members",
    "monitor",
    "monitor_scope",
    "start",
    "which_groups",
]

logger = logging.getLogger("beam.pg")

#: The scope the functions of :mod:`beam.pg` use unless given ``scope=``: the name its
#: server is registered under on every node, as OTP's default scope ``pg``.
DEFAULT_SCOPE: Final = "pg"

Group = Hashable


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """What a :func:`monitor` (or :func:`monitor_scope`) subscriber receives when members
    join or leave a group, as OTP's ``{Ref, join | leave, Group, Pids}``.

    ``ref`` is the reference :func:`monitor` returned, ``action`` is ``"join"`` or
    ``"leave"``, ``pids`` the processes that joined or left (one entry per join or leave: a
    process joined twice and then exiting leaves twice).

    >>> GroupChanged(Ref(1), "join", "workers", (Pid(7),)).action
    'join'
    """

    ref: Ref
    action: Literal["join", "leave"]
    group: Any
    pids: tuple[Pid, ...]


register_type(GroupChanged, "beam.pg.GroupChanged")


# -- the messages between the scope servers of two nodes ----------------------------------------


@dataclass(frozen=True, slots=True)
class _Discover:
    """I run this scope: send me your local members, and know me as a peer."""

    peer: Pid


@dataclass(frozen=True, slots=True)
class _Sync:
    """All the local members of the peer's scope: ``((group, pids), ...)``."""

    peer: Pid
    groups: tuple[tuple[Any, tuple[Pid, ...]], ...]


@dataclass(frozen=True, slots=True)
class _Join:
    """Processes of the peer's node joined *group* (newest first, as in its table)."""

    peer: Pid
    group: Any
    pids: tuple[Pid, ...]


@dataclass(frozen=True, slots=True)
class _Leave:
    """Each of *pids* left each of *groups* once (a process that exited: all its groups)."""

    peer: Pid
    pids: tuple[Pid, ...]
    groups: tuple[Any, ...]


register_type(_Discover, "beam.pg.discover")
register_type(_Sync, "beam.pg.sync")
register_type(_Join, "beam.pg.join")
register_type(_Leave, "beam.pg.leave")


# -- the requests of local callers (calls to the scope server of their node) --------------------


@dataclass(frozen=True, slots=True)
class _JoinLocal:
    group: Any
    pids: tuple[Pid, ...]


@dataclass(frozen=True, slots=True)
class _LeaveLocal:
    group: Any
    pids: tuple[Pid, ...]


@dataclass(frozen=True, slots=True)
class _MonitorGroup:
    group: Any


@dataclass(frozen=True, slots=True)
class _MonitorScope:
    pass


@dataclass(frozen=True, slots=True)
class _Demonitor:
    ref: Ref


@dataclass(frozen=True, slots=True)
class _Rediscover:
    """The node joined a cluster after this scope started: discover its nodes now."""


# -- the table ----------------------------------------------------------------------------------


class _Members:
    """One group's members on this node's view, newest join first, one entry per join."""

    __slots__ = ("all", "local")

    def __init__(self) -> None:
        self.all: list[Pid] = []
        self.local: list[Pid] = []


class _Local:
    """A local member: the scope's monitor on it and the groups it joined (one per join)."""

    __slots__ = ("groups", "ref")

    def __init__(self, ref: Ref) -> None:
        self.ref = ref
        self.groups: list[Any] = []


class _Peer:
    """The scope server of another node: the monitor on it and its members by group."""

    __slots__ = ("groups", "ref")

    def __init__(self, ref: Ref) -> None:
        self.ref = ref
        self.groups: dict[Any, list[Pid]] = {}


def _remove_each(items: list[Pid], pids: Iterable[Pid]) -> list[Pid]:
    """Remove one occurrence of each of *pids* from *items* (the first one, as Erlang's
    ``--``); return the pids that were found and removed."""
    removed = []
    for pid in pids:
        try:
            items.remove(pid)
        except ValueError:
            continue
        removed.append(pid)
    return removed


class _Scope:
    """A scope's state on one node. Only its server process writes it; anyone reads."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid: Pid | None = None
        self.groups: dict[Any, _Members] = {}
        self.local: dict[Pid, _Local] = {}
        self.remote: dict[Pid, _Peer] = {}
        self.scope_monitors: dict[Ref, Pid] = {}
        self.group_monitors: dict[Ref, tuple[Pid, Any]] = {}
        self.monitored: dict[Any, list[tuple[Pid, Ref]]] = {}

    # -- the table and the notifications ---------------------------------------------------------

    def _notify(self, action: Literal["join", "leave"], group: Any, pids: tuple[Pid, ...]) -> None:
        for ref, pid in self.scope_monitors.items():
            send(pid, GroupChanged(ref, action, group, pids))
        for pid, ref in self.monitored.get(group, ()):
            send(pid, GroupChanged(ref, action, group, pids))

    def _add(self, group: Any, pids: tuple[Pid, ...], *, local: bool) -> None:
        if not pids:
            return
        entry = self.groups.get(group)
        if entry is None:
            entry = self.groups[group] = _Members()
        entry.all[0:0] = pids
        if local:
            entry.local[0:0] = pids
        self._notify("join", group, pids)

    def _remove(self, group: Any, pids: Iterable[Pid], *, local: bool) -> None:
        entry = self.groups.get(group)
        if entry is None:
            return
        removed = _remove_each(entry.all, pids)
        if local:
            _remove_each(entry.local, removed)
        if not entry.all:
            del self.groups[group]
        if removed:
            self._notify("leave", group, tuple(removed))

    def _broadcast(self, message: Any) -> None:
        for peer in self.remote:
            send(peer, message)

    def _local_groups(self) -> tuple[tuple[Any, tuple[Pid, ...]], ...]:
        return tuple((group, tuple(e.local)) for group, e in self.groups.items() if e.local)

    # -- the requests of local callers -----------------------------------------------------------

    def join_local(self, me: Pid, group: Any, pids: tuple[Pid, ...]) -> None:
        for pid in pids:
            member = self.local.get(pid)
            if member is None:
                member = self.local[pid] = _Local(_monitor(pid))
            member.groups.append(group)
        self._add(group, pids, local=True)
        if pids:
            self._broadcast(_Join(me, group, pids))

    def leave_local(self, me: Pid, group: Any, pids: tuple[Pid, ...]) -> bool:
        left: list[Pid] = []
        for pid in pids:
            member = self.local.get(pid)
            if member is None or group not in member.groups:
                continue
            member.groups.remove(group)
            if not member.groups:
                del self.local[pid]
                _demonitor(member.ref, flush=True)
            left.append(pid)
        if not left:
            return False
        self._remove(group, left, local=True)
        self._broadcast(_Leave(me, tuple(left), (group,)))
        return True

    def monitor_group(self, caller: Pid, group: Any) -> tuple[Ref, list[Pid]]:
        ref = _monitor(caller)
        self.group_monitors[ref] = (caller, group)
        self.monitored.setdefault(group, []).append((caller, ref))
        entry = self.groups.get(group)
        return ref, [] if entry is None else list(entry.all)

    def monitor_scope(self, caller: Pid) -> tuple[Ref, dict[Any, list[Pid]]]:
        ref = _monitor(caller)
        self.scope_monitors[ref] = caller
        return ref, {group: list(entry.all) for group, entry in self.groups.items()}

    def demonitor(self, ref: Ref) -> bool:
        if self.scope_monitors.pop(ref, None) is not None:
            _demonitor(ref, flush=True)
            return True
        watcher = self.group_monitors.pop(ref, None)
        if watcher is None:
            return False
        _demonitor(ref, flush=True)
        self._drop_group_monitor(ref, *watcher)
        return True

    def _drop_group_monitor(self, ref: Ref, pid: Pid, group: Any) -> None:
        watchers = self.monitored.get(group)
        if watchers is not None:
            watchers.remove((pid, ref))
            if not watchers:
                del self.monitored[group]

    # -- the messages of peers --------------------------------------------------------------------

    def discover(self, me: Pid, peer: Pid) -> None:
        if peer.node is None:
            return  # a scope never needs to discover itself
        send(peer, _Sync(me, self._local_groups()))
        if peer not in self.remote:
            self.remote[peer] = _Peer(_monitor(peer))
            send(peer, _Discover(me))

    def sync(self, me: Pid, peer: Pid, groups: tuple[tuple[Any, tuple[Pid, ...]], ...]) -> None:
        known = self.remote.get(peer)
        if known is None:
            # A peer this scope had dropped (or never knew): it may lack this node's changes
            # since, so it gets the whole local state again (see the module's doc).
            known = self.remote[peer] = _Peer(_monitor(peer))
            send(peer, _Sync(me, self._local_groups()))
        old = known.groups
        new: dict[Any, list[Pid]] = {}
        for group, pids in groups:
            new[group] = list(pids)
            before = old.pop(group, None)
            if before is None:
                self._add(group, tuple(pids), local=False)
            elif before != list(pids):
                # Rare (a lost message between the two servers): apply the difference.
                gone = list(before)
                _remove_each(gone, pids)
                came = list(pids)
                _remove_each(came, before)
                self._remove(group, gone, local=False)
                self._add(group, tuple(came), local=False)
        for group, pids_before in old.items():
            self._remove(group, pids_before, local=False)
        known.groups = new

    def join_remote(self, peer: Pid, group: Any, pids: tuple[Pid, ...]) -> None:
        known = self.remote.get(peer)
        if known is None:
            return  # from a peer that left (or never synced): its sync will come
        known.groups.setdefault(group, [])[0:0] = pids
        self._add(group, pids, local=False)

    def leave_remote(self, peer: Pid, pids: tuple[Pid, ...], groups: tuple[Any, ...]) -> None:
        known = self.remote.get(peer)
        if known is None:
            return
        for group in groups:
            theirs = known.groups.get(group)
            if theirs is not None:
                _remove_each(theirs, pids)
                if not theirs:
                    del known.groups[group]
            self._remove(group, pids, local=False)

    def down(self, me: Pid, down: Down) -> None:
        pid, ref = down.pid, down.ref
        if type(pid) is not Pid:
            return
        member = self.local.get(pid)
        if member is not None and member.ref == ref:
            del self.local[pid]
            for group in member.groups:
                self._remove(group, (pid,), local=True)
            self._broadcast(_Leave(me, (pid,), tuple(member.groups)))
            return
        peer = self.remote.get(pid)
        if peer is not None and peer.ref == ref:
            del self.remote[pid]
            for group, pids in peer.groups.items():
                self._remove(group, pids, local=False)
            return
        if self.scope_monitors.pop(ref, None) is not None:
            return
        watcher = self.group_monitors.pop(ref, None)
        if watcher is not None:
            self._drop_group_monitor(ref, *watcher)


# -- the scope server ---------------------------------------------------------------------------

#: Each node's scopes by name (a node's entry goes with the node).
_scopes: weakref.WeakKeyDictionary[Node, dict[str, _Scope]] = weakref.WeakKeyDictionary()


async def _scope_server(scope: _Scope) -> None:
    """The scope's server: discover the peers, then serve calls and peers' messages."""
    me = self_pid()
    try:
        _discover_peers(scope, me)
        while True:
            message = await receive()
            kind = type(message)
            if kind is CallRequest:
                _answer(scope, me, message)
            elif kind is Down:
                scope.down(me, message)
            elif kind in _FROM_PEERS and not _well_formed(message):
                logger.warning(
                    "beam.pg scope %r dropped a malformed message: %s",
                    scope.name,
                    bounded_repr(message),
                )
            elif kind is _Join:
                scope.join_remote(message.peer, message.group, message.pids)
            elif kind is _Leave:
                scope.leave_remote(message.peer, message.pids, message.groups)
            elif kind is _Sync:
                scope.sync(me, message.peer, message.groups)
            elif kind is _Discover:
                scope.discover(me, message.peer)
            elif kind is NodeUp:
                # A node (re)joined: discover the scope there, if it runs it.
                send((scope.name, message.node), _Discover(me))
            elif kind is NodeDown:
                pass  # the Down of the peer's monitored scope server does the cleanup
            elif kind is _Rediscover:
                _discover_peers(scope, me)
            else:
                logger.warning(
                    "beam.pg scope %r ignored an unexpected message: %r", scope.name, message
                )
    finally:
        node_scopes = _scopes.get(current_node("beam.pg scope server"))
        if node_scopes is not None and node_scopes.get(scope.name) is scope:
            del node_scopes[scope.name]


_FROM_PEERS: Final = frozenset({_Discover, _Sync, _Join, _Leave})


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _pids_of(node: NodeId | None, pids: Any) -> bool:
    return type(pids) is tuple and all(type(p) is Pid and p.node == node for p in pids)


def _well_formed(message: _Discover | _Sync | _Join | _Leave) -> bool:
    """Whether a peer's message holds what the scope can store: the peer a pid of another
    node, members pids of that node, groups hashable (the codec rebuilt what was sent; a
    buggy or hostile node could send anything, and must not crash this scope)."""
    peer = message.peer
    if type(peer) is not Pid or peer.node is None:
        return False
    node = peer.node
    if type(message) is _Join:
        return _hashable(message.group) and _pids_of(node, message.pids)
    if type(message) is _Leave:
        groups = message.groups
        return _pids_of(node, message.pids) and type(groups) is tuple and _hashable(groups)
    if type(message) is _Sync:
        return type(message.groups) is tuple and all(
            type(entry) is tuple
            and len(entry) == 2
            and _hashable(entry[0])
            and _pids_of(node, entry[1])
            for entry in message.groups
        )
    return True


def _answer(scope: _Scope, me: Pid, call_: CallRequest) -> None:
    request = call_.request
    kind = type(request)
    result: Any
    if kind is _JoinLocal:
        scope.join_local(me, request.group, request.pids)
        result = None
    elif kind is _LeaveLocal:
        result = scope.leave_local(me, request.group, request.pids)
    elif kind is _MonitorGroup:
        result = scope.monitor_group(call_.from_.pid, request.group)
    elif kind is _MonitorScope:
        result = scope.monitor_scope(call_.from_.pid)
    elif kind is _Demonitor:
        result = scope.demonitor(request.ref)
    else:
        logger.warning("beam.pg scope %r ignored an unexpected call: %r", scope.name, request)
        return
    reply(call_.from_, result)


def _discover_peers(scope: _Scope, me: Pid) -> None:
    """Watch the nodes, and ask the same scope on every known node for its members (OTP's
    ``init``). Again when the node joins a cluster after the scope started: until then there
    was no node to watch (subscribing twice is harmless)."""
    monitor_nodes(True)
    for node in nodes():
        send((scope.name, node), _Discover(me))


def _start_scope(node: Node, name: str) -> _Scope:
    """The scope *name* of *node*, started (synchronously) if it does not run yet."""
    node_scopes = _scopes.get(node)
    if node_scopes is None:
        node_scopes = _scopes[node] = {}
    scope = node_scopes.get(name)
    if scope is not None:
        return scope
    holder = whereis(name)
    if holder is not None:
        raise AlreadyRegistered(
            f"cannot start the pg scope {name!r}: {holder} is registered under that name, "
            "which a scope's server needs; choose another scope name or unregister it",
            holder,
        )
    scope = _Scope(name)
    scope.pid = spawn_opt(_scope_server, scope, detached=True, initial_call=start)
    register(name, scope.pid)
    node_scopes[name] = scope
    return scope


def _running(node: Node, name: str) -> _Scope | None:
    node_scopes = _scopes.get(node)
    return None if node_scopes is None else node_scopes.get(name)


def _server(what: str, name: str) -> Pid:
    """The pid of the scope server that a call of *what* goes to (the default scope is
    started on first use; another scope must have been started)."""
    if not isinstance(name, str):
        raise TypeError(f"{what}: a scope is named by a str, got {name!r}")
    node = current_process(what).node
    scope = _running(node, name)
    if scope is None:
        if name != DEFAULT_SCOPE:
            raise LookupError(
                f"{what}: no pg scope {name!r} runs on this node; start it first with "
                f"await beam.pg.start({name!r})"
            )
        scope = _start_scope(node, name)
    assert scope.pid is not None
    return scope.pid


async def _on_cluster_join(adapter: RedisPubSub) -> None:
    """The cluster service: start the default scope on a node that joins a cluster, and have
    scopes that already run (started while the node was alone) discover the cluster."""
    node = current_node("beam.pg")
    node_scopes = _scopes.get(node, {})
    for scope in list(node_scopes.values()):
        if scope.pid is not None:
            send(scope.pid, _Rediscover())
    if DEFAULT_SCOPE not in node_scopes:
        _start_scope(node, DEFAULT_SCOPE)


add_cluster_service(_on_cluster_join)


# -- checking what callers pass -----------------------------------------------------------------


def _check_hashable(what: str, group: Any) -> None:
    """Refuse a group that cannot be a key of the table."""
    try:
        hash(group)
    except TypeError:
        raise TypeError(
            f"{what}: a group must be hashable, got {type(group).__name__} {group!r:.100} "
            "(use a str, an int, a tuple, or a registered frozen dataclass)"
        ) from None


def _check_group(what: str, group: Any) -> None:
    """Refuse a group that cannot be a key of the table, or cannot cross nodes."""
    _check_hashable(what, group)
    try:
        encode(group)
    except CodecError as error:
        raise CodecError(
            f"{what}: the group {group!r:.100} cannot cross nodes ({error}); use a str, an "
            "int, a tuple, or a frozen dataclass registered with beam.cluster.register"
        ) from None


def _local_pids(what: str, pid_or_pids: Any) -> tuple[Pid, ...]:
    """*pid_or_pids* (a pid, or a list or tuple of pids) as a tuple of local pids."""
    if type(pid_or_pids) is Pid:
        pids: tuple[Any, ...] = (pid_or_pids,)
    elif isinstance(pid_or_pids, list | tuple):
        pids = tuple(pid_or_pids)
    else:
        raise TypeError(
            f"{what}: expected a beam.Pid or a list of them, got "
            f"{type(pid_or_pids).__name__} {pid_or_pids!r:.100}"
        )
    for pid in pids:
        if type(pid) is not Pid:
            raise TypeError(
                f"{what}: expected beam.Pid values, got {type(pid).__name__} {pid!r:.100} "
                f"in {pid_or_pids!r:.100}"
            )
        if pid.node is not None:
            raise ValueError(
                f"{what}: {pid} is a process of node {pid.node.name!r}, not of this one; only "
                "a node's own processes join or leave through it (call this on that node)"
            )
    return pids


# -- the public functions -----------------------------------------------------------------------


async def start(scope: str = DEFAULT_SCOPE) -> Pid:
    """Start the server of *scope* on this node (if it does not run yet) and return its pid.

    The default scope starts by itself: on every node that joins a cluster, and on a node
    alone at its first :func:`join`, :func:`leave` or :func:`monitor`. Other scopes (as OTP's
    ``pg:start_link(Scope)``: independent sets of groups, each replicated only among the
    nodes that run it) are started with this function on each node that uses them. The
    scope's server is registered under *scope*: another process holding that name makes it
    raise :class:`beam.AlreadyRegistered`.

    >>> async def main():
    ...     await beam.pg.start("jobs")
    ...     await beam.pg.join("workers", beam.self(), scope="jobs")
    """
    if not isinstance(scope, str) or not scope:
        raise TypeError(f"beam.pg.start: a scope is named by a non-empty str, got {scope!r}")
    started = _start_scope(current_node("beam.pg.start"), scope)
    assert started.pid is not None
    return started.pid


async def join(group: Any, pid_or_pids: Pid | list[Pid], *, scope: str = DEFAULT_SCOPE) -> None:
    """Make a process of this node (or each of a list) a member of *group*.

    A process may join a group several times, and is then a member once per join (it must
    leave as many times); it is removed from all its groups when it exits. The group is
    created by its first join and vanishes with its last member. Returns once this node's
    view has it (other nodes see it soon after). A *group* is any hashable value that can
    cross nodes (see :mod:`beam.cluster`); a pid of another node is refused (join it on its
    own node).

    >>> async def main():
    ...     await beam.pg.join("workers", beam.self())
    ...     await beam.pg.join(("room", 42), [pid1, pid2])
    """
    what = "beam.pg.join"
    pids = _local_pids(what, pid_or_pids)
    _check_group(what, group)
    await call(_server(what, scope), _JoinLocal(group, pids), timeout=None)


async def leave(group: Any, pid_or_pids: Pid | list[Pid], *, scope: str = DEFAULT_SCOPE) -> bool:
    """Make a process of this node (or each of a list) leave *group* once.

    Returns false (OTP's ``not_joined``) when none of them was a member of the group.

    >>> async def main():
    ...     await beam.pg.join("workers", beam.self())
    ...     assert await beam.pg.leave("workers", beam.self())
    ...     assert not await beam.pg.leave("workers", beam.self())
    """
    what = "beam.pg.leave"
    pids = _local_pids(what, pid_or_pids)
    _check_group(what, group)
    return bool(await call(_server(what, scope), _LeaveLocal(group, pids), timeout=None))


def _view(what: str, scope: str) -> _Scope | None:
    if not isinstance(scope, str):
        raise TypeError(f"{what}: a scope is named by a str, got {scope!r}")
    return _running(current_node(what), scope)


def _entry(what: str, group: Any, scope: str) -> _Members | None:
    view = _view(what, scope)
    if view is None:
        _check_hashable(what, group)
        return None
    try:
        return view.groups.get(group)
    except TypeError:
        _check_hashable(what, group)
        raise


def members(group: Any, *, scope: str = DEFAULT_SCOPE) -> list[Pid]:
    """The members of *group* on every node, as this node knows them (no message sent).

    One entry per join (a process that joined twice is listed twice), the newest join first
    as this node learnt of it (nodes may order concurrent joins differently). An unknown
    group, and any group while the scope does not run, has no members.

    >>> async def main():
    ...     await beam.pg.join("workers", beam.self())
    ...     assert beam.pg.members("workers") == [beam.self()]
    """
    entry = _entry("beam.pg.members", group, scope)
    return [] if entry is None else list(entry.all)


def local_members(group: Any, *, scope: str = DEFAULT_SCOPE) -> list[Pid]:
    """The members of *group* that run on this node, newest join first (as :func:`members`).

    >>> async def main():
    ...     await beam.pg.join("workers", beam.self())
    ...     assert beam.pg.local_members("workers") == [beam.self()]
    """
    entry = _entry("beam.pg.local_members", group, scope)
    return [] if entry is None else list(entry.local)


def which_groups(*, scope: str = DEFAULT_SCOPE) -> list[Any]:
    """Every group with at least one member on some node, in the order this node first saw
    them.

    >>> async def main():
    ...     await beam.pg.join("workers", beam.self())
    ...     assert beam.pg.which_groups() == ["workers"]
    """
    view = _view("beam.pg.which_groups", scope)
    return [] if view is None else list(view.groups)


async def monitor(group: Any, *, scope: str = DEFAULT_SCOPE) -> tuple[Ref, list[Pid]]:
    """Subscribe the caller to *group*'s membership: returns ``(ref, current members)``, then
    a :class:`GroupChanged` ``(ref, "join" | "leave", group, pids)`` arrives for every change
    after that, on any node, as this node learns of it (OTP 25.1's ``pg:monitor/2``). It
    lasts until :func:`demonitor` or the caller's exit.

    >>> async def main():
    ...     ref, now = await beam.pg.monitor("workers")
    ...     change = await beam.receive(lambda m: isinstance(m, beam.pg.GroupChanged))
    """
    what = "beam.pg.monitor"
    _check_group(what, group)
    ref, pids = await call(_server(what, scope), _MonitorGroup(group), timeout=None)
    return ref, pids


async def monitor_scope(*, scope: str = DEFAULT_SCOPE) -> tuple[Ref, dict[Any, list[Pid]]]:
    """Subscribe the caller to every group of *scope*: returns ``(ref, {group: members})``,
    then :class:`GroupChanged` messages as for :func:`monitor`, for all groups.

    >>> async def main():
    ...     ref, groups = await beam.pg.monitor_scope()
    """
    ref, groups = await call(_server("beam.pg.monitor_scope", scope), _MonitorScope(), timeout=None)
    return ref, groups


async def demonitor(ref: Ref, *, scope: str = DEFAULT_SCOPE) -> bool:
    """End the subscription *ref* (of :func:`monitor` or :func:`monitor_scope`) and drop its
    :class:`GroupChanged` messages already in the caller's mailbox. False if *ref* was not an
    active subscription of *scope*.

    >>> async def main():
    ...     ref, _ = await beam.pg.monitor("workers")
    ...     assert await beam.pg.demonitor(ref)
    """
    what = "beam.pg.demonitor"
    if type(ref) is not Ref:
        raise TypeError(f"{what}: expected the beam.Ref that monitor returned, got {ref!r:.100}")
    if not await call(_server(what, scope), _Demonitor(ref), timeout=None):
        return False
    while True:
        try:
            await receive(lambda m: type(m) is GroupChanged and m.ref == ref, timeout=0)
        except ReceiveTimeout:
            return True
