"""Connection caps and presence storms (issue 13, item 8), against a live server on loopback.

Before the fix nothing capped the sockets of one user or one client address, and every
presence diff was delivered to each subscriber's channel process, which encoded it again: 1,000
sockets of one user joining one room made joins time out on the presence shard and left other
users waiting. Now the upgrade is refused over a cap (429/503, the body naming the cap), diffs
take the broadcast fast lane (no channel process woken) merged per burst, and once every
socket is closed nothing keyed by them remains.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, ClassVar

import pytest
import trio

import beam
import presence
import web
from presence._tracker import table

from ..support import phx

SECRET = "test-secret-key-of-enough-length"


class Room(web.Channel):
    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        if params.get("track"):
            beam.send(beam.self(), "track")
        return None

    async def handle_in(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        return web.ok({"echo": payload})

    async def handle_info(self, message: Any, socket: web.ChannelSocket) -> None:
        if message == "track":
            await presence.track(beam.self(), socket.topic, socket.assigns["user"], {})
            socket.push("presence_state", presence.list(socket.topic))


class Capped(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Room}
    rate_limit = None

    async def connect(
        self, params: Mapping[str, str], connect_info: web.ConnectInfo
    ) -> Mapping[str, Any] | None:
        try:
            return {"user": web.Token.verify(SECRET, "user socket", params.get("token", ""))}
        except web.InvalidToken:
            return None

    def id(self, assigns: Mapping[str, Any]) -> str | None:
        return f"user_socket:{assigns['user']}"


def token(user: str) -> str:
    return "token=" + web.Token.sign(SECRET, "user socket", user)


@asynccontextmanager
async def serving(socket: web.Socket) -> AsyncIterator[int]:
    async with beam.open_node():
        await presence.Tracker.start_link()
        endpoint = web.Endpoint()
        endpoint.socket("/socket", socket)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield port
            nursery.cancel_scope.cancel()


async def refused(port: int, query: str) -> tuple[int, str]:
    """Attempt an upgrade that must be refused; the HTTP status and body of the answer."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET /socket/websocket?vsn=2.0.0&{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        answer = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65_536):
                answer += chunk
                head, _, body = answer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(body) >= length:
                    break
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2].decode()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until *condition* holds: a closed socket's transport exits soon after."""
    with trio.move_on_after(10):
        while not condition():  # noqa: ASYNC110 - polls server-side state
            await trio.sleep(0.01)
    assert condition(), f"gave up waiting (10 s) until {what}"


def live(socket_class: type[web.Socket]) -> list[beam.Pid]:
    """The transport processes of *socket_class* (their initial call is the class)."""
    found = []
    for pid in beam.processes():
        info = beam.process_info(pid)
        if info is not None and info.initial_call.endswith(socket_class.__qualname__):
            found.append(pid)
    return found


def test_the_caps_have_documented_defaults() -> None:
    assert web.Socket.max_connections == 10_000
    assert web.Socket.max_connections_per_address == 100
    assert web.Socket.max_connections_per_id == 50


async def test_the_address_cap_refuses_the_next_with_the_reason_and_admits_after_a_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class PerAddress(Capped):
        max_connections_per_address = 3

    async with serving(PerAddress()) as port, AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(phx.connect(port, token(f"u{i}"))) for i in range(3)
        ]
        with caplog.at_level(logging.INFO, logger="web.socket"):
            for _ in range(3):
                status, body = await refused(port, token("u9"))
                assert status == 429
                assert "too many connections from 127.0.0.1: at most 3 per client address" in body
                assert "raise PerAddress.max_connections_per_address" in body
        warnings = [r for r in caplog.records if "refusing WebSocket" in r.getMessage()]
        assert len(warnings) == 1  # logged once, not once per refusal

        await clients[0].client.stream.aclose()
        await until(lambda: len(live(PerAddress)) == 2, "the closed socket's transport exits")
        async with phx.connect(port, token("u9")) as again:
            assert (await again.join("room:a"))[1]["status"] == "ok"


async def test_the_id_cap_refuses_a_users_next_socket_but_not_other_users() -> None:
    class PerUser(Capped):
        max_connections_per_id = 2

    async with (
        serving(PerUser()) as port,
        phx.connect(port, token("ann")) as first,
        phx.connect(port, token("ann")),
    ):
        status, body = await refused(port, token("ann"))
        assert status == 429
        assert "too many connections for socket id 'user_socket:ann': at most 2 per id" in body
        assert "raise PerUser.max_connections_per_id" in body
        async with phx.connect(port, token("bob")) as bob:
            assert (await bob.join("room:a"))[1]["status"] == "ok"
        await first.client.stream.aclose()
        await until(lambda: len(live(PerUser)) == 1, "ann's closed socket's transport exits")
        async with phx.connect(port, token("ann")) as again:
            assert (await again.join("room:a"))[1]["status"] == "ok"


