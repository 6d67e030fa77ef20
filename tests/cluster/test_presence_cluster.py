"""Presence replicated across three real nodes (OS processes, real Redis), as Phoenix.Tracker.

Hypothesis draws a schedule of tracks, untracks, updates, exits of tracked processes, node
kills (SIGKILL), restarts (same name, so a new incarnation) and pauses (SIGSTOP for longer
than ``down_period``, then SIGCONT: the same incarnation comes back up). Once the schedule
is over and the cluster quiet, every live node's ``presence.list`` must be the model's (the
presences the live nodes track, their ``phx_ref``\\ s included), and on every node the
``presence_diff`` stream a subscriber received, applied in order as phoenix.js does, must
give the same.

The three nodes live across examples (each example runs its own tracker and topics, so
examples do not see each other's presences); hypothesis runs in a worker thread and hands
each schedule to the trio loop that owns them.

And the official phoenix.js ``Presence`` (npm, unmodified, in Node) on clients connected to
two different nodes shows the same people, through joins, a leave and a node's death.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from ..support.jsclient import require_node_package, run_node_script
from ..support.nodes import NodeProcess, RedisServer, redis_server, start_node

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")

STEPS = "tests.cluster.presence_steps"
NODES = ("a", "b", "c")
HEARTBEAT, TIMEOUT = 0.2, 1.0  # beam's node heartbeats: a killed node's name is free in 1 s
TRACKER_OPTIONS = {
    "shards": 2,
    "broadcast_period": 0.05,
    "max_silent_periods": 4,
    "down_period": 0.5,
    "permdown_period": 3.0,
    "clock_sample_periods": 2,
}
PAUSE = 0.9  # longer than down_period, shorter than beam's node timeout
CONVERGE_WITHIN = 20.0

Op = tuple[Any, ...]


@dataclass
class Cluster:
    redis: RedisServer
    stack: contextlib.AsyncExitStack
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    killed_at: dict[str, float] = field(default_factory=dict)
    examples: int = 0

    async def start(self, name: str) -> None:
        """Start node *name* (once a killed one's name is free again: its last heartbeat
        holds it for TIMEOUT seconds)."""
        since = self.killed_at.pop(name, None)
        if since is not None:
            await trio.sleep_until(since + TIMEOUT + 0.1)
        for _ in range(20):
            node = await self.stack.enter_async_context(
                start_node(self.redis.url, name, heartbeat=HEARTBEAT, timeout=TIMEOUT,
                           expect_ready=False)
            )
            with contextlib.suppress(RuntimeError):  # it exits if refused
                await node.expect("ready")
                self.nodes[name] = node
                return
            assert node.seen("refused"), node.events
            await trio.sleep(0.2)
        raise AssertionError(f"the name {name!r} stayed taken")

    def kill(self, name: str) -> None:
        node = self.nodes.pop(name)
        node.process.kill()
        self.killed_at[name] = trio.current_time()

    async def pause(self, name: str) -> None:
        pid = self.nodes[name].process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            await trio.sleep(PAUSE)
        finally:
            os.kill(pid, signal.SIGCONT)


async def run(node: NodeProcess, step: str, **args: Any) -> Any:
    return (await node.call("run", fn=f"{STEPS}:{step}", args=args)).get("result")


@dataclass
class Example:
    """One schedule on the cluster, and the model of what it tracks."""

    cluster: Cluster
    tracker: str
    topics: list[str]
    #: node -> (holder, topic, key) -> meta (phx_ref included)
    model: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = field(default_factory=dict)

    async def boot(self, name: str) -> None:
        """Start node *name* if it is not running, with this example's viewers and tracker."""
        if name not in self.cluster.nodes:
            await self.cluster.start(name)
        await run(self.cluster.nodes[name], "start", tracker=self.tracker, topics=self.topics,
                  **TRACKER_OPTIONS)
        self.model[name] = {}

    def holder(self, i: int) -> str:
        return f"{self.tracker}:h{i}"

    def own(self, name: str) -> list[tuple[str, str, str]]:
        return sorted(self.model.get(name, {}))

    async def step(self, op: Op) -> None:
        kind = op[0]
        if kind == "sleep":
            await trio.sleep(op[1])
            return
        name = op[1]
        node = self.cluster.nodes.get(name)
        if kind == "restart":
            if node is None:
                await self.boot(name)
            return
        if node is None:
            return
        args = {"tracker": self.tracker}
        if kind == "track":
            _, _, holder, topic, key, v = op
            presence = (self.holder(holder), self.topics[topic], key)
            if presence in self.model[name]:
                return
            meta = {"v": v}
            ref = await run(node, "track", **args, holder=presence[0], topic=presence[1],
                            key=key, meta=meta)
            self.model[name][presence] = {**meta, "phx_ref": ref}
        elif kind in ("untrack", "update"):
            own = self.own(name)
            if not own:
                return
            presence = own[op[2] % len(own)]
            where = {"holder": presence[0], "topic": presence[1], "key": presence[2]}
            if kind == "untrack":
                await run(node, "untrack", **args, **where)
                del self.model[name][presence]
            else:
                meta = {"v": op[3]}
                ref = await run(node, "update", **args, **where, meta=meta)
                old = self.model[name][presence]["phx_ref"]
                self.model[name][presence] = {**meta, "phx_ref": ref, "phx_ref_prev": old}
        elif kind == "exit":
            holder = self.holder(op[2])
            await run(node, "kill_holder", holder=holder)
            self.model[name] = {p: m for p, m in self.model[name].items() if p[0] != holder}
        elif kind == "kill":
            self.cluster.kill(name)
            self.model.pop(name, None)
        elif kind == "pause":
            await self.cluster.pause(name)

    def expected(self) -> dict[str, dict[str, list[str]]]:
        listed: dict[str, dict[str, list[str]]] = {topic: {} for topic in self.topics}
        for presences in self.model.values():
            for (_, topic, key), meta in presences.items():
                listed[topic].setdefault(key, []).append(json.dumps(meta, sort_keys=True))
        return {topic: {k: sorted(m) for k, m in keys.items()} for topic, keys in listed.items()}

    async def views(self) -> dict[str, dict[str, Any]]:
        seen = {}
        for name, node in sorted(self.cluster.nodes.items()):
            raw = await run(node, "view", tracker=self.tracker, topics=self.topics)
            seen[name] = {
                topic: {side: _by_ref(raw[topic][side]) for side in ("list", "client")}
                for topic in self.topics
            }
        return seen

    async def converge(self) -> tuple[dict[str, Any], float]:
        """Poll every live node until each one's list and client are the model's; answer
        the last views and how long it took."""
        expected = self.expected()
        start = trio.current_time()
        with trio.move_on_after(CONVERGE_WITHIN):
            while True:
                seen = await self.views()
                if all(
                    seen[name][topic][side] == expected[topic]
                    for name in seen
                    for topic in self.topics
                    for side in ("list", "client")
                ):
                    break
                await trio.sleep(0.05)
        return seen, trio.current_time() - start

    async def finish(self) -> None:
        for node in self.cluster.nodes.values():
            await run(node, "stop", tracker=self.tracker, topics=self.topics)


