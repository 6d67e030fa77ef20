"""The tracker: shard processes that own the presence state and publish its diffs.

A :class:`Tracker` is a small process tree: the tracker process and ``shards`` shard
processes linked to it. A topic belongs to shard ``crc32(topic) % shards`` (a hash that is
the same in every interpreter, so nodes of a cluster agree on it). Each shard is a GenServer
that owns one :class:`~presence.State` (one replica of the CRDT), applies ``track``,
``untrack`` and ``update`` to it, and publishes the changes as diffs (:class:`PresenceDiff`)
on their topics with :func:`beam.local_broadcast`. A shard traps exits and *monitors* every
tracked pid: an exiting process leaves on its own. (Phoenix links instead, so that a crashing
shard takes its tracked processes down and a restarted, empty tracker never leaves a live
process untracked; here the states outlive the tracker instead: see below.)

A burst of changes is published as one merged diff per topic (:class:`DiffBatch`): the shard
publishes when its mailbox is empty, so a lone join is published at once, and a thousand
sockets joining one room in a burst give their subscribers a few diffs, not a thousand. It
also publishes once 1,000 changes or 5 ms have piled up. A caller of ``track``, ``untrack``
or ``update`` is answered once its change is published. Diffs are delivered by
:func:`dispatch_diff`: subscribers whose subscription names a fast lane (the web layer's
channels) get it written to their sockets, encoded once, without waking their processes.

Diffs go to this node's subscribers only, as in Phoenix: every node computes its own diffs
from its replica of the state, so forwarding them through the cluster would deliver each
one twice.

Reads do not go through the shard. The tracker publishes its shards' states in a node-wide
:class:`beam.Registry` (``"presence.trackers"``), and ``list``/``get_by_key`` read them
directly, the way Phoenix reads the shard's ETS table: only the shard writes, and it changes
a state in one step (between two awaits), so a reader always sees a consistent state. The
entry vanishes when the tracker exits.

If a shard dies, the tracker stops with the same reason and stops the other shards. The
shards' states, replication and unpublished diffs live in vaults kept by the tracker's heir
(``presence._heir``, started beside the tracker under the same supervisor, as an ETS table's
heir): the restarted tracker takes them over once the old shards are gone, so no tracked
process dies with a killed tracker and nothing it tracked is forgotten. Where the state cannot
be trusted (a shard raised) or nobody takes over within ``GRACE`` seconds, the tracked
processes exit, as Phoenix's links would have made them.

On a node that joined a cluster, each shard replicates its state to the same shard of the
tracker of the same name on every other node, as Phoenix.Tracker does, over its own PubSub
topic ``f"phx_presence:{name}_shard{i}"`` (see ``presence._replication``): every
``broadcast_period`` it broadcasts its delta (a change after a quiet spell goes at once, with
the batch of local diffs it is published in), merges its peers', asks a peer that knows more
for a transfer, and marks peers that stopped sending heartbeats, or whose node the cluster
declared down, down (their presences leave, and join again if they come back) and, later,
permanently down. Their joins and leaves are
published here like local ones, so ``list`` converges to the same view on every node, and
every node's subscribers see the diffs that lead there. Alone, a shard drops its delta after
every change: a peer that comes later gets the whole state by transfer.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trio

import beam

from ._batch import DiffBatch
from ._errors import NoTracker
from ._heir import Claim, Discard, Hoard, Hold, Vault, ensure_heir, heir_name
from ._replication import (
    Config,
    GracefulPermdown,
    Heartbeat,
    Outcome,
    ReplicaRef,
    Replication,
    TransferAck,
    TransferReq,
)
from ._state import Diff, Entry, Meta, Presences, State

__all__ = ["DEFAULT_TRACKER", "PresenceDiff", "Tracker"]

#: The name :class:`Tracker` registers under unless told otherwise, and the tracker the
#: functions of :mod:`presence` use by default.
DEFAULT_TRACKER = "presence"
DEFAULT_SHARDS = 8
_REGISTRY = "presence.trackers"

logger = logging.getLogger("presence")


@dataclass(frozen=True, slots=True)
class PresenceDiff:
    """The message subscribers of a topic receive when its presences change.

    ``payload`` is ``{"joins": {key: {"metas": [...]}}, "leaves": {...}}``, exactly what
    phoenix.js ``Presence.syncDiff`` expects as a ``presence_diff`` event: a channel forwards
    it as is. An update shows up as the new meta (carrying ``phx_ref_prev``) in ``joins`` and
    the old one in ``leaves``. Treat the payload as read-only: every subscriber gets the same
    object.

    >>> async def listener():
    ...     beam.subscribe("room:lobby")
    ...     diff = await beam.receive(presence.PresenceDiff)
    ...     print(diff.topic, diff.joins, diff.leaves)
    """

    #: The Phoenix event name of this message.
    event: ClassVar[str] = "presence_diff"

    topic: str
    payload: Diff

    @property
    def joins(self) -> Presences:
        """The presences that joined: ``{key: {"metas": [...]}}``."""
        return self.payload["joins"]

    @property
    def leaves(self) -> Presences:
        """The presences that left: ``{key: {"metas": [...]}}``."""
        return self.payload["leaves"]


@dataclass(frozen=True, slots=True)
class Table:
    """What a tracker publishes for readers: its shards' pids and states."""

    name: str
    pids: tuple[beam.Pid, ...]
    states: tuple[State, ...]

    def index(self, topic: str) -> int:
        """The shard that owns *topic*."""
        return zlib.crc32(topic.encode()) % len(self.pids)


