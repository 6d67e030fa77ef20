"""Uploads in headless Chromium with the official LiveView client (tests/support/uploadapp.py):
a file refused for its size, one for its type, a cancelled one, and one sent in chunks with
its progress, then consumed on save (its bytes arrive intact)."""

from __future__ import annotations

import hashlib
from typing import Any

import trio

import beam
import web

from ..support.browser import in_browser
from ..support.uploadapp import Attach, AutoAttach

TIMEOUT_MS = 10_000


def errors_of(page: Any) -> list[str]:
    found: list[str] = page.evaluate(
        "[...document.querySelectorAll('.upload-error')].map(e => e.textContent)"
    )
    return found


def cancel(page: Any, name: str) -> None:
    entry = f".entry[data-name='{name}']"
    page.click(f"{entry} .cancel")
    page.wait_for_selector(entry, state="detached", timeout=TIMEOUT_MS)


async def test_uploads_refuse_too_large_and_wrong_types_cancel_and_arrive_intact() -> None:
    photo = bytes(range(256)) * 400  # 102,400 bytes: seven chunks of at most 16,000
    async with beam.open_node():
        endpoint = web.Endpoint()
        web.LiveRouter(endpoint).live("/attach", Attach)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)

            def steps(browser: Any) -> dict[str, Any]:
                facts: dict[str, Any] = {}
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/attach")
                page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
                picker = "input[type=file]"
                big = {"name": "big.png", "mimeType": "image/png", "buffer": b"x" * 300_000}
                page.set_input_files(picker, files=[big])
                page.wait_for_selector(".upload-error", timeout=TIMEOUT_MS)
                facts["too_large"] = errors_of(page)
                cancel(page, "big.png")

                exe = {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}
                page.set_input_files(picker, files=[exe])
                page.wait_for_selector(".entry[data-name='tool.exe']", timeout=TIMEOUT_MS)
                facts["not_accepted"] = errors_of(page)
                cancel(page, "tool.exe")

                notes = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}
                page.set_input_files(picker, files=[notes])
                page.wait_for_selector(".entry[data-name='notes.txt']", timeout=TIMEOUT_MS)
                facts["notes_errors"] = errors_of(page)
                cancel(page, "notes.txt")

                page.set_input_files(
                    picker, files=[{"name": "cat.png", "mimeType": "image/png", "buffer": photo}]
                )
                page.wait_for_selector(".entry[data-name='cat.png']", timeout=TIMEOUT_MS)
                facts["cat_errors"] = errors_of(page)
                page.evaluate(
                    """() => {
                        window.progressSeen = [];
                        const form = document.querySelector('#up');
                        new MutationObserver(() => {
                            const p = document.querySelector(
                                ".entry[data-name='cat.png'] .progress");
                            if (p) window.progressSeen.push(Number(p.textContent));
                        }).observe(form, {subtree: true, childList: true, characterData: true});
                    }"""
                )
                page.click("#save")
                page.wait_for_selector("#saved li", timeout=TIMEOUT_MS)
                facts["saved"] = page.text_content("#saved")
                facts["entries_left"] = page.locator(".entry").count()
                facts["progress"] = page.evaluate("window.progressSeen")

                page.evaluate(  # drag and drop: a file dropped on the drop target
                    """() => {
                        const files = new DataTransfer();
                        files.items.add(new File(["dropped!"], "dropped.txt",
                                                 {type: "text/plain"}));
                        document.querySelector('#drop').dispatchEvent(new DragEvent(
                            "drop", {bubbles: true, cancelable: true, dataTransfer: files}));
                    }"""
                )
                page.wait_for_selector(".entry[data-name='dropped.txt']", timeout=TIMEOUT_MS)
                page.click("#save")
                page.wait_for_selector("#saved li:nth-child(2)", timeout=TIMEOUT_MS)
                facts["dropped"] = page.text_content("#saved li:nth-child(2)")
                return facts

            facts = await in_browser(steps)
            nursery.cancel_scope.cancel()
    assert facts["too_large"] == ["the file is too large"]
    assert facts["not_accepted"] == ["this type of file is not accepted"]
    assert facts["notes_errors"] == []
    assert facts["cat_errors"] == []
    digest = hashlib.sha256(photo).hexdigest()[:12]
    assert facts["saved"] == f"cat.png 102400 {digest}"
    assert facts["entries_left"] == 0
    seen = facts["progress"]
    assert any(0 < p < 100 for p in seen), seen  # progress while the chunks went
    assert seen == sorted(seen)
    assert seen[-1] == 100
    dropped = hashlib.sha256(b"dropped!").hexdigest()[:12]
    assert facts["dropped"] == f"dropped.txt 8 {dropped}"


async def test_an_auto_upload_starts_when_picked_and_the_view_consumes_it_when_done() -> None:
    async with beam.open_node():
        endpoint = web.Endpoint()
        web.LiveRouter(endpoint).live("/auto", AutoAttach)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)

            def steps(browser: Any) -> str | None:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/auto")
                page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
                doc = {"name": "report.pdf", "mimeType": "application/pdf", "buffer": b"%" * 25_000}
                page.set_input_files("input[type=file]", files=[doc])
                page.wait_for_selector("#saved li", timeout=TIMEOUT_MS)  # no submit needed
                text: str | None = page.text_content("#saved")
                return text

            saved = await in_browser(steps)
            nursery.cancel_scope.cancel()
    assert saved == "report.pdf 25000"
