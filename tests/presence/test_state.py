"""The presence CRDT (presence.State), pure: no trio, no node.

Examples pin the shapes and the rules; Hypothesis drives 2 to 5 replicas through random
histories (joins, leaves, updates, deltas cut and delivered in any order, duplicated, late,
state transfers, replicas marked down and up) and checks after every step that the diffs each
replica reports, applied by phoenix.js's ``syncDiff`` (tests/presence/phoenix_js.py), give
exactly its ``list``; at the end every replica holds the same state. Merge is checked to be
commutative, associative and idempotent on the states those histories produce.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence import Delta, Entry, State, phx_ref, presence_diffs

from .model import OPS, by_ref, run

# -- examples ---------------------------------------------------------------------------------


def test_join_gives_a_phoenix_shaped_presence() -> None:
    state = State("a")
    entry = state.join(1, "room:lobby", "alice", {"status": "away"})
    assert entry.tag == ("a", 1)
    assert entry.phx_ref == phx_ref(("a", 1)) == entry.meta["phx_ref"]
    assert state.list("room:lobby") == {
        "alice": {"metas": [{"status": "away", "phx_ref": entry.phx_ref}]}
    }
    assert state.get_by_key("room:lobby", "alice") == {"metas": [dict(entry.meta)]}
    assert state.get_by_key("room:lobby", "bob") is None
    assert state.list("room:other") == {}


def test_join_copies_the_meta_and_list_returns_copies() -> None:
    state = State("a")
    meta = {"n": 1}
    state.join(1, "t", "k", meta)
    assert meta == {"n": 1}
    listed = state.list("t")
    listed["k"]["metas"][0]["n"] = 99
    assert state.list("t")["k"]["metas"][0]["n"] == 1


def test_one_key_can_have_several_presences_in_join_order() -> None:
    state = State("a")
    first = state.join(1, "t", "alice", {"tab": 1})
    second = state.join(2, "t", "alice", {"tab": 2})
    state.join(3, "t", "bob", {})
    assert [m["phx_ref"] for m in state.list("t")["alice"]["metas"]] == [
        first.phx_ref,
        second.phx_ref,
    ]


def test_joining_twice_is_refused() -> None:
    state = State("a")
    state.join(1, "t", "k", {})
    with pytest.raises(ValueError, match="already present in 't' as 'k'"):
        state.join(1, "t", "k", {})
    state.join(1, "t", "other-key", {})
    state.join(1, "other-topic", "k", {})


def test_leave_and_leave_all() -> None:
    state = State("a")
    a = state.join(1, "t1", "k", {})
    b = state.join(1, "t2", "k", {})
    c = state.join(2, "t1", "j", {})
    assert state.leave(1, "t1", "nope") is None
    assert state.leave(2, "t1", "j") == c
    assert state.leave(2, "t1", "j") is None
    assert state.leave_all(1) == [a, b]
    assert state.leave_all(1) == []
    assert state.entries() == []
    assert not state.tracks(1)


def test_update_is_a_leave_and_a_join_with_phx_ref_prev() -> None:
    state = State("a")
    old = state.join(1, "t", "k", {"status": "online"})
    left, joined = state.update(1, "t", "k", {"status": "away"})
    assert left == old
    assert joined.meta == {
        "status": "away",
        "phx_ref": joined.phx_ref,
        "phx_ref_prev": old.phx_ref,
    }
    assert joined.phx_ref != old.phx_ref
    assert state.list("t") == {"k": {"metas": [dict(joined.meta)]}}
    with pytest.raises(LookupError, match="not present"):
        state.update(2, "t", "k", {})


def test_every_change_moves_the_clock() -> None:
    state = State("a")
    state.join(1, "t", "k", {})
    state.update(1, "t", "k", {})
    state.leave(1, "t", "k")
    assert state.clocks == {"a": 4}  # join, leave + join, leave


def test_phx_refs_are_unique_per_tag_and_url_safe() -> None:
    tags = [(r, c) for r in ("a", "b", "a.1", "node1@host/3", "é") for c in (1, 2, 11)]
    refs = [phx_ref(tag) for tag in tags]
    assert len(set(refs)) == len(refs)
    assert all(set(ref) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
               for ref in refs)


def test_a_delta_carries_joins_and_removes() -> None:
    a, b = State("a"), State("b")
    alice = a.join(1, "t", "alice", {})
    bob = a.join(2, "t", "bob", {})
    assert b.merge(a.take_delta()) == ([alice, bob], [])
    assert not a.has_delta
    a.leave(1, "t", "alice")
    delta = a.take_delta()
    assert dict(delta.values) == {}
    assert delta.cloud == {("a", 1), ("a", 3)}
    assert delta.covers(("a", 1))
    assert not delta.covers(("a", 2))
    assert delta.size == 2
    assert b.merge(delta) == ([], [alice])
    assert b.list("t") == a.list("t")
    assert b.clocks == {"a": 3, "b": 0}


def test_reset_delta_forgets_the_pending_changes() -> None:
    a = State("a")
    a.join(1, "t", "x", {})
    a.reset_delta()
    assert not a.has_delta
    a.leave(1, "t", "x")
    assert a.take_delta().cloud == {("a", 1), ("a", 2)}
    a.reset_delta()
    assert a.take_delta().size == 0


def test_deltas_out_of_order_and_twice() -> None:
    a, b = State("a"), State("b")
    alice = a.join(1, "t", "alice", {})
    first = a.take_delta()
    a.leave(1, "t", "alice")
    second = a.take_delta()
    assert b.merge(second) == ([], [])  # the remove arrives first: alice never shows up
    assert b.merge(first) == ([], [])
    assert b.merge(first) == ([], [])
    assert b.list("t") == {}
    assert b.clocks["a"] == 2
    assert alice.tag not in b.dots()[2]


def test_a_remove_seen_across_a_gap_is_not_undone_by_the_late_join() -> None:
    a, b = State("a"), State("b")
    a.join(1, "t", "x", {})
    d1 = a.take_delta()
    a.join(2, "t", "y", {})
    d2 = a.take_delta()
    a.leave(2, "t", "y")
    d3 = a.take_delta()
    assert b.merge(d3) == ([], [])  # y's remove, while x's join (dot 1) is still missing
    assert b.merge(d2) == ([], [])  # y's join comes late: already removed
    assert [e.key for e in b.merge(d1)[0]] == ["x"]
    assert b.dots() == ({"a": 3, "b": 0}, frozenset(), {("a", 1): a.entries()[0]})


def test_a_gap_stays_in_the_cloud_until_it_is_filled() -> None:
    a, b = State("a"), State("b")
    a.join(1, "t", "x", {})
    first = a.take_delta()
    a.join(2, "t", "y", {})
    b.merge(a.take_delta())
    clocks, cloud, _ = b.dots()
    assert clocks.get("a", 0) == 0
    assert cloud == {("a", 2)}
    b.merge(first)
    clocks, cloud, _ = b.dots()
    assert clocks["a"] == 2
    assert cloud == frozenset()


def test_extract_against_clocks_elides_what_the_receiver_has() -> None:
    a, b, c = State("a"), State("b"), State("c")
    x = a.join(1, "t", "x", {})
    b.merge(a.extract())
    y = a.join(2, "t", "y", {})
    transfer = a.extract(b.clocks)
    assert dict(transfer.values) == {y.tag: y}
    assert transfer.elided == {x.tag}
    assert b.merge(transfer) == ([y], [])
    with pytest.raises(ValueError, match="ask 'a' for extract\\(\\) without clocks"):
        c.merge(transfer)
    assert c.merge(a.extract()) == ([x, y], [])


def test_an_elided_entry_that_the_receiver_removed_stays_removed() -> None:
    a, b = State("a"), State("b")
    x = a.join(1, "t", "x", {})
    b.merge(a.take_delta())
    before_leave = a.copy()
    a.leave(1, "t", "x")
    b.merge(a.take_delta())
    stale = before_leave.extract(b.clocks)  # x travels as a bare dot: b has seen it
    assert stale.elided == {x.tag}
    assert b.merge(stale) == ([], [])
    assert b.entries() == []


def test_a_transfer_from_a_replica_with_a_gap_keeps_what_it_elides() -> None:
    a, gapped, full = State("a"), State("gapped"), State("full")
    a.join(1, "t", "x", {})
    d1 = a.take_delta()
    y = a.join(2, "t", "y", {})
    d2 = a.take_delta()
    gapped.merge(d2)  # has seen dot 2 (in its cloud), not dot 1
    full.merge(d1)
    full.merge(d2)
    transfer = gapped.extract(full.clocks)
    assert y.tag in transfer.elided
    assert y.tag in transfer.cloud
    assert full.merge(transfer) == ([], [])
    assert [e.key for e in full.entries()] == ["x", "y"]


def test_merging_a_whole_state() -> None:
    a, b = State("a"), State("b")
    x = a.join(1, "t", "x", {})
    y = b.join(1, "t", "y", {})
    assert a.merge(b) == ([y], [])
    assert b.merge(a) == ([x], [])
    assert a.dots() == b.dots()


def test_a_replica_never_learns_its_own_dots_from_others() -> None:
    a, b = State("a"), State("b")
    a.join(1, "t", "x", {})
    b.merge(a.take_delta())
    forged = Delta("b", {("a", 7): Entry("t", "z", 9, {"phx_ref": "f"}, ("a", 7))}, {"a": 7},
                   frozenset())
    assert a.merge(forged) == ([], [])
    assert a.clocks["a"] == 1
    assert a.entries() == b.entries()


def test_replica_down_hides_and_up_shows_again() -> None:
    a, b = State("a"), State("b")
    mine = a.join(1, "t", "mine", {})
    x = b.join(1, "t", "x", {})
    a.merge(b.take_delta())
    assert a.replica_down("b") == [x]
    assert a.replica_down("b") == []
    assert a.down_replicas == {"b"}
    assert a.list("t") == {"mine": {"metas": [dict(mine.meta)]}}
    y = b.join(2, "t", "y", {})
    b.leave(1, "t", "x")
    assert a.merge(b.take_delta()) == ([], [])  # changes of a down replica are silent
    assert a.replica_up("b") == [y]
    assert a.replica_up("b") == []
    assert list(a.list("t")) == ["mine", "y"]
    with pytest.raises(ValueError, match="cannot mark down itself"):
        a.replica_down("a")


def test_replica_up_moves_its_presences_to_the_end() -> None:
    a, b = State("a"), State("b")
    x = b.join(1, "t", "k", {})
    a.merge(b.take_delta())
    mine = a.join(1, "t", "k", {})
    a.replica_down("b")
    a.replica_up("b")
    assert [m["phx_ref"] for m in a.list("t")["k"]["metas"]] == [mine.phx_ref, x.phx_ref]


def test_remove_replica_forgets_it_for_good() -> None:
    a, b = State("a"), State("b")
    x = b.join(1, "t", "x", {})
    late = b.take_delta()
    assert a.merge(b.extract()) == ([x], [])
    assert a.remove_replica("b") == [x]
    assert a.entries() == []
    assert "b" not in a.clocks
    assert a.merge(late) == ([], [])
    assert a.merge(b.extract()) == ([], [])
    assert a.entries() == []
    c = State("c")
    c.merge(b)
    c.replica_down("b")
    assert c.remove_replica("b") == []  # already reported as left when it went down


def test_a_removed_replica_is_not_removed_from_its_peers_own_state() -> None:
    """Forgetting a replica drops its clock too, so a transfer from the forgetter does not
    look like a remove to the forgotten replica (a healed partition)."""
    a, b = State("a"), State("b")
    x = a.join(1, "t", "x", {})
    b.merge(a.extract())
    b.remove_replica("a")
    assert a.merge(b.extract()) == ([], [])
    assert a.entries() == [x]


def test_presence_diffs_groups_by_topic_and_key() -> None:
    state = State("a")
    a1 = state.join(1, "t1", "a", {})
    a2 = state.join(2, "t1", "a", {})
    b1 = state.join(1, "t2", "b", {})
    diffs = presence_diffs([a1, a2, b1], [a1])
    assert diffs == {
        "t1": {
            "joins": {"a": {"metas": [dict(a1.meta), dict(a2.meta)]}},
            "leaves": {"a": {"metas": [dict(a1.meta)]}},
        },
        "t2": {"joins": {"b": {"metas": [dict(b1.meta)]}}, "leaves": {}},
    }
    json.dumps(diffs)


def test_copy_is_independent() -> None:
    a = State("a")
    a.join(1, "t", "x", {})
    b = a.copy()
    b.join(2, "t", "y", {})
    a.leave(1, "t", "x")
    assert [e.key for e in a.entries()] == []
    assert [e.key for e in b.entries()] == ["x", "y"]
    assert repr(a) == "<presence.State 'a' presences=0 clock=2>"
    assert repr(b) == "<presence.State 'a' presences=2 clock=2>"


def test_state_needs_a_replica_name() -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        State("")


# -- the model: replicas, a network of deltas, and a phoenix.js client per replica ---------


def content(state: State) -> tuple[dict[str, int], frozenset[tuple[str, int]], dict[Any, Any]]:
    """What a replica knows, without who it is: dots seen and presences held."""
    clocks, cloud, values = state.dots()
    return {r: c for r, c in clocks.items() if c}, cloud, values


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(n=st.integers(2, 5), ops=OPS, auto_cut=st.booleans(), data=st.data())
def test_any_delivery_order_duplication_or_delay_converges(
    n: int, ops: list[tuple[Any, ...]], auto_cut: bool, data: st.DataObject
) -> None:
    cluster = run(n, ops, auto_cut=auto_cut)
    cluster.settle(data)
    first = content(cluster.replicas[0])
    expected = cluster.expected()
    for state in cluster.replicas:
        assert content(state) == first
        for topic in cluster.topics() | set(expected):
            assert by_ref(state.list(topic)) == expected.get(topic, {})


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 5), ops=OPS, data=st.data())
def test_a_replica_marked_down_contributes_no_presences(
    n: int, ops: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    cluster = run(n, ops)
    cluster.settle(data)
    observer = data.draw(st.integers(0, n - 1))
    victim = data.draw(st.integers(0, n - 1).filter(lambda v: v != observer))
    watcher, gone = cluster.replicas[observer], f"r{victim}"
    cluster.apply(observer, [], watcher.replica_down(gone))

    def without_victim() -> None:
        for topic in cluster.topics():
            listed = watcher.list(topic)
            assert all(
                m["phx_ref"] not in {e.phx_ref for e in cluster.own(victim)}
                for presence in listed.values()
                for m in presence["metas"]
            )
            others = {
                k: [m for m in metas if json.loads(m)["phx_ref"] not in victim_refs]
                for k, metas in cluster.expected().get(topic, {}).items()
            }
            assert by_ref(listed) == {k: v for k, v in others.items() if v}

    victim_refs = {e.phx_ref for e in cluster.own(victim)}
    without_victim()
    # The victim keeps changing; its deltas reach the observer but stay hidden.
    more = data.draw(OPS)
    for op in more:
        if op[0] in ("join", "leave", "update", "leave_all"):
            cluster.step((op[0], victim, *op[2:]))
    delta = cluster.replicas[victim].take_delta() if cluster.replicas[victim].has_delta else None
    if delta is not None:
        assert watcher.merge(delta) == ([], [])
    victim_refs = {e.phx_ref for e in cluster.own(victim)}
    without_victim()
    cluster.apply(observer, watcher.replica_up(gone), [])
    assert {t: by_ref(watcher.list(t)) for t in cluster.topics()} == {
        t: cluster.expected().get(t, {}) for t in cluster.topics()
    }


STATES = st.tuples(st.integers(3, 5), OPS, st.integers(0, 4), st.integers(0, 4), st.integers(0, 4))


def three_states(drawn: tuple[int, list[tuple[Any, ...]], int, int, int]) -> list[State]:
    n, ops, i, j, k = drawn
    cluster = run(n, ops)
    return [cluster.replicas[x % n].copy() for x in (i, j, k)]


def merged(*states: State) -> State:
    result = states[0].copy()
    for other in states[1:]:
        result.merge(other)
    return result


@settings(max_examples=300, deadline=None)
@given(STATES)
def test_merge_is_commutative(drawn: tuple[int, list[tuple[Any, ...]], int, int, int]) -> None:
    a, b, _ = three_states(drawn)
    assert content(merged(a, b)) == content(merged(b, a))


@settings(max_examples=300, deadline=None)
@given(STATES)
def test_merge_is_associative(drawn: tuple[int, list[tuple[Any, ...]], int, int, int]) -> None:
    a, b, c = three_states(drawn)
    assert content(merged(merged(a, b), c)) == content(merged(a, merged(b, c)))


@settings(max_examples=300, deadline=None)
@given(STATES)
def test_merge_is_idempotent(drawn: tuple[int, list[tuple[Any, ...]], int, int, int]) -> None:
    a, b, _ = three_states(drawn)
    assert content(merged(a, a)) == content(a)
    ab = merged(a, b)
    again = ab.copy()
    assert again.merge(b) == ([], [])
    assert again.merge(a) == ([], [])
    assert content(again) == content(ab)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 5), ops=OPS)
def test_deltas_merge_like_the_states_they_came_from(n: int, ops: list[tuple[Any, ...]]) -> None:
    """A replica that gets every delta of another ends up as if it had merged its state."""
    cluster = run(n, [op for op in ops if op[0] not in ("deliver", "transfer")])
    source = cluster.replicas[0]
    if source.has_delta:
        cluster.pool.append(source.take_delta())
    by_deltas, by_state = State("x"), State("y")
    for delta in cluster.pool:
        if delta.replica == source.replica:
            by_deltas.merge(delta)
    by_state.merge(source)
    assert content(by_deltas) == content(by_state)