def table(name: str) -> Table:
    """The table of the tracker called *name*; :class:`NoTracker` if it does not run."""
    registry = _registry(create=False)
    found = registry.lookup(name) if registry is not None else []
    if not found:
        raise NoTracker(name)
    ((_, published),) = found
    result: Table = published
    return result


def _registry(*, create: bool) -> beam.Registry | None:
    try:
        return beam.Registry.named(_REGISTRY)
    except LookupError:
        return beam.Registry("unique", name=_REGISTRY) if create else None


# -- requests to a shard -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Track:
    """Track *pid* in *topic* as *key* with *meta*."""

    pid: beam.Pid
    topic: str
    key: str
    meta: Meta


@dataclass(frozen=True, slots=True)
class Untrack:
    """Stop tracking *pid* in *topic* as *key*."""

    pid: beam.Pid
    topic: str
    key: str


@dataclass(frozen=True, slots=True)
class Update:
    """Replace the meta of a presence with *change*, or with ``change(old_meta)``."""

    pid: beam.Pid
    topic: str
    key: str
    change: Meta | Callable[[Meta], Mapping[str, Any]]


#: A shard's answer: ``("ok", phx_ref)``, ``("already_tracked", None)``, ``("not_tracked",
#: None)`` or ``("error", exception)`` (an update function that raised or returned a
#: non-mapping: the caller raises it).
Answer = tuple[str, Any]


# -- the shard -------------------------------------------------------------------------------

#: A shard publishes its batch of diffs when its mailbox is empty, and also once this many
#: presences changed or this many seconds passed since the first change (a steady stream of
#: requests may never leave the mailbox empty).
_BATCH_CHANGES = 1_000
_BATCH_SECONDS = 0.005


_TICK = "presence.tick"
_REPLICATION = (Heartbeat, TransferReq, TransferAck, GracefulPermdown)


@dataclass(frozen=True, slots=True)
class _ShardArgs:
    vault: Vault
    me: ReplicaRef
    shard: int
    topic: str
    config: Config
    permdown_on_shutdown: bool


@dataclass
class _ShardState:
    presences: State
    #: The monitor of each tracked pid (Phoenix links: see presence._heir for why not).
    monitors: dict[beam.Pid, beam.Ref]
    core: Replication
    topic: str
    permdown_on_shutdown: bool
    #: Changes not published yet (kept in the vault: a successor publishes what a killed
    #: shard had pending), and the callers that made them: they are answered once their
    #: change is published, so a join is published before ``track`` returns.
    batch: DiffBatch
    waiting: list[tuple[beam.From, Answer]] = field(default_factory=list)
    since: float = 0.0


