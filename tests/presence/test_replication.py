"""Replication between trackers (presence._replication), driven without I/O.

A simulated cluster runs one :class:`Replication` per node and a network with Redis's
guarantees (each sender's messages reach each receiver in order; a node that is paused gets
them late, a dead node never). Hypothesis draws schedules of tracks, untracks, updates,
exits, ticks, deliveries, lost messages, pauses, kills and restarts. After every step each
node's phoenix.js client (the diffs it was given, applied by ``syncDiff``) shows exactly what
``list`` shows; once the network heals and goes quiet, every live node lists exactly the
presences the live nodes track.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beam
from presence import Delta, Entry, State, presence_diffs
from presence._replication import (
    Config,
    DeltaGenerations,
    GracefulPermdown,
    Heartbeat,
    Outcome,
    ReplicaRef,
    Replication,
    TransferAck,
    TransferReq,
    append_clock,
    dominates,
)
from presence._wire import pack, unpack

from .model import by_ref
from .phoenix_js import sync_diff

CONFIG = Config(
    broadcast_period=1.0,
    max_silent_periods=3,
    down_period=6.0,
    permdown_period=30.0,
    clock_sample_periods=2,
    max_delta_sizes=(2, 5, 20),
)
TOPICS = ("t0", "t1")


class _AnyRef(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    __hash__ = str.__hash__


ANY_REF = _AnyRef()


# -- the simulated cluster ----------------------------------------------------------------------


@dataclass
class Node:
    name: str
    core: Replication
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    paused: bool = False

    @property
    def state(self) -> State:
        return self.core.state

    def show(self, joins: list[Entry], leaves: list[Entry]) -> None:
        for topic, diff in presence_diffs(joins, leaves).items():
            sync_diff(self.clients.setdefault(topic, {}), diff)

    def check(self) -> None:
        """The client shows exactly what list shows."""
        for topic in set(self.clients) | set(self.state.topics()):
            assert self.clients.get(topic, {}) == self.state.list(topic), (self.name, topic)

    def own(self) -> list[Entry]:
        return [e for e in self.state.entries() if e.replica == self.state.replica]


@dataclass
class Cluster:
    nodes: dict[str, Node] = field(default_factory=dict)
    #: (from, to) -> messages in flight, in order
    links: dict[tuple[str, str], deque[Any]] = field(default_factory=dict)
    now: float = 0.0
    incarnations: int = 0
    #: every message sent, in order
    sent: list[Any] = field(default_factory=list)

    def start(self, name: str) -> None:
        self.incarnations += 1
        me = ReplicaRef(name, f"{name}i{self.incarnations}")
        state = State(f"{me.incarnation}/0")
        self.nodes[name] = Node(name, Replication(state, me, 0, CONFIG, now=self.now))

    def kill(self, name: str) -> None:
        self.nodes.pop(name, None)
        for link in [link for link in self.links if name in link]:
            del self.links[link]

    def run(self, node: Node, outcome: Outcome) -> None:
        for joins, leaves in outcome.changes:
            node.show(joins, leaves)
        self.sent.extend(outcome.broadcasts)
        self.sent.extend(message for _, message in outcome.directs)
        for message in outcome.broadcasts:
            for other in self.nodes:
                if other != node.name:
                    self.links.setdefault((node.name, other), deque()).append(message)
        for to, message in outcome.directs:
            if to in self.nodes and to != node.name:
                self.links.setdefault((node.name, to), deque()).append(message)
        node.check()

    def tick(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is not None and not node.paused:
            node.core.set_node(name)
            self.run(node, node.core.tick(self.now))

    def deliver(self, link: tuple[str, str], *, drop: bool = False) -> None:
        queue = self.links.get(link)
        node = self.nodes.get(link[1])
        if not queue or node is None or node.paused:
            return
        message = queue.popleft()
        if not drop:
            self.run(node, node.core.receive(message, self.now))

    def deliver_all(self) -> None:
        while True:
            ready = [link for link, q in self.links.items() if q and not self.nodes[link[1]].paused]
            if not ready:
                return
            for link in ready:
                self.deliver(link)

    def round(self) -> None:
        self.now += CONFIG.broadcast_period
        for name in sorted(self.nodes):
            self.tick(name)
        self.deliver_all()

    # local changes, as the shard makes them

    def track(self, name: str, pid: int, topic: str, key: str, v: int) -> None:
        node = self.nodes.get(name)
        if node is None or node.state.get_by_pid(pid, topic, key) is not None:
            return
        entry = node.state.join(pid, topic, key, {"v": v})
        node.core.local_change()
        self.run(node, Outcome(changes=[([entry], [])]))

    def untrack(self, name: str, k: int) -> None:
        node = self.nodes.get(name)
        if node is None or not node.own():
            return
        own = node.own()
        entry = own[k % len(own)]
        node.state.leave(entry.pid, entry.topic, entry.key)
        node.core.local_change()
        self.run(node, Outcome(changes=[([], [entry])]))

    def update(self, name: str, k: int, v: int) -> None:
        node = self.nodes.get(name)
        if node is None or not node.own():
            return
        own = node.own()
        entry = own[k % len(own)]
        left, joined = node.state.update(entry.pid, entry.topic, entry.key, {"v": v})
        node.core.local_change()
        self.run(node, Outcome(changes=[([joined], [left])]))

    def exit(self, name: str, pid: int) -> None:
        node = self.nodes.get(name)
        if node is not None:
            left = node.state.leave_all(pid)
            node.core.local_change()
            self.run(node, Outcome(changes=[([], left)]))

    def step(self, op: tuple[Any, ...]) -> None:
        kind, name = op[0], f"n{op[1]}"
        if kind == "track":
            self.track(name, *op[2:])
        elif kind == "untrack":
            self.untrack(name, op[2])
        elif kind == "update":
            self.update(name, op[2], op[3])
        elif kind == "exit":
            self.exit(name, op[2])
        elif kind == "tick":
            self.now += op[2]
            self.tick(name)
        elif kind == "nodedown":  # the cluster declared a node down (maybe wrongly: alive)
            node = self.nodes.get(name)
            if node is not None:
                self.run(node, node.core.node_down(f"n{op[2]}"))
        elif kind == "early":  # as the shard does after publishing a batch of local changes
            node = self.nodes.get(name)
            if node is not None and not node.paused:
                node.core.set_node(name)
                self.run(node, node.core.send_early(self.now))
        elif kind == "round":
            self.round()
        elif kind in ("deliver", "drop"):
            links = sorted(link for link, q in self.links.items() if q)
            if links:
                self.deliver(links[op[2] % len(links)], drop=kind == "drop")
        elif kind == "kill":
            self.kill(name)
        elif kind == "restart":
            if name not in self.nodes:
                self.start(name)
        elif kind == "pause" and name in self.nodes:
            self.nodes[name].paused = True
        elif kind == "resume" and name in self.nodes:
            self.nodes[name].paused = False
        elif kind == "wait":
            self.now += op[2]

    def settle(self, rounds: int = 40) -> None:
        """Heal the network and let it run until quiet."""
        for node in self.nodes.values():
            node.paused = False
        for _ in range(rounds):
            self.round()

    def expected(self) -> dict[str, dict[str, list[str]]]:
        listed: dict[str, dict[str, Any]] = {}
        for node in self.nodes.values():
            for entry in node.own():
                metas = listed.setdefault(entry.topic, {}).setdefault(entry.key, {"metas": []})
                metas["metas"].append(dict(entry.meta))
        return {topic: by_ref(presences) for topic, presences in listed.items()}


def cluster_of(n: int) -> Cluster:
    cluster = Cluster()
    for i in range(n):
        cluster.start(f"n{i}")
    return cluster


N = st.integers(0, 2)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("track"), N, st.integers(0, 3), st.sampled_from(TOPICS),
                  st.sampled_from(["alice", "bob"]), st.integers(0, 9)),
        st.tuples(st.just("track"), N, st.integers(0, 3), st.sampled_from(TOPICS),
                  st.sampled_from(["alice", "bob"]), st.integers(0, 9)),
        st.tuples(st.just("untrack"), N, st.integers(0, 20)),
        st.tuples(st.just("update"), N, st.integers(0, 20), st.integers(0, 9)),
        st.tuples(st.just("exit"), N, st.integers(0, 3)),
        st.tuples(st.just("tick"), N, st.sampled_from([0.0, 0.5, 1.0])),
        st.tuples(st.just("early"), N),
        st.tuples(st.just("early"), N),
        st.tuples(st.just("nodedown"), N, N),
        st.tuples(st.just("round"), N),
        st.tuples(st.just("round"), N),
        st.tuples(st.just("deliver"), N, st.integers(0, 20)),
        st.tuples(st.just("deliver"), N, st.integers(0, 20)),
        st.tuples(st.just("drop"), N, st.integers(0, 20)),
        st.tuples(st.just("kill"), N),
        st.tuples(st.just("restart"), N),
        st.tuples(st.just("restart"), N),
        st.tuples(st.just("pause"), N),
        st.tuples(st.just("resume"), N),
        st.tuples(st.just("wait"), N, st.sampled_from([3.0, 7.0, 31.0])),
    ),
    max_size=60,
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_replicas_converge_whatever_the_schedule(ops: list[tuple[Any, ...]]) -> None:
    cluster = cluster_of(3)
    for op in ops:
        cluster.step(op)
    cluster.settle()
    expected = cluster.expected()
    for node in cluster.nodes.values():
        listed = {topic: by_ref(node.state.list(topic)) for topic in node.state.topics()}
        assert {t: p for t, p in listed.items() if p} == expected, node.name
        assert not node.state.down_replicas - set(node.core.strangers)
        node.check()


# -- scenarios ---------------------------------------------------------------------------------


def test_a_join_reaches_the_other_nodes_at_the_next_tick() -> None:
    cluster = cluster_of(3)
    cluster.round()  # they hear of each other
    cluster.round()
    cluster.track("n0", 1, "t0", "alice", 1)
    assert cluster.nodes["n1"].state.list("t0") == {}
    cluster.round()
    ref = cluster.nodes["n0"].state.list("t0")["alice"]["metas"][0]["phx_ref"]
    for node in cluster.nodes.values():
        assert node.state.list("t0") == {"alice": {"metas": [{"v": 1, "phx_ref": ref}]}}


def test_a_change_after_a_quiet_spell_goes_at_once_and_the_rest_of_a_burst_at_the_tick() -> None:
    cluster = cluster_of(2)
    cluster.round()  # they hear of each other
    cluster.round()
    n0, n1 = cluster.nodes["n0"], cluster.nodes["n1"]
    cluster.now += CONFIG.broadcast_period  # quiet for a whole period
    cluster.track("n0", 1, "t0", "alice", 1)
    sent = n0.core.send_early(cluster.now)
    assert [type(m) for m in sent.broadcasts] == [Heartbeat]
    cluster.run(n0, sent)
    cluster.deliver_all()
    assert set(n1.state.list("t0")) == {"alice"}  # before any tick
    # The next change within the period waits for the tick: a burst goes in one delta.
    cluster.now += CONFIG.broadcast_period / 2
    cluster.track("n0", 2, "t0", "bob", 1)
    cluster.track("n0", 3, "t0", "carol", 1)
    assert n0.core.send_early(cluster.now).broadcasts == []
    assert not n0.core.early(cluster.now)
    cluster.deliver_all()
    assert set(n1.state.list("t0")) == {"alice"}
    outcome = n0.core.tick(cluster.now)
    assert len([m for m in outcome.broadcasts if type(m) is Heartbeat and m.delta]) == 1
    cluster.run(n0, outcome)
    cluster.deliver_all()
    assert set(n1.state.list("t0")) == {"alice", "bob", "carol"}
    # A tick that sent a delta counts as activity too.
    cluster.now += CONFIG.broadcast_period / 2
    cluster.track("n0", 4, "t0", "dave", 1)
    assert not n0.core.early(cluster.now)
    cluster.now += CONFIG.broadcast_period / 2
    assert n0.core.early(cluster.now)  # a period after the tick's delta: quiet again


def test_alone_a_replica_has_nothing_to_send_early() -> None:
    cluster = cluster_of(1)
    cluster.now += 10 * CONFIG.broadcast_period
    cluster.track("n0", 1, "t0", "alice", 1)
    assert not cluster.nodes["n0"].core.early(cluster.now)
    assert cluster.nodes["n0"].core.send_early(cluster.now).broadcasts == []


def test_alone_a_replica_keeps_no_delta_and_a_newcomer_gets_the_state_by_transfer() -> None:
    cluster = cluster_of(1)
    for i in range(30):
        cluster.track("n0", i, "t0", f"k{i}", i)
    assert not cluster.nodes["n0"].state.has_delta
    cluster.start("n1")
    for _ in range(4):
        cluster.round()
    assert by_ref(cluster.nodes["n1"].state.list("t0")) == by_ref(
        cluster.nodes["n0"].state.list("t0")
    )
    assert len(cluster.nodes["n1"].state.list("t0")) == 30


def test_a_missed_delta_comes_through_a_transfer_of_a_third_replicas_generation() -> None:
    cluster = cluster_of(3)
    for _ in range(3):
        cluster.round()
    cluster.track("n0", 1, "t0", "alice", 1)
    cluster.round()  # n0 now serves transfers from its generations
    cluster.track("n2", 2, "t0", "carol", 1)
    cluster.tick("n2")
    cluster.deliver(("n2", "n0"))
    cluster.deliver(("n2", "n1"), drop=True)  # n1 misses carol's join
    for _ in range(8):
        cluster.round()
    acks = [m for m in cluster.sent if type(m) is TransferAck]
    assert acks
    assert all(not ack.delta.context for ack in acks)  # generations, not whole states
    assert "carol" in cluster.nodes["n1"].state.list("t0")
    assert by_ref(cluster.nodes["n1"].state.list("t0")) == by_ref(
        cluster.nodes["n0"].state.list("t0")
    )


def test_a_node_not_heard_from_goes_down_and_comes_back_up() -> None:
    cluster = cluster_of(2)
    cluster.round()
    cluster.track("n1", 1, "t0", "bob", 1)
    cluster.round()
    watcher = cluster.nodes["n0"]
    assert "bob" in watcher.state.list("t0")
    cluster.nodes["n1"].paused = True
    for _ in range(7):  # more than down_period (6 s) without a heartbeat from n1
        cluster.round()
    assert watcher.state.list("t0") == {}
    assert watcher.clients["t0"] == {}  # the client was told: a leave
    assert watcher.state.size == 1  # kept
    cluster.nodes["n1"].paused = False
    cluster.round()
    cluster.round()
    assert "bob" in watcher.state.list("t0")
    assert watcher.clients["t0"] == watcher.state.list("t0")


def test_a_node_the_cluster_declares_down_is_down_at_once_and_back_when_heard() -> None:
    cluster = cluster_of(2)
    cluster.round()
    cluster.round()
    cluster.track("n1", 1, "t0", "alice", 1)
    cluster.round()
    n0 = cluster.nodes["n0"]
    assert set(n0.state.list("t0")) == {"alice"}
    outcome = n0.core.node_down("n1")
    assert [[e.key for e in leaves] for _, leaves in outcome.changes] == [["alice"]]
    cluster.run(n0, outcome)
    assert n0.state.list("t0") == {}
    assert n0.core.node_down("n1").changes == []  # down already
    assert n0.core.node_down("nowhere").changes == []
    # It was alive after all (a moment's cut): its next heartbeat brings alice back.
    cluster.settle(rounds=CONFIG.max_silent_periods + 2)
    assert set(n0.state.list("t0")) == {"alice"}


def test_a_node_that_stood_still_does_not_take_its_peers_for_down() -> None:
    cluster = cluster_of(2)
    cluster.round()
    cluster.track("n1", 1, "t0", "bob", 1)
    cluster.round()
    sleeper = cluster.nodes["n0"]
    sleeper.paused = True
    for _ in range(8):  # n1 goes on (and takes n0 for down); n0 does not run at all
        cluster.round()
    assert cluster.nodes["n1"].core.peers["n0"].status == "down"
    sleeper.paused = False
    cluster.tick("n0")  # long overdue: before it reads what n1 sent meanwhile
    assert sleeper.core.peers["n1"].status == "up"
    assert sleeper.clients["t0"] == {"bob": {"metas": [{"v": 1, "phx_ref": ANY_REF}]}}


def test_a_node_down_for_permdown_period_is_purged() -> None:
    cluster = cluster_of(2)
    cluster.round()
    cluster.track("n1", 1, "t0", "bob", 1)
    cluster.round()
    cluster.kill("n1")
    for _ in range(32):
        cluster.round()
    watcher = cluster.nodes["n0"]
    assert watcher.state.size == 0
    assert watcher.core.peers == {}


def test_a_restarted_node_is_a_new_incarnation_and_its_old_one_leaves_at_once() -> None:
    cluster = cluster_of(2)
    cluster.round()
    cluster.track("n1", 1, "t0", "bob", 1)
    cluster.round()
    watcher = cluster.nodes["n0"]
    old = cluster.nodes["n1"].core.me
    cluster.kill("n1")
    cluster.start("n1")
    cluster.round()  # the new n1's first heartbeat: well before down_period
    assert watcher.state.list("t0") == {}
    assert watcher.clients["t0"] == {}
    assert watcher.state.is_gone(f"{old.incarnation}/0")
    assert watcher.core.peers["n1"].ref == cluster.nodes["n1"].core.me


def test_graceful_permdown_forgets_at_once() -> None:
    cluster = cluster_of(2)
    cluster.round()
    cluster.track("n1", 1, "t0", "bob", 1)
    cluster.round()
    leaving = cluster.nodes["n1"]
    cluster.run(leaving, Outcome(broadcasts=[leaving.core.goodbye()]))
    cluster.deliver_all()
    assert cluster.nodes["n0"].state.size == 0
    assert cluster.nodes["n0"].clients["t0"] == {}


def test_presences_learned_through_a_third_replica_wait_for_its_heartbeat() -> None:
    a, b = ReplicaRef("a", "ia"), ReplicaRef("b", "ib")
    core = Replication(State("ia/0"), a, 0, CONFIG, now=0.0)
    c_state = State("ic/0")
    c_state.join(1, "t0", "carol", {})
    # b forwards c's presence (a transfer) before c's own heartbeat reached a
    outcome = core.receive(Heartbeat(b, None, {"ib/0": 0}), 0.0)
    outcome = core.receive(TransferAck(b, pack(c_state.extract(), local=None)), 0.0)
    assert outcome.changes == []
    assert core.state.list("t0") == {}
    outcome = core.receive(Heartbeat(ReplicaRef("c", "ic"), None, c_state.clocks), 0.0)
    assert [e.key for joins, _ in outcome.changes for e in joins] == ["carol"]
    assert "carol" in core.state.list("t0")


def test_a_stranger_never_heard_from_is_purged_after_permdown_period() -> None:
    core = Replication(State("ia/0"), ReplicaRef("a", "ia"), 0, CONFIG, now=0.0)
    c_state = State("ic/0")
    c_state.join(1, "t0", "carol", {})
    core.receive(TransferAck(ReplicaRef("b", "ib"), pack(c_state.extract(), local=None)), 0.0)
    assert core.state.size == 1
    for second in range(1, int(CONFIG.permdown_period) + 2):
        core.tick(float(second))
    assert core.state.size == 0
    assert core.strangers == {}


def test_messages_from_this_node_and_malformed_ones_are_ignored() -> None:
    core = Replication(State("ia/0"), ReplicaRef("a", "ia"), 0, CONFIG, now=0.0)
    other = State("ix/0")
    other.join(1, "t0", "k", {})
    delta = pack(other.take_delta(), local=None)
    b = ReplicaRef("b", "ib")
    bad_rows = [
        [[0, 1, "t0", "k", {"phx_ref": 3}, -1, 1]],  # a phx_ref that is not a str
        [[1, 1, "t0", "k", {"phx_ref": "x"}, -1, 1]],  # no such replica
        [[0, 1, "t0", "k", {"phx_ref": "x"}, 0, 1]],  # no such node
        [[0, 1, "t0", "k", {"phx_ref": "x"}, -2, "pid"]],  # a local pid that is not an int
        [[0, 1, "t0", 7, {"phx_ref": "x"}, -1, 1]],  # a key that is not a str
        [[0, 1, "t0", "k", {"phx_ref": "x"}, -1]],  # too short
    ]
    for message in [
        Heartbeat(ReplicaRef("a", "older"), delta, {}),  # an older incarnation of this node
        Heartbeat(ReplicaRef("b", 7), None, {}),  # type: ignore[arg-type]
        Heartbeat(b, None, {"ib/0": "3"}),  # type: ignore[dict-item]
        *(Heartbeat(b, dataclasses.replace(delta, entries=rows), {}) for rows in bad_rows),
        Heartbeat(b, dataclasses.replace(delta, cloud=[["ix/0", "1"]]), {}),
        Heartbeat(b, dataclasses.replace(delta, nodes=[["n", "1"]]), {}),
        Heartbeat(b, dataclasses.replace(delta, context={"ix/0": None}), {}),  # type: ignore[dict-item]
        TransferAck(b, "everything"),  # type: ignore[arg-type]
        TransferReq(("b", "ib"), {}),  # type: ignore[arg-type]
        ("something", "else"),
    ]:
        assert core.receive(message, 0.0) == Outcome()
    assert core.peers == {}
    assert core.state.size == 0


def test_a_delta_travels_packed_with_its_pids() -> None:
    here, there = beam.NodeId("here", 1), beam.NodeId("there", 2)
    elsewhere = beam.Pid(9, beam.NodeId("far", 3))
    state = State("ia/0")
    state.join(beam.Pid(5), "t0", "local", {"n": [1, 2]})
    state.join(elsewhere, "t0", "remote", {})
    state.join(11, "t0", "plain", {})
    state.join(beam.Pid(6), "t1", "gone", {})
    state.leave(beam.Pid(6), "t1", "gone")
    delta = state.take_delta()
    packed = beam.cluster.decode(beam.cluster.encode(pack(delta, local=here)))
    arrived = unpack(packed, local=there)
    assert arrived.cloud == delta.cloud
    assert {e.key: e.pid for e in arrived.values.values()} == {
        "local": beam.Pid(5, here),
        "remote": elsewhere,
        "plain": 11,
    }
    assert arrived.values == {
        tag: entry._replace(pid=arrived.values[tag].pid) for tag, entry in delta.values.items()
    }
    # back home, a pid of this very node is a local pid again
    assert {e.pid for e in unpack(packed, local=here).values.values()} >= {beam.Pid(5)}
    whole = unpack(pack(state.extract({"ia/0": 1}), local=here), local=there)
    assert whole.context == state.clocks
    assert whole.elided == {("ia/0", 1)}
    # alone, a local pid travels without a node and comes back as a local pid
    assert unpack(pack(delta, local=None), local=None).values == delta.values


def test_a_transfer_request_is_answered_with_the_smallest_generation_that_covers_it() -> None:
    state = State("ia/0")
    gens = DeltaGenerations((2, 4, 100), state)
    clocks = []
    for i in range(10):
        state.join(i, "t0", f"k{i}", {})
        gens.push(state.take_delta(), state)
        clocks.append(state.clocks)
    # a requester that has everything up to the 9th change needs the last one only
    small = gens.extract(state, "ib/0", clocks[8])
    assert not small.context
    assert set(small.values) == {("ia/0", 10)}
    # one that is 2 changes behind gets the next generation
    bigger = gens.extract(state, "ib/0", clocks[7])
    assert not bigger.context
    assert set(bigger.values) == {("ia/0", 9), ("ia/0", 10)}
    # one further behind gets the biggest, which started at the beginning
    biggest = gens.extract(state, "ib/0", clocks[6])
    assert not biggest.context
    assert len(biggest.values) == 10
    assert len(gens.extract(state, "ib/0", {}).values) == 10
    # each answer, merged into a replica with those clocks, gives the whole state
    for known, delta in ((clocks[8], small), (clocks[7], bigger), (clocks[6], biggest)):
        receiver = State("ib/0")
        receiver.merge(_upto(state, known))
        receiver.merge(delta)
        assert by_ref(receiver.list("t0")) == by_ref(state.list("t0"))


def _upto(state: State, clocks: dict[str, int]) -> Delta:
    """What a replica that saw *state*'s dots up to *clocks* (and no removal) holds."""
    values = {t: e for t, e in state.extract().values.items() if t[1] <= clocks.get(t[0], 0)}
    return Delta(state.replica, values, dict(clocks), frozenset())


