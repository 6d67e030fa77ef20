"""Global names across nodes (beam.register_global and friends), with real Redis and node OS
processes (tests/support/nodes.py; node-side steps in global_steps.py).

One owner cluster-wide when three nodes race for a name; every node's table converges;
the name is freed everywhere when the owner exits, and within the cluster's timeout when
its node is SIGKILLed; send_global reaches an owner on another node; a node paused
(SIGSTOP) past the timeout loses its names, and when it comes back (SIGCONT) after another
node took one, the registration held in Redis wins and the loser is told (killed, or
notified), while a name nobody took is the returning node's again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from beam._resp import connect

from ..support.nodes import NodeProcess, RedisServer, redis_server, start_node

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")

HEARTBEAT = 0.2
TIMEOUT = 1.0
#: How long anything that should converge may take here (generous: a loaded CI machine).
WITHIN = 8.0


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@contextlib.asynccontextmanager
async def cluster(url: str, *names: str) -> AsyncIterator[list[NodeProcess]]:
    """Nodes called *names*, each knowing all the others."""
    async with contextlib.AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(
                start_node(url, name, heartbeat=HEARTBEAT, timeout=TIMEOUT)
            )
            for name in names
        ]
        for node in nodes:
            others = sorted(n for n in names if n != node.name)
            await eventually(node, "nodes", others, op="nodes")
        yield nodes


async def step(node: NodeProcess, fn: str, **args: Any) -> Any:
    """Run ``global_steps.<fn>(**args)`` on *node*; its result."""
    answer = await node.call("run", fn=f"tests.cluster.global_steps:{fn}", args=args)
    return answer["result"]


async def eventually(
    node: NodeProcess, fn: str, expected: Any, *, op: str = "run", **args: Any
) -> None:
    """Poll the step *fn* on *node* until it answers *expected* (fail after WITHIN s)."""
    last: Any = None
    try:
        with trio.fail_after(WITHIN):
            while True:
                if op == "run":
                    last = await step(node, fn, **args)
                else:
                    last = (await node.call(op))[fn]
                if last == expected:
                    return
                await trio.sleep(0.05)
    except trio.TooSlowError:
        raise AssertionError(f"{node.name}: {fn}{args} is {last!r}, not {expected!r}") from None


async def test_one_owner_when_three_nodes_race(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b", "c") as nodes:
        at = time.time() + 0.5
        async with trio.open_nursery() as nursery:
            results: dict[str, list[Any]] = {}

            async def race(node: NodeProcess) -> None:
                results[node.name] = await step(node, "race", name="leader", count=5, at=at)

            for node in nodes:
                nursery.start_soon(race, node)
        winners = [pid for won in results.values() for pid in won]
        assert len(winners) == 1, results
        for node in nodes:
            await eventually(node, "whereis", winners[0], name="leader")
            assert await step(node, "registered") == ["leader"]


async def test_whereis_converges_and_owner_exit_frees_everywhere(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b", "c") as (a, b, c):
        pid = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="boss")
        assert await step(a, "whereis", name="boss") == pid  # at once on the owner's node
        for node in (b, c):
            await eventually(node, "whereis", pid, name="boss")
        # Taken cluster-wide: another node cannot have it.
        await step(b, "spawn", label="other")
        assert not await step(b, "register", label="other", name="boss")
        await step(a, "kill", label="owner")
        for node in (a, b, c):
            await eventually(node, "whereis", None, name="boss")
        assert await step(b, "register", label="other", name="boss")
        await a.drain()
        assert not [e["text"] for e in a.seen("log") if "beam.global" in e["text"]]
        heir = await step(b, "whereis", name="boss")
        assert heir[0] == "b"
        for node in (a, c):
            await eventually(node, "whereis", heir, name="boss")


async def test_unregister_frees_everywhere(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        pid = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="boss")
        await eventually(b, "whereis", pid, name="boss")
        await step(a, "unregister", name="boss")
        await eventually(b, "whereis", None, name="boss")
        assert await step(a, "whereis", name="boss") is None
        async with await connect(redis.url) as client:  # freed in Redis too
            assert await client.execute("HGET", "beam:global", "boss") is None
        await a.drain()
        assert not [e["text"] for e in a.seen("log") if "beam.global" in e["text"]]


async def test_send_global_reaches_an_owner_on_another_node(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        pid = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="boss")
        await eventually(b, "whereis", pid, name="boss")
        assert await step(b, "send", name="boss", msg="hello from b") == pid
        await a.expect("got", label="owner", msg="'hello from b'")
        with pytest.raises(RuntimeError, match=r"UnknownName: .*'nobody'"):
            await step(b, "send", name="nobody", msg="lost")


async def test_sigkill_of_the_owners_node_frees_the_name(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b", "c") as (a, b, c):
        pid = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="boss")
        for node in (b, c):
            await eventually(node, "whereis", pid, name="boss")
        a.process.kill()
        killed = trio.current_time()
        for node in (b, c):
            await eventually(node, "whereis", None, name="boss")
        # Freed within the cluster's timeout (plus a heartbeat and this test's polling).
        assert trio.current_time() - killed < TIMEOUT + 2 * HEARTBEAT + 1.0
        await step(c, "spawn", label="heir")
        assert await step(c, "register", label="heir", name="boss")
        heir = await step(c, "whereis", name="boss")
        await eventually(b, "whereis", heir, name="boss")


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets the OS process *pid* holds (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def cut_from_redis(redis: RedisServer, node: NodeProcess) -> int:
    """Close every Redis connection of *node* (paused: what is published meanwhile is lost
    to it); how many were closed."""
    ports = local_ports(node.process.pid)
    closed = 0
    async with await connect(redis.url) as client:
        for line in (await client.execute("CLIENT", "LIST")).decode().splitlines():
            fields = dict(field.split("=", 1) for field in line.split(" ") if "=" in field)
            if int(fields["addr"].rpartition(":")[2]) in ports:
                await client.execute("CLIENT", "KILL", "ADDR", fields["addr"])
                closed += 1
    return closed


@contextlib.contextmanager
def paused(node: NodeProcess) -> Iterator[None]:
    """SIGSTOP the node's process for the ``with`` block (SIGCONT at the end, always)."""
    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.process.pid, signal.SIGCONT)


