"""How a tracker shard replicates its state to the same shard on other nodes; sans-I/O.

This is Phoenix.Tracker's shard protocol, as plain data in and out: a :class:`Replication`
owns one shard's :class:`~presence.State` and the shard's view of its peers, and turns
events (a local change, a timer tick, a message from a peer) into an :class:`Outcome`: the
joins and leaves to publish on this node, and the messages to send. The shard process
(``presence._tracker``) does the sending, over the shard's own PubSub topic.

* **Replicas.** A replica is a shard of one *incarnation* of a tracker on one node: a
  :class:`ReplicaRef` ``(node, incarnation)``, where the incarnation is fresh every time a
  tracker starts (so a restarted node, or a restarted tracker, is a new replica). Shard *i*
  of incarnation *inc* names its dots ``f"{inc}/{i}"`` in the CRDT.
* **Heartbeats.** Every ``broadcast_period`` a shard broadcasts its delta (its own changes
  since the last tick) with its clocks (:class:`Heartbeat`); with nothing to send it stays
  quiet, but after ``max_silent_periods`` quiet ticks it sends an empty heartbeat, clocks
  only. Unlike Phoenix, a local change after a quiet spell (no delta sent for a whole
  ``broadcast_period``) does not wait for the next tick: :meth:`Replication.send_early`
  broadcasts it at once; the changes that follow it within the period wait for the ticks as
  usual, so a burst still travels in few deltas. Receivers merge the delta (reporting
  joins and leaves) and note when each replica was last heard from. A replica heard from
  for the first time, or again after being down, makes this shard send its clocks at its
  next tick, so a newcomer learns at once who knows more than it does.
* **Transfers.** Every ``clock_sample_periods`` ticks a shard compares the clocks it heard
  with its own; it asks each replica that knows something it does not (whose clock it does
  not dominate) for a transfer (:class:`TransferReq`, carrying its clocks). The replica
  answers (:class:`TransferAck`) with the smallest *delta generation* that covers the gap,
  or with its whole state, the entries the requester has seen sent as bare dots.
* **Delta generations.** A shard keeps ``len(max_delta_sizes)`` merged deltas of what it
  learned (its own deltas and those it merged) since some point; generation *i* holds at
  most ``max_delta_sizes[i]`` entries and dots and restarts from the smaller one when it
  would grow beyond (:class:`DeltaGenerations`).
* **Liveness.** A replica not heard from for ``down_period`` is *down*: its presences leave
  but are kept, and join again if it comes back with the same incarnation. A replica whose
  node the cluster declares down (beam's ``NodeDown``: its connection closed, or its node
  heartbeats stopped) is down at once (:meth:`Replication.node_down`), the same way. After
  ``permdown_period`` it is *permanently down* and purged. A node heard from with a new
  incarnation permanently downs its old one at once. A replica whose presences arrive
  through a third replica before its own heartbeat does is a *stranger*: its presences are
  kept hidden until it is heard from (purged after ``permdown_period`` if never). Time this
  node itself stood still (a tick due long ago) does not count against its peers, and it
  announces itself at once.

The defaults are Phoenix's: broadcast every 1.5 s, an empty heartbeat after 10 quiet
periods (15 s), down after 30 s (``broadcast_period * max_silent_periods * 2``), permanently
down after 20 minutes, transfers sampled every 2 periods, generations of 100, 1,000 and
10,000::

    core = Replication(State("inc1/0"), ReplicaRef("chat1", "inc1"), 0, Config(), now=0.0)
    entry = core.state.join(pid, "room:lobby", "alice", {})
    core.local_change()
    outcome = core.tick(now=1.5)        # outcome.broadcasts: [Heartbeat(...)] if it has peers
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import beam

from ._state import Delta, Entry, State, Tag
from ._wire import PackedDelta, pack, unpack

__all__ = [
    "Config",
    "DeltaGenerations",
    "GracefulPermdown",
    "Heartbeat",
    "Outcome",
    "ReplicaRef",
    "Replication",
    "TransferAck",
    "TransferReq",
    "append_clock",
    "dominates",
]

#: A causal context's contiguous part: replica -> every dot up to this clock seen.
Clocks = dict[str, int]


class ReplicaRef(NamedTuple):
    """One incarnation of a tracker on one node: what peers know a replica by."""

    node: str
    incarnation: str


# -- messages between the shards of one tracker on different nodes -----------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A shard's periodic broadcast: its new *delta* (``None`` for an empty heartbeat) and
    its *clocks*."""

    replica: ReplicaRef
    delta: PackedDelta | None
    clocks: Clocks