class _Shard(beam.GenServer[_ShardState]):
    async def init(self, arg: _ShardArgs) -> beam.Ok[_ShardState]:
        beam.trap_exit(True)
        vault = arg.vault
        now = trio.current_time()
        core = vault.core
        if core is None:
            core = vault.core = Replication(vault.state, arg.me, arg.shard, arg.config, now=now)
        core.set_node(beam.node(), _identity())
        beam.subscribe(arg.topic)
        beam.monitor_nodes(True)  # a node declared down: its replica is down at once
        period = arg.config.broadcast_period
        beam.send_after(beam.self(), _TICK, random.uniform(0, period / 4))
        # Inherited: watch what the state tracks again (a pid that exited meanwhile is
        # reported noproc at once, and leaves), and publish what the last owner had pending.
        monitors = {}
        for pid in vault.state.local_pids():
            if isinstance(pid, beam.Pid):
                monitors[pid] = beam.monitor(pid)
        state = _ShardState(
            vault.state, monitors, core, arg.topic, arg.permdown_on_shutdown, vault.batch, since=now
        )
        if state.batch:
            _flush(state)
        return beam.Ok(state)

    async def handle_call(
        self, request: Any, from_: beam.From, state: _ShardState
    ) -> beam.Reply[_ShardState] | beam.NoReply[_ShardState]:
        kind = type(request)
        if kind is Track:
            answer = self._track(request, state)
        elif kind is Untrack:
            answer = self._untrack(request, state)
        elif kind is Update:
            answer = self._update(request, state)
        else:
            raise TypeError(f"presence shard got an unknown request {request!r:.100}")
        state.core.local_change()
        if answer[0] == "ok" and answer[1] is not None:  # a change: answered once published
            state.waiting.append((from_, answer))
            return _batched(state)
        if state.batch and _due(state):
            _flush(state)
        return beam.Reply(answer, state, timeout=0 if state.batch else None)

    def _track(self, request: Track, state: _ShardState) -> Answer:
        presences = state.presences
        pid = request.pid
        if presences.get_by_pid(pid, request.topic, request.key) is not None:
            return ("already_tracked", None)
        refused = _untransportable(request.meta)
        if refused is not None:
            return ("error", refused)
        entry = presences.join(pid, request.topic, request.key, request.meta)
        if pid not in state.monitors:
            # An already dead pid: its Down (noproc) arrives as a message, it leaves.
            state.monitors[pid] = beam.monitor(pid)
        _change(state, [entry], [])
        return ("ok", entry.meta["phx_ref"])

    def _untrack(self, request: Untrack, state: _ShardState) -> Answer:
        entry = state.presences.leave(request.pid, request.topic, request.key)
        if entry is None:
            return ("ok", None)
        if not state.presences.tracks(request.pid) and request.pid in state.monitors:
            beam.demonitor(state.monitors.pop(request.pid), flush=True)
        _change(state, [], [entry])
        return ("ok", entry.phx_ref)

    def _update(self, request: Update, state: _ShardState) -> Answer:
        presences = state.presences
        old = presences.get_by_pid(request.pid, request.topic, request.key)
        if old is None:
            return ("not_tracked", None)
        change = request.change
        if callable(change):
            try:
                new_meta = change(dict(old.meta))
            except Exception as exc:
                return ("error", exc)
            if not isinstance(new_meta, Mapping) or not all(isinstance(k, str) for k in new_meta):
                return (
                    "error",
                    TypeError(
                        f"the function given to presence.update must return the new meta (a "
                        f"dict of str keys), but {change!r} returned {new_meta!r:.100}"
                    ),
                )
            change = dict(new_meta)
        refused = _untransportable(change)
        if refused is not None:
            return ("error", refused)
        left, joined = presences.update(request.pid, request.topic, request.key, change)
        _change(state, [joined], [left])
        return ("ok", joined.meta["phx_ref"])

    async def handle_info(
        self, message: Any, state: _ShardState
    ) -> beam.NoReply[_ShardState] | beam.Stop[_ShardState]:
        if message == beam.TIMEOUT:  # the mailbox is empty: publish what is pending
            _flush(state)
            return beam.NoReply(state)
        kind = type(message)
        if kind in _REPLICATION:
            _apply(state, state.core.receive(message, trio.current_time()))
            return _batched(state)
        if kind is beam.NodeDown:
            _apply(state, state.core.node_down(message.node))
            return _batched(state)
        if kind is beam.NodeUp:
            return beam.NoReply(state)  # it is up for the shard once its replica is heard
        if message == _TICK:
            beam.monitor_nodes(True)  # again, in case this node joined a cluster meanwhile
            state.core.set_node(beam.node(), _identity())
            _apply(state, state.core.tick(trio.current_time()))
            beam.send_after(beam.self(), _TICK, state.core.config.broadcast_period)
            return _batched(state)
        if kind is beam.Down and state.monitors.get(message.pid) == message.ref:
            del state.monitors[message.pid]
            left = state.presences.leave_all(message.pid)
            state.core.local_change()
            if left:
                _change(state, [], left)
            return _batched(state)
        result = await super().handle_info(message, state)
        if type(result) is beam.NoReply:
            return _batched(result.state)
        return result

    async def terminate(self, reason: Any, state: _ShardState) -> None:
        if beam.is_normal_exit(reason):  # stopped on purpose: what changed is still news
            _flush(state)
            if state.permdown_on_shutdown:
                state.core.set_node(beam.node(), _identity())
                _send(state, Outcome(broadcasts=[state.core.goodbye()]))
            # The tracked processes go with it, as Phoenix's links would take them.
            for pid in state.monitors:
                beam.exit(pid, reason)

    def format_status(self, state: _ShardState) -> Any:
        return (
            f"<{state.presences!r}, {len(state.monitors)} tracked pids, {len(state.batch)} "
            f"changes pending, {len(state.core.peers)} peers>"
        )


