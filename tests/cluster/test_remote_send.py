"""Node identity and remote send (beam.send to a pid of another node or to ``(name, node)``),
with real Redis and node OS processes (tests/support/nodes.py).

Two nodes: an echo registered on A answers B's sender at its remote pid; 1,000 messages from
one process to another arrive in order; sends to a dead or stale remote pid and to an
unknown name are dropped without error; ``beam.nodes()`` lists the peer and drops it within
timeout + heartbeat after SIGKILL; a second live node with a taken name is refused.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
import trio

import beam
from beam import cluster

from ..support.nodes import NodeProcess, RedisServer, redis_server, start_node

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")

HEARTBEAT = 0.2
TIMEOUT = 1.0


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def wait_for_nodes(node: NodeProcess, expected: list[str], within: float) -> float:
    """Poll ``beam.nodes()`` on *node* until it is *expected*; the time it took."""
    start = trio.current_time()
    with trio.fail_after(within):
        while (await node.call("nodes"))["nodes"] != expected:  # noqa: ASYNC110 - another OS process
            await trio.sleep(0.05)
    return trio.current_time() - start


async def test_echo_on_a_answers_a_remote_pid_on_b(redis: RedisServer) -> None:
    async with (
        start_node(redis.url, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a,
        start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT) as b,
    ):
        await a.call("echo", name="echo")
        await b.call("sink", name="s")
        await b.call("send", sink="s", name="echo", node="a", msg="hello")
        reply = await b.expect("message", topic="s")
        # ("echo", A's echo pid (remote on b: <N.x.0>, N > 0), "hello")
        assert re.fullmatch(r"\('echo', <[1-9]\d*\.\d+\.0>, 'hello'\)", reply["msg"])
        # (name, node) of this very node is a local send.
        await b.call("echo", name="echo_b")
        await b.call("send", sink="s", name="echo_b", node="b", msg="local")
        local = await b.expect("message", topic="s")
        assert re.fullmatch(r"\('echo', <0\.\d+\.0>, 'local'\)", local["msg"])


async def test_a_thousand_messages_arrive_in_order(redis: RedisServer) -> None:
    async with (
        start_node(redis.url, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a,
        start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT) as b,
    ):
        await a.call("echo", name="echo")
        await b.call("sink", name="s")
        await b.call("send", sink="s", name="echo", node="a", msg="n", count=1000)
        with trio.fail_after(15):
            while len(b.seen("message", topic="s")) < 1000:
                await b.drain()
                await trio.sleep(0.05)
        numbers = [int(e["msg"].rsplit(", ", 1)[1].rstrip(")")) for e in b.seen("message")]
        assert numbers == list(range(1000))


async def test_sends_to_dead_stale_and_unknown_destinations_are_dropped(
    redis: RedisServer,
) -> None:
    async with start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT) as b:
        await b.call("sink", name="s")
        async with start_node(redis.url, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a:
            await a.call("echo", name="echo")
            await b.call("send", sink="s", name="echo", node="a", msg="first")
            await b.expect("message", topic="s")
            await a.call("kill", name="echo")
            await a.call("echo", name="echo")  # a new process under the name
            await b.call("send_last", sink="s", msg="to the dead")  # the old echo's pid
            await b.call("send", sink="s", name="nobody", node="a", msg="unknown name")
            await b.call("send", sink="s", name="echo", node="nowhere", msg="unknown node")
            await b.call("send", sink="s", name="echo", node="a", msg="marker")
            marker = await b.expect("message", topic="s")
            assert "marker" in marker["msg"], marker
            await a.drain()
            assert a.seen("log", level="ERROR") == []
        # a restarted: a new incarnation, whose echo likely has the same pid number.
        await trio.sleep(TIMEOUT + HEARTBEAT)  # a's name expires
        async with start_node(redis.url, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a2:
            await a2.call("echo", name="echo")
            await a2.call("echo", name="echo2")
            await b.call("send_last", sink="s", msg="to the stale")  # the first a's echo
            await b.call("send", sink="s", name="echo", node="a", msg="marker 2")
            marker = await b.expect("message", topic="s")
            assert "marker 2" in marker["msg"], marker
        await b.drain()
        texts = [e["msg"] for e in b.seen("message", topic="s")]
        assert not any("dead" in t or "stale" in t or "unknown" in t for t in texts), texts
        assert b.seen("log", level="ERROR") == []


async def test_nodes_lists_peers_and_drops_a_killed_one_in_time(redis: RedisServer) -> None:
    async with (
        start_node(redis.url, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a,
        start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT) as b,
    ):
        await wait_for_nodes(a, ["b"], 5)
        await wait_for_nodes(b, ["a"], 5)
        b.process.kill()
        took = await wait_for_nodes(a, [], TIMEOUT + HEARTBEAT + 2)
        assert took <= TIMEOUT + HEARTBEAT + 0.3  # plus polling and the node's own latency


async def test_a_duplicate_live_node_name_is_refused(redis: RedisServer) -> None:
    async with start_node(redis.url, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a:
        async with start_node(
            redis.url, "a", expect_ready=False, heartbeat=HEARTBEAT, timeout=TIMEOUT
        ) as again:
            refused = await again.expect("refused")
            assert "already has that name" in refused["error"]
            assert not again.seen("ready")
        await a.call("ping")


async def test_alone_a_node_is_nonode_and_remote_sends_are_dropped() -> None:
    async with beam.open_node():
        assert beam.node() == "nonode@nohost"
        assert beam.nodes() == []
        far = beam.Pid(1, beam.NodeId("far", 1))
        beam.send(far, "lost")  # no cluster: dropped, no error
        beam.send(("echo", "far"), "lost")
        beam.send(("nobody", "nonode@nohost"), "lost")  # a local unknown name: dropped too
        beam.register("me", beam.self())
        beam.send(("me", beam.node()), "here")
        assert await beam.receive(timeout=1) == "here"


async def test_an_unencodable_remote_message_raises_in_the_sender(redis: RedisServer) -> None:
    async with beam.open_node():
        await cluster.start_pubsub(
            redis.url, node="solo", wait=5, heartbeat=HEARTBEAT, timeout=TIMEOUT
        )
        assert beam.node() == "solo"
        with pytest.raises(cluster.CodecError, match="register"):
            beam.send(("echo", "elsewhere"), object())
        with pytest.raises(cluster.CodecError, match="register"):
            beam.send(beam.Pid(3, beam.NodeId("elsewhere", 9)), ("x", object()))
