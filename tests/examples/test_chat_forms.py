"""The chat's forms bound to domain actions (``domain.Form``), in headless Chromium with the
official LiveView client: sign-up shows each field's error as the user types, only for the
fields they have been in, then creates the account and signs in; the room form says a name is
taken before anything is written; an edit refused for its length keeps the text typed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import domain
from examples.chat.model import Chat, User

from ..support.browser import in_browser
from ..support.chat import TIMEOUT_MS, chat_server
from .browser_steps import open_as, with_browser


def errors_of(page: Any) -> dict[str, str]:
    """The field errors on the page now, by the id of their input."""
    found: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.field-error')]"
        ".map(e => [e.id.replace(/_error$/, ''), e.textContent]))"
    )
    return found


async def test_sign_up_shows_errors_as_you_type_then_signs_in(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        base = f"http://127.0.0.1:{port}"

        def steps(browser: Any) -> dict[str, Any]:
            page = browser.new_page()
            page.goto(f"{base}/login")
            page.click("#sign-up")
            page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
            facts: dict[str, Any] = {"url": page.url}
            page.fill("#user_username", "Alice")
            page.wait_for_selector("#user_username_error", timeout=TIMEOUT_MS)
            facts["typing"] = errors_of(page)  # the password is untouched: no word about it
            page.fill("#user_username", "bob")
            page.wait_for_selector("#user_username_error:has-text('taken')", timeout=TIMEOUT_MS)
            facts["taken"] = errors_of(page)
            page.fill("#user_username", "carol")
            page.wait_for_selector("#user_username_error", state="detached", timeout=TIMEOUT_MS)
            page.fill("#user_password", "short")
            page.wait_for_selector("#user_password_error", timeout=TIMEOUT_MS)
            facts["password"] = errors_of(page)
            page.click("#create")
            page.wait_for_timeout(300)
            facts["submitted"] = errors_of(page)
            facts["kept"] = [page.input_value("#user_username"), page.input_value("#user_password")]
            page.fill("#user_password", "long enough")
            page.click("#create")
            page.wait_for_url(f"{base}/", timeout=TIMEOUT_MS)
            page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
            facts["me"] = page.inner_text("#me")
            return facts

        facts = await in_browser(steps)
        users = [u.username for u in await Chat.read(User, sort=("username",))]
    assert facts["url"].endswith("/signup")
    assert facts["typing"] == {"user_username": "only lowercase letters, digits and _"}
    assert facts["taken"] == {"user_username": "that username is taken"}
    assert facts["password"] == {"user_password": "at least 8 characters"}
    assert facts["submitted"] == {"user_password": "at least 8 characters"}
    assert facts["kept"] == ["carol", "short"]
    assert facts["me"] == "carol"
    assert users == ["alice", "bob", "carol"]


async def test_an_edit_refused_for_its_length_keeps_the_text(tmp_path: Path) -> None:
    long = "x" * 2001

    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice")
        alice.fill("#content", "a message to edit")
        alice.press("#content", "Enter")
        mine = ".message:has-text('a message to edit')"
        alice.wait_for_selector(mine, timeout=TIMEOUT_MS)
        alice.click(f"{mine} button:has-text('edit')", force=True)
        box = ".message form.edit input[name=\"message[content]\"]"
        alice.wait_for_selector(box, timeout=TIMEOUT_MS)
        alice.fill(box, long)
        alice.wait_for_selector(".message form.edit .field-error", timeout=TIMEOUT_MS)
        facts: dict[str, Any] = {"typing": alice.inner_text(".message form.edit .field-error")}
        alice.press(box, "Enter")  # submitted anyway: refused, the text stays
        alice.wait_for_timeout(300)
        facts["submitted"] = alice.inner_text(".message form.edit .field-error")
        facts["kept"] = len(alice.input_value(box))
        facts["next_to"] = alice.evaluate(
            "document.querySelector('.message form.edit .field-error')"
            ".previousElementSibling.tagName"
        )
        alice.fill(box, "an edited message")
        alice.press(box, "Enter")
        alice.wait_for_selector(".message form.edit", state="detached", timeout=TIMEOUT_MS)
        facts["after"] = alice.inner_text(".message:has-text('edited message') .body")
        alice.screenshot(path="/tmp/shots/edit.png")
        return facts

    facts = await with_browser(tmp_path, steps)
    assert facts["typing"] == "at most 2,000 characters"
    assert facts["submitted"] == "at most 2,000 characters"
    assert facts["kept"] == 2001
    assert facts["next_to"] == "INPUT"
    assert facts["after"] == "an edited message"


def test_errors_next_to_a_field_are_plain_words() -> None:
    from examples.chat.errors import next_to_field, spoken
    from examples.chat.model import Message, Room

    assert next_to_field("content", "must be at most 2000 characters") == (
        "at most 2,000 characters"
    )
    assert next_to_field("username", "has already been taken") == "that username is taken"
    assert next_to_field("username", "must match ^[a-z0-9_]+$") == (
        "only lowercase letters, digits and _"
    )
    assert next_to_field("name", "is required") == "give the room a name"
    assert next_to_field("", "you are not allowed to do this") == "you are not allowed to do this"
    form = domain.Form.for_create(Chat, Room, "open", name="room")
    checked = spoken(form.validate({"name": "x" * 41}))
    assert checked.errors("name") == ("at most 40 characters",)
    assert checked.value("name") == "x" * 41  # what was typed stays
    untouched = spoken(form.validate({"name": "", "_unused_name": ""}))
    assert untouched.errors("name") == ()  # not been in it yet: no word about it
    # A message may be empty only when it carries files.
    alice = User(id=uuid.uuid4(), username="alice", password_hash="x")
    sending = domain.Form.for_create(Chat, Message, "send", actor=alice, name="message")
    assert spoken(sending.validate({"content": " "})).errors("content") == (
        "a message cannot be empty",
    )
