"""Headless Chromium for tests: Debian's ``chromium`` driven by Playwright for Python.

Playwright's async API runs on asyncio, not trio, so a test runs its browser steps with the
*sync* API in one worker thread (``trio.to_thread.run_sync``) while the server under test keeps
running on the trio loop of the test. Without Chromium the test is skipped, unless
``BEAM_REQUIRE_BROWSER=1`` (as in CI), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import trio

T = TypeVar("T")


def chromium_path() -> str:
    """Where Chromium is; skips (or fails, when it is required) if it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is not None:
        return path
    why = "chromium is not installed (apt-get install chromium; .ci/run does it)"
    if os.environ.get("BEAM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BEAM_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``), closed afterwards; call from a thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


async def in_browser(steps: Callable[[Any], T]) -> T:
    """Run ``steps(browser)`` in a worker thread with a fresh headless Chromium."""
    chromium_path()  # skip or fail here, in the test's own task

    def run() -> T:
        with browser() as launched:
            return steps(launched)

    return await trio.to_thread.run_sync(run)
