"""A form bound to a domain action, in headless Chromium with the official LiveView client:
errors show as the user types, only for the fields the user touched; the submit writes, or
answers with every field's errors without losing what was typed (tests/support/formapp.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

import beam
import web

from ..support.browser import in_browser
from ..support.formapp import Link, People, Person, Signup

TIMEOUT_MS = 10_000


def errors_of(page: Any) -> dict[str, str]:
    """The field errors on the page now, by the id of the input they belong to."""
    found: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.field-error')]"
        ".map(e => [e.id.replace(/_error$/, ''), e.textContent]))"
    )
    return found


async def test_a_bound_form_shows_errors_for_touched_fields_and_submits(tmp_path: Path) -> None:
    async with beam.open_node():
        await People.start_link(f"sqlite:///{tmp_path / 'people.db'}")
        await People.create_tables()
        endpoint = web.Endpoint()
        web.LiveRouter(endpoint).live("/signup", Signup)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            base = f"http://127.0.0.1:{port}"

            def steps(browser: Any) -> dict[str, Any]:
                facts: dict[str, Any] = {}
                page = browser.new_page()
                page.goto(f"{base}/signup")
                page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
                page.fill("#person_username", "Al")
                page.wait_for_selector("#person_username_error", timeout=TIMEOUT_MS)
                facts["typing"] = errors_of(page)  # email is still empty: not touched yet
                page.fill("#person_username", "al")
                page.wait_for_selector(
                    "#person_username_error", state="detached", timeout=TIMEOUT_MS
                )
                page.fill("#person_email", "not an address")
                page.wait_for_selector("#person_email_error", timeout=TIMEOUT_MS)
                facts["email"] = errors_of(page)
                page.fill("#person_bio", "x" * 2001)
                page.click("#save")
                page.wait_for_selector("#person_bio_error", timeout=TIMEOUT_MS)
                facts["submitted"] = errors_of(page)
                facts["kept"] = page.input_value("#person_email")

                page.fill("#person_email", "al@example.org")
                page.fill("#person_bio", "hello")
                page.click("#save")
                page.wait_for_selector("#people li", timeout=TIMEOUT_MS)
                facts["people"] = page.text_content("#people")
                facts["after"] = page.input_value("#person_username")

                page.fill("#person_username", "al")
                page.fill("#person_email", "other@example.org")
                page.click("#save")
                page.wait_for_selector("#person_username_error", timeout=TIMEOUT_MS)
                facts["taken"] = errors_of(page)

                # A nested form: add a link; its errors show next to it as typed.
                page.fill("#person_username", "bo")
                page.fill("#person_email", "bo@example.org")
                page.click("#add-link")
                page.wait_for_selector("#person_links_0_url", timeout=TIMEOUT_MS)
                page.fill("#person_links_0_url", "nope")
                page.wait_for_selector("#person_links_0_url_error", timeout=TIMEOUT_MS)
                facts["link"] = errors_of(page)
                page.fill("#person_links_0_url", "https://bo.example.org")
                page.wait_for_selector(
                    "#person_links_0_url_error", state="detached", timeout=TIMEOUT_MS
                )
                page.click("#save")
                page.wait_for_function(
                    "document.querySelector('#links').textContent === '1'", timeout=TIMEOUT_MS
                )
                facts["people_after_link"] = page.text_content("#people")
                return facts

            facts = await in_browser(steps)
            nursery.cancel_scope.cancel()
        people = await People.read(Person)
        links = await People.read(Link)
    assert facts["typing"] == {"person_username": "must match ^[a-z0-9_]*$"}
    assert facts["email"] == {"person_email": "must be an email address"}
    assert facts["submitted"] == {
        "person_email": "must be an email address",
        "person_bio": "must be at most 2000 characters",
    }
    assert facts["kept"] == "not an address"
    assert facts["people"] == "al"
    assert facts["after"] == ""  # a fresh form after the sign-up
    assert facts["taken"] == {"person_username": "has already been taken"}
    assert facts["link"] == {"person_links_0_url": "must match ^https?://\\S+$"}
    assert facts["people_after_link"] == "albo"
    assert sorted(p.username for p in people) == ["al", "bo"]
    assert [link.url for link in links] == ["https://bo.example.org"]
