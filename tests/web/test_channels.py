"""Channels over a real socket: joins, pushes, replies, broadcasts, crashes and limits.

Each test runs a node and a server on an ephemeral port, and talks Phoenix V2 frames through
:mod:`tests.support.phx`. Server-side observations (``terminate`` calls) reach the test process,
registered as ``"observer"``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest
import trio

import beam
import presence
import web

from ..support import phx, wsclient
from .rooms import SECRET, Room, UserSocket


@asynccontextmanager
async def serving(
    socket: web.Socket | None = None, *, tracker: bool = False, **limits: Any
) -> AsyncIterator[int]:
    async with beam.open_node():
        beam.register("observer", beam.self())
        if tracker:
            await presence.Tracker.start_link()
        endpoint = web.Endpoint(**limits)
        endpoint.socket("/socket", socket or UserSocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield port
            nursery.cancel_scope.cancel()


async def test_join_push_reply_and_heartbeat() -> None:
    async with serving() as port, phx.connect(port) as client:
        join_ref, reply = await client.join("room:lobby")
        assert reply == {"status": "ok", "response": {"user": None}}
        assert await client.push(join_ref, "room:lobby", "echo", {"x": [1, "é"]}) == {
            "status": "ok",
            "response": {"echo": {"x": [1, "é"]}},
        }
        assert await client.push(join_ref, "room:lobby", "refuse", {}) == {
            "status": "error",
            "response": {"reason": "no"},
        }
        ref = await client.send(None, "phoenix", "heartbeat", {})
        frame = await client.expect(lambda f: f[1] == ref)
        assert frame == [None, ref, "phoenix", "phx_reply", {"status": "ok", "response": {}}]


async def test_refused_crashed_and_unmatched_joins_answer_errors() -> None:
    async with serving() as port, phx.connect(port) as client:
        _, reply = await client.join("room:secret")
        assert reply == {"status": "error", "response": {"reason": "unauthorized"}}
        _, reply = await client.join("room:crash")
        assert reply == {"status": "error", "response": {"reason": "join crashed"}}
        _, reply = await client.join("room:early")  # push before the join finished
        assert reply == {"status": "error", "response": {"reason": "join crashed"}}
        ref = client.next_ref()
        await client.client.send(json.dumps([ref, ref, "elsewhere", "phx_join", {}]))
        frame = await client.expect(lambda f: f[1] == ref)
        assert frame == [
            None,
            ref,
            "elsewhere",
            "phx_reply",
            {"status": "error", "response": {"reason": "unmatched topic"}},
        ]
        # A push to a topic that is not joined gets the same answer.
        ref = await client.send("99", "room:none", "echo", {})
        frame = await client.expect(lambda f: f[1] == ref)
        assert frame[4]["response"] == {"reason": "unmatched topic"}
        # The socket survived all of it.
        _join_ref, reply = await client.join("room:ok")
        assert reply["status"] == "ok"


async def test_a_channel_killed_in_join_answers_join_crashed() -> None:
    async with serving() as port, phx.connect(port) as client:
        ref = client.next_ref()
        await client.client.send(json.dumps([ref, ref, "room:stuck", "phx_join", {}]))
        _, pid = await beam.receive(lambda m: isinstance(m, tuple) and m[0] == "joining")
        beam.exit(pid, beam.KILL)
        reply = await client.reply(ref)
        assert reply == {"status": "error", "response": {"reason": "join crashed"}}
        _, reply = await client.join("room:stuck-no-more")  # the socket goes on
        assert reply["status"] == "ok"


async def test_a_crashed_channel_sends_phx_error_and_the_socket_lives_on() -> None:
    async with serving() as port, phx.connect(port) as client:
        a_ref, _ = await client.join("room:a")
        b_ref, _ = await client.join("room:b")
        boom = await client.send(a_ref, "room:a", "boom", {})
        # The push that crashed the channel is answered with an error, then phx_error.
        assert await client.reply(boom) == {
            "status": "error",
            "response": {"reason": "channel crashed"},
        }
        frame = await client.event("room:a", "phx_error")
        assert frame == [a_ref, a_ref, "room:a", "phx_error", {}]
        assert (await client.push(b_ref, "room:b", "echo", 1))["status"] == "ok"
        # The client rejoins, as phoenix.js does.
        a2_ref, reply = await client.join("room:a")
        assert reply["status"] == "ok"
        assert (await client.push(a2_ref, "room:a", "echo", 2))["response"] == {"echo": 2}
        await client.send(b_ref, "room:b", "die", {})
        assert await client.event("room:b", "phx_error") == [
            b_ref,
            b_ref,
            "room:b",
            "phx_error",
            {},
        ]


async def test_stop_leave_and_duplicate_join_close_cleanly_and_call_terminate() -> None:
    async with serving() as port, phx.connect(port) as client:
        ref, _ = await client.join("room:a")
        assert await client.push(ref, "room:a", "bye", {}) == {
            "status": "ok",
            "response": {"bye": True},
        }
        assert await client.event("room:a", "phx_close") == [ref, ref, "room:a", "phx_close", {}]
        assert await beam.receive(timeout=5) == ("terminate", "room:a", "normal")

        ref, _ = await client.join("room:b")
        leave = await client.send(ref, "room:b", "phx_leave", {})
        assert (await client.reply(leave))["status"] == "ok"
        assert await client.event("room:b", "phx_close") == [ref, ref, "room:b", "phx_close", {}]
        assert await beam.receive(timeout=5) == ("terminate", "room:b", ("shutdown", "left"))

        old, _ = await client.join("room:c")
        new, reply = await client.join("room:c")
        assert reply["status"] == "ok"
        close = await client.event("room:c", "phx_close")
        assert close == [old, old, "room:c", "phx_close", {}]
        assert await beam.receive(timeout=5) == (
            "terminate",
            "room:c",
            ("shutdown", "duplicate_join"),
        )
        # Messages carrying the old join_ref are stale: dropped, never answered.
        await client.send(old, "room:c", "echo", "stale")
        assert (await client.push(new, "room:c", "echo", "fresh"))["response"] == {"echo": "fresh"}
        assert not any(f[4].get("response") == {"echo": "stale"} for f in client.pending)

        # Leaving a topic that is not joined is simply answered ok.
        leave = await client.send("42", "room:nothing", "phx_leave", {})
        assert (await client.reply(leave))["status"] == "ok"


async def test_closing_the_connection_stops_its_channels() -> None:
    async with serving() as port:
        async with phx.connect(port) as client:
            await client.join("room:a")
            await client.join("room:b")
        got = {await beam.receive(timeout=5), await beam.receive(timeout=5)}
        assert got == {
            ("terminate", "room:a", ("shutdown", "closed")),
            ("terminate", "room:b", ("shutdown", "closed")),
        }


async def test_broadcasts_reach_every_joined_socket_with_null_refs() -> None:
    async with serving() as port, phx.connect(port) as alice, phx.connect(port) as bob:
        a_ref, _ = await alice.join("room:lobby")
        await bob.join("room:lobby")
        await alice.send(a_ref, "room:lobby", "shout", {"text": "hi"})
        expected = [None, None, "room:lobby", "shout", {"text": "hi"}]
        assert await alice.event("room:lobby", "shout") == expected
        assert await bob.event("room:lobby", "shout") == expected

        # broadcast_from skips the sender's own channel.
        assert (await alice.push(a_ref, "room:lobby", "whisper", {"w": 1}))["status"] == "ok"
        assert await bob.event("room:lobby", "whisper") == [
            None,
            None,
            "room:lobby",
            "whisper",
            {"w": 1},
        ]
        with pytest.raises(trio.TooSlowError):
            await alice.event("room:lobby", "whisper", timeout=0.2)

        # Server code outside any channel broadcasts the same way.
        web.broadcast("room:lobby", "notice", {"n": 1})
        assert (await bob.event("room:lobby", "notice"))[4] == {"n": 1}


async def test_intercepted_events_go_through_handle_out() -> None:
    async with serving() as port, phx.connect(port) as alice, phx.connect(port) as bob:
        a_ref, _ = await alice.join("room:lobby")
        b_ref, _ = await bob.join("room:lobby")
        await alice.send(a_ref, "room:lobby", "censor", {"text": "secret"})
        # handle_out pushes per channel, so the frame carries that channel's join_ref.
        assert await bob.event("room:lobby", "censored") == [
            b_ref,
            None,
            "room:lobby",
            "censored",
            {"text": "******"},
        ]
        assert (await alice.event("room:lobby", "censored"))[4] == {"text": "******"}


async def test_handle_info_pushes_carry_the_join_ref() -> None:
    async with serving() as port, phx.connect(port) as client:
        ref, _ = await client.join("room:a")
        await client.send(ref, "room:a", "later", {"n": 3})
        assert await client.event("room:a", "later") == [ref, None, "room:a", "later", {"n": 3}]


async def test_plain_processes_subscribed_to_a_topic_get_broadcast_values() -> None:
    async with serving() as port, phx.connect(port) as client:
        ref, _ = await client.join("room:lobby")
        beam.subscribe("room:lobby")
        await client.send(ref, "room:lobby", "shout", {"text": "x"})
        got = await beam.receive(web.Broadcast, timeout=5)
        assert got == web.Broadcast("room:lobby", "shout", {"text": "x"})


async def test_binary_frames_round_trip() -> None:
    async with serving() as port, phx.connect(port) as client:
        ref, _ = await client.join("room:bin")
        push_ref = client.next_ref()
        fields = [ref, push_ref, "room:bin", "binary"]
        head = bytes([0, *(len(f) for f in fields)]) + "".join(fields).encode()
        await client.client.send(head + b"\x01\x02\x03")
        frame = await client.client.receive()
        assert isinstance(frame, bytes)
        reply_fields = [ref, push_ref, "room:bin", "ok"]
        expected = bytes([1, *(len(f) for f in reply_fields)]) + "".join(reply_fields).encode()
        assert frame == expected + b"\x03\x02\x01"


async def test_v1_clients_without_vsn_are_served() -> None:
    async with serving() as port, wsclient.connect(port, "/socket/websocket") as client:
        await client.send(
            json.dumps({"topic": "room:a", "event": "phx_join", "payload": {}, "ref": "1"})
        )
        reply = json.loads(await client.receive())
        assert reply == {
            "topic": "room:a",
            "event": "phx_reply",
            "payload": {"status": "ok", "response": {"user": None}},
            "ref": "1",
        }


async def test_connect_authenticates_with_a_token_and_refuses_bad_ones() -> None:
    token = web.Token.sign(SECRET, "user socket", "u7")
    async with serving() as port:
        async with phx.connect(port, f"token={token}") as client:
            _, reply = await client.join("room:a")
            assert reply["response"] == {"user": "u7"}
        with pytest.raises(wsclient.Rejected) as refused:
            async with phx.connect(port, "token=forged"):
                pass
        assert refused.value.status == 403
        # phoenix.js's authToken option: the token rides in a subprotocol.
        encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
        protocols = ["phoenix", f"base64url.bearer.phx.{encoded}"]
        async with phx.connect(port, subprotocols=protocols) as client:
            assert client.client.subprotocol == "phoenix"
            _, reply = await client.join("room:a")
            assert reply["response"] == {"user": "u7"}
        with pytest.raises(wsclient.Rejected) as refused:
            async with wsclient.connect(port, "/socket/websocket?vsn=9.0.0"):
                pass
        assert refused.value.status == 403


async def test_origin_is_checked_against_the_host() -> None:
    async with serving() as port:
        same = [(b"origin", f"http://127.0.0.1:{port}".encode())]
        async with phx.connect(port, headers=same) as client:
            assert (await client.join("room:a"))[1]["status"] == "ok"
        other = [(b"origin", b"https://evil.example")]
        with pytest.raises(wsclient.Rejected) as refused:
            async with phx.connect(port, headers=other):
                pass
        assert refused.value.status == 403


async def test_allowed_origins_list() -> None:
    class Listed(UserSocket):
        check_origin = ("https://app.example", "//other.example")

    async with serving(Listed()) as port:
        for origin in (b"https://app.example", b"http://other.example:8080"):
            async with phx.connect(port, headers=[(b"origin", origin)]) as client:
                assert (await client.join("room:a"))[1]["status"] == "ok"
        for origin in (b"http://app.example", b"https://evil.example"):
            with pytest.raises(wsclient.Rejected):
                async with phx.connect(port, headers=[(b"origin", origin)]):
                    pass


async def test_disconnect_closes_every_socket_of_one_user() -> None:
    token = web.Token.sign(SECRET, "user socket", "u1")
    async with (
        serving() as port,
        phx.connect(port, f"token={token}") as one,
        phx.connect(port) as other,
    ):
        await one.join("room:a")
        other_ref, _ = await other.join("room:a")
        web.disconnect("user_socket:u1")
        with pytest.raises(wsclient.Closed) as closed:
            await one.expect(lambda f: False)
        assert closed.value.code == 1001
        assert (await other.push(other_ref, "room:a", "echo", 1))["status"] == "ok"


async def test_rate_limit_answers_errors_beyond_the_budget() -> None:
    async with serving() as port, phx.connect(port) as client:
        ref, _ = await client.join("room:a")
        replies = [await client.push(ref, "room:a", "echo", i) for i in range(60)]
        statuses = [r["status"] for r in replies]
        assert statuses.count("ok") == 49  # 50 per window, the join was one
        assert replies[-1]["response"]["reason"].startswith("rate limit exceeded")


async def test_too_many_channels_are_refused() -> None:
    class Small(UserSocket):
        max_channels = 2

    async with serving(Small()) as port, phx.connect(port) as client:
        assert (await client.join("room:1"))[1]["status"] == "ok"
        assert (await client.join("room:2"))[1]["status"] == "ok"
        _, reply = await client.join("room:3")
        assert reply == {"status": "error", "response": {"reason": "too many channels joined"}}


async def test_a_malformed_frame_closes_with_a_reason() -> None:
    async with serving() as port, phx.connect(port) as client:
        await client.client.send('["1","1","room:a"]')
        with pytest.raises(wsclient.Closed) as closed:
            await client.client.receive()
        assert closed.value.code == 1007


async def test_idle_connections_are_closed() -> None:
    class Impatient(UserSocket):
        idle_timeout = 0.2

    async with serving(Impatient()) as port, phx.connect(port) as client:
        with pytest.raises(wsclient.Closed) as closed:
            await client.client.receive()
        assert closed.value.code == 1001


async def test_server_shutdown_closes_sockets_with_a_reconnect_code() -> None:
    async with beam.open_node():
        endpoint = web.Endpoint()
        endpoint.socket("/socket", UserSocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            async with phx.connect(port) as client:
                await client.join("room:a")
                nursery.cancel_scope.cancel()
                with (
                    pytest.raises(wsclient.Closed) as closed,
                    trio.CancelScope(shield=True),
                    trio.fail_after(5),
                ):
                    await client.client.receive()
                assert closed.value.code == 1001


async def test_presence_state_after_join_and_diffs_as_broadcasts() -> None:
    async with serving(tracker=True) as port, phx.connect(port) as alice, phx.connect(port) as bob:
        a_ref, _ = await alice.join("room:p", {"track": "alice"})
        state = await alice.event("room:p", "presence_state")
        assert state[0] == a_ref
        assert list(state[4]) == ["alice"]
        assert (await alice.event("room:p", "presence_diff"))[4]["joins"].keys() == {"alice"}

        b_ref, _ = await bob.join("room:p", {"track": "bob"})
        state = await bob.event("room:p", "presence_state")
        assert sorted(state[4]) == ["alice", "bob"]
        diff = await alice.event("room:p", "presence_diff")
        assert diff[:4] == [None, None, "room:p", "presence_diff"]
        assert list(diff[4]["joins"]) == ["bob"]
        assert diff[4]["leaves"] == {}

        await bob.send(b_ref, "room:p", "phx_leave", {})
        diff = await alice.event("room:p", "presence_diff")
        assert list(diff[4]["leaves"]) == ["bob"]


async def test_presence_diffs_take_the_fast_lane_without_waking_channels() -> None:
    async with serving(tracker=True) as port, phx.connect(port) as alice, phx.connect(port) as bob:
        await alice.join("room:p", {"track": "alice"})
        await alice.event("room:p", "presence_diff")
        (channel,) = [pid for pid, _ in beam.subscribers("room:p")]
        before = beam.process_info(channel)
        assert before is not None
        await bob.join("room:p", {"track": "bob"})
        diff = await alice.event("room:p", "presence_diff")
        assert diff[:4] == [None, None, "room:p", "presence_diff"]
        assert list(diff[4]["joins"]) == ["bob"]
        after = beam.process_info(channel)
        assert after is not None
        assert after.messages_handled == before.messages_handled  # straight to alice's socket


class Censoring(Room):
    intercept = ("censored", "presence_diff")

    async def handle_out(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.Stop | None:
        if event == "presence_diff":
            socket.push(event, {**payload, "seen_by": socket.assigns.get("user_id")})
            return None
        return await super().handle_out(event, payload, socket)


class CensoringSocket(UserSocket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Censoring}


async def test_an_intercepted_presence_diff_goes_through_handle_out() -> None:
    token = web.Token.sign(SECRET, "user socket", "u7")
    async with (
        serving(CensoringSocket(), tracker=True) as port,
        phx.connect(port, f"token={token}") as alice,
    ):
        await alice.join("room:p", {"track": "alice"})
        diff = await alice.event("room:p", "presence_diff")
        assert diff[4]["seen_by"] == "u7"
        assert list(diff[4]["joins"]) == ["alice"]
