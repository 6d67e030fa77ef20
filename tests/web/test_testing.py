"""web.testing: channels driven in-process by the test, no server involved."""

from __future__ import annotations

import pytest

import beam
import web

from ..support.liveviews import Cards, Counter, Form, Older
from .rooms import Room


async def test_join_push_reply_broadcast_and_leave() -> None:
    async with beam.open_node():
        room = await web.testing.join(Room, "room:lobby", assigns={"user_id": "u1"})
        assert room.reply == {"user": "u1"}
        assert await room.assert_reply(room.push("echo", {"x": 1}), "ok") == {"echo": {"x": 1}}
        await room.assert_reply(room.push("refuse"), "error", {"reason": "no"})
        room.push("shout", {"text": "hi"})
        await room.assert_broadcast("shout", {"text": "hi"})
        await room.assert_push("shout", {"text": "hi"})  # forwarded to this client too
        room.push("later", {"n": 2})
        assert await room.assert_push("later") == {"n": 2}
        room.push("later", {"n": 3})
        room.push("shout", {"text": "again"})
        first = await room.receive_push({"shout", "later"})  # the first of either, in order
        assert (first.event, first.payload) == ("later", {"n": 3})
        await room.assert_push("shout", {"text": "again"})
        await room.refute_push("censored")
        await room.assert_reply(room.leave(), "ok")
        await room.assert_close()


async def test_failed_assertions_say_what_was_expected() -> None:
    async with beam.open_node():
        room = await web.testing.join(Room, "room:lobby")
        ref = room.push("echo", 1)
        with pytest.raises(AssertionError, match="expected status 'error', got 'ok'"):
            await room.assert_reply(ref, "error")
        with pytest.raises(AssertionError, match="no push of 'nothing'"):
            await room.assert_push("nothing", timeout=0.05)
        room.push("later", {"n": 1})
        with pytest.raises(AssertionError, match="expected"):
            await room.assert_push("later", {"n": 2})


async def test_refused_join_raises() -> None:
    async with beam.open_node():
        with pytest.raises(web.testing.JoinRefused) as refused:
            await web.testing.join(Room, "room:secret")
        assert refused.value.response == {"reason": "unauthorized"}


async def test_a_crash_reaches_a_test_that_traps_exits() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        room = await web.testing.join(Room, "room:lobby")
        room.push("boom")
        exit_ = await beam.receive(beam.Exit, timeout=1)
        assert exit_.pid == room.pid
        assert isinstance(exit_.reason, RuntimeError)


async def test_liveviews_are_driven_in_process() -> None:
    async with beam.open_node():
        view = await web.testing.live(Counter, "http://localhost/counter?start=2")
        assert '<h1 id="count">2</h1>' in view.html
        await view.click("inc")
        assert '<h1 id="count">3</h1>' in view.html
        assert '<p id="big">big</p>' in view.html
        beam.broadcast("counter", ("set", 0))
        await view.sync()
        assert '<h1 id="count">0</h1>' in view.html

        form = await web.testing.live(Form)
        await form.change("validate", {"user": {"name": "Jo"}}, target="user[name]")
        assert '<span id="error">too short</span>' in form.html
        await form.submit("save", {"user": {"name": "Josephine"}})
        assert '<p id="saved">Josephine</p>' in form.html

        cards = await web.testing.live(Cards)
        assert "<b>Apples</b> 0" in cards.html
        await cards.click("rename")
        assert "<b>APPLES</b> 0" in cards.html


async def test_disconnect_of_the_live_socket_id_closes_the_view() -> None:
    async with beam.open_node():
        kept = await web.testing.live(Counter, session={"live_socket_id": "users_sessions:8"})
        view = await web.testing.live(Counter, session={"live_socket_id": "users_sessions:7"})
        web.disconnect("users_sessions:7")
        await view.assert_close()
        await kept.click("inc")  # another user's view lives on
        assert '<h1 id="count">1</h1>' in kept.html


async def test_start_async_hands_results_to_handle_async() -> None:
    async with beam.open_node():
        view = await web.testing.live(Older)
        assert "newest" in view.html
        await view.click("older")
        assert '<p id="loading">' in view.html  # the loading state until the work is done
        await view.sync()
        assert '<p id="loading">' not in view.html
        # (the test client's tree holds a stream's latest inserts; the DOM keeps them all)
        assert "p1.0" in view.html
        assert "p1.1" in view.html
        await view.click("older")
        await view.sync()
        assert "p2.0" in view.html
        await view.click("older")  # this page's work fails: the view says so and lives on
        await view.sync()
        assert '<p id="error">LookupError: no more history</p>' in view.html
        await view.click("older")
        await view.sync()
        assert "p4.0" in view.html


async def test_a_newer_start_async_of_the_same_name_supersedes_the_running_one() -> None:
    async with beam.open_node():
        view = await web.testing.live(Older)
        await view.click("older")
        await view.click("older")  # before the first page arrived: its result is dropped
        await view.sync()
        assert "p2.0" in view.html
        assert "p1.0" not in view.html
        assert '<p id="loading">' not in view.html