def test_without_a_covering_generation_the_whole_state_is_sent() -> None:
    state = State("ia/0")
    gens = DeltaGenerations((2,), state)
    for i in range(6):
        state.join(i, "t0", f"k{i}", {})
        gens.push(state.take_delta(), state)
    whole = gens.extract(state, "ib/0", {"ia/0": 1})
    assert whole.context == state.clocks
    assert set(whole.elided) == {("ia/0", 1)}
    assert len(whole.values) == 5


def test_generations_are_cleared_when_changes_were_dropped() -> None:
    state = State("ia/0")
    gens = DeltaGenerations((10,), state)
    state.join(1, "t0", "a", {})
    state.reset_delta()
    gens.clear()
    state.join(2, "t0", "b", {})
    gens.push(state.take_delta(), state)  # cannot start a generation: the first change is lost
    assert gens.extract(state, "ib/0", {}).context  # the whole state
    state.join(3, "t0", "c", {})
    gens.push(state.take_delta(), state)
    delta = gens.extract(state, "ib/0", {"ia/0": 2})
    assert not delta.context
    assert set(delta.values) == {("ia/0", 3)}


def test_clocks() -> None:
    assert dominates({"a": 1}, {})
    assert dominates({}, {"a": 0})
    assert not dominates({"a": 1}, {"b": 1})
    a, b, c = ReplicaRef("a", "1"), ReplicaRef("b", "1"), ReplicaRef("c", "1")
    assert append_clock([], a, {}) == []
    two = append_clock([(a, {"x": 2})], b, {"y": 1})
    assert [ref for ref, _ in two] == [a, b]
    assert append_clock(two, c, {"x": 2, "y": 1}) == [(c, {"x": 2, "y": 1})]
    assert append_clock(two, c, {"x": 1}) == two
    # dominated by the set as a whole, but by no member alone: c adds nothing, and a is
    # dominated by it, so only b and c remain worth asking
    assert [ref for ref, _ in append_clock(two, c, {"x": 2, "y": 0})] == [a, b]


