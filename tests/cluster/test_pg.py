"""beam.pg across nodes, with real Redis and node OS processes (tests/support/nodes.py).

Joins and leaves on any node converge on every node (a node started later gets them by
the discover and sync); a member's death removes it everywhere; SIGKILL of a node removes
its members from the survivors within the cluster's timeout; a restarted node (same name)
rejoins cleanly; a monitor on one node sees the changes made on the others. A hypothesis
state machine drives random joins, leaves, member kills and node kills and restarts on three
nodes, and checks every node's view against a model once quiet.

The node-side steps are in tests/cluster/pg_steps.py; members are ``[node, pid number]``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

import beam
from beam import cluster as cluster_module
from beam import pg

from ..support.nodes import NodeProcess, RedisServer, redis_server, start_node

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")

HEARTBEAT = 0.2
TIMEOUT = 1.0
#: The hard limit on any wait for the views to converge.
CONVERGE = 10.0
STEPS = "tests.cluster.pg_steps:"

Member = list[Any]  # [node name, pid number]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


class Cluster:
    """Nodes that a test starts, kills (SIGKILL) and restarts under the same name."""

    def __init__(self, url: str, nursery: trio.Nursery) -> None:
        self.url = url
        self.nursery = nursery
        self.nodes: dict[str, NodeProcess] = {}
        self._stops: dict[str, trio.Event] = {}
        self._killed_at: dict[str, float] = {}
        self._running: list[trio.Event] = []  # set when a node's process has been reaped

    async def start(self, name: str) -> NodeProcess:
        """Start the node *name* (once its previous incarnation's name has expired)."""
        killed = self._killed_at.pop(name, None)
        if killed is not None:  # its name is held in Redis until TIMEOUT after its last beat
            await trio.sleep_until(killed + TIMEOUT + HEARTBEAT)
        stop = trio.Event()
        reaped = trio.Event()
        self._running.append(reaped)

        async def hold(task_status: trio.TaskStatus[NodeProcess]) -> None:
            try:
                async with start_node(self.url, name, heartbeat=HEARTBEAT, timeout=TIMEOUT) as node:
                    task_status.started(node)
                    await stop.wait()
            finally:
                reaped.set()

        node: NodeProcess = await self.nursery.start(hold)
        self.nodes[name] = node
        self._stops[name] = stop
        return node

    def kill(self, name: str) -> None:
        """SIGKILL the node *name* (no goodbye to anyone)."""
        self.nodes.pop(name).process.kill()
        self._stops.pop(name).set()
        self._killed_at[name] = trio.current_time()

    async def stop_all(self) -> None:
        """Kill every live node and wait until all are reaped (even while being cancelled by
        a failure, so no node is interrupted in the middle of its own cleanup)."""
        for name in list(self.nodes):
            self.kill(name)
        with trio.move_on_after(10) as scope:
            scope.shield = True
            for reaped in self._running:
                await reaped.wait()

    async def run(self, name: str, fn: str, **args: Any) -> Any:
        """Await ``pg_steps.<fn>(**args)`` on the node *name*; its result."""
        answer = await self.nodes[name].call("run", fn=STEPS + fn, args=args)
        return answer.get("result")

    async def converged(self, expected: dict[str, list[Member]]) -> float:
        """Wait until every live node sees *expected* (sorted member lists by group), and
        each its own members as local ones; the longest wait."""
        longest = 0.0
        for name in sorted(self.nodes):
            took = await self.run(name, "wait_members", expected=expected, within=CONVERGE)
            longest = max(longest, took)
        for name in sorted(self.nodes):
            local = {
                group: sorted(m for m in members if m[0] == name)
                for group, members in expected.items()
            }
            view = await self.run(name, "view")
            assert view["local"] == {g: m for g, m in local.items() if m}, (name, view)
        return longest

    async def errors(self) -> list[dict[str, Any]]:
        """The ERROR log records the live nodes reported."""
        found = []
        for node in self.nodes.values():
            await node.drain()
            found.extend(node.seen("log", level="ERROR"))
        return found


@asynccontextmanager
async def cluster(url: str, *names: str) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        nodes = Cluster(url, nursery)
        for name in names:
            await nodes.start(name)
        try:
            yield nodes
        finally:
            await nodes.stop_all()


def expect(*entries: tuple[str, str, int]) -> dict[str, list[Member]]:
    """``{group: sorted [node, id] members}`` from ``(group, node, id)`` entries."""
    out: dict[str, list[Member]] = {}
    for group, node, number in entries:
        out.setdefault(group, []).append([node, number])
    return {group: sorted(members) for group, members in out.items()}


async def test_joins_and_leaves_converge_on_every_node(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as nodes:
        a1, a2 = await nodes.run("a", "spawn", count=2)
        (b1,) = await nodes.run("b", "spawn")
        await nodes.run("a", "join", group="g", ids=[a1, a2])
        await nodes.run("b", "join", group="g", ids=[b1])
        await nodes.run("b", "join", group="h", ids=[b1, b1])  # counted: twice
        everything = expect(("g", "a", a1), ("g", "a", a2), ("g", "b", b1), *[("h", "b", b1)] * 2)
        await nodes.converged(everything)
        # A node started later learns them all from the others' syncs.
        await nodes.start("c")
        (c1,) = await nodes.run("c", "spawn")
        await nodes.run("c", "join", group="h", ids=[c1])
        await nodes.converged({**everything, "h": sorted([["b", b1], ["b", b1], ["c", c1]])})
        assert await nodes.run("a", "leave", group="g", ids=[a1])
        assert await nodes.run("b", "leave", group="h", ids=[b1])
        assert not await nodes.run("a", "leave", group="h", ids=[a2])  # never joined h
        await nodes.converged(
            expect(("g", "a", a2), ("g", "b", b1), ("h", "b", b1), ("h", "c", c1))
        )
        assert await nodes.errors() == []


async def test_a_members_death_removes_it_everywhere(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b", "c") as nodes:
        a1, a2 = await nodes.run("a", "spawn", count=2)
        await nodes.run("a", "join", group="g", ids=[a1, a2])
        await nodes.run("a", "join", group="h", ids=[a1])
        await nodes.converged(expect(("g", "a", a1), ("g", "a", a2), ("h", "a", a1)))
        await nodes.run("a", "kill", ids=[a1])
        await nodes.converged(expect(("g", "a", a2)))
        assert await nodes.errors() == []


async def test_a_killed_nodes_members_vanish_from_the_survivors_in_time(
    redis: RedisServer,
) -> None:
    async with cluster(redis.url, "a", "b", "c") as nodes:
        (a1,) = await nodes.run("a", "spawn")
        b1, b2 = await nodes.run("b", "spawn", count=2)
        await nodes.run("a", "join", group="g", ids=[a1])
        await nodes.run("b", "join", group="g", ids=[b1, b2])
        await nodes.run("b", "join", group="h", ids=[b1])
        await nodes.converged(
            expect(("g", "a", a1), ("g", "b", b1), ("g", "b", b2), ("h", "b", b1))
        )
        nodes.kill("b")
        took = await nodes.converged(expect(("g", "a", a1)))
        # Down after TIMEOUT without a heartbeat; plus the checker's period and polling.
        assert took <= TIMEOUT + HEARTBEAT + 0.5
        assert await nodes.errors() == []


async def test_a_restarted_node_rejoins_cleanly(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as nodes:
        (a1,) = await nodes.run("a", "spawn")
        old_b = await nodes.run("b", "spawn", count=3)
        await nodes.run("a", "join", group="g", ids=[a1])
        await nodes.run("b", "join", group="g", ids=old_b)
        await nodes.converged(expect(("g", "a", a1), *[("g", "b", i) for i in old_b]))
        nodes.kill("b")
        await nodes.converged(expect(("g", "a", a1)))
        await nodes.start("b")  # a new incarnation: it learns a's members, a learns its own
        (b1,) = await nodes.run("b", "spawn")
        await nodes.run("b", "join", group="g", ids=[b1])
        await nodes.converged(expect(("g", "a", a1), ("g", "b", b1)))
        await nodes.run("a", "kill", ids=[a1])
        await nodes.converged(expect(("g", "b", b1)))
        assert await nodes.errors() == []


async def test_a_monitor_sees_the_changes_made_on_other_nodes(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as nodes:
        (b1,) = await nodes.run("b", "spawn")
        await nodes.run("b", "join", group="g", ids=[b1])
        await nodes.converged(expect(("g", "b", b1)))
        assert await nodes.run("a", "monitor", group="g") == [["b", b1]]
        b2, b3 = await nodes.run("b", "spawn", count=2)
        await nodes.run("b", "join", group="g", ids=[b2, b3])
        await nodes.run("b", "join", group="other", ids=[b2])
        await nodes.run("b", "leave", group="g", ids=[b1])
        await nodes.run("b", "kill", ids=[b2])
        a = nodes.nodes["a"]
        events = [await a.expect("pg", timeout=CONVERGE) for _ in range(3)]
        assert [(e["action"], e["group"], e["pids"]) for e in events] == [
            ("join", "g", [["b", b2], ["b", b3]]),
            ("leave", "g", [["b", b1]]),
            ("leave", "g", [["b", b2]]),
        ]
        nodes.kill("b")
        gone = await a.expect("pg", timeout=CONVERGE)
        assert (gone["action"], gone["pids"]) == ("leave", [["b", b3]])
        await a.drain()
        assert len(a.seen("pg")) == 4  # nothing about "other"


async def test_named_scopes_replicate_apart_from_the_default_one(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as nodes:
        for name in ("a", "b"):
            await nodes.run(name, "start_scope", scope="jobs")
        (a1,) = await nodes.run("a", "spawn")
        await nodes.run("a", "join", group="g", ids=[a1], scope="jobs")
        for name in ("a", "b"):
            await nodes.run(
                name, "wait_members", expected=expect(("g", "a", a1)), within=CONVERGE, scope="jobs"
            )
            assert (await nodes.run(name, "view"))["members"] == {}


async def test_groups_of_a_node_alone_reach_the_cluster_it_joins_later(
    redis: RedisServer,
) -> None:
    async with beam.open_node(), cluster(redis.url, "b") as nodes:
        await pg.join("g", beam.self())  # alone: the default scope starts here
        (b1,) = await nodes.run("b", "spawn")
        await nodes.run("b", "join", group="g", ids=[b1])
        assert pg.members("g") == [beam.self()]
        await cluster_module.start_pubsub(
            redis.url, node="solo", heartbeat=HEARTBEAT, timeout=TIMEOUT
        )
        await nodes.converged(expect(("g", "b", b1), ("g", "solo", beam.self().id)))
        with trio.fail_after(CONVERGE):
            while len(pg.members("g")) < 2:  # noqa: ASYNC110 - the scope server fills it
                await trio.sleep(0.01)
        remote = [(p.node.name, p.id) for p in pg.members("g") if p.node is not None]
        assert remote == [("b", b1)]
        assert pg.local_members("g") == [beam.self()]


# -- random joins, leaves and kills against a model -----------------------------------------------

NODES = ("a", "b", "c")
GROUPS = ("g", "h")


class _Model:
    """What every node should see: the live members, one entry per join, by group."""

    def __init__(self) -> None:
        self.groups: dict[str, Counter[tuple[str, int]]] = {g: Counter() for g in GROUPS}
        self.alive: set[tuple[str, int]] = set()
        self.down: set[str] = set()
        self.top_id: dict[str, int] = {}

    def expected(self) -> dict[str, list[Member]]:
        return {
            group: sorted([node, number] for (node, number) in counts.elements())
            for group, counts in self.groups.items()
            if counts
        }

    def forget(self, member: tuple[str, int]) -> None:
        self.alive.discard(member)
        for counts in self.groups.values():
            del counts[member]


class PgMachine(RuleBasedStateMachine):
    """Random joins, leaves, member kills and node kills and restarts on three nodes; the
    views are checked against :class:`_Model` by the ``check`` rule and at teardown."""

    cluster: Cluster  # set by the test before running the machine
    members = Bundle("members")

    def __init__(self) -> None:
        super().__init__()
        self.model = _Model()

    def _run(self, node: str, fn: str, **args: Any) -> Any:
        return trio.from_thread.run(lambda: self.cluster.run(node, fn, **args))

    def _live(self, member: tuple[str, int]) -> bool:
        return member[0] not in self.model.down and member in self.model.alive

    @rule(target=members, node=st.sampled_from(NODES))
    def spawn(self, node: str) -> tuple[str, int]:
        if node in self.model.down:
            trio.from_thread.run(self.cluster.start, node)
            self.model.down.discard(node)
            # Pid numbers of the new incarnation start again: skip past the old ones.
            self._run(node, "spawn", count=self.model.top_id.get(node, 0))
        (number,) = self._run(node, "spawn")
        self.model.top_id[node] = max(self.model.top_id.get(node, 0), number)
        self.model.alive.add((node, number))
        return (node, number)

    @rule(member=members, group=st.sampled_from(GROUPS), times=st.integers(1, 2))
    def join(self, member: tuple[str, int], group: str, times: int) -> None:
        if not self._live(member):
            return
        self._run(member[0], "join", group=group, ids=[member[1]] * times)
        self.model.groups[group][member] += times

    @rule(member=members, group=st.sampled_from(GROUPS))
    def leave(self, member: tuple[str, int], group: str) -> None:
        if not self._live(member):
            return
        left = self._run(member[0], "leave", group=group, ids=[member[1]])
        assert left == (self.model.groups[group][member] > 0)
        self.model.groups[group][member] -= 1
        self.model.groups[group] += Counter()  # drop zero counts

    @rule(member=members)
    def kill_member(self, member: tuple[str, int]) -> None:
        if not self._live(member):
            return
        self._run(member[0], "kill", ids=[member[1]])
        self.model.forget(member)

    @precondition(lambda self: len(self.model.down) < len(NODES) - 1)
    @rule(node=st.sampled_from(NODES))
    def kill_node(self, node: str) -> None:
        if node in self.model.down:
            return
        trio.from_thread.run_sync(self.cluster.kill, node)
        self.model.down.add(node)
        for member in [m for m in self.model.alive if m[0] == node]:
            self.model.forget(member)

    @rule()
    def check(self) -> None:
        trio.from_thread.run(self.cluster.converged, self.model.expected())

    def teardown(self) -> None:
        """Check the views, then leave an empty cluster of three live nodes to the next run."""
        self.check()
        for node, number in sorted(self.model.alive):
            if node not in self.model.down:
                self._run(node, "kill", ids=[number])
        for node in sorted(self.model.down):
            trio.from_thread.run(self.cluster.start, node)
            self._run(node, "spawn", count=self.model.top_id.get(node, 0))
        trio.from_thread.run(self.cluster.converged, {})
        assert trio.from_thread.run(self.cluster.errors) == []


async def test_random_joins_leaves_and_kills_match_the_model(redis: RedisServer) -> None:
    async with cluster(redis.url, *NODES) as nodes:
        PgMachine.cluster = nodes
        run_settings = settings(
            max_examples=6,
            stateful_step_count=12,
            deadline=None,
            derandomize=True,
            database=None,
        )
        with trio.fail_after(240):
            await trio.to_thread.run_sync(
                lambda: run_state_machine_as_test(PgMachine, settings=run_settings),
                abandon_on_cancel=True,
            )