@dataclass(frozen=True, slots=True)
class TransferReq:
    """Please send me what I miss: these are my *clocks*."""

    replica: ReplicaRef
    clocks: Clocks


@dataclass(frozen=True, slots=True)
class TransferAck:
    """The answer to a :class:`TransferReq`: a delta generation or the whole state."""

    replica: ReplicaRef
    delta: PackedDelta


@dataclass(frozen=True, slots=True)
class GracefulPermdown:
    """This replica stops on purpose: forget it now rather than after ``down_period``."""

    replica: ReplicaRef


for _cls, _name in (
    (ReplicaRef, "presence.ReplicaRef"),
    (Heartbeat, "presence.Heartbeat"),
    (TransferReq, "presence.TransferReq"),
    (TransferAck, "presence.TransferAck"),
    (GracefulPermdown, "presence.GracefulPermdown"),
):
    beam.cluster.register(_cls, _name)

Message = Heartbeat | TransferReq | TransferAck | GracefulPermdown


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """The periods of replication, in seconds (Phoenix's defaults; see the module docs)."""

    broadcast_period: float = 1.5
    max_silent_periods: int = 10
    #: ``None``: ``broadcast_period * max_silent_periods * 2``.
    down_period: float | None = None
    permdown_period: float = 1200.0
    clock_sample_periods: int = 2
    max_delta_sizes: tuple[int, ...] = (100, 1_000, 10_000)

    def __post_init__(self) -> None:
        _positive("broadcast_period", self.broadcast_period, float)
        _positive("max_silent_periods", self.max_silent_periods, int)
        _positive("clock_sample_periods", self.clock_sample_periods, int)
        _positive("permdown_period", self.permdown_period, float)
        if self.down_period is not None:
            _positive("down_period", self.down_period, float)
        sizes = self.max_delta_sizes
        if (
            not isinstance(sizes, tuple)
            or not sizes
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes)
            or list(sizes) != sorted(sizes)
        ):
            raise ValueError(
                f"max_delta_sizes must be a non-empty tuple of positive ints in increasing "
                f"order, such as (100, 1000, 10000); got {sizes!r}"
            )
        if self.down < 2 * self.broadcast_period:
            raise ValueError(
                f"down_period ({self.down} s) must be at least twice the broadcast_period "
                f"({self.broadcast_period} s): a replica would be down between two heartbeats"
            )
        if self.permdown_period <= self.down:
            raise ValueError(
                f"permdown_period ({self.permdown_period} s) must be longer than the "
                f"down_period ({self.down} s)"
            )

    @property
    def down(self) -> float:
        """The down period, computed if not given."""
        if self.down_period is not None:
            return self.down_period
        return self.broadcast_period * self.max_silent_periods * 2


def _positive(name: str, value: Any, kind: type) -> None:
    ok = (isinstance(value, int | float) if kind is float else isinstance(value, int)) and (
        not isinstance(value, bool) and value > 0
    )
    if not ok:
        what = "a positive number of seconds" if kind is float else "a positive int"
        raise ValueError(f"{name} must be {what}, got {value!r}")


# -- clocks (Phoenix's Clock) -------------------------------------------------------------------


def dominates(c1: Mapping[str, int], c2: Mapping[str, int]) -> bool:
    """Whether clock *c1* has seen everything *c2* has (a replica missing from a clock is at 0).

    >>> dominates({"a": 2, "b": 1}, {"a": 1}), dominates({"a": 1}, {"a": 1, "b": 1})
    (True, False)
    """
    return all(c1.get(replica, 0) >= clock for replica, clock in c2.items())


def _upperbound(clocks: Iterable[Mapping[str, int]]) -> Clocks:
    bound: Clocks = {}
    for clock in clocks:
        for replica, value in clock.items():
            if value > bound.get(replica, 0):
                bound[replica] = value
    return bound


def append_clock(
    clockset: list[tuple[ReplicaRef, Clocks]], replica: ReplicaRef, clock: Clocks
) -> list[tuple[ReplicaRef, Clocks]]:
    """Add *replica*'s *clock* to *clockset*, keeping only clocks that no other dominates.

    What remains is a small set of replicas that together know everything the set knows:
    the ones worth asking for a transfer.

    >>> a, b = ReplicaRef("a", "1"), ReplicaRef("b", "1")
    >>> [ref.node for ref, _ in append_clock([(a, {"x": 1})], b, {"x": 2})]
    ['b']
    """
    if not clock:
        return clockset
    combined = _upperbound(c for _, c in clockset)
    if dominates(clock, combined):
        return [(replica, clock)]
    if dominates(combined, clock) and any(dominates(c, clock) for _, c in clockset):
        return clockset
    kept = [(ref, c) for ref, c in clockset if not dominates(clock, c)]
    if len(kept) < len(clockset) or not all(dominates(c, clock) for _, c in kept):
        kept.append((replica, clock))
    return kept