async def test_merge_conflict_redis_holder_wins_and_the_loser_is_killed(
    redis: RedisServer,
) -> None:
    async with cluster(redis.url, "a", "b", "c") as (a, b, c):
        old = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="leader")
        for node in (b, c):
            await eventually(node, "whereis", old, name="leader")
        with paused(a):
            # a is declared down: its names are freed on the others...
            await eventually(b, "nodes", ["c"], op="nodes")
            await eventually(c, "nodes", ["b"], op="nodes")
            for node in (b, c):
                await eventually(node, "whereis", None, name="leader")
            # ...and b takes the name meanwhile.
            new = await step(b, "spawn", label="usurper")
            assert await step(b, "register", label="usurper", name="leader")
        # a is back: the registration in Redis (b's) wins, a's owner is killed and told why.
        down = await a.expect("down", label="owner", timeout=WITHIN)
        assert down["reason"] == "('global_name_conflict', 'leader')"
        warnings = [e["text"] for e in a.seen("log") if "name conflict" in e["text"]]
        assert warnings
        assert "'leader'" in warnings[0]
        assert re.search(r"<\d+\.\d+\.0>.*<0\.\d+\.0>", warnings[0]), warnings[0]
        for node in (a, b, c):
            await eventually(node, "whereis", new, name="leader")
        assert not b.seen("down", label="usurper")


async def test_merge_conflict_notify_tells_the_loser_and_keeps_it_alive(
    redis: RedisServer,
) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        old = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="leader", resolve="notify")
        await eventually(b, "whereis", old, name="leader")
        with paused(a):
            await eventually(b, "nodes", [], op="nodes")
            await eventually(b, "whereis", None, name="leader")
            new = await step(b, "spawn", label="usurper")
            assert await step(b, "register", label="usurper", name="leader")
        got = await a.expect("got", label="owner", timeout=WITHIN)
        assert re.fullmatch(r"GlobalNameConflict\(name='leader', other=<\d+\.\d+\.0>\)", got["msg"])
        for node in (a, b):
            await eventually(node, "whereis", new, name="leader")
        await a.drain()
        assert not a.seen("down", label="owner")
        # The loser, alive and nameless, may register another name.
        assert await step(a, "register", label="owner", name="deputy")


