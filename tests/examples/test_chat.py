"""The chat example end to end over the LiveView protocol: sign in, join, talk, see each other.

Two users sign in with the demo accounts over HTTP (the chat runs in demo mode; the sign-in
form carries a CSRF token), open the chat page and join its LiveView as the official client
does (sending the page's cookies with the upgrade); one sends a message and both pages
receive it (as a stream insert), the online list shows both, and typing reaches the other
one.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio

import beam
import web
from examples.chat.app import DEMO_PASSWORD

from ..support import phx
from ..support.chat import Page, chat_server, open_chat, socket_token

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_two_users_talk_in_the_lobby(tmp_path: Path) -> None:
    async with (
        chat_server(tmp_path) as port,
        open_chat(port, "alice") as alice,
        open_chat(port, "bob") as bob,
    ):
        assert '<b id="me">alice</b>' in alice.html
        assert "# lobby" in alice.html
        await alice.until(lambda p: "<li>bob</li>" in p.html)
        assert "<li>alice</li>" in bob.html or "<li>alice</li>" in bob.html

        await bob.event("typing", "content=hel")
        await alice.until(lambda p: "is typing" in p.html)

        await alice.event("send", "content=hello%20bob")
        await bob.until(lambda p: any("hello bob" in s for s in p.streamed))
        await alice.until(lambda p: any("hello bob" in s for s in p.streamed))
        # Typing expires by itself a few seconds after the last keystroke.
        await alice.until(lambda p: '<div class="typing" id="typing"></div>' in p.html)


async def test_channels_for_clients_without_a_browser(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        refused = await socket_token(port, "alice", "wrong")
        assert refused["status"] == 401
        alice = await socket_token(port, "alice")
        bob = await socket_token(port, "bob")
        async with (
            phx.connect(port, f"token={alice['token']}") as a,
            phx.connect(port, f"token={bob['token']}") as b,
        ):
            _, reply = await a.join(f"user:{bob['user_id']}")
            assert reply == {"status": "error", "response": {"reason": "unauthorized"}}
            _, reply = await a.join(f"user:{alice['user_id']}")
            assert reply["status"] == "ok"
            state = await a.event(f"user:{alice['user_id']}", "initial_state")
            lobby = next(r for r in state[4]["rooms"] if r["name"] == "lobby")
            topic = f"room:{lobby['id']}"

            a_ref, reply = await a.join(topic)
            assert reply["response"] == {"room": "lobby"}
            assert (await a.event(topic, "history"))[4] == {"messages": []}
            b_ref, _ = await b.join(topic)
            await b.event(topic, "history")

            sent = await a.push(a_ref, topic, "new_message", {"content": "hi", "client_id": "c1"})
            assert sent["status"] == "ok"
            assert sent["response"]["content"] == "hi"
            seen = await b.event(topic, "new_message")
            assert seen[4]["author"] == "alice"
            # A retried send with the same client id is stored once.
            again = await a.push(a_ref, topic, "new_message", {"content": "hi", "client_id": "c1"})
            assert again["response"]["id"] == sent["response"]["id"]

            bad = await a.push(a_ref, topic, "new_message", {"content": "", "client_id": "c2"})
            assert bad["status"] == "error"
            await b.send(b_ref, topic, "typing", {})
            assert (await a.event(topic, "typing"))[4] == {"user": "bob"}


async def test_the_terminal_client_sends_what_is_typed(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    async with chat_server(tmp_path) as port:
        bob = await socket_token(port, "bob")
        async with phx.connect(port, f"token={bob['token']}") as b:
            await b.join(f"user:{bob['user_id']}")
            state = await b.event(f"user:{bob['user_id']}", "initial_state")
            lobby = next(r for r in state[4]["rooms"] if r["name"] == "lobby")
            await b.join(f"room:{lobby['id']}")
            url = f"http://127.0.0.1:{port}"
            process = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "examples.chat.terminal",
                    "alice",
                    "--url",
                    url,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "CHAT_PASSWORD": DEMO_PASSWORD},
                cwd=REPO_ROOT,
            )
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                with trio.fail_after(20):
                    seen = b""
                    while b"# lobby" not in seen:
                        seen += await process.stdout.receive_some(4096)
                    await process.stdin.send_all(b"hello from the terminal\n")
                    message = await b.event(f"room:{lobby['id']}", "new_message", timeout=10)
                    assert message[4]["author"] == "alice"
                    assert message[4]["content"] == "hello from the terminal"
                    await process.stdin.aclose()
                    assert await process.wait() == 0
            finally:
                if process.returncode is None:
                    process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()


async def test_the_admin_page_lists_processes_and_kills_one_that_comes_back(
    tmp_path: Path,
) -> None:
    from examples.chat.admin import AdminLive
    from examples.chat.model import Chat, User

    async with chat_server(tmp_path):
        users = {u.username: str(u.id) for u in await Chat.read(User)}
        view = await web.testing.live(AdminLive, session={"user_id": users["alice"], "admin": True})
        tracker = beam.whereis("presence")
        assert tracker is not None

        def row(pid: beam.Pid) -> str:
            found = re.search(rf'<tr id="p{pid.id}">(.*?)</tr>', view.html, re.DOTALL)
            assert found is not None, f"no row for {pid}"
            return found.group(1)

        assert "</td><td>presence</td>" in row(tracker)
        assert '<td class="restarts">0</td>' in row(tracker)  # supervised, not restarted yet
        chat_sup = beam.whereis("chat.sup")
        assert chat_sup is not None
        # the tree: the tracker is shown deeper than its supervisor
        depth = re.compile(r"padding-left: (\d+)px")
        sup_depth, tracker_depth = (depth.search(row(p)) for p in (chat_sup, tracker))
        assert sup_depth is not None
        assert tracker_depth is not None
        assert int(tracker_depth.group(1)) > int(sup_depth.group(1))
        await view.click("kill", {"id": str(tracker.id)})
        assert f"killed {html.escape(str(tracker))}" in view.html
        # the application's supervisor is not killed; another supervisor needs a confirmation
        await view.click("kill", {"id": str(chat_sup.id)})
        assert "refused: chat.sup is the application supervisor" in view.html
        assert beam.whereis("chat.sup") == chat_sup
        await view.click("kill", {"id": "1"})  # the node's own first process
        assert "is not one of the chat" in view.html or "is not a live process" in view.html
        with trio.fail_after(5):
            while beam.whereis("presence") in (None, tracker):  # noqa: ASYNC110
                await trio.sleep(0.01)  # the chat's supervisor restarts it
        beam.send(view.pid, "refresh")
        await view.sync()
        restarted = beam.whereis("presence")
        assert restarted is not None
        assert "</td><td>presence</td>" in row(restarted)
        assert '<td class="restarts">1</td>' in row(restarted)

        with pytest.raises(web.testing.JoinRefused) as refused:  # bob is no admin
            await web.testing.live(AdminLive, session={"user_id": users["bob"], "admin": False})
        assert refused.value.response == {"redirect": {"to": "/?notice=admin"}}


async def test_sending_is_rate_limited_per_user_across_connections(tmp_path: Path) -> None:
    async with chat_server(tmp_path, per_minute=3) as port:
        alice = await socket_token(port, "alice")
        async with (
            phx.connect(port, f"token={alice['token']}") as one,
            phx.connect(port, f"token={alice['token']}") as two,
        ):
            await one.join(f"user:{alice['user_id']}")
            state = await one.event(f"user:{alice['user_id']}", "initial_state")
            lobby = next(r for r in state[4]["rooms"] if r["name"] == "lobby")
            topic = f"room:{lobby['id']}"
            ref_one, _ = await one.join(topic)
            ref_two, _ = await two.join(topic)
            for i, (client, ref) in enumerate([(one, ref_one), (two, ref_two), (one, ref_one)]):
                sent = await client.push(ref, topic, "new_message", {"content": f"m{i}"})
                assert sent["status"] == "ok"
            refused = await two.push(ref_two, topic, "new_message", {"content": "one too many"})
            assert refused["status"] == "error"
            assert refused["response"]["reason"].startswith(
                "slow down: at most 3 messages per minute; try again in "
            )


async def test_mentions_notify_with_counters_and_mark_read(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        alice = await socket_token(port, "alice")
        bob = await socket_token(port, "bob")
        async with (
            phx.connect(port, f"token={alice['token']}") as a,
            phx.connect(port, f"token={bob['token']}") as b,
        ):
            me = f"user:{alice['user_id']}"
            a_user, _ = await a.join(me)
            state = (await a.event(me, "initial_state"))[4]
            assert state["counters"] == {"unread_notifications": 0}
            assert state["notifications"] == []
            lobby = next(r for r in state["rooms"] if r["name"] == "lobby")
            topic = f"room:{lobby['id']}"
            b_ref, _ = await b.join(topic)
            for text in ("hey @alice", "@alice look", "no mention here"):
                sent = await b.push(b_ref, topic, "new_message", {"content": text})
                assert sent["status"] == "ok"
            # a retried send (same client id) is stored once and notifies once
            retry = {"content": "@alice look", "client_id": "retry-1"}
            for _ in range(2):
                sent = await b.push(b_ref, topic, "new_message", retry)
                assert sent["status"] == "ok"

            note = await a.event(me, "new_notification")
            assert note[4]["title"] == "bob mentioned you"
            assert note[4]["body"] == "hey @alice"
            assert note[4]["kind"] == "mention"
            assert note[4]["url"].startswith(f"/?room={lobby['id']}&message=")
            await a.expect(lambda f: f[3] == "counter_updated" and f[4]["value"] == 3)
            counted = await a.push(a_user, me, "refresh_counters", {})
            assert counted["response"] == {"unread_notifications": 3}

            read = await a.push(a_user, me, "mark_notification_read", {"id": note[4]["id"]})
            assert read["status"] == "ok"
            await a.expect(lambda f: f[3] == "counter_updated" and f[4]["value"] == 2)
            done = await a.push(a_user, me, "mark_all_notifications_read", {})
            assert done["response"] == {"count": 2}
            await a.event(me, "all_notifications_read")
            await a.expect(lambda f: f[3] == "counter_updated" and f[4]["value"] == 0)

            # bob cannot mark alice's notification: it is simply not found for him
            bob_me = f"user:{bob['user_id']}"
            b_user, _ = await b.join(bob_me)
            await b.push(b_user, bob_me, "mark_notification_read", {"id": note[4]["id"]})
            counted = await b.push(b_user, bob_me, "refresh_counters", {})
            assert counted["response"] == {"unread_notifications": 0}


async def test_older_history_loads_on_demand(tmp_path: Path) -> None:
    from examples.chat.live import HISTORY
    from examples.chat.model import Chat, Room, User

    async with chat_server(tmp_path) as port:
        alice = (await Chat.read(User, filter={"username": "alice"}))[0]
        lobby = (await Chat.read(Room, filter={"name": "lobby"}, actor=alice))[0]
        total = HISTORY + 7
        for i in range(total):
            await Chat.send_message(
                content=f"old {i:03}", client_id=f"seed-{i}", room_id=lobby.id, actor=alice
            )
        async with open_chat(port, "alice") as page:
            shown = "".join(page.streamed) + page.html
            assert f"old {total - 1:03}" in shown
            assert f"old {total - HISTORY:03}" in shown
            assert f"old {total - HISTORY - 1:03}" not in shown
            assert 'id="load-older"' in page.html
            await page.event("load_older", {}, kind="click")
            assert 'id="loading-older"' in page.html  # until the page arrives
            await page.until(lambda p: 'id="loading-older"' not in p.html)
            older = "".join(page.streamed)
            for i in range(total - HISTORY):
                assert f"old {i:03}" in older
            assert 'id="older"' not in page.html  # nothing older is left


def stream_deletes(page: Page) -> set[str]:
    """The DOM ids every stream update the page received so far deleted."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            stream = value.get("stream")
            if isinstance(stream, list) and len(stream) >= 3:
                found.update(stream[2])
            for item in value.values():
                walk(item)

    for diff in page.streamed:
        walk(json.loads(diff))
    return found


