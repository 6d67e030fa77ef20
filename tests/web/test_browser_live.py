"""LiveView in a real browser: headless Chromium running the official phoenix_live_view
client (from npm, served by the endpoint) against our server.

Scenarios: a counter (click, DOM update), a form with live validation and submit, a
1,000-row stream with an insert and a delete, live navigation to another view and a live
patch, two tabs seeing one PubSub broadcast, and a crashed and a killed view recovering;
guarded routes: live navigation within a live session, a full page load into another one
(where its guard redirects), and a signed-out user's open page sent to sign in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import beam
import web

from ..support import liveviews
from ..support.browser import in_browser
from ..support.liveviews import AdminPage, Counter, Form, Home, Loading, Rows, Settings

TIMEOUT_MS = 10_000


@asynccontextmanager
async def live_site() -> AsyncIterator[str]:
    async with beam.open_node():
        endpoint = web.Endpoint()
        router = web.LiveRouter(endpoint)
        router.live("/counter", Counter)
        router.live("/form", Form)
        router.live("/loading", Loading)
        router.live("/rows", Rows)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield f"http://127.0.0.1:{port}"
            nursery.cancel_scope.cancel()


def connected(page: Any) -> None:
    """Wait until the page's LiveView has joined."""
    page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)


def text(page: Any, selector: str, expected: str) -> None:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s) && document.querySelector(s).textContent === t",
        arg=[selector, expected],
        timeout=TIMEOUT_MS,
    )


def kill_views() -> int:
    """Kill every LiveView process (from the test's trio thread)."""
    killed = 0
    for pid in beam.processes():
        info = beam.process_info(pid)
        if info is not None and "LiveChannel" in info.initial_call:
            beam.exit(pid, "kill")
            killed += 1
    return killed


async def test_counter_form_navigation_and_recovery() -> None:
    async with live_site() as base:

        def steps(browser: Any) -> dict[str, Any]:
            facts: dict[str, Any] = {}
            page = browser.new_page()
            page.goto(f"{base}/counter?start=1")
            connected(page)
            page.evaluate("window.notReloaded = true")
            page.click("#inc")
            text(page, "#count", "2")
            page.click("#inc")
            page.wait_for_selector("#big", timeout=TIMEOUT_MS)

            page.click("#crash")  # the view's process crashes; the client rejoins and remounts
            text(page, "#count", "1")
            connected(page)
            page.click("#inc")
            text(page, "#count", "2")

            facts["killed"] = trio.from_thread.run_sync(kill_views)
            text(page, "#count", "1")  # remounted after the kill
            connected(page)

            page.click("#to-form")  # live navigation: another view, no page load
            page.wait_for_selector("#name", timeout=TIMEOUT_MS)
            facts["same_page"] = page.evaluate("window.notReloaded === true")
            facts["url"] = page.url

            page.fill("#name", "Jo")
            page.wait_for_selector("#error", timeout=TIMEOUT_MS)
            facts["error"] = page.text_content("#error")
            page.fill("#name", "Josephine")
            page.wait_for_selector("#error", state="detached", timeout=TIMEOUT_MS)
            page.press("#name", "Enter")
            text(page, "#saved", "Josephine")

            page.goto(f"{base}/loading")
            connected(page)
            page.wait_for_selector("text=lobby", timeout=TIMEOUT_MS)
            facts["title"] = page.title()
            page.evaluate(
                "window.liveSocket.main.pushEvent('click', document.body, null, 'go', {})"
            )
            page.wait_for_url("**/loading?page=2", timeout=TIMEOUT_MS)
            facts["patched"] = page.url
            return facts

        facts = await in_browser(steps)
    assert facts["killed"] >= 1
    assert facts["same_page"] is True
    assert facts["url"].endswith("/form")
    assert facts["error"] == "too short"
    assert facts["title"] == "Rooms"
    assert facts["patched"].endswith("/loading?page=2")


async def test_two_tabs_see_one_broadcast_and_streams_patch_the_dom() -> None:
    async with live_site() as base:

        def steps(browser: Any) -> dict[str, Any]:
            facts: dict[str, Any] = {}
            one, two = browser.new_page(), browser.new_context().new_page()
            for page in (one, two):
                page.goto(f"{base}/counter")
                connected(page)
            one.click("#inc")
            one.click("#inc")
            one.click("#inc")
            text(one, "#count", "3")
            one.click("#share")  # a PubSub broadcast: both views' processes receive it
            text(two, "#count", "3")

            rows = browser.new_page()
            rows.goto(f"{base}/rows")
            connected(rows)
            facts["before"] = rows.eval_on_selector_all("#rows li", "els => els.length")
            rows.click("#add")
            rows.wait_for_selector("#rows-1000", timeout=TIMEOUT_MS)
            facts["first"] = rows.eval_on_selector("#rows li", "el => el.id")
            rows.click("#drop")
            rows.wait_for_selector("#rows-5", state="detached", timeout=TIMEOUT_MS)
            facts["after"] = rows.eval_on_selector_all("#rows li", "els => els.length")
            return facts

        facts = await in_browser(steps)
    assert facts == {"before": 1000, "first": "rows-1000", "after": 1000}


async def test_guarded_routes_live_sessions_and_sign_out() -> None:
    liveviews.REVOKED.clear()
    async with beam.open_node():
        endpoint = web.Endpoint()
        login = web.Response(200, b"<p id='login'>sign in</p>", (("content-type", "text/html"),))
        endpoint.get("/login", lambda request: login)
        router = web.LiveRouter(endpoint)
        router.live("/home", Home, session=liveviews.signed_in)
        router.live("/settings", Settings, session=liveviews.signed_in)
        router.live("/admin", AdminPage, session=liveviews.admins)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            base = f"http://127.0.0.1:{port}"

            def sign_out() -> None:
                liveviews.REVOKED.add("alice")
                web.disconnect("users_sessions:alice")

            def steps(browser: Any) -> dict[str, Any]:
                facts: dict[str, Any] = {}
                context = browser.new_context()
                context.add_cookies([{"name": "user", "value": "alice", "url": base}])
                page = context.new_page()
                page.goto(f"{base}/home")
                connected(page)
                page.evaluate("window.notReloaded = true")
                page.click("#to-settings")  # one live session: live navigation
                text(page, "#settings", "settings of alice")
                facts["live"] = page.evaluate("window.notReloaded === true")

                page.goto(f"{base}/home")
                connected(page)
                page.click("#to-admin")  # another live session: a page load; its guard says no
                page.wait_for_selector("#login", timeout=TIMEOUT_MS)
                facts["admin"] = page.url

                page.goto(f"{base}/settings")
                connected(page)
                trio.from_thread.run_sync(sign_out)  # the open page is sent to sign in
                page.wait_for_selector("#login", timeout=TIMEOUT_MS)
                facts["signed_out"] = page.url
                return facts

            facts = await in_browser(steps)
            nursery.cancel_scope.cancel()
    assert facts == {"live": True, "admin": f"{base}/login", "signed_out": f"{base}/login"}