async def test_a_name_nobody_took_is_the_returning_nodes_again(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        pid = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="boss")
        await eventually(b, "whereis", pid, name="boss")
        with paused(a):
            await eventually(b, "nodes", [], op="nodes")
            await eventually(b, "whereis", None, name="boss")
        await eventually(b, "whereis", pid, name="boss")
        await a.drain()
        assert not a.seen("down", label="owner")
        await step(b, "spawn", label="other")
        assert not await step(b, "register", label="other", name="boss")


async def test_redis_unreachable_fails_registration_clearly(redis: RedisServer) -> None:
    async with cluster(redis.url, "a") as (a,):
        await step(a, "spawn", label="owner")
        redis.kill()
        started = trio.current_time()
        with pytest.raises(RuntimeError, match=r"GlobalNamesUnavailable: .*'boss'.*Redis"):
            await step(a, "register", label="owner", name="boss")
        assert trio.current_time() - started < 8
        assert await step(a, "whereis", name="boss") is None


async def test_a_pid_of_another_node_is_registered_by_its_node(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        pid = await step(a, "spawn", label="owner")
        # b registers a's process: a's server owns (and monitors) the registration.
        assert await step(b, "register_remote", name="boss", label="owner", where="a")
        assert await step(a, "whereis", name="boss") == pid
        await eventually(b, "whereis", pid, name="boss")
        assert not await step(b, "register_remote", name="boss2", label="owner", where="a")
        # Unregistered from b: asked of a's server.
        await step(b, "unregister", name="boss")
        for node in (a, b):
            await eventually(node, "whereis", None, name="boss")
        assert await step(b, "register_remote", name="boss", label="owner", where="a")
        await eventually(a, "whereis", pid, name="boss")
        await step(a, "kill", label="owner")
        for node in (a, b):
            await eventually(node, "whereis", None, name="boss")


async def test_a_node_that_joins_later_knows_the_names(redis: RedisServer) -> None:
    async with cluster(redis.url, "a") as (a,):
        pid = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="boss")
        async with start_node(redis.url, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT) as b:
            # Loaded from Redis when b joined: there before b's first command.
            assert await step(b, "whereis", name="boss") == pid
            assert await step(b, "registered") == ["boss"]


async def test_a_node_that_missed_the_news_catches_up_from_redis(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        with paused(b):  # shorter than the timeout: nobody is declared down
            assert await cut_from_redis(redis, b) > 0
            new = await step(a, "spawn", label="owner")
            assert await step(a, "register", label="owner", name="boss")
        # b lost the broadcast; its periodic check of the counter in Redis brings it.
        await eventually(b, "whereis", new, name="boss")
        await step(a, "kill", label="owner")
        await eventually(b, "whereis", None, name="boss")


async def test_merge_conflict_found_without_the_broadcast(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        old = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="leader")
        await eventually(b, "whereis", old, name="leader")
        with paused(a):
            assert await cut_from_redis(redis, a) > 0  # a will miss b's registration
            await eventually(b, "nodes", [], op="nodes")
            await eventually(b, "whereis", None, name="leader")
            new = await step(b, "spawn", label="usurper")
            assert await step(b, "register", label="usurper", name="leader")
        # Found when a and b see each other again (their tables on NodeUp) or by a's own
        # check of its names in Redis: Redis's holder wins.
        down = await a.expect("down", label="owner", timeout=WITHIN)
        assert down["reason"] == "('global_name_conflict', 'leader')"
        for node in (a, b):
            await eventually(node, "whereis", new, name="leader")


async def test_a_restarted_server_takes_over_its_nodes_names(redis: RedisServer) -> None:
    async with cluster(redis.url, "a", "b") as (a, b):
        pid = await step(a, "spawn", label="owner")
        assert await step(a, "register", label="owner", name="boss")
        await eventually(b, "whereis", pid, name="boss")
        await step(a, "kill_server")
        # The next registration on a starts a new server: it finds boss in Redis, owned by a
        # live process of this node, and watches it again.
        await step(a, "spawn", label="other")
        assert await step(a, "register", label="other", name="deputy")
        await step(a, "kill", label="owner")
        for node in (a, b):
            await eventually(node, "whereis", None, name="boss")
        await step(b, "spawn", label="heir")
        assert await step(b, "register", label="heir", name="boss")
