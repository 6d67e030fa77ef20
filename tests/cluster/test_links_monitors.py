"""Links, monitors, exit signals, node monitoring and calls across nodes (real OS processes,
real Redis), checked against what Erlang does in the same scenarios."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from tests.support.nodes import NodeProcess, RedisServer, redis_server, start_node

STEPS = "tests.cluster.dist_steps"
HEARTBEAT = 0.2
TIMEOUT = 1.0


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def run(on: NodeProcess, step: str, **args: Any) -> Any:
    answer = await on.call("run", fn=f"{STEPS}:{step}", args=args)
    return answer.get("result")


async def wait_until_known(node: NodeProcess, *names: str) -> None:
    with trio.fail_after(10):
        while not set(names) <= set(await run(node, "nodes")):  # noqa: ASYNC110 - another OS process
            await trio.sleep(0.05)


@contextlib.asynccontextmanager
async def cluster(redis: RedisServer, *names: str) -> AsyncIterator[list[NodeProcess]]:
    """Start nodes *names* (fast heartbeats) and wait until each knows all the others."""
    async with contextlib.AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(
                start_node(redis.url, name, heartbeat=HEARTBEAT, timeout=TIMEOUT)
            )
            for name in names
        ]
        for node in nodes:
            await wait_until_known(node, *(n for n in names if n != node.name))
        yield nodes


@pytest.mark.parametrize(
    ("reason", "seen"),
    [("normal", "normal"), ("boom", "boom"), ("crash", "RuntimeError('crashed on purpose')")],
)
async def test_a_remote_monitor_gets_the_exit_reason(
    redis: RedisServer, reason: str, seen: str
) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        await run(b, "target", name="t")
        await run(a, "watch", name="w", kind="monitor", target="t", node="b")
        await run(b, "stop", name="t", reason=reason)
        event = await a.expect("signal", watcher="w")
        assert (event["type"], event["reason"]) == ("Down", seen)


async def test_a_remote_kill_reaches_monitors_as_killed(redis: RedisServer) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        await run(b, "target", name="t")
        await run(a, "watch", name="w", kind="monitor", target="t", node="b", by="name")
        await run(b, "kill", name="t")
        event = await a.expect("signal", watcher="w")
        assert (event["type"], event["reason"]) == ("Down", "killed")
        assert event["from"] == "('t', 'b')"  # monitored by name: Down names {Name, Node}


async def test_monitoring_a_missing_remote_process_gives_noproc(redis: RedisServer) -> None:
    async with cluster(redis, "a", "b") as (a, _b):
        await run(a, "watch", name="w", kind="monitor", target="nobody", node="b", by="name")
        event = await a.expect("signal", watcher="w")
        assert (event["type"], event["reason"]) == ("Down", "noproc")


async def test_remote_links_carry_exits_both_ways(redis: RedisServer) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        # A trapping watcher on a gets Exit from the target on b.
        await run(b, "target", name="t1")
        await run(a, "watch", name="w1", kind="link", target="t1", node="b", trap=True)
        await run(b, "stop", name="t1", reason="boom")
        event = await a.expect("signal", watcher="w1")
        assert (event["type"], event["reason"]) == ("Exit", "boom")
        # A non-trapping watcher dies with the linked process's reason...
        await run(b, "target", name="t2")
        await run(a, "watch", name="w2", kind="link", target="t2", node="b")
        await run(b, "stop", name="t2", reason="boom")
        assert (await a.expect("died", name="w2"))["reason"] == "boom"
        # ...and the other way round: the watcher's death takes the target on b down.
        await run(b, "target", name="t3")
        await run(a, "watch", name="w3", kind="link", target="t3", node="b")
        await run(a, "stop_watcher", name="w3", reason="bad")
        assert (await b.expect("died", name="t3"))["reason"] == "bad"
        # A normal exit does not kill a non-trapping linked process.
        await run(b, "target", name="t4")
        await run(a, "watch", name="w4", kind="link", target="t4", node="b")
        await run(b, "stop", name="t4", reason="normal")
        await b.expect("died", name="t4", reason="normal")
        await b.drain()
        await a.drain()
        assert not a.seen("died", name="w4")


async def test_exit_signals_reach_remote_processes(redis: RedisServer) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        await run(b, "target", name="t")
        await run(a, "signal", target="t", node="b", reason="stop now")
        assert (await b.expect("died", name="t"))["reason"] == "stop now"
        await run(b, "target", name="k")
        await run(a, "signal", target="k", node="b", reason="kill")
        assert (await b.expect("died", name="k"))["reason"] == "killed"


async def test_sigkill_of_a_node_fires_every_link_and_monitor_with_noconnection(
    redis: RedisServer,
) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        for index in range(3):
            await run(b, "target", name=f"t{index}")
        await run(a, "watch", name="m0", kind="monitor", target="t0", node="b")
        await run(a, "watch", name="m1", kind="monitor", target="t1", node="b", by="name")
        await run(a, "watch", name="l2", kind="link", target="t2", node="b", trap=True)
        await run(a, "watch", name="n", kind="monitor_node", node="b")
        await run(a, "watch", name="all", kind="monitor_nodes")
        b.process.kill()
        started = trio.current_time()
        for watcher, kind in [("m0", "Down"), ("m1", "Down"), ("l2", "Exit")]:
            event = await a.expect("signal", watcher=watcher)
            assert (event["type"], event["reason"]) == (kind, "noconnection")
        await a.expect("signal", watcher="n", type="NodeDown", node="b")
        await a.expect("signal", watcher="all", type="NodeDown", node="b")
        # Declared down within the timeout and one heartbeat (plus the test's own slack).
        assert trio.current_time() - started < TIMEOUT + HEARTBEAT + 1.5
        assert await run(a, "nodes") == []


async def test_a_killed_node_is_down_when_its_connection_closes_not_after_the_timeout(
    redis: RedisServer,
) -> None:
    # A timeout far beyond the waits below: only the closed connection can tell in time.
    async with contextlib.AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                start_node(redis.url, name, heartbeat=HEARTBEAT, timeout=60.0)
            )
            for name in ("a", "b")
        ]
        for node, other in ((a, b), (b, a)):
            await wait_until_known(node, other.name)
        await run(b, "target", name="t")
        await run(a, "watch", name="m", kind="monitor", target="t", node="b")
        await run(a, "watch", name="all", kind="monitor_nodes")
        # a's prober judges b only once it has seen b's channel subscribed (a node heard
        # before it subscribed is not taken for dead): give it a few probes (0.1 s apart).
        await trio.sleep(0.5)
        b.process.kill()
        with trio.fail_after(10):
            event = await a.expect("signal", watcher="m")
            assert (event["type"], event["reason"]) == ("Down", "noconnection")
            await a.expect("signal", watcher="all", type="NodeDown", node="b")
        assert await run(a, "nodes") == []
        # Its name was freed in Redis too: b starts again at once, a new incarnation.
        async with start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=60.0):
            with trio.fail_after(10):
                await a.expect("signal", watcher="all", type="NodeUp", node="b")


async def test_node_monitors_see_a_restart_as_down_then_up(redis: RedisServer) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        await run(a, "watch", name="all", kind="monitor_nodes")
        b.process.kill()
        await a.expect("signal", watcher="all", type="NodeDown", node="b")
        await trio.sleep(HEARTBEAT)  # b's claim on its name expires with its heartbeats
        async with start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT):
            await a.expect("signal", watcher="all", type="NodeUp", node="b")


async def test_monitor_node_of_an_unknown_node_fires_at_once(redis: RedisServer) -> None:
    async with cluster(redis, "a") as (a,):
        await run(a, "watch", name="n", kind="monitor_node", node="nowhere")
        await a.expect("signal", watcher="n", type="NodeDown", node="nowhere")


async def test_remote_calls_and_casts(redis: RedisServer) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        await run(b, "counter", name="counter")
        assert await run(a, "call", name="counter", node="b", request=["add", 2]) == {"value": 2}
        await run(a, "cast", name="counter", node="b", amount=40)
        assert await run(a, "call", name="counter", node="b", request="get") == {"value": 42}
        # The reply's pid is the server's, seen from a as a pid of b.
        whoami = await run(a, "call", name="counter", node="b", request="whoami")
        assert whoami["value"].startswith("<")
        assert not whoami["value"].startswith("<0.")
        # A call to a name nobody holds there: noproc, as a local call.
        missing = await run(a, "call", name="nobody", node="b", request="get")
        assert missing["exit"] == "noproc"
        # A timeout, then the server still answers the next call.
        assert await run(a, "call", name="counter", node="b", request="hang", timeout=0.3) == {
            "timeout": True
        }
        assert await run(a, "call", name="counter", node="b", request="get") == {"value": 42}
        # The server crashes during the call: the caller exits with the server's reason.
        crashed = await run(a, "call", name="counter", node="b", request="crash")
        assert "the counter crashed" in crashed["exit"]
        assert crashed["where"] == "('beam.call', ('counter', 'b'))"


async def test_a_call_to_a_node_that_dies_ends_with_noconnection(redis: RedisServer) -> None:
    async with cluster(redis, "a", "b") as (a, b):
        await run(b, "counter", name="counter")
        await run(a, "call_in_background", name="counter", node="b", request="hang", timeout=30)
        await b.drain()
        b.process.kill()
        started = trio.current_time()
        event = await a.expect("called")
        assert event["exit"] == "noconnection"
        assert trio.current_time() - started < TIMEOUT + HEARTBEAT + 1.5  # not the 30 s
        # And a call to a node that is not up fails at once the same way.
        assert (await run(a, "call", name="counter", node="b", request="get"))["exit"] == (
            "noconnection"
        )
