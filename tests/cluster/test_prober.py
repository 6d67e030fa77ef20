"""The prober (``PUBSUB NUMSUB`` on each peer's channel): what it must not conclude.

A node here runs in the test's own process; its peer is played by hand on raw Redis
connections (a heartbeat published on the cluster channel, a subscription to the peer's
channel), so that when the peer subscribes is up to the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

import beam
from beam._codec import encode_hello
from beam._node import current_node
from beam._pubsub import _pubsub
from beam._redis_pubsub import RedisPubSub
from beam._resp import connect, subscribe
from beam._types import NodeId

from ..support.nodes import RedisServer, redis_server

PEER = NodeId("b", 7)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def this_adapter() -> RedisPubSub:
    adapter = _pubsub(current_node("test")).adapter
    assert isinstance(adapter, RedisPubSub)
    return adapter


async def beat(adapter: RedisPubSub, url: str) -> None:
    """Play one heartbeat of the peer: its name key, then its hello on the cluster channel."""
    async with await connect(url) as redis:
        await redis.execute("SET", adapter.node_key("b"), "7", "PX", 60_000)
        await redis.execute("PUBLISH", adapter.channel, encode_hello(PEER))


async def heard(adapter: RedisPubSub, url: str) -> None:
    """Play the peer's heartbeats until the node knows it."""
    with trio.fail_after(5):
        while "b" not in adapter.nodes():
            await beat(adapter, url)
            await trio.sleep(0.02)


async def test_a_peer_heard_before_it_subscribed_is_not_taken_down(redis: RedisServer) -> None:
    # A node's heartbeat and its subscription go on connections of their own: a peer may
    # be heard before its channel has a subscriber. That is a peer starting, not a dead one.
    async with beam.open_node(name="a", cluster=redis.url):
        adapter = this_adapter()
        assert adapter.dist is not None
        await heard(adapter, redis.url)
        await trio.sleep(10 * adapter.probe)
        assert adapter.nodes() == ["b"]
        assert adapter.dist.cut == {}
        async with await connect(redis.url) as raw:
            assert await raw.execute("GET", adapter.node_key("b")) == b"7"
            # Once its channel has had a subscriber, losing it takes the peer down at once.
            async with await subscribe(redis.url, [adapter.node_channel("b")]):
                await trio.sleep(5 * adapter.probe)
                assert adapter.nodes() == ["b"]
            with trio.fail_after(2):
                while adapter.nodes():  # noqa: ASYNC110 - the prober works through Redis
                    await trio.sleep(0.01)
            assert PEER in adapter.dist.cut
            assert await raw.execute("GET", adapter.node_key("b")) is None


async def test_a_redis_restart_does_not_take_down_peers_slower_to_resubscribe(
    redis: RedisServer,
) -> None:
    # Redis restarts: every node's subscription is gone and each comes back after its own
    # reconnect delay. This node coming back first must not take the others for dead.
    async with beam.open_node(name="a", cluster=redis.url):
        adapter = this_adapter()
        assert adapter.dist is not None
        await heard(adapter, redis.url)
        async with await subscribe(redis.url, [adapter.node_channel("b")]):
            await trio.sleep(5 * adapter.probe)
            assert adapter.nodes() == ["b"]
            redis.kill()
        await trio.sleep(0.3)
        redis.start()
        # This node resubscribes and probes again; the peer heartbeats, not subscribed yet.
        with trio.fail_after(5):
            while True:
                async with await connect(redis.url) as raw:
                    own = adapter.node_channel("a")
                    if (await raw.execute("PUBSUB", "NUMSUB", own))[1]:
                        break
                await trio.sleep(0.02)
        for _ in range(int(2 * adapter.heartbeat / 0.1)):  # past the prober's reconnect
            await beat(adapter, redis.url)
            await trio.sleep(0.1)
        assert adapter.nodes() == ["b"]
        assert adapter.dist.cut == {}