def _apply(state: _ShardState, outcome: Outcome) -> None:
    """Publish the joins and leaves a replication step reported, and send its messages."""
    for joins, leaves in outcome.changes:
        _change(state, joins, leaves)
    _send(state, outcome)


def _send(state: _ShardState, outcome: Outcome) -> None:
    topic = state.topic
    for message in outcome.broadcasts:
        try:
            beam.broadcast_from(beam.self(), topic, message)
        except beam.cluster.CodecError:  # a meta tracked before the node joined a cluster
            logger.exception("presence: cannot replicate on %s", topic)
    for node, message in outcome.directs:
        try:
            beam.direct_broadcast(node, topic, message)
        except (LookupError, beam.cluster.CodecError):  # no cluster (any more), or as above
            logger.exception("presence: cannot send to %s on %s", node, topic)


def _untransportable(meta: Meta) -> Exception | None:
    """On a node of a cluster, a meta must cross nodes: the error if it cannot."""
    if _identity() is None:
        return None
    try:
        beam.cluster.encode(meta)
    except beam.cluster.CodecError as error:
        return TypeError(
            f"this node is part of a cluster, so a presence meta must be able to travel to the "
            f"other nodes (plain values such as JSON's, pids, registered types): {error}"
        )
    return None


def _identity() -> beam.NodeId | None:
    """This node's identity in its cluster (its PubSub adapter's), or ``None`` if it has not
    joined one."""
    return beam.cluster.identity()


def _change(state: _ShardState, joins: list[Entry], leaves: list[Entry]) -> None:
    if not state.batch:
        state.since = trio.current_time()
    state.batch.add(joins, leaves)


def _due(state: _ShardState) -> bool:
    """Whether the pending batch is full or old enough to be published now."""
    return len(state.batch) >= _BATCH_CHANGES or trio.current_time() - state.since >= _BATCH_SECONDS