# -- delta generations (Phoenix's DeltaGeneration) -------------------------------------------------

#: What a replica had seen when a generation started: its clocks and its cloud.
Mark = tuple[Clocks, frozenset[Tag]]


class _Generation:
    """A merged dot-delta: every change learned since ``start`` (``None``: unknown, so the
    generation cannot serve a transfer)."""

    __slots__ = ("cloud", "start", "values")

    def __init__(self, start: Mark | None) -> None:
        self.start = start
        self.values: dict[Tag, Entry] = {}
        self.cloud: set[Tag] = set()

    @property
    def size(self) -> int:
        return len(self.values) + len(self.cloud)

    def add(self, delta: Delta) -> None:
        """Merge a dot-delta in: a dot removed in either is removed (removes are final)."""
        values = self.values
        cloud = self.cloud
        kept = delta.values
        elided = delta.elided
        for tag in delta.cloud:
            if tag not in kept and tag not in elided:
                values.pop(tag, None)
        for tag, entry in kept.items():
            if tag in cloud and tag not in values:
                continue  # removed already
            values[tag] = entry
        cloud.update(delta.cloud)
        cloud.update(kept)

    def copy(self) -> _Generation:
        other = _Generation(self.start)
        other.values = dict(self.values)
        other.cloud = set(self.cloud)
        return other

    def drop(self, replica: str) -> None:
        self.values = {tag: e for tag, e in self.values.items() if tag[0] != replica}
        self.cloud = {tag for tag in self.cloud if tag[0] != replica}
        if self.start is not None:
            clocks, cloud = self.start
            self.start = (
                {r: c for r, c in clocks.items() if r != replica},
                frozenset(tag for tag in cloud if tag[0] != replica),
            )

    def serves(self, clocks: Mapping[str, int], skip: set[str]) -> bool:
        """Whether a replica with *clocks* has seen everything this generation started from."""
        if self.start is None:
            return False
        start, cloud = self.start
        for replica, clock in start.items():
            if clock > clocks.get(replica, 0) and replica not in skip:
                return False
        return all(
            clock <= clocks.get(replica, 0) or replica in skip for replica, clock in cloud
        )


class DeltaGenerations:
    """The recent changes a replica learned, merged into deltas of bounded sizes.

    :meth:`push` every delta the replica applies (its own, taken at a tick, and those it
    merged); :meth:`extract` answers a transfer request with the smallest generation the
    requester can use, or the whole state.

    >>> gens = DeltaGenerations((100, 1000), State("me/0"))
    >>> gens.push(delta, state)
    >>> gens.extract(state, "peer/0", {"me/0": 3})      # a Delta
    """

    __slots__ = ("generations", "mark", "sizes")

    def __init__(self, sizes: tuple[int, ...], state: State) -> None:
        self.sizes = sizes
        self.generations: list[_Generation] = []
        self.mark: Mark | None = _mark(state)

    def clear(self) -> None:
        """Forget the generations: changes were dropped, so none can start before the next
        push."""
        self.generations = []
        self.mark = None

    def reset(self, state: State) -> None:
        """Start every generation afresh from what *state* knows now (after merging a whole
        state)."""
        self.generations = []
        self.mark = _mark(state)

    def push(self, delta: Delta, state: State) -> None:
        """Add *delta*, just applied to *state*, to every generation.

        A generation that would grow beyond its size becomes a copy of the next smaller one
        (the smallest becomes *delta* alone).
        """
        if self.mark is not None:
            if not self.generations:
                self.generations = [_Generation(self.mark) for _ in self.sizes]
            previous: _Generation | None = None
            for i, generation in enumerate(self.generations):
                generation.add(delta)
                if generation.size > self.sizes[i]:
                    if previous is None:
                        generation = _Generation(self.mark)
                        generation.add(delta)
                    else:
                        generation = previous.copy()
                    self.generations[i] = generation
                previous = generation
        self.mark = _mark(state)

    def remove_replica(self, replica: str) -> None:
        """Drop everything of a replica that is permanently down."""
        for generation in self.generations:
            generation.drop(replica)
        if self.mark is not None:
            clocks, cloud = self.mark
            self.mark = (
                {r: c for r, c in clocks.items() if r != replica},
                frozenset(tag for tag in cloud if tag[0] != replica),
            )

    def extract(self, state: State, requester: str, clocks: Mapping[str, int]) -> Delta:
        """What the replica *requester*, whose clocks are *clocks*, needs to catch up.

        The smallest generation it has seen the start of, else the whole state (entries it
        has seen as bare dots). Replicas this state has forgotten do not count.
        """
        skip = set(state.gone_replicas)
        skip.add(requester)
        for generation in self.generations:
            if generation.serves(clocks, skip):
                # Without the requester's own dots, values and removes alike: it knows them
                # best, and a delta that held a dot's remove but not its entry would tell
                # whoever merges it next that the entry is gone.
                values = {t: e for t, e in generation.values.items() if t[0] != requester}
                cloud = frozenset(t for t in generation.cloud if t[0] != requester)
                return Delta(state.replica, values, {}, cloud)
        return state.extract(clocks)


