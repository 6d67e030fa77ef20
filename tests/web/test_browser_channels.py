"""Channels in a real browser: headless Chromium running the official phoenix.js client.

The endpoint serves a page that imports ``phoenix.mjs`` (npm, unmodified) as an ES module,
connects ``new Socket("/socket")`` with a signed token, joins a ``room:*`` channel of the
test's :class:`~tests.web.rooms.UserSocket`, pushes ``echo`` and writes the reply
into the DOM. A second browser context (a second user) receives a ``shout`` broadcast into
its DOM. Every check reads the DOM from Python (Playwright, see :mod:`tests.support.browser`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import beam
import web

from ..support.browser import chromium_path, in_browser
from ..support.jsclient import REPO_ROOT, require_node_package
from .rooms import SECRET, UserSocket

TIMEOUT_MS = 10_000

PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><title>channels</title></head>
<body>
<p id="status">loading</p>
<p id="user"></p>
<p id="echo"></p>
<input id="text"><button id="shout">shout</button>
<ul id="shouts"></ul>
<script type="module">
import { Socket } from "/js/phoenix.mjs";

const query = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const socket = new Socket("/socket", { params: { token: query.get("token") } });
socket.connect();
const channel = socket.channel(query.get("topic"), {});
channel.on("shout", ({ text }) => {
  const item = document.createElement("li");
  item.textContent = text;
  $("shouts").append(item);
});
channel.join()
  .receive("ok", ({ user }) => {
    $("user").textContent = user;
    channel.push("echo", { text: "héllo ✓" })
      .receive("ok", ({ echo }) => {
        $("echo").textContent = echo.text;
        $("status").textContent = "ready";
      })
      .receive("error", (reply) => { $("status").textContent = "echo error"; })
      .receive("timeout", () => { $("status").textContent = "echo timeout"; });
  })
  .receive("error", (reply) => { $("status").textContent = "join error"; })
  .receive("timeout", () => { $("status").textContent = "join timeout"; });
$("shout").addEventListener("click", () => channel.push("shout", { text: $("text").value }));
</script>
</body>
</html>
"""


@asynccontextmanager
async def channel_site() -> AsyncIterator[str]:
    """The page, phoenix.js under ``/js`` and the test's socket, served on an ephemeral port."""
    async with beam.open_node():
        endpoint = web.Endpoint()
        endpoint.get(
            "/",
            lambda request: web.Response(
                200, PAGE.encode(), (("content-type", "text/html; charset=utf-8"),)
            ),
        )
        endpoint.static("/js", REPO_ROOT / "node_modules" / "phoenix" / "priv" / "static")
        endpoint.socket("/socket", UserSocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield f"http://127.0.0.1:{port}"
            nursery.cancel_scope.cancel()


def text(page: Any, selector: str, expected: str) -> None:
    """Wait until *selector*'s text is *expected*; after TIMEOUT_MS, fail with what it is."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([s, t]) => document.querySelector(s)?.textContent === t",
            arg=[selector, expected],
            timeout=TIMEOUT_MS,
        )
    except PlaywrightTimeout:
        actual = page.evaluate("(s) => document.querySelector(s)?.textContent ?? null", selector)
        raise AssertionError(f"{selector} is {actual!r}, not {expected!r}") from None


@pytest.fixture
def browser_ready() -> None:
    """Skip (or fail, when required) unless Chromium and phoenix.js (npm) are installed.

    A sync fixture on purpose: a skip raised inside an async test reaches pytest wrapped in an
    ExceptionGroup by pytest-trio 0.8, and ``-rs`` then shows no reason.
    """
    chromium_path()
    require_node_package("phoenix")  # phoenix.mjs comes from npm


@pytest.mark.browser
@pytest.mark.usefixtures("browser_ready")
async def test_phoenix_js_in_chromium_joins_echoes_and_receives_a_broadcast() -> None:
    tokens = {user: web.Token.sign(SECRET, "user socket", user) for user in ("alice", "bob")}
    async with channel_site() as base:

        def steps(browser: Any) -> dict[str, Any]:
            errors: list[str] = []
            pages = {}
            for user in ("bob", "alice"):  # bob joins first, so he is there for the shout
                page = browser.new_context().new_page()  # one context each: two users
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"{base}/?topic=room:lobby&token={tokens[user]}")
                text(page, "#status", "ready")
                pages[user] = page

            alice, bob = pages["alice"], pages["bob"]
            alice.fill("#text", "hello everyone")
            alice.click("#shout")
            for page in (alice, bob):
                text(page, "#shouts li", "hello everyone")
            return {
                "users": [page.text_content("#user") for page in (alice, bob)],
                "echoes": [page.text_content("#echo") for page in (alice, bob)],
                "shouts": [page.locator("#shouts li").all_text_contents() for page in (alice, bob)],
                "errors": errors,
            }

        facts = await in_browser(steps)
    assert facts["errors"] == []
    assert facts["users"] == ["alice", "bob"]
    assert facts["echoes"] == ["héllo ✓", "héllo ✓"]
    assert facts["shouts"] == [["hello everyone"], ["hello everyone"]]
