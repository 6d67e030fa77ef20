"""PubSub across nodes through Redis (beam.cluster.start_pubsub), with real Redis and real
OS processes (tests/support/nodes.py): each test owns its redis-server on a free port.

Two nodes: a broadcast on either reaches the other's subscribers exactly once,
``local_broadcast`` stays local, ``direct_broadcast`` reaches only its node; garbage published
on the channels is dropped with a warning and the node goes on; Redis killed and restarted on
the same port: senders never raise, and the subscriber resubscribes by itself.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

import beam
from beam import cluster
from beam._resp import connect

from ..support.nodes import RedisServer, free_port, redis_server, start_node

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def publish_raw(url: str, channel: str, payloads: list[bytes]) -> None:
    async with await connect(url) as redis:
        await redis.pipeline([("PUBLISH", channel, data) for data in payloads])


async def test_broadcasts_cross_nodes_once_and_local_broadcasts_stay_local(
    redis: RedisServer,
) -> None:
    async with start_node(redis.url, "a") as a, start_node(redis.url, "b") as b:
        await a.call("subscribe", topic="room")
        await b.call("subscribe", topic="room")
        await a.call("subscribe", topic="other")

        await a.call("broadcast", topic="room", msg="from a")
        await b.expect("message", topic="room", msg="'from a'")
        await a.expect("message", topic="room", msg="'from a'")

        await b.call("broadcast", topic="room", msg=["from b", 1])
        await a.expect("message", topic="room", msg="('from b', 1)")
        await b.expect("message", topic="room", msg="('from b', 1)")

        await a.call("local_broadcast", topic="room", msg="a only")
        await a.expect("message", topic="room", msg="'a only'")
        await b.call("direct_broadcast", node="a", topic="room", msg="b to a")
        await a.expect("message", topic="room", msg="'b to a'")
        await a.call("direct_broadcast", node="a", topic="room", msg="a to itself")
        await a.expect("message", topic="room", msg="'a to itself'")

        # A marker last: per-publisher order means b has seen everything a sent before it.
        await a.call("broadcast", topic="room", msg="end")
        await b.expect("message", topic="room", msg="'end'")
        await a.expect("message", topic="room", msg="'end'")
        await a.drain()
        await b.drain()
        assert [e["msg"] for e in a.seen("message", topic="room")] == [
            "'from a'",
            "('from b', 1)",
            "'a only'",
            "'b to a'",
            "'a to itself'",
            "'end'",
        ]
        assert [e["msg"] for e in b.seen("message", topic="room")] == [
            "'from a'",
            "('from b', 1)",
            "'end'",
        ]
        assert a.seen("message", topic="other") == []


async def test_a_node_survives_garbage_on_its_channels(redis: RedisServer) -> None:
    rng = random.Random(15)
    garbage = [rng.randbytes(rng.randrange(0, 64)) for _ in range(100)]
    garbage += [
        b"",
        b"\xc1",
        cluster.encode(("not", "an", "envelope")),
        bytes([0x95, 0x02]) + cluster.encode("except")[0:],  # version 2, truncated
        b"\x95\x01\xa6except\xa1x\xc0\xc4\x03\xd4\x63\x00",  # body: unknown extension 99
    ]
    stranger = beam.NodeId("stranger", 1)
    signals = [  # well-formed frames, nonsense signals: each dropped with a warning
        cluster.encode_signal(("link", 1, 2), local=stranger),
        cluster.encode_signal(("bogus",), local=stranger),
        cluster.encode_signal(("down", beam.Ref(1), "x", "y"), local=stranger),
        cluster.encode_signal(("monitor", beam.Pid(1), 7, "t"), local=stranger),
    ]
    async with start_node(redis.url, "a") as a, start_node(redis.url, "b") as b:
        await b.call("subscribe", topic="room")
        await publish_raw(redis.url, "beam:pubsub", garbage)
        await publish_raw(redis.url, "beam:pubsub:node:b", garbage[:20] + signals)
        await a.call("broadcast", topic="room", msg="still fine")
        await b.expect("message", topic="room", msg="'still fine'")
        await b.expect("log", level="WARNING")
        await b.drain()
        warned = [e["text"] for e in b.seen("log", level="WARNING")]
        assert any("malformed PubSub message" in text for text in warned)
        assert any("dropped a signal from stranger" in text for text in warned)
        # Rate-limited: one warning per interval (0.5 s in the node programs), with a count.
        assert 2 <= len(warned) <= 6
        assert b.seen("log", level="ERROR") == []
        assert (await b.call("nodes"))["nodes"] == ["a"]  # no phantom "stranger"
        assert b.seen("message", topic="room") == [b.seen("message")[0]]


async def test_redis_going_away_never_raises_in_the_sender_and_the_subscriber_returns(
    redis: RedisServer,
) -> None:
    async with start_node(redis.url, "a") as a, start_node(redis.url, "b") as b:
        await b.call("subscribe", topic="room")
        await a.call("broadcast", topic="room", msg="before")
        await b.expect("message", topic="room", msg="'before'")

        redis.kill()
        for n in range(20):  # the sender goes on (an error would fail the call)
            await a.call("broadcast", topic="room", msg=f"lost {n}")
        await a.expect("log", level="WARNING")
        await b.expect("log", level="WARNING")

        redis.start()  # same port
        with trio.fail_after(10):
            n = 0
            while not b.seen("message", topic="room", msg=f"'probe {n - 1}'"):
                await a.call("broadcast", topic="room", msg=f"probe {n}")
                n += 1
                await trio.sleep(0.1)
                await b.drain()
        assert any("resubscribed" in e["text"] for e in b.seen("log"))


async def test_three_nodes_recover_from_a_redis_restart_by_themselves(
    redis: RedisServer,
) -> None:
    async with (
        start_node(redis.url, "a", heartbeat=0.2, timeout=1.0) as a,
        start_node(redis.url, "b", heartbeat=0.2, timeout=1.0) as b,
        start_node(redis.url, "c", heartbeat=0.2, timeout=1.0) as c,
    ):
        nodes = {"a": a, "b": b, "c": c}
        for node in nodes.values():
            await node.call("subscribe", topic="room")

        async def everyone_hears_everyone(tag: str) -> None:
            with trio.fail_after(15):
                for name, sender in nodes.items():
                    n = 0
                    while True:  # until each of the others heard this sender's latest probe
                        probe = f"{tag} {name} {n}"
                        await sender.call("broadcast", topic="room", msg=probe)
                        await trio.sleep(0.1)
                        for node in nodes.values():
                            await node.drain()
                        if all(
                            node.seen("message", topic="room", msg=repr(probe))
                            for node in nodes.values()
                        ):
                            break
                        n += 1
                for name, node in nodes.items():
                    while (await node.call("nodes"))["nodes"] != sorted(set(nodes) - {name}):  # noqa: ASYNC110
                        await trio.sleep(0.05)

        await everyone_hears_everyone("before")
        redis.kill()
        await trio.sleep(1.5)  # past the timeout: each node now sees the others as down
        for node in nodes.values():
            assert (await node.call("nodes"))["nodes"] == []
        redis.start()
        await everyone_hears_everyone("after")


# -- one node, in this process ------------------------------------------------------------------


@dataclass(frozen=True)
class NotRegistered:
    x: int


async def test_a_message_that_cannot_travel_fails_in_the_sender_after_the_local_dispatch(
    redis: RedisServer,
) -> None:
    async with beam.open_node():
        adapter = await cluster.start_pubsub(redis.url, node="solo", wait=5)
        assert beam.node_name() == "solo"
        assert isinstance(adapter, cluster.RedisPubSub)
        beam.subscribe("t")
        with pytest.raises(cluster.CodecError, match=r"beam\.cluster\.register"):
            beam.broadcast("t", NotRegistered(1))
        assert await beam.receive(timeout=1) == NotRegistered(1)
        beam.local_broadcast("t", NotRegistered(2))  # stays local: never encoded
        assert await beam.receive(timeout=1) == NotRegistered(2)

        def fastlane(entries: list[tuple[beam.Pid, Any]], exclude: Any, msg: Any) -> None:
            pass

        with pytest.raises(cluster.CodecError, match="register_dispatcher"):
            beam.broadcast("t", "x", dispatcher=fastlane)


async def test_without_redis_a_node_works_locally_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens
    caplog.set_level(logging.WARNING, logger="beam.cluster")
    async with beam.open_node():
        await cluster.start_pubsub(url, node="alone", wait=0.3)
        beam.subscribe("t")
        for n in range(100):
            beam.broadcast("t", n)
        assert [await beam.receive(timeout=1) for _ in range(100)] == list(range(100))
        await trio.sleep(0.3)
    texts = [record.getMessage() for record in caplog.records]
    assert any("not subscribed to Redis" in text for text in texts)
    assert any("publishes dropped" in text for text in texts)
    assert len(texts) < 20  # rate-limited


@pytest.mark.parametrize("role", ["subscriber", "publisher", "heartbeat", "prober"])
async def test_the_connection_restarts_a_killed_worker(
    redis: RedisServer, caplog: pytest.LogCaptureFixture, role: str
) -> None:
    async with start_node(redis.url, "far") as far, beam.open_node():
        adapter = await cluster.start_pubsub(redis.url, node="here", wait=5)
        assert adapter.connection is not None
        root = beam.process_info(adapter.connection)
        assert root is not None
        assert root.initial_call.endswith("RedisPubSub")
        workers = {
            info.initial_call.rpartition("_")[2]: pid
            for pid in root.links
            if (info := beam.process_info(pid)) is not None
        }
        assert sorted(workers) == ["heartbeat", "prober", "publisher", "subscriber"]
        assert workers["publisher"] == adapter.pid
        beam.subscribe("room")
        with trio.fail_after(5):
            while adapter.nodes() != ["far"]:  # noqa: ASYNC110 - heard through Redis
                await trio.sleep(0.01)

        await far.call("subscribe", topic="back")
        beam.exit(workers[role], "kill")
        with trio.fail_after(10):
            while True:  # until the new worker is in place: broadcasts cross both ways
                await far.call("broadcast", topic="room", msg="again")
                beam.broadcast("back", "ping")
                await trio.sleep(0.2)
                await far.drain()
                if far.seen("message", topic="back"):
                    with contextlib.suppress(beam.ReceiveTimeout):
                        if await beam.receive(lambda m: m == "again", timeout=0):
                            break
        info = beam.process_info(adapter.connection)
        assert info is not None
        assert workers[role] not in info.links
        assert len(info.links) == 4
        assert adapter.nodes() == ["far"]
    assert any(f"{role} exited ('killed')" in r.getMessage() for r in caplog.records)


async def test_flush_makes_broadcasts_survive_a_sigkill_right_after(redis: RedisServer) -> None:
    # Without flush, the far node dies with its broadcasts still queued for its publisher.
    async with start_node(redis.url, "far") as far, beam.open_node():
        await cluster.start_pubsub(redis.url, node="here", wait=5)
        beam.subscribe("room")
        with trio.fail_after(5):
            while beam.nodes() != ["far"]:  # noqa: ASYNC110 - heard through Redis
                await trio.sleep(0.01)
        fn = "tests.cluster.flush_steps:broadcast_flush_and_die"
        with pytest.raises(RuntimeError, match="exited"):
            await far.call("run", fn=fn, args={"topic": "room", "count": 200})
        assert await far.process.wait() == -9
        got = [await beam.receive(timeout=5) for _ in range(200)]
        assert got == [("m", i) for i in range(200)]


async def test_flush_answers_true_alone_and_false_when_redis_is_gone(redis: RedisServer) -> None:
    async with beam.open_node():
        assert await cluster.flush() is True  # no cluster: nothing to wait for
    async with beam.open_node():
        await cluster.start_pubsub(redis.url, node="here", wait=5, heartbeat=0.5, timeout=1.0)
        beam.broadcast("room", "hi")
        assert await cluster.flush() is True
        redis.kill()
        beam.broadcast("room", "lost")
        assert await cluster.flush(timeout=3.0) is False