def _mark(state: State) -> Mark:
    return state.clocks, state.cloud


# -- one shard's replication ------------------------------------------------------------------

_UP = "up"
_DOWN = "down"


class _Peer:
    __slots__ = ("last", "ref", "status")

    def __init__(self, ref: ReplicaRef, now: float) -> None:
        self.ref = ref
        self.last = now
        self.status = _UP


@dataclass(slots=True)
class Outcome:
    """What a :class:`Replication` step asks of its shard.

    ``changes``: ``(joins, leaves)`` to publish on this node, in order; ``broadcasts``:
    messages for the same shard on every other node; ``directs``: ``(node, message)`` for
    the same shard on that node only.
    """

    changes: list[tuple[list[Entry], list[Entry]]] = field(default_factory=list)
    broadcasts: list[Message] = field(default_factory=list)
    directs: list[tuple[str, Message]] = field(default_factory=list)

    def change(self, joins: list[Entry], leaves: list[Entry]) -> None:
        """Record joins and leaves (nothing if both are empty)."""
        if joins or leaves:
            self.changes.append((joins, leaves))


class Replication:
    """One shard's replication state machine; see the module docs.

    *state* is the shard's CRDT (named ``f"{me.incarnation}/{shard}"``), *me* this replica,
    *now* the current time in seconds (any monotonic clock, the same for every call).
    Local changes are made on ``self.state`` directly, followed by :meth:`local_change`.
    """

    __slots__ = (
        "config",
        "generations",
        "identity",
        "known",
        "last_tick",
        "me",
        "peers",
        "pending",
        "samples",
        "sent_at",
        "shard",
        "silent",
        "state",
        "strangers",
    )

    def __init__(
        self, state: State, me: ReplicaRef, shard: int, config: Config, *, now: float
    ) -> None:
        if state.replica != f"{me.incarnation}/{shard}":
            raise ValueError(
                f"the state of shard {shard} of {me!r} must be named "
                f"{me.incarnation + '/' + str(shard)!r}, not {state.replica!r}"
            )
        self.state = state
        self.me = me
        #: This node's identity in the cluster (``None`` alone): pids travel with it.
        self.identity: beam.NodeId | None = None
        self.shard = shard
        self.config = config
        #: node name -> the replica of that node this shard knows (its latest incarnation)
        self.peers: dict[str, _Peer] = {}
        #: CRDT name -> node name, for the peers
        self.known: dict[str, str] = {}
        #: CRDT name -> when first seen, for replicas known only through others
        self.strangers: dict[str, float] = {}
        self.pending: list[tuple[ReplicaRef, Clocks]] = []
        self.silent = config.max_silent_periods  # the first tick announces this replica
        self.samples = config.clock_sample_periods
        self.last_tick = now
        #: When this shard last broadcast a delta (never yet: minus infinity).
        self.sent_at = -math.inf
        self.generations = DeltaGenerations(config.max_delta_sizes, state)

    def __repr__(self) -> str:
        return f"<Replication {self.me!r} shard {self.shard}: {len(self.peers)} peers>"

    def crdt_name(self, ref: ReplicaRef) -> str:
        """The name under which *ref*'s shard of this number makes its dots."""
        return f"{ref.incarnation}/{self.shard}"

    def set_node(self, node: str, identity: beam.NodeId | None = None) -> None:
        """This node's name and identity (they change if it joins a cluster after the
        tracker started)."""
        if node != self.me.node:
            self.me = ReplicaRef(node, self.me.incarnation)
        self.identity = identity

    # -- events ------------------------------------------------------------------------------

    def local_change(self) -> None:
        """After a change to ``self.state``: with no peer to send it to, drop the delta (a
        peer that comes later gets the state by transfer)."""
        if not self.peers:
            self.state.reset_delta()
            self.generations.clear()

    def tick(self, now: float) -> Outcome:
        """Every ``broadcast_period``: send the delta or a heartbeat, ask for transfers,
        detect replicas that went down."""
        outcome = Outcome()
        self._forgive_stall(now)
        self._heartbeat(outcome, now)
        self._request_transfers(outcome)
        self._detect_downs(now, outcome)
        return outcome

    def early(self, now: float) -> bool:
        """Whether :meth:`send_early` has something to send now: local changes made after a
        quiet spell (no delta broadcast for a whole ``broadcast_period``), and peers.

        >>> core.early(now=12.0)
        True
        """
        return (
            self.state.has_delta
            and bool(self.peers)
            and now - self.sent_at >= self.config.broadcast_period
        )

    def send_early(self, now: float) -> Outcome:
        """After local changes: broadcast them now if they end a quiet spell (see
        :meth:`early`), rather than at the next tick; otherwise nothing (they go with the
        next tick, with whatever else changes until then). Ticks keep their cadence.

        >>> outcome = core.send_early(now=12.0)   # outcome.broadcasts: [Heartbeat(...)]
        """
        outcome = Outcome()
        if self.early(now):
            self._heartbeat(outcome, now)
        return outcome

    def receive(self, message: Any, now: float) -> Outcome:
        """Handle a message from the same shard of another node. Anything else (or a message
        of this very node) is ignored."""
        outcome = Outcome()
        if not _valid(message) or message.replica.node == self.me.node:
            return outcome  # not ours, malformed, or this node's (an older incarnation's)
        kind = type(message)
        ref = message.replica
        delta: Delta | None = None
        if kind in (Heartbeat, TransferAck) and message.delta is not None:
            try:
                delta = unpack(message.delta, local=self.identity)
            except ValueError:
                return outcome
        if kind is Heartbeat:
            self._heard(ref, now, outcome)
            if delta is not None:
                self._merge(ref, delta, now, outcome)
            self._put_pending(ref, message.clocks)
        elif kind is TransferReq:
            found = self.generations.extract(self.state, self.crdt_name(ref), message.clocks)
            outcome.directs.append((ref.node, TransferAck(self.me, self._pack(found))))
        elif kind is TransferAck:
            assert delta is not None
            self._merge(ref, delta, now, outcome)
        else:
            peer = self.peers.get(ref.node)
            if peer is not None and peer.ref == ref:
                self._permdown(peer, outcome)
        return outcome

    def node_down(self, node: str) -> Outcome:
        """The cluster declared *node* down: its replica is down now rather than after
        ``down_period`` without heartbeats (its presences leave, kept, and join again if it
        is heard from with the same incarnation; purged after ``permdown_period``).

        >>> outcome = core.node_down("chat2")     # outcome.changes: its presences leave
        """
        outcome = Outcome()
        peer = self.peers.get(node)
        if peer is not None and peer.status == _UP:
            peer.status = _DOWN
            outcome.change([], self.state.replica_down(self.crdt_name(peer.ref)))
        return outcome

    def goodbye(self) -> GracefulPermdown:
        """The message to broadcast when this replica stops on purpose."""
        return GracefulPermdown(self.me)

    def _pack(self, delta: Delta) -> PackedDelta:
        return pack(delta, local=self.identity)

    # -- steps ---------------------------------------------------------------------------------

    def _heartbeat(self, outcome: Outcome, now: float) -> None:
        state = self.state
        if state.has_delta:
            delta = state.take_delta()
            self.generations.push(delta, state)
            outcome.broadcasts.append(Heartbeat(self.me, self._pack(delta), state.clocks))
            self.silent = 0
            self.sent_at = now
        elif self.silent >= self.config.max_silent_periods:
            outcome.broadcasts.append(Heartbeat(self.me, None, state.clocks))
            self.silent = 0
        else:
            self.silent += 1

    def _request_transfers(self, outcome: Outcome) -> None:
        if self.samples > 1:
            self.samples -= 1
            return
        self.samples = self.config.clock_sample_periods
        mine = self.state.clocks
        clockset = append_clock(self.pending, self.me, mine)
        self.pending = []
        for ref, _ in clockset:
            peer = self.peers.get(ref.node)
            if ref != self.me and peer is not None and peer.ref == ref:
                outcome.directs.append((ref.node, TransferReq(self.me, mine)))

    def _put_pending(self, ref: ReplicaRef, clocks: Clocks) -> None:
        state = self.state
        known = {r: c for r, c in clocks.items() if not state.is_gone(r)}
        self.pending = append_clock(self.pending, ref, known)

    def _forgive_stall(self, now: float) -> None:
        """A tick much later than due means this node stood still (a long step, a stopped
        process): its peers' heartbeats of that time are still in its mailbox, so the time
        it did not run does not count against them; and they may have taken it for down, so
        it announces itself at once."""
        period = self.config.broadcast_period
        late = now - self.last_tick - period
        self.last_tick = now
        if late > period:
            self.silent = self.config.max_silent_periods
            for peer in self.peers.values():
                peer.last = min(peer.last + late, now)
            for name, since in self.strangers.items():
                self.strangers[name] = min(since + late, now)

    def _detect_downs(self, now: float, outcome: Outcome) -> None:
        config = self.config
        down, permdown = config.down, config.permdown_period
        for peer in list(self.peers.values()):
            silent_for = now - peer.last
            if silent_for > permdown:
                self._permdown(peer, outcome)
            elif silent_for > down and peer.status == _UP:
                peer.status = _DOWN
                outcome.change([], self.state.replica_down(self.crdt_name(peer.ref)))
        for name, since in list(self.strangers.items()):
            if now - since > permdown:
                del self.strangers[name]
                self.state.remove_replica(name)  # hidden all along: no leaves
                self.generations.remove_replica(name)

    def _heard(self, ref: ReplicaRef, now: float, outcome: Outcome) -> None:
        peer = self.peers.get(ref.node)
        if peer is not None and peer.ref == ref:
            peer.last = now
            if peer.status == _UP:
                return
            peer.status = _UP
        else:
            if peer is not None:  # the node restarted: its old incarnation is gone for good
                self._permdown(peer, outcome)
            self.peers[ref.node] = _Peer(ref, now)
            self.known[self.crdt_name(ref)] = ref.node
        name = self.crdt_name(ref)
        self.strangers.pop(name, None)
        outcome.change(self.state.replica_up(name), [])
        self.silent = self.config.max_silent_periods  # it hears my clocks at my next tick

    def _permdown(self, peer: _Peer, outcome: Outcome) -> None:
        name = self.crdt_name(peer.ref)
        del self.peers[peer.ref.node]
        self.known.pop(name, None)
        outcome.change([], self.state.remove_replica(name))
        self.generations.remove_replica(name)

    def _merge(self, sender: ReplicaRef, delta: Delta, now: float, outcome: Outcome) -> None:
        state = self.state
        me = state.replica
        for replica in {tag[0] for tag in delta.values}:
            if (
                replica != me
                and replica not in self.known
                and replica not in self.strangers
                and not state.is_gone(replica)
            ):
                self.strangers[replica] = now
                outcome.change([], state.replica_down(replica))
        try:
            joins, leaves = state.merge(delta)
        except ValueError:
            # Extracted against clocks this replica no longer has: ask for everything.
            outcome.directs.append((sender.node, TransferReq(self.me, {})))
            return
        outcome.change(joins, leaves)
        if delta.context:
            self.generations.reset(state)
        else:
            self.generations.push(delta, state)


# -- checking what arrives ------------------------------------------------------------------------


def _valid(message: Any) -> bool:
    """Whether *message* is a well-formed replication message (peers run the same code, but
    a shard must not crash, taking its tracked processes down, on a malformed one)."""
    kind = type(message)
    if kind not in (Heartbeat, TransferReq, TransferAck, GracefulPermdown):
        return False
    ref = message.replica
    if type(ref) is not ReplicaRef or type(ref.node) is not str or type(ref.incarnation) is not str:
        return False
    if kind is Heartbeat:
        return _valid_clocks(message.clocks) and (
            message.delta is None or type(message.delta) is PackedDelta
        )
    if kind is TransferReq:
        return _valid_clocks(message.clocks)
    if kind is TransferAck:
        return type(message.delta) is PackedDelta
    return True


def _valid_clocks(clocks: Any) -> bool:
    return type(clocks) is dict and all(
        type(r) is str and type(c) is int for r, c in clocks.items()
    )
