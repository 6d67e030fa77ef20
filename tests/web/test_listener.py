"""The listener under the endpoint's supervision tree (issue 18): ``web.endpoint`` runs the
Channels pools (``web.socket_sup``) and then the listener; shutdown goes the other way:
the listener stops accepting, then the channels stop, then the transports (their
WebSockets close with 1001), then the remaining connections end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import ClassVar

import pytest
import trio

import beam
import web
from supervisors import Supervisor
from tests.support import phx, wsclient
from tests.support.pools import children_of
from web.channels._pools import CHANNELS, TRANSPORTS, TREE
from web.http._listener import ENDPOINT, LISTENER


class Room(web.Channel):
    pass


class RoomSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Room}
    rate_limit = None


def endpoint() -> web.Endpoint:
    site = web.Endpoint()
    site.get("/", lambda request: web.Response(200, b"hello\n"))
    site.socket("/socket", RoomSocket())
    return site


@asynccontextmanager
async def serving(nursery: trio.Nursery) -> AsyncIterator[int]:
    """Serve :func:`endpoint` in *nursery*; the caller cancels it to shut the server down."""
    yield await nursery.start(web.serve, endpoint(), "127.0.0.1", 0)


async def get(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
        return data


async def until_closed(client: phx.Phx) -> tuple[list[str | bytes], int]:
    """The frames *client* receives until the server closes, and the close code."""
    frames: list[str | bytes] = []
    with trio.fail_after(10):
        while True:
            try:
                frames.append(await client.client.receive())
            except wsclient.Closed as closed:
                return frames, closed.code


def test_the_endpoint_declares_the_socket_pools_once() -> None:
    site = endpoint()
    site.socket("/live", RoomSocket())  # a second socket shares the node's one pool
    assert [spec.id for spec in site.children()] == [TREE]
    with pytest.raises(TypeError, match=r"supervisors\.ChildSpec"):
        site.supervise("web.socket_sup")  # type: ignore[arg-type]


async def test_the_tree_runs_the_socket_pools_then_the_listener() -> None:
    async with beam.open_node(), trio.open_nursery() as nursery, serving(nursery) as port:
        tree = beam.whereis(ENDPOINT)
        assert tree is not None
        children = await Supervisor.which_children(ENDPOINT)
        assert [c.id for c in children] == [TREE, LISTENER]
        assert [c.type for c in children] == ["supervisor", "worker"]
        assert [c.pid for c in children] == [beam.whereis(TREE), beam.whereis(LISTENER)]
        for child in children:
            assert child.pid is not None
            info = beam.process_info(child.pid)
            assert info is not None
            assert info.parent == tree
        assert (await get(port)).endswith(b"hello\n")
        nursery.cancel_scope.cancel()
    # (the node closed: nothing of the tree is left to look at)


async def _serve_until(
    scope: trio.CancelScope, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    with scope:
        await web.serve(endpoint(), "127.0.0.1", 0, task_status=task_status)


async def test_shutdown_stops_the_listener_then_channels_then_transports() -> None:
    async with beam.open_node(), trio.open_nursery() as nursery:
        server = trio.CancelScope()
        port = await nursery.start(_serve_until, server)
        async with phx.connect(port) as client:
            for topic in ("room:1", "room:2"):
                await client.join(topic)
            listener, tree = beam.whereis(LISTENER), beam.whereis(ENDPOINT)
            assert listener is not None
            assert tree is not None
            watched = {beam.monitor(listener): "listener"}
            watched |= {beam.monitor(p): "channel" for p in await children_of(CHANNELS)}
            watched |= {beam.monitor(p): "transport" for p in await children_of(TRANSPORTS)}
            watched[beam.monitor(tree)] = "web.endpoint"
            server.cancel()  # as the node stopping does
            # The transport closes its WebSocket with 1001 (phoenix.js reconnects elsewhere).
            frames, code = await until_closed(client)
            # Each channel says phx_error as it stops (phoenix.js rejoins once reconnected),
            # then the transport closes the WebSocket with 1001 (phoenix.js reconnects).
            assert sorted(json.loads(f)[2:4] for f in frames) == [
                ["room:1", "phx_error"],
                ["room:2", "phx_error"],
            ]
            assert code == 1001
        order: list[str] = []
        while len(order) < len(watched):
            down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref in watched)
            order.append(watched[down.ref])
        assert order == ["listener", "channel", "channel", "transport", "web.endpoint"]
        with pytest.raises(OSError, match="all attempts to connect"):  # nobody accepts there
            await get(port)


async def test_a_killed_listener_comes_back_on_the_same_port() -> None:
    async with beam.open_node(), trio.open_nursery() as nursery, serving(nursery) as port:
        async with phx.connect(port) as client:  # an open connection outlives the listener
            join_ref, _ = await client.join("room:1")
            first = beam.whereis(LISTENER)
            assert first is not None
            beam.exit(first, "kill")
            with trio.fail_after(5):
                while beam.whereis(LISTENER) in (None, first):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            [listener] = [c for c in await Supervisor.which_children(ENDPOINT) if c.id == LISTENER]
            assert listener.restarts == 1
            assert (await get(port)).endswith(b"hello\n")
            reply = await client.push(join_ref, "room:1", "phx_leave", {})
            assert reply["status"] == "ok"
        nursery.cancel_scope.cancel()


async def test_serve_fails_when_the_tree_gives_up() -> None:
    async with beam.open_node():
        with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="supervision tree .* exited")):
            async with trio.open_nursery() as nursery:
                await nursery.start(web.serve, endpoint(), "127.0.0.1", 0)
                for _ in range(4):  # over web.endpoint's intensity (3 restarts in 5 s)
                    with trio.fail_after(5):
                        while (listener := beam.whereis(LISTENER)) is None:  # noqa: ASYNC110
                            await trio.sleep(0.01)
                    ref = beam.monitor(listener)
                    beam.exit(listener, "kill")
                    assert (await beam.receive(beam.Down)).ref == ref
                await trio.sleep_forever()
