"""The chat in headless Chromium for the forms and attachments tests: serve a fresh demo chat
and open pages signed in as its demo users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

import beam
import web
from examples.chat.app import DEMO_PASSWORD, build

from ..support.browser import in_browser
from ..support.chat import TIMEOUT_MS

T = TypeVar("T")


async def with_browser(tmp_path: Path, steps: Callable[[Any, str], T]) -> T:
    """Serve a fresh demo chat on SQLite under *tmp_path*, run ``steps(browser, base_url)``
    in a headless Chromium, return what it returns."""
    async with beam.open_node():
        endpoint = await build(tmp_path, database=f"sqlite:///{tmp_path / 'chat.db'}", demo=True)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            facts = await in_browser(lambda browser: steps(browser, f"http://127.0.0.1:{port}"))
            nursery.cancel_scope.cancel()
    return facts


def open_as(browser: Any, base: str, username: str, size: tuple[int, int] = (1280, 800)) -> Any:
    """A page signed in as the demo user *username*, its window *size*; its ``errors`` are
    the errors thrown on it."""
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#sign-in")
    page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
    return page