async def test_the_handler_cap_refuses_with_503_and_a_crashed_transport_gives_its_place_back() -> (
    None
):
    class Small(Capped):
        max_connections = 3

    async with serving(Small()) as port, AsyncExitStack() as stack:
        for i in range(3):
            await stack.enter_async_context(phx.connect(port, token(f"u{i}")))
        status, body = await refused(port, token("u9"))
        assert status == 503
        assert "too many connections: Small serves at most 3 at once" in body
        assert "raise Small.max_connections" in body

        beam.exit(live(Small)[0], beam.KILL)  # a crash, not a close
        await until(lambda: len(live(Small)) == 2, "the killed transport is gone")
        async with phx.connect(port, token("u9")) as again:
            assert (await again.join("room:a"))[1]["status"] == "ok"
            status, _ = await refused(port, token("u8"))  # full again: the place was taken
            assert status == 503


class Crowd(Capped):
    max_connections_per_address = None
    max_connections_per_id = None
    idle_timeout = 120.0


def shard_of(topic: str) -> beam.Pid:
    found = table(presence.DEFAULT_TRACKER)
    return found.pids[found.index(topic)]


def handled(pid: beam.Pid) -> int:
    info = beam.process_info(pid)
    assert info is not None
    return info.messages_handled


async def join_room(port: int, topic: str, stack: AsyncExitStack, gate: trio.Semaphore) -> None:
    """One more socket of the user "crowd", joined to *topic* and tracked there. The *gate*
    bounds the handshakes in flight (the listen backlog), not the joins."""
    async with gate:
        client = await stack.enter_async_context(phx.connect(port, token("crowd")))
    ref, reply = await client.join(topic, {"track": True})
    assert reply["status"] == "ok"
    state = await client.event(topic, "presence_state", timeout=60)
    assert state[0] == ref


async def test_hundreds_of_one_users_sockets_join_one_room_and_others_are_served() -> None:
    sockets, topic = 300, "room:storm"
    async with serving(Crowd()) as port, phx.connect(port, token("other")) as other:
        other_ref, _ = await other.join("room:quiet")
        shard = shard_of(topic)
        shard_before = handled(shard)
        answered, joined = 0, trio.Event()

        async def storm(stack: AsyncExitStack) -> None:
            gate = trio.Semaphore(100)
            async with trio.open_nursery() as nursery:
                for _ in range(sockets):
                    nursery.start_soon(join_room, port, topic, stack, gate)
            joined.set()

        async with AsyncExitStack() as stack:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(storm, stack)
                while not joined.is_set():  # another user's pushes are answered meanwhile
                    reply = await other.push(other_ref, "room:quiet", "ping", {"n": answered})
                    assert reply == {"status": "ok", "response": {"echo": {"n": answered}}}
                    answered += 1
                    await trio.sleep(0.05)
            assert answered > 0
            assert len(presence.list(topic)["crowd"]["metas"]) == sockets
            # One call per join reached the shard, not one message per subscriber per diff...
            assert handled(shard) - shard_before <= sockets + 10
            # ...and no channel process was woken by a diff: each handled its join's own work.
            channels = [pid for pid, _ in beam.subscribers(topic)]
            assert len(channels) == sockets
            assert max(handled(pid) for pid in channels) < 10
            reply = await other.push(other_ref, "room:quiet", "ping", {"after": True})
            assert reply["status"] == "ok"


def pools() -> set[beam.Pid]:
    """The supervisors of web.channels' pools of transports and channels."""
    names = ("web.socket_sup", "web.transports", "web.channels")
    found = set()
    for pid in beam.processes():
        info = beam.process_info(pid)
        if info is not None and (info.registered_name or "").startswith(names):
            found.add(pid)
    return found


async def test_after_a_thousand_joins_and_closes_nothing_keyed_by_them_remains() -> None:
    topic = "room:churn"
    async with serving(Crowd()) as port:
        await trio.sleep(0.1)
        baseline = set(beam.processes())
        gate = trio.Semaphore(100)
        for _ in range(4):  # 4 rounds of 250 sockets: 1,000 joins and closes
            async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
                for _ in range(250):
                    nursery.start_soon(join_room, port, topic, stack, gate)
        await until(lambda: not presence.list(topic), "every presence left")
        # The sockets' supervisors (started with the first connection) stay, empty.
        await until(lambda: set(beam.processes()) - pools() <= baseline, "every transport exited")
        assert beam.subscribers(topic) == []
        assert beam.subscribers("user_socket:crowd") == []
        assert beam.Registry.named("web.sockets").count() == 0
        states = table(presence.DEFAULT_TRACKER).states
        assert sum(state.size for state in states) == 0
        info = beam.process_info(shard_of(topic))
        assert info is not None
        assert info.links == (beam.whereis(presence.DEFAULT_TRACKER),)  # no tracked pid linked
        assert info.message_queue_len == 0
        async with phx.connect(port, token("crowd")) as client:  # and the server still serves
            assert (await client.join(topic))[1]["status"] == "ok"
