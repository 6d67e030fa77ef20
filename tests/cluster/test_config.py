"""Configuring a node: ``beam.open_node(name=, cluster=)``, ``beam.run(main, name=, cluster=)``
and the ``BEAM_NODE``/``BEAM_CLUSTER`` environment variables.

With a Redis URL the node joins that cluster before its body runs (a broadcast reaches a node
configured the same way, here a node OS process configured by the environment) and leaves it
at the end, freeing its name; a live node's name is refused; a URL that is not Redis's is
refused naming the value and the fix; without a cluster nothing touches Redis (no connection is
even opened).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
import trio

import beam
from beam import cluster

from ..support.nodes import REPO_ROOT, RedisServer, redis_server, start_node

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEAM_NODE", raising=False)
    monkeypatch.delenv("BEAM_CLUSTER", raising=False)


@needs_redis
async def test_named_node_in_a_cluster_broadcasts_to_a_node_configured_by_env(
    redis: RedisServer,
) -> None:
    async with start_node(redis.url, "b", from_env=True) as b:
        assert b.seen("ready")[0]["node"] == "b"  # BEAM_NODE and BEAM_CLUSTER honoured
        await b.call("subscribe", topic="room")
        async with beam.open_node(name="a", cluster=redis.url):
            assert (beam.node(), beam.node_name()) == ("a", "a")
            beam.broadcast("room", "hi from a")
            await b.expect("message", topic="room", msg="'hi from a'")
            beam.subscribe("back")
            await b.call("broadcast", topic="back", msg="hi from b")
            assert await beam.receive(timeout=5) == "hi from b"
            with trio.fail_after(5):
                while beam.nodes() != ["b"]:  # noqa: ASYNC110 - heartbeats from another OS process
                    await trio.sleep(0.05)
        # Leaving freed the name: the same name can start again at once.
        async with beam.open_node(name="a", cluster=redis.url):
            assert beam.node() == "a"


@needs_redis
async def test_a_node_killed_by_a_link_still_leaves_and_frees_its_name(redis: RedisServer) -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    async def node_a_killed() -> None:
        async with beam.open_node(name="a", cluster=redis.url):
            beam.spawn_link(crash)
            await beam.receive()

    with pytest.raises(beam.ProcessExit):
        await node_a_killed()
    async with beam.open_node(name="a", cluster=redis.url):
        assert beam.node() == "a"


@needs_redis
async def test_environment_configures_open_node(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEAM_NODE", "from-env")
    monkeypatch.setenv("BEAM_CLUSTER", redis.url)
    async with start_node(redis.url, "b", from_env=True) as b, beam.open_node():
        assert beam.node() == "from-env"
        with trio.fail_after(5):
            while (await b.call("nodes"))["nodes"] != ["from-env"]:  # noqa: ASYNC110
                await trio.sleep(0.05)


async def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAM_NODE", "from-env")
    monkeypatch.setenv("BEAM_CLUSTER", "http://not-used")
    async with beam.open_node(name="explicit", cluster=""):
        assert (beam.node(), beam.node_name(), beam.nodes()) == ("explicit", "explicit", [])


async def test_a_name_without_a_cluster_is_just_the_name() -> None:
    async with beam.open_node(name="solo"):
        assert (beam.node(), beam.nodes()) == ("solo", [])
        beam.subscribe("t")
        beam.direct_broadcast("solo", "t", "to myself")
        assert await beam.receive(timeout=1) == "to myself"
    async with beam.open_node():
        assert beam.node() == "nonode@nohost"


@needs_redis
async def test_a_live_name_is_refused(redis: RedisServer) -> None:
    async with start_node(redis.url, "dup", from_env=True):
        with pytest.raises(cluster.NodeNameTaken, match="'dup'"):
            async with beam.open_node(name="dup", cluster=redis.url):
                pytest.fail("the body must not run")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://"])
async def test_a_url_that_is_not_redis_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="is not a Redis URL: use redis://") as info:
        async with beam.open_node(name="a", cluster=url):
            pytest.fail("the body must not run")
    assert repr(url) in str(info.value)
    assert "(from cluster=)" in str(info.value)


def test_run_refuses_a_bad_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        pytest.fail("main must not run")

    monkeypatch.setenv("BEAM_NODE", "a")
    monkeypatch.setenv("BEAM_CLUSTER", "localhost:6379")
    with pytest.raises(ValueError, match="'localhost:6379' \\(from BEAM_CLUSTER\\)"):
        beam.run(main)


def test_a_cluster_needs_a_name() -> None:
    async def main() -> None:
        pytest.fail("main must not run")

    with pytest.raises(ValueError, match=r"needs a name .*BEAM_NODE"):
        beam.run(main, cluster="redis://127.0.0.1:6379/0")


_PROBE = """
import beam
import beam._redis_pubsub as adapter

opened = []
adapter.connect = adapter.subscribe = lambda *args, **kwargs: opened.append(args)

async def main():
    return beam.node(), beam.node_name(), bool(opened)

print(beam.run(main), beam.run(main, name="by-arg"))
"""


def test_no_cluster_means_no_redis() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BEAM_NODE", "BEAM_CLUSTER")}
    env["BEAM_NODE"] = "solo"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=30,
        check=True,
    )
    assert done.stdout.split("\n")[0] == "('solo', 'solo', False) ('by-arg', 'by-arg', False)"