def _batched(state: _ShardState) -> beam.NoReply[_ShardState]:
    """After handling a message: publish now if the batch is full or old, else once the
    mailbox is empty (a GenServer timeout of 0 fires as soon as no message is waiting)."""
    if not state.batch:
        return beam.NoReply(state)
    if _due(state):
        _flush(state)
        return beam.NoReply(state)
    return beam.NoReply(state, timeout=0)


def _flush(state: _ShardState) -> None:
    """Publish the batch, one merged diff per topic, send the local changes to the other
    nodes now if they end a quiet spell, then answer the callers it waited for."""
    if state.batch:
        for topic, payload in state.batch.take().items():
            beam.local_broadcast(topic, PresenceDiff(topic, payload), dispatcher=dispatch_diff)
    core = state.core
    now = trio.current_time()
    if core.early(now):
        core.set_node(beam.node(), _identity())
        _send(state, core.send_early(now))
    waiting, state.waiting = state.waiting, []
    for from_, answer in waiting:
        beam.reply(from_, answer)


def dispatch_diff(
    entries: list[tuple[beam.Pid, Any]], exclude: beam.Pid | None, message: Any
) -> None:
    """The PubSub dispatcher of presence diffs (a :data:`beam.Dispatcher`).

    A subscription whose metadata has a ``dispatcher`` attribute (a transport's fast lane,
    such as the web layer's channel subscriptions) gets the diff through that dispatcher, all
    such subscribers in one call, so that it can encode the diff once and write it to every
    socket without waking their processes; every other subscriber gets it as a message.

    >>> beam.local_broadcast(topic, PresenceDiff(topic, payload), dispatcher=dispatch_diff)
    """
    lanes: dict[Any, list[tuple[beam.Pid, Any]]] | None = None
    for pid, meta in entries:
        dispatcher = getattr(meta, "dispatcher", None)
        if dispatcher is None:
            if pid != exclude:
                beam.send(pid, message)
            continue
        if lanes is None:
            lanes = {}
        group = lanes.get(dispatcher)
        if group is None:
            lanes[dispatcher] = [(pid, meta)]
        else:
            group.append((pid, meta))
    if lanes is not None:
        for dispatcher, group in lanes.items():
            dispatcher(group, exclude, message)


# -- the tracker -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Options:
    name: str
    shards: int
    replica: str | None
    config: Config
    permdown_on_shutdown: bool


@dataclass(frozen=True, slots=True)
class _TrackerState:
    table: Table
    heir: beam.Pid
    hoard: Hoard


