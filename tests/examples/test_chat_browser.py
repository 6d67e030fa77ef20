"""The chat in two headless Chromium contexts: two users sign in, see each other online, see
each other typing, exchange messages, see a mention notification (and mark it read), see an
unread badge for another room, and see a message edited and another deleted. The final screen
is saved where ``BEAM_SCREENSHOT`` says (a temporary file otherwise). The README's screenshots
come from ``test_chat_ux.py``, with a realistic history."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

import beam
import web
from examples.chat.app import build

from ..support.browser import in_browser
from ..support.chat import TIMEOUT_MS
from ..support.chat import sign_in_browser as sign_in


async def test_two_users_chat_in_the_browser(tmp_path: Path) -> None:
    screenshot = Path(os.environ.get("BEAM_SCREENSHOT", tmp_path / "chat.png"))
    async with beam.open_node():
        endpoint = await build(tmp_path, database=f"sqlite:///{tmp_path / 'chat.db'}", demo=True)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            base = f"http://127.0.0.1:{port}"

            def steps(browser: Any) -> dict[str, Any]:
                alice = sign_in(browser.new_context(), base, "alice")
                bob = sign_in(browser.new_context(), base, "bob")
                alice.wait_for_selector("#online li:has-text('bob')", timeout=TIMEOUT_MS)
                bob.wait_for_selector("#online li:has-text('alice')", timeout=TIMEOUT_MS)

                bob.type("#content", "hi ali", delay=20)
                alice.wait_for_selector("#typing:has-text('bob')", timeout=TIMEOUT_MS)
                bob.fill("#content", "hi alice!")
                bob.press("#content", "Enter")
                alice.wait_for_selector(".message:has-text('hi alice!')", timeout=TIMEOUT_MS)
                alice.fill("#content", "hello bob, welcome to the lobby")
                alice.click("#send")
                bob.wait_for_selector(
                    ".message:has-text('welcome to the lobby')", timeout=TIMEOUT_MS
                )

                bob.fill("#content", "@alice have a look")
                bob.press("#content", "Enter")
                alice.wait_for_selector("#notification-count:has-text('1')", timeout=TIMEOUT_MS)
                alice.click("#bell")
                alice.wait_for_selector(".notification.unread:has-text('have a look')")
                alice.click("#read-all")
                alice.wait_for_selector("#notification-count", state="detached")
                alice.wait_for_selector(".notification:not(.unread)")
                alice.click("#bell")

                bob.click("#room-random")  # a live patch to another room
                bob.wait_for_selector("#room-name:has-text('random')", timeout=TIMEOUT_MS)
                alice.fill("#content", "are you still there?")
                alice.press("#content", "Enter")
                bob.wait_for_selector("#unread-lobby:has-text('1')", timeout=TIMEOUT_MS)
                bob.click("#room-lobby")
                bob.wait_for_selector("#unread-lobby", state="detached", timeout=TIMEOUT_MS)
                bob.wait_for_selector(".message:has-text('still there')", timeout=TIMEOUT_MS)

                mine = ".message:has-text('are you still there?')"
                alice.click(f"{mine} button:has-text('edit')")  # an edit form in its place
                box = '.message form.edit input[name="message[content]"]'
                alice.fill(box, "still there, bob?")
                alice.press(box, "Enter")
                bob.wait_for_selector(
                    ".message:has-text('still there, bob?') .when:has-text('(edited)')",
                    timeout=TIMEOUT_MS,
                )
                alice.fill("#content", "oops, wrong room")
                alice.press("#content", "Enter")
                bob.wait_for_selector(".message:has-text('wrong room')", timeout=TIMEOUT_MS)
                alice.on("dialog", lambda dialog: dialog.accept())  # "Delete this message?"
                alice.click(".message:has-text('wrong room') button:has-text('delete')")
                bob.wait_for_selector(
                    ".message:has-text('wrong room')", state="detached", timeout=TIMEOUT_MS
                )
                bob.screenshot(path=str(screenshot))
                count = bob.eval_on_selector_all(".message", "els => els.length")
                return {"messages": count, "screenshot": screenshot.stat().st_size}

            facts = await in_browser(steps)
            nursery.cancel_scope.cancel()
    assert facts["messages"] == 4
    assert facts["screenshot"] > 10_000