def test_config_is_checked() -> None:
    assert Config().down == 30.0
    assert Config(broadcast_period=0.1, max_silent_periods=2).down == pytest.approx(0.4)
    with pytest.raises(ValueError, match="at least twice the broadcast_period"):
        Config(broadcast_period=1.0, down_period=1.5)
    with pytest.raises(ValueError, match="longer than the down_period"):
        Config(down_period=30, permdown_period=30)
    with pytest.raises(ValueError, match="broadcast_period must be a positive number"):
        Config(broadcast_period=0)
    with pytest.raises(ValueError, match="max_silent_periods must be a positive int"):
        Config(max_silent_periods=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="increasing order"):
        Config(max_delta_sizes=(10, 5))
    with pytest.raises(ValueError, match="must be named"):
        Replication(State("x/0"), ReplicaRef("a", "ia"), 0, CONFIG, now=0.0)


def test_the_messages_cross_nodes() -> None:
    state = State("ia/0")
    pid = beam.Pid(7, beam.NodeId("a", 1))
    state.join(pid, "room:lobby", "alice", {"at": 1.5, "tags": ["x"]})
    state.join(pid, "room:lobby", "bob", {})
    state.leave(pid, "room:lobby", "bob")
    ref = ReplicaRef("a", "ia")
    for message in (
        Heartbeat(ref, pack(state.take_delta(), local=None), state.clocks),
        Heartbeat(ref, None, state.clocks),
        TransferReq(ref, {"ia/0": 3}),
        TransferAck(ref, pack(state.extract({"ia/0": 1}), local=None)),
        GracefulPermdown(ref),
    ):
        assert beam.cluster.decode(beam.cluster.encode(message)) == message