class Tracker(beam.GenServer[_TrackerState]):
    """The presence tracker: a process with ``shards`` shard processes, sharded by topic.

    Start one per node (usually under your supervisor) before using :func:`presence.track`
    and friends; they address the tracker by name, ``"presence"`` by default::

        await presence.Tracker.start_link()                       # name="presence", 8 shards
        await presence.Tracker.start_link(name="rooms", shards=4)

    On a node of a cluster, the trackers of one name on every node replicate to each other
    (one started before its node joined a cluster starts replicating at its next broadcast).
    Stopping it (``beam.GenServer.stop(name)``) stops its shards first. Options:

      shards: how many shard processes share the topics (``crc32(topic) % shards``).
        Every node of a cluster must use the same number.
      replica: this tracker's *incarnation*, the name of its replicas in the CRDT (shard *i*
        is ``f"{replica}/{i}"``, and it prefixes the ``phx_ref`` of every presence it
        tracks); a fresh unique name by default. It must be unique to this start of the
        tracker in the whole cluster: a restarted tracker needs a new one.

    Replication (Phoenix.Tracker's options and defaults; periods in seconds):

      broadcast_period: how often each shard broadcasts its delta (1.5). The first
        broadcast is jittered by up to a quarter of it.
      max_silent_periods: with nothing to broadcast, a shard still sends an empty heartbeat
        after this many periods (10, so every 15 s).
      down_period: a node's tracker not heard from for this long is down: its presences
        leave, and join again if it comes back (``broadcast_period * max_silent_periods *
        2``, 30 s; at least twice ``broadcast_period``).
      permdown_period: ... and after this long it is forgotten (1200, 20 minutes; longer
        than ``down_period``). A node that restarts is a new incarnation: its old one is
        forgotten as soon as the new one is heard from.
      clock_sample_periods: every this many periods a shard compares the clocks it heard
        and asks a peer that knows more for a transfer (2).
      max_delta_sizes: the sizes of the delta generations kept to answer transfers
        (``(100, 1000, 10000)``); beyond, the whole state is sent.
      permdown_on_shutdown: when the tracker stops normally, tell the other nodes to forget
        its presences at once rather than after ``down_period`` (``False``).
    """

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        *,
        name: str | None = DEFAULT_TRACKER,
        timeout: float | None = None,
        shards: int = DEFAULT_SHARDS,
        replica: str | None = None,
        broadcast_period: float = 1.5,
        max_silent_periods: int = 10,
        down_period: float | None = None,
        permdown_period: float = 1200.0,
        clock_sample_periods: int = 2,
        max_delta_sizes: tuple[int, ...] = (100, 1_000, 10_000),
        permdown_on_shutdown: bool = False,
    ) -> beam.Pid:
        """Start a tracker linked to the caller; return its pid once its shards run.

        *arg* is there for the GenServer signature only and must be ``None``.

        >>> async def main():
        ...     await presence.Tracker.start_link(shards=4, broadcast_period=0.5)
        """
        options = _options(
            arg,
            name,
            shards,
            replica,
            permdown_on_shutdown,
            broadcast_period=broadcast_period,
            max_silent_periods=max_silent_periods,
            down_period=down_period,
            permdown_period=permdown_period,
            clock_sample_periods=clock_sample_periods,
            max_delta_sizes=max_delta_sizes,
        )
        await ensure_heir(options.name)  # linked to the caller (the tracker's supervisor)
        pid = await super().start_link(options, name=options.name, timeout=timeout)
        assert pid is not None  # init never returns Ignore
        return pid

    @classmethod
    async def start(
        cls,
        arg: Any = None,
        *,
        name: str | None = DEFAULT_TRACKER,
        timeout: float | None = None,
        shards: int = DEFAULT_SHARDS,
        replica: str | None = None,
        broadcast_period: float = 1.5,
        max_silent_periods: int = 10,
        down_period: float | None = None,
        permdown_period: float = 1200.0,
        clock_sample_periods: int = 2,
        max_delta_sizes: tuple[int, ...] = (100, 1_000, 10_000),
        permdown_on_shutdown: bool = False,
    ) -> beam.Pid:
        """Like :meth:`start_link`, without the link.

        >>> async def main():
        ...     await presence.Tracker.start(name="rooms")
        """
        options = _options(
            arg,
            name,
            shards,
            replica,
            permdown_on_shutdown,
            broadcast_period=broadcast_period,
            max_silent_periods=max_silent_periods,
            down_period=down_period,
            permdown_period=permdown_period,
            clock_sample_periods=clock_sample_periods,
            max_delta_sizes=max_delta_sizes,
        )
        await ensure_heir(options.name)
        pid = await super().start(options, name=options.name, timeout=timeout)
        assert pid is not None
        return pid

    async def init(self, arg: _Options) -> beam.Ok[_TrackerState]:
        """Start the shards and publish their states."""
        beam.trap_exit(True)
        registry = _registry(create=True)
        assert registry is not None
        heir = beam.whereis(heir_name(arg.name))
        if heir is None:  # started without start_link/start: an heir of its own, unlinked
            heir = await ensure_heir(arg.name, link=False)
        # The shards' states of a tracker that died, if its heir kept them (presence._heir).
        hoard: Hoard | None = await beam.call(heir, Claim(beam.self(), arg.shards), timeout=None)
        if hoard is None or (arg.replica is not None and arg.replica != hoard.incarnation):
            incarnation = arg.replica or secrets.token_urlsafe(6)
            vaults = tuple(Vault(State(f"{incarnation}/{i}")) for i in range(arg.shards))
            hoard = Hoard(incarnation, vaults)
        me = ReplicaRef(beam.node(), hoard.incarnation)
        pids: list[beam.Pid] = []
        for i, vault in enumerate(hoard.vaults):
            topic = f"phx_presence:{arg.name}_shard{i}"
            shard_args = _ShardArgs(vault, me, i, topic, arg.config, arg.permdown_on_shutdown)
            pid = await _Shard.start_link(shard_args)
            assert pid is not None
            pids.append(pid)
        await beam.call(heir, Hold(beam.self(), hoard, tuple(pids)), timeout=None)
        beam.monitor(heir)
        states = tuple(vault.state for vault in hoard.vaults)
        published = Table(arg.name, tuple(pids), states)
        registry.register(arg.name, published)
        return beam.Ok(_TrackerState(published, heir, hoard))

    async def handle_info(
        self, message: Any, state: _TrackerState
    ) -> beam.NoReply[_TrackerState] | beam.Stop[_TrackerState]:
        """A shard that exits takes the tracker down with its reason."""
        if type(message) is beam.Exit and message.pid in state.table.pids:
            return beam.Stop(message.reason, state)
        if type(message) is beam.Down and message.pid == state.heir:
            # The heir was killed: a new one (unlinked: it must outlive this tracker) holds
            # the states from now on.
            heir = await ensure_heir(state.table.name, link=False)
            await beam.call(heir, Claim(beam.self(), len(state.table.pids)), timeout=None)
            await beam.call(heir, Hold(beam.self(), state.hoard, state.table.pids), timeout=None)
            beam.monitor(heir)
            return beam.NoReply(_TrackerState(state.table, heir, state.hoard))
        return await super().handle_info(message, state)

    async def terminate(self, reason: Any, state: _TrackerState) -> None:
        """Stop the shards and wait until they are gone.

        Stopped on purpose, the heir forgets the states and the shards exit their tracked
        processes; after a shard's crash (an exception: its state may be half-changed) the
        heir exits them; otherwise (killed) the heir keeps the states for the next tracker.
        """
        signal: Any = beam.KILLED  # an abnormal stop: a shard leaves its tracked pids alone
        if beam.is_normal_exit(reason):
            signal = beam.SHUTDOWN
            await _tell_heir(state, Discard(beam.self(), None))
        elif isinstance(reason, BaseException):
            await _tell_heir(state, Discard(beam.self(), reason))
        refs = {beam.monitor(pid) for pid in state.table.pids}
        for pid in state.table.pids:
            beam.exit(pid, signal)
        while refs:
            down = await beam.receive(lambda m: type(m) is beam.Down and m.ref in refs)
            refs.discard(down.ref)


