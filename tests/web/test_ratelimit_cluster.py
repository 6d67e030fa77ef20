"""A rate limit shared by two nodes (real OS processes, real Redis): hits on either node count
once, and when the node holding the limiter dies, the other takes over."""

from __future__ import annotations

import trio

import beam
from tests.support.nodes import redis_server, start_node

from . import ratelimit_steps as steps

STEPS = "tests.web.ratelimit_steps"


async def test_a_shared_limit_counts_hits_of_every_node_and_survives_its_holder() -> None:
    with redis_server() as redis:
        async with start_node(redis.url, "far", heartbeat=0.2, timeout=1.0) as far:
            assert (await far.call("run", fn=f"{STEPS}:start_limiter"))["result"] == "here"
            async with beam.open_node(name="here", cluster=redis.url):
                assert await steps.start_limiter() == "elsewhere"  # far holds the name
                assert await steps.hit("ann") == "ok"
                assert (await far.call("run", fn=f"{STEPS}:hit", args={"key": "ann"}))[
                    "result"
                ] == "ok"
                assert await steps.hit("ann") == "ok"
                refused = await steps.hit("ann")  # the 4th hit, wherever it was counted
                assert refused.startswith("slow down: at most 3 messages per minute")
                assert await steps.hit("bob") == "ok"  # counted per key

                holder = beam.whereis_global(steps.SHARED.global_name)
                assert holder is not None
                assert holder.node is not None
                assert holder.node.name == "far"
                far.process.kill()
                # Until this node learns that far is down (its connection closed: a few
                # tenths of a second; else 5 s here without heartbeats), hits do not wait on
                # it long: they count on this node's limiter. Only the first waits for far's
                # answer (at most 0.5 s); the next ones do not ask far again.
                with trio.fail_after(3):
                    assert await steps.hit("dan") == "ok"
                with trio.fail_after(0.4):
                    assert [await steps.hit("eve") for _ in range(3)] == ["ok"] * 3
                mine = beam.whereis(steps.SHARED.local_name)
                with trio.fail_after(10):  # this node's limiter takes the name over
                    while beam.whereis_global(steps.SHARED.global_name) != mine:  # noqa: ASYNC110
                        await trio.sleep(0.05)
                assert await steps.hit("ann") == "ok"  # the new holder started empty
                with_refusal = [await steps.hit("cat") for _ in range(4)]
                assert with_refusal[:3] == ["ok", "ok", "ok"]
                assert with_refusal[3].startswith("slow down")
