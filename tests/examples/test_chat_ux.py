"""The chat as a person uses it, in headless Chromium (and over the LiveView protocol where a
browser adds nothing): what issue 20 found wrong, each checked here.

* the message pane is fixed to the window at 1280x800 and at 390x844: with 100 messages
  the composer, header, room list and newest message are all in view; a new message
  scrolls into view at the bottom, and shows a "new messages" marker when scrolled up;
* typing shows in its own room only;
* a non-admin opening ``/admin`` is sent back with a flash; only admins see the link;
* a refused send keeps the composer's text, with a counter near the limit;
* a created room is entered at once, and a stale error clears;
* the page lands in the last room visited (or the default room), joining nothing;
* times are the reader's local ones, with a line at each new day.

The desktop and phone screenshots of the first test are the README's (``BEAM_SCREENSHOT_DIR``
names where to write them; a temporary directory otherwise).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import trio

import beam
import web
from examples.chat.app import DEMO_PASSWORD, build
from examples.chat.model import Chat, Membership, Message, Room, User

from ..support.browser import in_browser
from ..support.chat import TIMEOUT_MS, chat_server, load_page, open_page, sign_in
from ..support.http import fetch, jar

T = TypeVar("T")

#: What a realistic conversation says (cycled through for the 100 messages).
LINES = (
    ("alice", "morning! anyone around?"),
    ("bob", "here — coffee first though"),
    ("alice", "the deploy from last night went fine, 0 errors in the logs"),
    ("bob", "nice. did the migration for memberships run too?"),
    ("alice", "yes, ran it on staging first: https://example.org/runbook#migrations"),
    ("bob", "@alice can you look at the flaky presence test when you have a minute?"),
    ("alice", "on it. I think the tracker restarts before the diff goes out"),
    ("bob", "that would explain the missing leave"),
    ("alice", "let it crash, they said. it did :)"),
    ("bob", "lunch at 12:30?"),
)


async def seed(rooms: dict[str, str], count: int, room: str = "lobby") -> list[Message]:
    """*count* messages in *room* from alice and bob (no rate limit: the domain directly)."""
    users = {u.username: u for u in await Chat.read(User)}
    sent = []
    for number in range(count):
        author, text = LINES[number % len(LINES)]
        sent.append(
            await Chat.send_message(
                content=text,
                client_id=uuid.uuid4().hex,
                room_id=uuid.UUID(rooms[room]),
                actor=users[author],
            )
        )
    return sent


def moved(tmp_path: Path, messages: list[Message], times: list[datetime]) -> None:
    """Give *messages* the send *times* (UTC), in the SQLite file under *tmp_path*."""
    database = sqlite3.connect(tmp_path / "chat.db")
    for record, when in zip(messages, times, strict=True):
        database.execute(
            "UPDATE chat_messages SET inserted_at = ? WHERE id = ?",
            (when.strftime("%Y-%m-%d %H:%M:%S.%f"), record.id.hex),
        )
    database.commit()
    database.close()


async def room_ids() -> dict[str, str]:
    return {r.name: str(r.id) for r in await Chat.read(Room, authorize=False)}


async def with_browser(
    tmp_path: Path, steps: Callable[[Any, str], T], *, prepare: Any = None, **options: Any
) -> T:
    """Serve a fresh demo chat (``prepare()`` runs first, in the node), run
    ``steps(browser, base_url)`` in a headless Chromium, return what it returns."""
    async with beam.open_node():
        database = f"sqlite:///{tmp_path / 'chat.db'}"
        endpoint = await build(tmp_path, database=database, demo=True, **options)
        if prepare is not None:
            await prepare()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            facts = await in_browser(lambda browser: steps(browser, f"http://127.0.0.1:{port}"))
            nursery.cancel_scope.cancel()
    return facts


def open_as(
    browser: Any, base: str, username: str, size: tuple[int, int] = (1280, 800), **context: Any
) -> Any:
    """A page signed in as *username* (a demo user) at the window *size*; errors thrown on
    the page fail the test."""
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}, **context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(f"{base}/")
    page.wait_for_selector("#username", timeout=TIMEOUT_MS)
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#sign-in")
    page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
    return page


#: The viewport boxes (top, bottom) of what must stay in view, and the page's scroll height.
GEOMETRY = """() => {
  const box = (sel) => { const el = document.querySelector(sel); if (!el) return null;
    const r = el.getBoundingClientRect(); return [r.top, r.bottom]; };
  const pane = document.querySelector('#pane');
  return { height: innerHeight, page: document.documentElement.scrollHeight,
    composer: box('#composer'), header: box('.header'), rooms: box('.rooms'),
    newest: box('#messages > .item:last-child'),
    marker: !document.querySelector('#new-messages').hidden,
    atBottom: pane.scrollHeight - pane.scrollTop - pane.clientHeight < 60 };
}"""


def in_view(box: list[float] | None, height: float) -> bool:
    return box is not None and box[0] >= 0 and box[1] <= height + 0.5


def wait_for_fact(page: Any, script: str) -> None:
    page.wait_for_function(script, timeout=TIMEOUT_MS)


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
async def test_the_pane_is_fixed_to_the_window_and_follows_the_conversation(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    shots = Path(os.environ.get("BEAM_SCREENSHOT_DIR", tmp_path))
    phone = size[0] < 700

    async def prepare() -> None:
        sent = await seed(await room_ids(), 100)
        # A day's worth of history: yesterday every few minutes, the last few today.
        now = datetime.now(UTC)
        spread = [now - timedelta(days=1, minutes=4 * (93 - n)) for n in range(94)]
        spread += [now - timedelta(minutes=2 * (99 - n)) for n in range(94, 100)]
        moved(tmp_path, sent, spread)

    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice", size)
        bob = open_as(browser, base, "bob", (1280, 800))
        alice.wait_for_selector("#online li:has-text('bob')", timeout=TIMEOUT_MS)
        facts: dict[str, Any] = {"opened": alice.evaluate(GEOMETRY)}
        if phone:  # the room list is a drawer: opened, it is in view
            alice.click("#open-rooms")
            alice.wait_for_timeout(400)  # its slide-in
            facts["drawer"] = alice.evaluate(GEOMETRY)
            alice.click(".scrim", position={"x": size[0] - 20, "y": size[1] // 2})
            alice.wait_for_timeout(400)

        bob.fill("#content", "@alice the build is green again")
        bob.press("#content", "Enter")
        alice.wait_for_selector(".message:has-text('build is green')", timeout=TIMEOUT_MS)
        alice.wait_for_timeout(200)
        facts["followed"] = alice.evaluate(GEOMETRY)
        alice.screenshot(path=str(shots / ("chat-mobile.png" if phone else "chat.png")))

        alice.eval_on_selector("#pane", "pane => { pane.scrollTop = 0; }")
        alice.wait_for_timeout(200)
        bob.fill("#content", "one more thing: standup moved to 10:15")
        bob.press("#content", "Enter")
        alice.wait_for_selector(".message:has-text('standup moved')", timeout=TIMEOUT_MS)
        alice.wait_for_selector("#new-messages:not([hidden])", timeout=TIMEOUT_MS)
        facts["scrolled_up"] = alice.evaluate(GEOMETRY)
        alice.click("#new-messages")
        alice.wait_for_selector("#new-messages", state="hidden", timeout=TIMEOUT_MS)
        facts["marker_clicked"] = alice.evaluate(GEOMETRY)
        facts["errors"] = alice.errors + bob.errors
        return facts

    facts = await with_browser(tmp_path, steps, prepare=prepare)
    height = size[1]
    opened = facts["opened"]
    assert opened["page"] <= height, opened  # the page itself never scrolls
    for part in ("composer", "header", "newest"):
        assert in_view(opened[part], height), (part, opened)
    rooms = facts["drawer"] if phone else opened
    assert in_view(rooms["rooms"], height), rooms
    followed = facts["followed"]
    assert in_view(followed["newest"], height), followed
    assert in_view(followed["composer"], height), followed
    assert not followed["marker"]
    scrolled = facts["scrolled_up"]
    assert scrolled["marker"], scrolled
    assert not in_view(scrolled["newest"], height), scrolled
    assert scrolled["page"] <= height, scrolled
    assert facts["marker_clicked"]["atBottom"]
    assert in_view(facts["marker_clicked"]["newest"], height)
    assert facts["errors"] == []


async def test_typing_shows_only_in_the_room_it_happens_in(tmp_path: Path) -> None:
    def steps(browser: Any, base: str) -> dict[str, str]:
        alice = open_as(browser, base, "alice")
        bob = open_as(browser, base, "bob")
        alice.click("#room-random")
        alice.wait_for_selector("#room-name:has-text('random')", timeout=TIMEOUT_MS)
        bob.type("#content", "typing in the lobby", delay=20)
        # bob's next message in the lobby raises alice's badge: by then the typing notice,
        # sent before it, has reached her page too.
        bob.press("#content", "Enter")
        alice.wait_for_selector("#unread-lobby", timeout=TIMEOUT_MS)
        elsewhere = alice.inner_text("#typing")
        bob.click("#room-random")
        bob.wait_for_selector("#room-name:has-text('random')", timeout=TIMEOUT_MS)
        bob.type("#content", "now in random", delay=20)
        alice.wait_for_selector("#typing:has-text('bob is typing')", timeout=TIMEOUT_MS)
        return {"elsewhere": elsewhere, "here": alice.inner_text("#typing")}

    facts = await with_browser(tmp_path, steps)
    assert facts["elsewhere"].strip() == ""
    assert "bob is typing" in facts["here"]


async def test_a_non_admin_is_sent_back_from_admin_with_a_flash(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        bob = await sign_in(port, "bob")
        request = f"GET /admin HTTP/1.1\r\nhost: x\r\ncookie: {bob}\r\nconnection: close\r\n\r\n"
        status, headers, cookies, _ = await fetch(port, request.encode())
        assert (status, headers["location"]) == (303, "/")
        _, _, page = await load_page(port, jar(*bob.split("; "), *cookies), "/")
        assert "Only admins can open the process page." in page
        assert 'id="admin-link"' not in page
        _, _, page = await load_page(port, bob, "/")  # said once
        assert "Only admins" not in page
        alice = await sign_in(port, "alice")
        _, _, page = await load_page(port, alice, "/")
        assert 'id="admin-link"' in page
        status, _, page = await load_page(port, alice, "/admin")
        assert status == 200
        assert 'id="pool"' in page  # the domain's connection pool, for the operator
        assert "Database pool (sqlite)" in page


async def test_a_refused_send_keeps_the_text(tmp_path: Path) -> None:
    too_long = "no " * 700  # 2,100 characters

    def steps(browser: Any, base: str) -> dict[str, Any]:
        bob = open_as(browser, base, "bob")
        bob.fill("#content", too_long)
        bob.wait_for_selector("#counter.over", timeout=TIMEOUT_MS)
        facts: dict[str, Any] = {"counter": bob.inner_text("#counter")}
        bob.press("#content", "Enter")
        bob.wait_for_selector("#error", timeout=TIMEOUT_MS)
        facts["error"] = bob.inner_text("#error")
        facts["kept"] = bob.input_value("#content")
        bob.press("#content", "Enter")  # refused again
        bob.wait_for_timeout(300)
        facts["kept_again"] = bob.input_value("#content")
        for n in range(2):  # the limit is 4 a minute, refusals included
            bob.fill("#content", f"short {n}")
            bob.press("#content", "Enter")
            bob.wait_for_selector(f".message:has-text('short {n}')", timeout=TIMEOUT_MS)
            facts[f"cleared {n}"] = bob.input_value("#content")
        bob.fill("#content", "one too many")
        bob.press("#content", "Enter")
        bob.wait_for_selector("#error:has-text('slow down')", timeout=TIMEOUT_MS)
        facts["limited"] = bob.input_value("#content")
        return facts

    facts = await with_browser(tmp_path, steps, messages_per_minute=4)
    assert facts["counter"] == "2100/2000"
    assert facts["error"] == "A message has at most 2000 characters."
    assert facts["kept"] == too_long
    assert facts["kept_again"] == too_long
    assert facts["cleared 0"] == facts["cleared 1"] == ""
    assert facts["limited"] == "one too many"


async def test_a_created_room_is_entered_at_once(tmp_path: Path) -> None:
    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice")
        alice.fill("#room_name", "lobby")  # taken: said next to the field as it is typed
        alice.wait_for_selector("#room_name_error", timeout=TIMEOUT_MS)
        facts: dict[str, Any] = {"taken": alice.inner_text("#room_name_error")}
        alice.press("#room_name", "Enter")  # submitted anyway: refused, the name stays
        alice.wait_for_timeout(300)
        facts["kept"] = alice.input_value("#room_name")
        alice.fill("#room_name", "x" * 41)
        alice.wait_for_selector("#room_name_error:has-text('at most')", timeout=TIMEOUT_MS)
        facts["long"] = alice.inner_text("#room_name_error")
        alice.fill("#room_name", "plans")
        alice.wait_for_selector("#room_name_error", state="detached", timeout=TIMEOUT_MS)
        alice.press("#room_name", "Enter")
        alice.wait_for_selector("#room-name:has-text('plans')", timeout=TIMEOUT_MS)
        facts["stale_error"] = alice.query_selector("#room_name_error") is not None
        facts["emptied"] = alice.input_value("#room_name")
        facts["url"] = alice.url
        alice.fill("#content", "first message in plans")
        alice.press("#content", "Enter")
        alice.wait_for_selector(".message:has-text('first message in plans')")
        return facts

    facts = await with_browser(tmp_path, steps)
    assert facts["taken"] == "a room with that name exists"
    assert facts["kept"] == "lobby"
    assert facts["long"] == "at most 40 characters"
    assert not facts["stale_error"]
    assert facts["emptied"] == ""
    database = sqlite3.connect(tmp_path / "chat.db")  # what was stored, read from the file
    rows = database.execute(
        "SELECT r.name FROM chat_messages m JOIN chat_rooms r ON r.id = m.room_id "
        "WHERE m.content = 'first message in plans'"
    ).fetchall()
    (room_id,) = database.execute("SELECT id FROM chat_rooms WHERE name = 'plans'").fetchone()
    database.close()
    assert rows == [("plans",)]
    assert facts["url"].endswith(f"?room={uuid.UUID(hex=room_id)}")


async def test_landing_is_the_last_room_visited_and_joins_nothing(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        users = {u.username: u for u in await Chat.read(User)}
        await Chat.open_room("!!!", actor=users["alice"])  # first by name: not a start page
        await Chat.register("carol", "x" * 40)  # a newcomer, in no room
        rooms = await room_ids()

        bob = await sign_in(port, "bob")
        async with open_page(port, bob) as page:
            assert "# lobby" in page.html  # the default room (bob is a member)
            await page.client.push(
                page.join_ref,
                page.topic,
                "live_patch",
                {"url": f"http://x/?room={rooms['random']}"},
            )
        async with open_page(port, bob) as page:
            assert "# random" in page.html  # where bob was last

        token = await _session_cookie(port, "carol")
        async with open_page(port, token) as page:
            assert "# lobby" in page.html  # a preview of the default room
            assert 'id="join"' in page.html
            assert 'id="content"' not in page.html
        carol = next(u for u in await Chat.read(User) if u.username == "carol")
        assert await Chat.read(Membership, filter={"user_id": carol.id}, authorize=False) == []
        bobs = await Chat.read(Membership, filter={"user_id": users["bob"].id}, authorize=False)
        assert str(rooms["!!!"]) not in {str(m.room_id) for m in bobs}


async def _session_cookie(port: int, username: str) -> str:
    """Sign *username* in (any password: set here to the demo one) and return the cookies."""
    from examples.chat.accounts import hash_off_loop

    user = next(u for u in await Chat.read(User) if u.username == username)
    await Chat.set_password(user, await hash_off_loop(DEMO_PASSWORD), authorize=False)
    return await sign_in(port, username)


async def test_times_are_the_readers_own_with_a_line_per_day(tmp_path: Path) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    stamps: list[datetime] = []

    async def prepare() -> None:
        sent = await seed(await room_ids(), 4)
        # Two days ago, yesterday, yesterday, today: in UTC, moved on the stored rows.
        now = datetime.now(UTC).replace(microsecond=0)
        times = [now - timedelta(days=2), now - timedelta(days=1), now - timedelta(days=1), now]
        moved(tmp_path, sent, times)
        stamps.extend(times)

    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice", timezone_id="Asia/Tokyo", locale="en-GB")
        alice.wait_for_selector("#messages .item[data-day]", timeout=TIMEOUT_MS)
        return {
            "times": alice.eval_on_selector_all(
                ".message time", "els => els.map(e => e.textContent)"
            ),
            "days": alice.eval_on_selector_all(
                "#messages .item", "els => els.map(e => e.dataset.day || null)"
            ),
        }

    facts = await with_browser(tmp_path, steps, prepare=prepare)
    assert facts["times"] == [s.astimezone(tokyo).strftime("%H:%M") for s in stamps]
    days = facts["days"]
    assert days[0] is not None
    assert days[1] is not None
    assert days[2] is None  # the same day as the one before
    assert days[3] is not None
    assert len({d for d in days if d}) == 3


async def test_sign_in_errors_are_plain_and_keep_the_username(tmp_path: Path) -> None:
    """(Sign-up errors: tests/examples/test_chat_forms.py.)"""

    def steps(browser: Any, base: str) -> dict[str, Any]:
        page = browser.new_page()
        page.goto(f"{base}/login")
        page.fill("#username", "bob")
        page.fill("#password", "not the password")
        page.click("#sign-in")
        page.wait_for_selector("#login-error", timeout=TIMEOUT_MS)
        facts: dict[str, Any] = {
            "wrong": page.inner_text("#login-error"),
            "kept": page.input_value("#username"),
        }
        facts["next_to"] = page.evaluate(
            "() => document.querySelector('#login-error').previousElementSibling.id"
        )
        return facts

    facts = await with_browser(tmp_path, steps)
    assert facts["wrong"] == "wrong username or password"
    assert facts["kept"] == "bob"
    assert facts["next_to"] == "password"


async def test_delete_asks_first(tmp_path: Path) -> None:
    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice")
        alice.fill("#content", "a message to delete")
        alice.press("#content", "Enter")
        mine = ".message:has-text('a message to delete')"
        alice.wait_for_selector(mine, timeout=TIMEOUT_MS)
        asked: list[str] = []

        def dismiss(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.dismiss()

        alice.once("dialog", dismiss)
        alice.click(f"{mine} button:has-text('delete')", force=True)
        alice.wait_for_timeout(500)
        facts: dict[str, Any] = {"kept": alice.query_selector(mine) is not None}
        alice.once("dialog", lambda dialog: dialog.accept())
        alice.click(f"{mine} button:has-text('delete')", force=True)
        alice.wait_for_selector(mine, state="detached", timeout=TIMEOUT_MS)
        facts["asked"] = asked
        return facts

    facts = await with_browser(tmp_path, steps)
    assert facts["asked"] == ["Delete this message?"]
    assert facts["kept"]


async def test_messages_read_well(tmp_path: Path) -> None:
    """New lines, links, mentions, right-to-left text, long words; editing by keyboard."""

    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice", (390, 844))
        bob = open_as(browser, base, "bob")
        bob.type("#content", "line one")
        bob.keyboard.press("Shift+Enter")
        bob.type("#content", "@ali")
        bob.wait_for_selector("#mention-list li:has-text('@alice')", timeout=TIMEOUT_MS)
        bob.keyboard.press("Tab")  # completes the name
        bob.type("#content", "see https://example.org/x " + "w" * 120)
        facts: dict[str, Any] = {"completed": bob.input_value("#content")}
        bob.keyboard.press("Enter")
        body = ".message:has-text('line one') .body"
        alice.wait_for_selector(body, timeout=TIMEOUT_MS)
        facts["text"] = alice.inner_text(body)
        facts["link"] = alice.get_attribute(f"{body} a", "href")
        facts["mention"] = alice.inner_text(f"{body} .mention.me")
        facts["dir"] = alice.get_attribute(body, "dir")
        facts["fits"] = alice.eval_on_selector(
            body, "b => b.getBoundingClientRect().right <= innerWidth"
        )
        alice.fill("#content", "to be edited")
        alice.press("#content", "Enter")
        mine = ".message:has-text('to be edited')"
        alice.wait_for_selector(mine, timeout=TIMEOUT_MS)
        alice.click(f"{mine} button:has-text('edit')", force=True)
        box = '.message form.edit input[name="message[content]"]'
        alice.wait_for_selector(box, timeout=TIMEOUT_MS)
        alice.wait_for_timeout(100)
        facts["focused"] = alice.evaluate("() => document.activeElement.name")
        alice.keyboard.press("Escape")
        alice.wait_for_selector(".message form.edit", state="detached", timeout=TIMEOUT_MS)
        facts["errors"] = alice.errors + bob.errors
        return facts

    facts = await with_browser(tmp_path, steps)
    assert facts["completed"].startswith("line one\n@alice see")
    assert facts["text"].startswith("line one\n@alice see https://example.org/x")
    assert facts["link"] == "https://example.org/x"
    assert facts["mention"] == "@alice"
    assert facts["dir"] == "auto"
    assert facts["fits"]
    assert facts["focused"] == "message[content]"
    assert facts["errors"] == []


async def test_unread_counts_survive_a_reload_and_show_in_the_title(tmp_path: Path) -> None:
    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice")
        bob = open_as(browser, base, "bob")
        alice.click("#room-random")
        alice.wait_for_selector("#room-name:has-text('random')", timeout=TIMEOUT_MS)
        for text in ("one", "two"):
            alice.fill("#content", text)
            alice.press("#content", "Enter")
        bob.wait_for_selector("#unread-random:has-text('2')", timeout=TIMEOUT_MS)
        facts: dict[str, Any] = {"title": bob.title()}
        bob.reload()
        bob.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
        bob.wait_for_selector("#unread-random", timeout=TIMEOUT_MS)
        facts["after_reload"] = bob.inner_text("#unread-random")
        bob.click("#room-random")
        bob.wait_for_selector("#unread-random", state="detached", timeout=TIMEOUT_MS)
        bob.click("#room-lobby")
        bob.wait_for_selector("#room-name:has-text('lobby')", timeout=TIMEOUT_MS)
        bob.reload()
        bob.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
        facts["read"] = bob.query_selector("#unread-random") is None
        return facts

    facts = await with_browser(tmp_path, steps)
    assert facts["title"] == "(2) #lobby · trio-beam chat"
    assert facts["after_reload"] == "2"
    assert facts["read"]


async def test_a_notification_links_to_its_room(tmp_path: Path) -> None:
    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice")
        bob = open_as(browser, base, "bob")
        bob.click("#room-random")
        bob.wait_for_selector("#room-name:has-text('random')", timeout=TIMEOUT_MS)
        bob.fill("#content", "@alice over here")
        bob.press("#content", "Enter")
        alice.wait_for_selector("#notification-count", timeout=TIMEOUT_MS)
        alice.click("#bell")
        note = ".notification:has-text('over here')"
        alice.wait_for_selector(note, timeout=TIMEOUT_MS)
        facts = {"said": alice.inner_text(note)}
        alice.click(note)
        alice.wait_for_selector("#room-name:has-text('random')", timeout=TIMEOUT_MS)
        alice.wait_for_selector(".item.shown .message:has-text('over here')", timeout=TIMEOUT_MS)
        return facts

    facts = await with_browser(tmp_path, steps)
    assert "bob mentioned you in #random" in facts["said"]


async def test_a_reconnecting_banner_while_the_server_is_away(tmp_path: Path) -> None:
    async with beam.open_node():
        database = f"sqlite:///{tmp_path / 'chat.db'}"
        endpoint = await build(tmp_path, database=database, demo=True)
        async with trio.open_nursery() as nursery:
            first = trio.CancelScope()

            async def serve_first(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                with first:
                    await web.serve(endpoint, "127.0.0.1", 0, task_status=task_status)

            port = await nursery.start(serve_first)

            def steps(browser: Any) -> dict[str, Any]:
                alice = open_as(browser, f"http://127.0.0.1:{port}", "alice")
                alice.fill("#content", "half-written thought")
                trio.from_thread.run_sync(first.cancel)  # the server goes away
                alice.wait_for_selector("#reconnecting", state="visible", timeout=TIMEOUT_MS)
                facts: dict[str, Any] = {
                    "read_only": alice.eval_on_selector("#content", "e => e.readOnly"),
                    # The banner has a line of its own: it covers nothing of the page.
                    "covered": alice.evaluate(
                        "() => document.querySelector('.shell').getBoundingClientRect().top"
                        " < document.querySelector('#reconnecting').getBoundingClientRect()"
                        ".bottom"
                    ),
                }
                trio.from_thread.run(nursery.start, web.serve, endpoint, "127.0.0.1", port)
                alice.wait_for_selector("#reconnecting", state="hidden", timeout=TIMEOUT_MS * 2)
                alice.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
                facts["kept"] = alice.input_value("#content")
                facts["writable"] = not alice.eval_on_selector("#content", "e => e.readOnly")
                return facts

            facts = await in_browser(steps)
            nursery.cancel_scope.cancel()
    assert facts["read_only"]
    assert not facts["covered"]
    assert facts["kept"] == "half-written thought"
    assert facts["writable"]


async def test_the_admin_page_says_whom_each_process_serves(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        bob = await sign_in(port, "bob")
        async with open_page(port, bob):
            alice = await sign_in(port, "alice")
            _, _, page = await load_page(port, alice, "/admin")
        assert "bob · chat page #lobby" in page
        assert 'data-confirm="Kill &lt;' in page or 'data-confirm="Kill <' in page