async def test_edit_and_delete_own_messages_only(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        alice = await socket_token(port, "alice")
        bob = await socket_token(port, "bob")
        async with (
            phx.connect(port, f"token={alice['token']}") as a,
            phx.connect(port, f"token={bob['token']}") as b,
            open_chat(port, "bob") as page,
        ):
            me = f"user:{alice['user_id']}"
            await a.join(me)
            state = (await a.event(me, "initial_state"))[4]
            lobby = next(r for r in state["rooms"] if r["name"] == "lobby")
            topic = f"room:{lobby['id']}"
            a_ref, _ = await a.join(topic)
            b_ref, _ = await b.join(topic)
            sent = await a.push(a_ref, topic, "new_message", {"content": "frist"})
            message_id = sent["response"]["id"]
            await page.until(lambda p: any("frist" in s for s in p.streamed))
            assert 'phx-click="edit"' not in page.streamed[-1]  # not bob's to edit

            refused = await b.push(b_ref, topic, "edit_message", {"id": message_id, "content": "x"})
            assert refused["status"] == "error"
            assert "forbidden" in refused["response"]["reason"].lower()
            refused = await b.push(b_ref, topic, "delete_message", {"id": message_id})
            assert refused["status"] == "error"
            invalid = await a.push(a_ref, topic, "edit_message", {"id": message_id, "content": ""})
            assert invalid["status"] == "error"
            assert "content" in invalid["response"]["reason"]

            edited = await a.push(
                a_ref, topic, "edit_message", {"id": message_id, "content": "first"}
            )
            assert edited["status"] == "ok"
            assert edited["response"]["edited_at"] is not None
            got = await b.event(topic, "message_edited")
            assert (got[4]["id"], got[4]["content"]) == (message_id, "first")
            await page.until(lambda p: any("first" in s and "(edited)" in s for s in p.streamed))

            # a room's channel changes that room's messages only
            random_ = next(r for r in state["rooms"] if r["name"] == "random")
            r_topic = f"room:{random_['id']}"
            r_ref, _ = await a.join(r_topic)
            elsewhere = await a.push(r_ref, r_topic, "delete_message", {"id": message_id})
            assert elsewhere["status"] == "error"
            assert "not found" in elsewhere["response"]["reason"]

            deleted = await a.push(a_ref, topic, "delete_message", {"id": message_id})
            assert deleted["status"] == "ok"
            assert (await b.event(topic, "message_deleted"))[4]["id"] == message_id
            await page.until(lambda p: f"messages-{message_id}" in stream_deletes(p))


async def test_edit_from_the_page(tmp_path: Path) -> None:
    from examples.chat.model import Chat, Message

    async with chat_server(tmp_path) as port, open_chat(port, "alice") as page:
        await page.event("send", "content=helo")
        await page.until(lambda p: any("helo" in s for s in p.streamed))
        assert "edit</button>" in page.streamed[-1]  # alice's own: she may edit it
        (record,) = await Chat.read(Message, filter={"content": "helo"}, authorize=False)
        message_id = str(record.id)
        await page.event("edit", {"id": message_id}, kind="click")
        assert "save_edit" in page.streamed[-1]  # a form in its place
        await page.event("validate_edit", f"id={message_id}&message%5Bcontent%5D=")
        assert "a message cannot be empty" in page.streamed[-1]  # checked, nothing written
        await page.event("save_edit", f"id={message_id}&message%5Bcontent%5D=hello")
        await page.until(lambda p: "hello" in p.streamed[-1] and "(edited)" in p.streamed[-1])
        await page.event("delete", {"id": message_id}, kind="click")
        await page.until(lambda p: f"messages-{message_id}" in stream_deletes(p))