async def _tell_heir(state: _TrackerState, request: Any) -> None:
    # The heir may be gone (its supervisor is stopping): then nothing is kept anyway.
    with contextlib.suppress(beam.ProcessExit):
        await beam.call(state.heir, request, timeout=None)


def _options(
    arg: Any,
    name: str | None,
    shards: int,
    replica: str | None,
    permdown_on_shutdown: bool,
    **periods: Any,
) -> _Options:
    if arg is not None:
        raise TypeError(
            f"Tracker takes its options as keywords (name=, shards=, replica=), got {arg!r}"
        )
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"a presence Tracker needs a name (a non-empty str, {DEFAULT_TRACKER!r} by "
            f"default): presence.track and presence.list find it by name; got {name!r}"
        )
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards must be a positive int, got {shards!r}")
    if replica is not None and (not isinstance(replica, str) or not replica):
        raise TypeError(f"replica must be a non-empty str or None, got {replica!r}")
    if not isinstance(permdown_on_shutdown, bool):
        raise TypeError(f"permdown_on_shutdown must be a bool, got {permdown_on_shutdown!r}")
    sizes = periods["max_delta_sizes"]
    if isinstance(sizes, list):
        periods["max_delta_sizes"] = tuple(sizes)
    return _Options(name, shards, replica, Config(**periods), permdown_on_shutdown)
