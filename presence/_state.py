"""The presence CRDT: an observed-remove set of presences, written sans-I/O.

One :class:`State` is one *replica*'s copy of the set. Every change a replica makes is named
by a *dot*, its tag ``(replica, clock)``, where ``clock`` counts that replica's own changes
(1, 2, 3...). A join stores a presence under a new dot; a leave deletes the presence and spends
a dot too, so every change moves the replica's clock. Besides the live presences a state keeps
its *causal context*, the set of every dot it has seen: per replica a contiguous clock (all
dots up to it) plus a *cloud* of dots seen beyond it, out of order.

That context is what makes removes travel without tombstones. When a state or a :class:`Delta`
is merged in, a remote presence is added unless its dot is already in the local context (it
was seen, and if it is not here any more it was removed here), and a local presence is removed
if the remote has seen its dot and no longer holds it. That rule is commutative, associative and
idempotent, so replicas that exchange deltas in any order, with duplicates and delays, converge
(an add-wins ORSWOT, as Phoenix.Tracker's ``State``)::

    a, b = State("a"), State("b")
    a.join(1, "room:lobby", "alice", {"online_at": 1})
    b.merge(a.take_delta())                    # -> ([the alice presence], [])
    assert b.list("room:lobby") == a.list("room:lobby")

What travels is data: a :class:`Delta` holds entries and dots, nothing live. A replica's own
changes accumulate in a pending delta (:meth:`State.take_delta`); :meth:`State.extract` gives
everything a replica knows, for a newcomer or one that fell behind. Liveness is local: a
replica marked down (:meth:`State.replica_down`) keeps its presences but hides them, and
:meth:`State.remove_replica` forgets one for good.

Pids are opaque hashable values here; only the replica that tracked a pid ever looks it up.
Replica names must be unique per incarnation: a replica that restarts with empty state must
take a new name (Phoenix pairs the node name with a start timestamp for the same reason).
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Delta", "Entry", "State", "phx_ref", "presence_diffs"]

#: A dot: the replica that made a change and that replica's clock for it.
Tag = tuple[str, int]
#: The meta of one presence as clients see it (it includes ``"phx_ref"``).
Meta = dict[str, Any]
#: ``{"metas": [meta, ...]}``: one key's presence.
Metas = dict[str, list[Meta]]
#: ``{key: {"metas": [meta, ...]}}``: the shape of ``presence_state`` and of each half of a
#: ``presence_diff``.
Presences = dict[str, Metas]
#: ``{"joins": Presences, "leaves": Presences}``: the ``presence_diff`` payload.
Diff = dict[str, Presences]

PHX_REF = "phx_ref"
PHX_REF_PREV = "phx_ref_prev"


def phx_ref(tag: Tag) -> str:
    """The ``phx_ref`` of the presence joined with dot *tag*: unique per dot, the same on
    every replica.

    It is the replica name in URL-safe base64 (which has no ``.``), a dot, and the clock, so
    distinct tags always give distinct refs.

    >>> phx_ref(("node1", 7))
    'bm9kZTE.7'
    """
    replica, clock = tag
    return f"{_ref_prefix(replica)}{clock}"


def _ref_prefix(replica: str) -> str:
    return base64.urlsafe_b64encode(replica.encode()).decode().rstrip("=") + "."


class Entry(NamedTuple):
    """One presence: *pid* is in *topic* as *key*, with *meta*, joined under dot *tag*.

    ``meta`` is the meta clients see, ``"phx_ref"`` (and after an update ``"phx_ref_prev"``)
    included. Treat it as read-only: entries are shared between a state and its deltas. (A
    named tuple: entries are made on every join, and a tuple is the cheapest immutable
    record.)
    """

    topic: str
    key: str
    pid: Hashable
    meta: Meta
    tag: Tag

    @property
    def replica(self) -> str:
        """The replica that joined this presence."""
        return self.tag[0]

    @property
    def phx_ref(self) -> str:
        """This presence's ``phx_ref``."""
        ref: str = self.meta[PHX_REF]
        return ref


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a replica's state, ready to be merged into another replica's state.

    It speaks for the dots of its causal context (``context``: for each replica every dot up
    to that clock; ``cloud``: further single dots): a dot of the context is alive if it is in
    ``values`` (or in ``elided``), and removed otherwise. Dots outside the context are left
    alone by a merge. ``elided`` dots are alive at the origin but sent without their entries,
    because the replica the delta was extracted for has seen them already (see
    :meth:`State.extract`).
    """

    replica: str
    values: Mapping[Tag, Entry]
    context: Mapping[str, int]
    cloud: frozenset[Tag]
    elided: frozenset[Tag] = frozenset()

    def covers(self, tag: Tag) -> bool:
        """Whether *tag* is in this delta's causal context."""
        replica, clock = tag
        return clock <= self.context.get(replica, 0) or tag in self.cloud

    @property
    def size(self) -> int:
        """Entries plus dots: a measure to decide when to send the whole state instead."""
        return len(self.values) + len(self.cloud) + len(self.elided)