def _by_ref(presences: dict[str, Any]) -> dict[str, list[str]]:
    return {
        key: sorted(json.dumps(meta, sort_keys=True) for meta in value["metas"])
        for key, value in presences.items()
    }


async def play(cluster: Cluster, ops: list[Op]) -> float:
    """Run one schedule; answer the time the cluster took to converge once it ended."""
    cluster.examples += 1
    number = cluster.examples
    tracker = f"presence{number}"
    run_ = Example(cluster, tracker, [f"room:{number}:a", f"room:{number}:b"])
    for name in NODES:
        await run_.boot(name)
    for op in ops:
        await run_.step(op)
    seen, took = await run_.converge()
    expected = run_.expected()
    for name, topics in seen.items():
        for topic in run_.topics:
            assert topics[topic]["list"] == expected[topic], (name, topic, "list", ops)
            assert topics[topic]["client"] == expected[topic], (name, topic, "client", ops)
    await run_.finish()
    return took


@contextlib.asynccontextmanager
async def three_nodes() -> AsyncIterator[Cluster]:
    with redis_server() as redis:
        async with contextlib.AsyncExitStack() as stack:
            cluster = Cluster(redis, stack)
            async with trio.open_nursery() as nursery:  # the first start-ups overlap
                for name in NODES:
                    nursery.start_soon(cluster.start, name)
            yield cluster


