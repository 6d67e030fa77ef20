"""Merging a burst of presence changes into one diff per topic (presence._batch.DiffBatch).

The property: a phoenix.js client (tests/presence/phoenix_js.py) that got its
``presence_state`` at any moment of a burst and then applies the merged diff ends up with
exactly what the replica lists at the end of the burst, as it does applying the single diffs.
The histories are the CRDT model's (tests/presence/model.py): local joins, leaves,
updates and exits, remote deltas merged in, replicas marked down and up again (a presence
that leaves and comes back under the same ``phx_ref``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from presence import Entry, State, presence_diffs
from presence._batch import DiffBatch

from .model import OPS, Cluster
from .phoenix_js import sync_diff, sync_state

Lists = dict[str, dict[str, Any]]


def lists(state: State) -> Lists:
    return {topic: state.list(topic) for topic in state.topics()}


@dataclass
class Recording(Cluster):
    """The model cluster, keeping what replica 0 reports at each step and what it lists after."""

    steps: list[tuple[list[Entry], list[Entry]]] = field(default_factory=list)
    snapshots: list[Lists] = field(default_factory=lambda: [{}])

    def apply(self, i: int, joins: Iterable[Entry], leaves: Iterable[Entry]) -> None:
        joins, leaves = list(joins), list(leaves)
        super().apply(i, joins, leaves)
        if i == 0:
            self.steps.append((joins, leaves))
            self.snapshots.append(lists(self.replicas[0]))


def follow(snapshot: Lists, diffs: Iterable[dict[str, Any]]) -> Lists:
    """A client that got *snapshot* as each topic's presence_state, then applied *diffs*."""
    client = {topic: sync_state({}, listed) for topic, listed in snapshot.items()}
    for by_topic in diffs:
        for topic, diff in by_topic.items():
            sync_diff(client.setdefault(topic, {}), diff)
    return {topic: presences for topic, presences in client.items() if presences}


def test_the_last_change_of_each_presence_wins() -> None:
    state = State("a")
    alice = state.join(1, "t", "alice", {})
    bob = state.join(2, "t", "bob", {})
    state.leave(1, "t", "alice")
    left, carol = state.update(2, "t", "bob", {"away": True})
    batch = DiffBatch()
    batch.add([alice], [])
    batch.add([bob], [])
    batch.add([], [alice])
    batch.add([carol], [left])
    assert len(batch) == 3
    assert batch.take() == presence_diffs([carol], [alice, bob])
    assert len(batch) == 0
    assert batch.take() == {}


def test_a_presence_that_leaves_and_comes_back_is_a_join() -> None:
    a, b = State("a"), State("b")
    entry = b.join(1, "t", "bob", {})
    a.merge(b.take_delta())
    batch = DiffBatch()
    batch.add([], a.replica_down("b"))
    batch.add(a.replica_up("b"), [])
    assert batch.take() == presence_diffs([entry], [])


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 4), ops=OPS, data=st.data())
def test_a_merged_burst_gives_what_its_single_diffs_give(
    n: int, ops: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    cluster = Recording([State(f"r{i}") for i in range(n)])
    cluster.clients = [{} for _ in range(n)]
    for op in ops:
        cluster.step(op)
    steps = cluster.steps
    start = data.draw(st.integers(0, len(steps)), label="burst starts")
    end = data.draw(st.integers(start, len(steps)), label="burst ends")
    seen = data.draw(st.integers(start, end), label="presence_state taken")
    batch = DiffBatch()
    for joins, leaves in steps[start:end]:
        batch.add(joins, leaves)
    single = [presence_diffs(joins, leaves) for joins, leaves in steps[seen:end]]
    final = {topic: listed for topic, listed in cluster.snapshots[end].items() if listed}
    assert follow(cluster.snapshots[seen], single) == final
    assert follow(cluster.snapshots[seen], [batch.take()]) == final