class State:
    """One replica's copy of the presence set; see the module docs.

    Changes are made in place and return what became visible or invisible (joins and leaves),
    as :class:`Entry` lists in the order a client should apply them. A state is owned by one
    process; others may read it between that process's steps, as they would read an ETS table.
    """

    __slots__ = (
        "_cloud",
        "_context",
        "_delta_cloud",
        "_delta_values",
        "_down",
        "_gone",
        "_local",
        "_mine",
        "_pids",
        "_ref_prefix",
        "_topics",
        "_values",
        "replica",
    )

    def __init__(self, replica: str) -> None:
        if not isinstance(replica, str) or not replica:
            raise TypeError(f"a replica name must be a non-empty str, got {replica!r}")
        #: This replica's name.
        self.replica = replica
        self._context: dict[str, int] = {replica: 0}
        self._cloud: dict[str, set[int]] = {}
        # replica -> clock -> entry, every presence known (down replicas' included)
        self._values: dict[str, dict[int, Entry]] = {}
        self._mine: dict[int, Entry] = {}
        self._values[replica] = self._mine
        # topic -> key -> tag -> entry, each key's in the order they arrived here (list order)
        self._topics: dict[str, dict[str, dict[Tag, Entry]]] = {}
        # this replica's own presences: (topic, pid, key) -> entry; pid -> (topic, key)s
        self._local: dict[tuple[str, Hashable, str], Entry] = {}
        self._pids: dict[Hashable, dict[tuple[str, str], None]] = {}
        self._down: set[str] = set()
        self._gone: set[str] = set()
        self._delta_values: dict[Tag, Entry] = {}
        self._delta_cloud: set[Tag] = set()
        self._ref_prefix = _ref_prefix(replica)

    def __repr__(self) -> str:
        return (
            f"<presence.State {self.replica!r} presences={self.size} "
            f"clock={self._context[self.replica]}>"
        )

    # -- local changes --------------------------------------------------------------------

    def join(self, pid: Hashable, topic: str, key: str, meta: Mapping[str, Any]) -> Entry:
        """Add a presence of *pid* in *topic* as *key*; return it (its meta has a ``phx_ref``).

        Raises :class:`ValueError` if this replica tracks *pid* as *key* in *topic* already.
        """
        if (topic, pid, key) in self._local:
            raise ValueError(f"{pid!r} is already present in {topic!r} as {key!r}")
        return self._join(pid, topic, key, dict(meta))

    def leave(self, pid: Hashable, topic: str, key: str) -> Entry | None:
        """Remove the presence of *pid* in *topic* as *key*; return it, or ``None`` if absent."""
        entry = self._local.get((topic, pid, key))
        if entry is None:
            return None
        self._leave(entry)
        return entry

    def local_pids(self) -> list[Hashable]:
        """The pids this replica tracks (each once), in the order first tracked.

        >>> state.local_pids()
        [<0.12.0>]
        """
        return list(self._pids)

    def leave_all(self, pid: Hashable) -> list[Entry]:
        """Remove every presence of *pid* on this replica; return them in the order joined."""
        keys = self._pids.get(pid)
        if not keys:
            return []
        local = self._local
        left = [local[(topic, pid, key)] for topic, key in keys]
        for entry in left:
            self._leave(entry)
        return left

    def update(self, pid: Hashable, topic: str, key: str, meta: Mapping[str, Any]) -> tuple[
        Entry, Entry
    ]:
        """Replace the meta of a presence: a leave of the old dot and a join of a new one.

        The new meta carries ``"phx_ref_prev"``, the old ``phx_ref``. Returns ``(left,
        joined)``; raises :class:`LookupError` if there is no such presence.
        """
        old = self._local.get((topic, pid, key))
        if old is None:
            raise LookupError(f"{pid!r} is not present in {topic!r} as {key!r}")
        new_meta = dict(meta)
        new_meta[PHX_REF_PREV] = old.meta[PHX_REF]
        self._leave(old)
        return old, self._join(pid, topic, key, new_meta)

    def _join(self, pid: Hashable, topic: str, key: str, meta: Meta) -> Entry:
        clock = self._context[self.replica] + 1
        self._context[self.replica] = clock
        tag = (self.replica, clock)
        meta[PHX_REF] = f"{self._ref_prefix}{clock}"
        entry = Entry(topic, key, pid, meta, tag)
        self._mine[clock] = entry
        by_key = self._topics.get(topic)
        if by_key is None:
            by_key = self._topics[topic] = {}
        tags = by_key.get(key)
        if tags is None:
            tags = by_key[key] = {}
        tags[tag] = entry
        self._local[(topic, pid, key)] = entry
        keys = self._pids.get(pid)
        if keys is None:
            keys = self._pids[pid] = {}
        keys[(topic, key)] = None
        self._delta_values[tag] = entry
        self._delta_cloud.add(tag)
        return entry

    def _leave(self, entry: Entry) -> None:
        self._remove(entry)
        clock = self._context[self.replica] + 1
        self._context[self.replica] = clock
        tag = entry.tag
        self._delta_values.pop(tag, None)
        self._delta_cloud.add(tag)
        self._delta_cloud.add((self.replica, clock))

    def _remove(self, entry: Entry) -> None:
        replica, clock = tag = entry.tag
        del self._values[replica][clock]
        topic, key = entry.topic, entry.key
        by_key = self._topics[topic]
        tags = by_key[key]
        del tags[tag]
        if not tags:
            del by_key[key]
            if not by_key:
                del self._topics[topic]
        if replica == self.replica:
            pid = entry.pid
            del self._local[(topic, pid, entry.key)]
            keys = self._pids[pid]
            del keys[(topic, entry.key)]
            if not keys:
                del self._pids[pid]

    # -- replication ----------------------------------------------------------------------

    @property
    def clocks(self) -> dict[str, int]:
        """The contiguous part of the causal context: replica -> every dot up to this clock
        has been seen. A replica whose clock for X is behind X's own is missing deltas."""
        return dict(self._context)

    @property
    def cloud(self) -> frozenset[Tag]:
        """The rest of the causal context: dots seen beyond :attr:`clocks`, out of order
        (usually empty: a gap that a lost delta left)."""
        return frozenset((r, c) for r, s in self._cloud.items() for c in s)

    @property
    def has_delta(self) -> bool:
        """Whether local changes have been made since the last :meth:`take_delta`."""
        return bool(self._delta_cloud)

    def take_delta(self) -> Delta:
        """The local changes since the previous call, as a :class:`Delta`; starts a new one.

        Deltas can be delivered in any order, more than once, or late: each merge is
        correct on its own. One that is lost leaves a gap the receiver can see in
        :attr:`clocks`; it then asks for :meth:`extract`.
        """
        delta = Delta(self.replica, self._delta_values, {}, frozenset(self._delta_cloud))
        self._delta_values = {}
        self._delta_cloud = set()
        return delta

    def reset_delta(self) -> None:
        """Drop the local changes recorded since the last :meth:`take_delta` (a replica with
        nobody to send them to keeps its delta from growing forever)."""
        if self._delta_cloud:
            self._delta_values = {}
            self._delta_cloud = set()

    def extract(self, remote_clocks: Mapping[str, int] | None = None) -> Delta:
        """Everything this replica knows, as a :class:`Delta` (a state transfer).

        With *remote_clocks* (the receiver's :attr:`clocks`) the entries the receiver has
        seen already travel as bare dots (``elided``); merging such a delta into a replica
        that has not seen them raises :class:`ValueError` rather than losing them.
        """
        values: dict[Tag, Entry] = {}
        elided: list[Tag] = []
        for replica, by_clock in self._values.items():
            seen = 0 if remote_clocks is None else remote_clocks.get(replica, 0)
            for clock, entry in by_clock.items():
                if clock <= seen:
                    elided.append(entry.tag)
                else:
                    values[entry.tag] = entry
        cloud = frozenset((replica, clock) for replica, s in self._cloud.items() for clock in s)
        return Delta(self.replica, values, dict(self._context), cloud, frozenset(elided))

    def merge(self, remote: Delta | State) -> tuple[list[Entry], list[Entry]]:
        """Merge a delta (or another replica's whole state) into this one.

        Returns ``(joins, leaves)``: the presences that became visible and those that went
        away (presences of replicas marked down change silently). Merging the same delta
        twice changes nothing the second time.
        """
        if isinstance(remote, State):
            remote = remote.extract()
        context = self._context
        cloud = self._cloud
        values = self._values
        gone = self._gone
        me = self.replica
        for tag in remote.elided:
            if not self._covers(tag) and tag[0] not in gone:
                raise ValueError(
                    f"delta from {remote.replica!r} was extracted for a replica that had seen "
                    f"{tag!r}, but {me!r} has not; ask {remote.replica!r} for "
                    "extract() without clocks"
                )
        remote_values = remote.values
        remote_cloud = remote.cloud
        elided = remote.elided
        left: list[Entry] = []
        # Removes first, judged against the state as it was: local dots the remote has seen
        # and no longer holds. A replica is the authority on its own dots: what others say
        # about them is old news at best, so it is ignored.
        if remote.context:
            for replica, seen in remote.context.items():
                by_clock = values.get(replica)
                if by_clock and replica != me:
                    left.extend(
                        entry
                        for clock, entry in by_clock.items()
                        if clock <= seen
                        and entry.tag not in remote_values
                        and entry.tag not in elided
                    )
        for tag in remote_cloud:
            replica, clock = tag
            by_clock = values.get(replica)
            if (
                by_clock
                and replica != me
                and clock in by_clock
                and tag not in remote_values
                and tag not in elided
                and clock > remote.context.get(replica, 0)  # else counted above
            ):
                left.append(by_clock[clock])
        joined: list[Entry] = []
        for tag, entry in remote_values.items():
            replica, clock = tag
            if replica == me or replica in gone:
                continue
            if clock <= context.get(replica, 0):
                continue
            seen_beyond = cloud.get(replica)
            if seen_beyond is not None and clock in seen_beyond:
                continue
            joined.append(entry)
        for entry in left:
            self._remove(entry)
        topics = self._topics
        for entry in joined:  # self._insert, inlined: a transfer may bring many
            replica, clock = tag = entry.tag
            by_clock = values.get(replica)
            if by_clock is None:
                by_clock = values[replica] = {}
            by_clock[clock] = entry
            by_key = topics.get(entry.topic)
            if by_key is None:
                by_key = topics[entry.topic] = {}
            tags = by_key.get(entry.key)
            if tags is None:
                tags = by_key[entry.key] = {}
            tags[tag] = entry
        # The causal contexts join: the union of the dots seen.
        touched: set[str] = set()
        for replica, seen in remote.context.items():
            if replica != me and replica not in gone and seen > context.get(replica, 0):
                context[replica] = seen
                touched.add(replica)
        for replica, clock in remote_cloud:
            if replica == me or replica in gone or clock <= context.get(replica, 0):
                continue
            seen_beyond = cloud.get(replica)
            if seen_beyond is None:
                seen_beyond = cloud[replica] = set()
            seen_beyond.add(clock)
            touched.add(replica)
        for replica in touched:
            self._compact(replica)
        down = self._down
        if down:
            joined = [e for e in joined if e.tag[0] not in down]
            left = [e for e in left if e.tag[0] not in down]
        return joined, left

    def _covers(self, tag: Tag) -> bool:
        replica, clock = tag
        if clock <= self._context.get(replica, 0):
            return True
        seen_beyond = self._cloud.get(replica)
        return seen_beyond is not None and clock in seen_beyond

    def _compact(self, replica: str) -> None:
        """Fold the dots of *replica* that have become contiguous into its clock."""
        seen_beyond = self._cloud.get(replica)
        if seen_beyond is None:
            return
        clock = self._context.get(replica, 0)
        while clock + 1 in seen_beyond:
            clock += 1
        self._context[replica] = clock
        rest = {c for c in seen_beyond if c > clock}
        if rest:
            self._cloud[replica] = rest
        else:
            del self._cloud[replica]

    # -- replica liveness -----------------------------------------------------------------

    def replica_down(self, replica: str) -> list[Entry]:
        """Hide the presences of *replica* (it stopped answering); return them as leaves.

        They are kept, and merges keep updating them, in case it comes back.
        """
        self._check_other(replica, "mark down")
        if replica in self._down:
            return []
        self._down.add(replica)
        return self._visible_order(self._values.get(replica, {}).values())

    def replica_up(self, replica: str) -> list[Entry]:
        """Show the presences of *replica* again; return them as joins.

        They move to the end of their key's metas, where a client applying the joins puts
        them. A replica forgotten with :meth:`remove_replica` is admitted again, as a newcomer
        (what it sends from now on is merged; it has no presences here yet).
        """
        self._check_other(replica, "mark up")
        self._gone.discard(replica)
        if replica not in self._down:
            return []
        self._down.discard(replica)
        rejoined = self._visible_order(self._values.get(replica, {}).values())
        for entry in rejoined:
            tags = self._topics[entry.topic][entry.key]
            del tags[entry.tag]
            tags[entry.tag] = entry
        return rejoined

    def remove_replica(self, replica: str) -> list[Entry]:
        """Forget *replica* for good (permanently down): drop its presences and its clock, and
        ignore whatever still arrives from it. Returns the presences that were visible."""
        self._check_other(replica, "remove")
        entries = self._visible_order(self._values.get(replica, {}).values())
        for entry in list(self._values.get(replica, {}).values()):
            self._remove(entry)
        self._values.pop(replica, None)
        self._context.pop(replica, None)
        self._cloud.pop(replica, None)
        self._gone.add(replica)
        visible = replica not in self._down
        self._down.discard(replica)
        return entries if visible else []

    @property
    def down_replicas(self) -> frozenset[str]:
        """The replicas marked down."""
        return frozenset(self._down)

    @property
    def gone_replicas(self) -> frozenset[str]:
        """The replicas forgotten with :meth:`remove_replica` (and not admitted again)."""
        return frozenset(self._gone)

    def is_down(self, replica: str) -> bool:
        """Whether *replica* is marked down."""
        return replica in self._down

    def is_gone(self, replica: str) -> bool:
        """Whether *replica* was forgotten with :meth:`remove_replica`."""
        return replica in self._gone

    def _check_other(self, replica: str, what: str) -> None:
        if replica == self.replica:
            raise ValueError(f"replica {replica!r} cannot {what} itself")

    def _visible_order(self, entries: Iterable[Entry]) -> list[Entry]:
        """*entries* in list order."""
        wanted = {entry.tag for entry in entries}
        return [
            entry
            for by_key in self._topics.values()
            for tags in by_key.values()
            for tag, entry in tags.items()
            if tag in wanted
        ]

    # -- reading --------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many presences this state holds (those of down replicas included)."""
        return sum(len(by_clock) for by_clock in self._values.values())

    def entries(self, topic: str | None = None) -> list[Entry]:
        """The visible presences of *topic* (of every topic if ``None``), in list order."""
        if topic is None:
            return [entry for t in self._topics for entry in self._visible(t)]
        return list(self._visible(topic))

    def _visible(self, topic: str) -> Iterator[Entry]:
        by_key = self._topics.get(topic)
        if not by_key:
            return iter(())
        down = self._down
        return (
            entry
            for tags in by_key.values()
            for tag, entry in tags.items()
            if not down or tag[0] not in down
        )

    def topics(self) -> list[str]:
        """The topics with at least one presence (visible or not)."""
        return list(self._topics)

    def list(self, topic: str) -> Presences:
        """``{key: {"metas": [meta, ...]}}`` for *topic*: the ``presence_state`` payload.

        Each key's metas come in the order they arrived on this replica, which is the order a
        client that applied every diff has them in. The dicts are fresh copies.
        """
        listed: Presences = {}
        for key, tags in self._topics.get(topic, {}).items():
            metas = self._metas(tags)
            if metas:
                listed[key] = {"metas": metas}
        return listed

    def get_by_key(self, topic: str, key: str) -> Metas | None:
        """``{"metas": [...]}`` of *key* in *topic*, or ``None`` if it has no presence."""
        metas = self._metas(self._topics.get(topic, {}).get(key, {}))
        return {"metas": metas} if metas else None

    def _metas(self, tags: dict[Tag, Entry]) -> builtins.list[Meta]:
        down = self._down
        if not down:
            return [dict(entry.meta) for entry in tags.values()]
        return [dict(entry.meta) for tag, entry in tags.items() if tag[0] not in down]

    def get_by_pid(self, pid: Hashable, topic: str, key: str) -> Entry | None:
        """This replica's presence of *pid* in *topic* as *key*, if any."""
        return self._local.get((topic, pid, key))

    def tracks(self, pid: Hashable) -> bool:
        """Whether *pid* has any presence on this replica."""
        return pid in self._pids

    def copy(self) -> State:
        """An independent copy (entries are immutable and shared)."""
        other = State.__new__(State)
        other.replica = self.replica
        other._context = dict(self._context)
        other._cloud = {replica: set(s) for replica, s in self._cloud.items()}
        other._values = {replica: dict(v) for replica, v in self._values.items()}
        other._mine = other._values[self.replica]
        other._topics = {
            topic: {key: dict(tags) for key, tags in by_key.items()}
            for topic, by_key in self._topics.items()
        }
        other._local = dict(self._local)
        other._pids = {pid: dict(keys) for pid, keys in self._pids.items()}
        other._down = set(self._down)
        other._gone = set(self._gone)
        other._delta_values = dict(self._delta_values)
        other._delta_cloud = set(self._delta_cloud)
        other._ref_prefix = self._ref_prefix
        return other

    def dots(self) -> tuple[dict[str, int], frozenset[Tag], dict[Tag, Entry]]:
        """``(clocks, cloud, entries by tag)``: the state's content as plain data, for
        comparing replicas."""
        cloud = frozenset((r, c) for r, s in self._cloud.items() for c in s)
        values = {e.tag: e for by_clock in self._values.values() for e in by_clock.values()}
        return dict(self._context), cloud, values


def presence_diffs(joins: Iterable[Entry], leaves: Iterable[Entry]) -> dict[str, Diff]:
    """Group entries into one ``presence_diff`` payload per topic.

    Returns ``{topic: {"joins": {key: {"metas": [...]}}, "leaves": {...}}}``, metas in the
    order given (fresh dict copies), exactly the shape phoenix.js ``Presence.syncDiff`` takes.
    """
    diffs: dict[str, Diff] = {}
    for half, entries in (("joins", joins), ("leaves", leaves)):
        for entry in entries:
            diff = diffs.get(entry.topic)
            if diff is None:
                diff = diffs[entry.topic] = {"joins": {}, "leaves": {}}
            presences = diff[half]
            found = presences.get(entry.key)
            if found is None:
                presences[entry.key] = {"metas": [dict(entry.meta)]}
            else:
                found["metas"].append(dict(entry.meta))
    return diffs