NODE = st.sampled_from(NODES)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("track"), NODE, st.integers(0, 3), st.integers(0, 1),
                  st.sampled_from(["alice", "bob", "carol"]), st.integers(0, 9)),
        st.tuples(st.just("track"), NODE, st.integers(0, 3), st.integers(0, 1),
                  st.sampled_from(["alice", "bob", "carol"]), st.integers(0, 9)),
        st.tuples(st.just("untrack"), NODE, st.integers(0, 20)),
        st.tuples(st.just("update"), NODE, st.integers(0, 20), st.integers(0, 9)),
        st.tuples(st.just("exit"), NODE, st.integers(0, 3)),
        st.tuples(st.just("kill"), NODE),
        st.tuples(st.just("restart"), NODE),
        st.tuples(st.just("pause"), NODE),
        st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.1, 0.3])),
    ),
    min_size=4,
    max_size=12,
)

#: Every kind of step at least once: a node paused past down_period comes back up, a killed
#: node's presences leave, a restarted node starts empty as a new incarnation.
EVERYTHING: list[Op] = [
    ("track", "a", 0, 0, "alice", 1),
    ("track", "b", 1, 0, "alice", 2),
    ("track", "b", 3, 1, "carol", 3),  # b keeps this one through its pause
    ("track", "c", 2, 1, "bob", 4),
    ("track", "c", 3, 0, "carol", 5),
    ("sleep", 0.3),
    ("pause", "b"),
    ("update", "a", 0, 6),
    ("kill", "c"),
    ("track", "b", 2, 1, "bob", 7),
    ("restart", "c"),
    ("track", "c", 0, 0, "carol", 8),
    ("exit", "b", 1),
    ("untrack", "a", 0),
]


async def graceful_permdown(cluster: Cluster) -> None:
    """With ``permdown_on_shutdown``, a tracker that stops tells the others to forget its
    presences at once (here long before its ``down_period``)."""
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    options = {**TRACKER_OPTIONS, "down_period": 60.0, "permdown_period": 120.0}
    for node in (a, b):
        await run(node, "start", tracker="bye", topics=[], permdown_on_shutdown=True, **options)
    await run(a, "track", tracker="bye", holder="bye:h", topic="room:bye", key="k", meta={})
    await run(b, "wait_count", tracker="bye", topic="room:bye", count=1, within=10)
    await run(a, "stop", tracker="bye", topics=[])
    await run(b, "wait_count", tracker="bye", topic="room:bye", count=0, within=10)
    await run(b, "stop", tracker="bye", topics=[])


def test_presence_converges_on_three_nodes() -> None:
    async def main() -> None:
        async with three_nodes() as cluster:
            # On a node of a cluster, a meta must be able to travel.
            a = cluster.nodes["a"]
            await run(a, "start", tracker="metas", topics=[], **TRACKER_OPTIONS)
            refused = await run(a, "refused_meta", tracker="metas")
            assert "must be able to travel to the other nodes" in refused
            await run(a, "stop", tracker="metas", topics=[])
            await graceful_permdown(cluster)
            token = trio.lowlevel.current_trio_token()
            took: list[float] = []

            @settings(
                max_examples=4,
                deadline=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                database=None,
            )
            @example(EVERYTHING)
            @given(OPS)
            def schedules(ops: list[Op]) -> None:
                took.append(trio.from_thread.run(play, cluster, ops, trio_token=token))

            await trio.to_thread.run_sync(schedules)
            print(f"converged within {max(took):.2f} s after each schedule ({took})")

    trio.run(main)


CLIENTS = Path(__file__).resolve().parents[1] / "presence" / "js" / "presence_on_two_nodes.cjs"


async def test_phoenix_js_clients_on_two_nodes_see_the_same_people() -> None:
    node_js = require_node_package("phoenix")
    steps: dict[str, dict[str, Any]] = {}
    with redis_server() as redis:
        async with (
            start_node(redis.url, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a,
            start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT) as b,
        ):
            ports = []
            for node in (a, b):
                await run(node, "start", tracker="presence", topics=[], **TRACKER_OPTIONS)
                ports.append(await run(node, "serve"))

            async def on_fact(fact: dict[str, Any]) -> None:
                if fact.get("kill") == "b":
                    b.process.kill()
                else:
                    steps[fact.pop("step")] = fact

            await run_node_script([node_js, str(CLIENTS), *map(str, ports)], on_fact, timeout=30)
    assert steps == {
        "both": {"alice": ["alice", "bob"], "bob": ["alice", "bob"]},
        "bob_left": {"alice": ["alice"]},
        "node_b_killed": {"alice": ["alice"]},
    }
