"""Channel and transport processes run under partitioned DynamicSupervisor pools (issue 18).

As in Phoenix: each connection's transport is a temporary child of a partition of
``web.transports``, each joined topic's channel a temporary child of a partition of
``web.channels``, both under the node's ``web.socket_sup`` tree; the links stay (a transport's
death stops its channels; a channel's crash is a ``phx_error`` and the transport lives), and
stopping the tree stops the channels before the transports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import trio

import beam
import web
from supervisors import DynamicSupervisor, Supervisor
from tests.support import phx
from tests.support.pools import children_of
from web.channels._pools import CHANNELS, PARTITIONS, TRANSPORTS, TREE


class Room(web.Channel):
    async def handle_in(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        if event == "whoami":
            return web.ok({"pid": str(beam.self()), "transport": str(socket.transport_pid)})
        if event == "boom":
            raise RuntimeError("handle_in went wrong")
        return None


class RoomSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Room}
    rate_limit = None


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    async with beam.open_node():
        endpoint = web.Endpoint()
        endpoint.socket("/socket", RoomSocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield port
            nursery.cancel_scope.cancel()


async def active(pool: str) -> int:
    return sum(
        [(await DynamicSupervisor.count_children(f"{pool}.{i}")).active for i in range(PARTITIONS)]
    )


async def channel_of(client: phx.Phx, join_ref: str, topic: str) -> tuple[str, str]:
    reply = await client.reply(await client.send(join_ref, topic, "whoami", {}))
    return reply["response"]["pid"], reply["response"]["transport"]


async def test_transports_and_channels_are_children_of_the_pools() -> None:
    async with serving() as port, phx.connect(port) as one, phx.connect(port) as two:
        refs = {}
        for client, topic in ((one, "room:a"), (one, "room:b"), (two, "room:a")):
            refs[client, topic], _ = await client.join(topic)
        channels = {str(p) for p in await children_of(CHANNELS)}
        transports = {str(p) for p in await children_of(TRANSPORTS)}
        assert await active(CHANNELS) == 3
        assert await active(TRANSPORTS) == 2
        for (client, topic), join_ref in refs.items():
            channel, transport = await channel_of(client, join_ref, topic)
            assert channel in channels
            assert transport in transports
        # In the tree: web.socket_sup > web.transports / web.channels > partitions > processes.
        pools = {c.id: c.pid for c in await Supervisor.which_children(TREE)}
        assert set(pools) == {TRANSPORTS, CHANNELS}
        for pool, pid in pools.items():
            assert pid is not None
            partitions = await Supervisor.which_children(pid)
            assert len(partitions) == PARTITIONS
            for child in partitions:
                assert child.pid == beam.whereis(f"{pool}.{child.id}")


async def test_a_crashing_channel_is_a_phx_error_and_its_transport_lives() -> None:
    async with serving() as port, phx.connect(port) as client:
        join_ref, _ = await client.join("room:x")
        _, transport = await channel_of(client, join_ref, "room:x")
        boom = await client.send(join_ref, "room:x", "boom", {})
        assert (await client.reply(boom))["response"] == {"reason": "channel crashed"}
        await client.event("room:x", "phx_error")
        again, reply = await client.join("room:x")
        assert reply["status"] == "ok"
        assert (await channel_of(client, again, "room:x"))[1] == transport
        assert await active(CHANNELS) == 1
        assert await active(TRANSPORTS) == 1


async def test_a_dead_transport_takes_its_channels_down() -> None:
    async with serving() as port, phx.connect(port) as client:
        for topic in ("room:1", "room:2"):
            await client.join(topic)
        [transport] = await children_of(TRANSPORTS)
        channels = await children_of(CHANNELS)
        refs = [beam.monitor(pid) for pid in channels]
        beam.exit(transport, "kill")
        for _ in refs:
            down = await beam.receive(beam.Down)
            assert down.ref in refs
            assert down.reason == "killed"
        assert await active(CHANNELS) == 0


async def test_stopping_the_tree_stops_channels_before_transports() -> None:
    async with serving() as port, phx.connect(port) as client:
        await client.join("room:1")
        await client.join("room:2")
        watched = {beam.monitor(p): "channel" for p in await children_of(CHANNELS)}
        watched |= {beam.monitor(p): "transport" for p in await children_of(TRANSPORTS)}
        await Supervisor.stop(TREE, "shutdown")
        order: list[str] = []
        while len(order) < len(watched):
            down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref in watched)
            order.append(watched[down.ref])
        assert order == ["channel", "channel", "transport"]


async def test_connections_arriving_together_start_one_tree() -> None:
    async with serving() as port:
        joined: list[str] = []

        async def connect_and_join(i: int) -> None:
            async with phx.connect(port) as client:
                _, reply = await client.join(f"room:{i}")
                joined.append(reply["status"])

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(connect_and_join, i)
        assert joined == ["ok"] * 20
        assert beam.whereis(TREE) is not None
