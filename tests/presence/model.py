"""The model the presence properties run: replicas, a network of deltas, and a phoenix.js
client per replica.

A :class:`Cluster` holds replicas (:class:`presence.State`) and applies operations drawn from
:data:`OPS` (joins, leaves, updates, deltas cut and delivered in any order, state transfers,
replicas marked down and up); after every step each replica's diffs, applied by phoenix.js's
``syncDiff`` (:mod:`tests.presence.phoenix_js`), must give exactly its ``list``.

>>> cluster = run(3, [("join", 0, 1, "t0", "alice", 0), ("cut", 0), ("deliver", 0, 1)])
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from presence import Delta, Entry, State, presence_diffs

from .phoenix_js import sync_diff, sync_state


def by_ref(listed: dict[str, Any]) -> dict[str, list[Any]]:
    """A list with each key's metas in phx_ref order (replicas agree on sets, and each keeps
    its own arrival order)."""
    return {
        key: sorted(json.dumps(m, sort_keys=True) for m in presence["metas"])
        for key, presence in listed.items()
    }


@dataclass
class Cluster:
    replicas: list[State]
    clients: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    pool: list[Delta] = field(default_factory=list)
    #: Cut a delta after every local change, so that out-of-order deliveries leave gaps.
    auto_cut: bool = False

    @classmethod
    def of(cls, n: int, *, auto_cut: bool = False) -> Cluster:
        cluster = cls([State(f"r{i}") for i in range(n)], auto_cut=auto_cut)
        cluster.clients = [{} for _ in range(n)]
        return cluster

    def apply(self, i: int, joins: Iterable[Entry], leaves: Iterable[Entry]) -> None:
        """Push what replica *i* reported to its client, then check the client sees exactly
        what ``list`` says, in the same order."""
        for topic, diff in presence_diffs(joins, leaves).items():
            sync_diff(self.clients[i].setdefault(topic, {}), diff)
        state = self.replicas[i]
        for topic in set(self.clients[i]) | set(state.topics()):
            listed = state.list(topic)
            assert self.clients[i].get(topic, {}) == listed, (i, topic)
            assert sync_state({}, listed) == listed
            for entry in state.entries(topic):
                assert entry.replica not in state.down_replicas

    def own(self, i: int) -> list[Entry]:
        state = self.replicas[i]
        return [e for e in state.entries() if e.replica == state.replica]

    def step(self, op: tuple[Any, ...]) -> None:
        n = len(self.replicas)
        kind, r = op[0], op[1] % n
        state = self.replicas[r]
        if kind == "join":
            _, _, pid, topic, key, v = op
            if state.get_by_pid(pid, topic, key) is None:
                self.apply(r, [state.join(pid, topic, key, {"v": v})], [])
        elif kind in ("leave", "update"):
            own = self.own(r)
            if own:
                entry = own[op[2] % len(own)]
                if kind == "leave":
                    assert state.leave(entry.pid, entry.topic, entry.key) == entry
                    self.apply(r, [], [entry])
                else:
                    left, joined = state.update(entry.pid, entry.topic, entry.key, {"v": op[3]})
                    self.apply(r, [joined], [left])
        elif kind == "leave_all":
            self.apply(r, [], state.leave_all(op[2]))
        if (self.auto_cut or kind == "cut") and state.has_delta:
            self.pool.append(state.take_delta())
        if kind == "deliver":
            if self.pool:
                self.deliver(self.pool[op[1] % len(self.pool)], op[2] % n)
        elif kind == "transfer":
            to = op[2] % n
            receiver = self.replicas[to]
            self.apply(to, *receiver.merge(state.extract(receiver.clocks if op[3] else None)))
        elif kind in ("down", "up"):
            other = op[2] % n
            if other != r:
                if kind == "down":
                    self.apply(r, [], state.replica_down(f"r{other}"))
                else:
                    self.apply(r, state.replica_up(f"r{other}"), [])

    def deliver(self, delta: Delta, to: int) -> None:
        self.apply(to, *self.replicas[to].merge(delta))

    def cut_all(self) -> None:
        for state in self.replicas:
            if state.has_delta:
                self.pool.append(state.take_delta())

    def all_up(self) -> None:
        for i, state in enumerate(self.replicas):
            for other in sorted(state.down_replicas):
                self.apply(i, state.replica_up(other), [])

    def settle(self, data: st.DataObject) -> None:
        """Cut every replica's delta, then deliver every delta of the pool to every replica,
        each exactly once and a drawn few of them again, in a drawn order; bring every
        replica back up everywhere."""
        self.cut_all()
        pairs = [(d, to) for d in range(len(self.pool)) for to in range(len(self.replicas))]
        extra = data.draw(st.lists(st.sampled_from(pairs), max_size=20)) if pairs else []
        for d, to in data.draw(st.permutations(pairs + extra)):
            self.deliver(self.pool[d], to)
        self.all_up()

    def expected(self) -> dict[str, dict[str, list[Any]]]:
        """What every replica must list once settled: each replica's own presences."""
        own = [e for i in range(len(self.replicas)) for e in self.own(i)]
        listed: dict[str, dict[str, Any]] = {}
        for entry in own:
            metas = listed.setdefault(entry.topic, {}).setdefault(entry.key, {"metas": []})
            metas["metas"].append(dict(entry.meta))
        return {topic: by_ref(presences) for topic, presences in listed.items()}

    def topics(self) -> set[str]:
        return {topic for state in self.replicas for topic in state.topics()}


PIDS = st.integers(0, 3)
TOPICS = st.sampled_from(["t0", "t1", "t2"])
KEYS = st.sampled_from(["alice", "bob", "carol"])
R = st.integers(0, 4)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("join"), R, PIDS, TOPICS, KEYS, st.integers(0, 9)),
        st.tuples(st.just("join"), R, PIDS, TOPICS, KEYS, st.integers(0, 9)),
        st.tuples(st.just("leave"), R, st.integers(0, 20)),
        st.tuples(st.just("update"), R, st.integers(0, 20), st.integers(0, 9)),
        st.tuples(st.just("leave_all"), R, PIDS),
        st.tuples(st.just("cut"), R),
        st.tuples(st.just("cut"), R),
        st.tuples(st.just("deliver"), st.integers(0, 100), R),
        st.tuples(st.just("deliver"), st.integers(0, 100), R),
        st.tuples(st.just("transfer"), R, R, st.booleans()),
        st.tuples(st.just("down"), R, R),
        st.tuples(st.just("up"), R, R),
    ),
    max_size=60,
)


def run(n: int, ops: list[tuple[Any, ...]], *, auto_cut: bool = False) -> Cluster:
    cluster = Cluster.of(n, auto_cut=auto_cut)
    for op in ops:
        cluster.step(op)
    return cluster
