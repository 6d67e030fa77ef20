"""Driving the example chat as its clients do: serve it, sign in, open a page, get a token.

:func:`chat_server` serves the chat on a fresh SQLite file; :func:`sign_in` posts the login
form (with its CSRF token) and returns the ``Cookie`` header a browser would then send;
:func:`open_page` loads a page and joins its LiveView over the Phoenix protocol, as the
official client does, giving a :class:`Page` that applies diffs; :func:`socket_token` gets a
Channels token from ``/api/token``, for clients without a browser.

>>> async with chat_server(tmp_path) as port, open_chat(port, "alice") as page:
...     await page.event("send", "content=hello")
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio

import beam
import web
from examples.chat.app import DEMO_PASSWORD, build
from web.live._rendered import merge, to_html

from . import phx
from .http import fetch, http, jar


@asynccontextmanager
async def chat_server(
    tmp_path: Path,
    per_minute: int = 60,
    *,
    demo: bool = True,
    limits: Mapping[str, web.Limit | web.Backoff] | None = None,
) -> AsyncIterator[int]:
    """The chat on a fresh SQLite file under *tmp_path*, in demo mode unless told otherwise."""
    async with beam.open_node():
        database = f"sqlite:///{tmp_path / 'chat.db'}"
        endpoint = await build(
            tmp_path, database=database, messages_per_minute=per_minute, demo=demo, limits=limits
        )
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield port
            nursery.cancel_scope.cancel()


async def login_form(port: int, cookie: str = "") -> tuple[str, str]:
    """``GET /login``: the form's CSRF token and the cookies to send with the post."""
    extra = f"cookie: {cookie}\r\n" if cookie else ""
    request = f"GET /login HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n"
    status, _, cookies, body = await fetch(port, request.encode())
    assert status == 200, status
    found = re.search(r'name="_csrf_token" value="([^"]+)"', body.decode())
    assert found is not None
    return html.unescape(found.group(1)), jar(*cookie.split("; "), *cookies)


def post_form(path: str, body: bytes, cookie: str = "") -> bytes:
    extra = f"cookie: {cookie}\r\n" if cookie else ""
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\n{extra}"
        "content-type: application/x-www-form-urlencoded\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


async def sign_in(port: int, username: str, password: str = DEMO_PASSWORD) -> str:
    """Sign in through the form as a browser does; the ``Cookie`` header it then sends (the
    session and the CSRF cookie)."""
    token, cookie = await login_form(port)
    body = f"_csrf_token={quote(token)}&username={username}&password={quote(password)}"
    status, headers, cookies, _ = await fetch(port, post_form("/login", body.encode(), cookie))
    assert status == 303
    assert headers["location"] == "/", headers["location"]
    return jar(*cookie.split("; "), *cookies)


async def load_page(port: int, cookie: str, path: str = "/") -> tuple[int, dict[str, str], str]:
    """``GET`` a page with *cookie*: status, headers, body."""
    request = f"GET {path} HTTP/1.1\r\nhost: x\r\ncookie: {cookie}\r\nconnection: close\r\n\r\n"
    status, headers, _, body = await fetch(port, request.encode())
    return status, headers, body.decode()


class Page:
    """One signed-in browser tab, as the LiveView client would drive it."""

    def __init__(self, client: phx.Phx, topic: str, join_ref: str, tree: dict[str, Any]) -> None:
        self.client = client
        self.topic = topic
        self.join_ref = join_ref
        self.tree = tree
        self.streamed: list[str] = []

    def apply(self, diff: dict[str, Any]) -> None:
        diff = {k: v for k, v in diff.items() if k not in ("t", "e")}
        self.tree = merge(self.tree, diff)
        # Streams live in the DOM, not in the tree: keep what each insert rendered.
        self.streamed.append(json.dumps(diff))

    @property
    def html(self) -> str:
        return to_html(self.tree)

    async def event(self, name: str, value: Any, kind: str = "form") -> None:
        payload = {"type": kind, "event": name, "value": value}
        answer = await self.client.push(self.join_ref, self.topic, "event", payload)
        assert answer["status"] == "ok", answer
        if "diff" in answer["response"]:
            self.apply(answer["response"]["diff"])

    async def until(self, predicate: Any) -> None:
        with trio.fail_after(5):
            while not predicate(self):
                push = await self.client.event(self.topic, "diff")
                self.apply(push[4])


@asynccontextmanager
async def open_chat(port: int, username: str) -> AsyncIterator[Page]:
    cookie = await sign_in(port, username)
    async with open_page(port, cookie) as page:
        yield page


@asynccontextmanager
async def open_page(port: int, cookie: str, path: str = "/") -> AsyncIterator[Page]:
    """Load the page at *path* with *cookie* and join its LiveView."""
    status, _, page = await load_page(port, cookie, path)
    assert status == 200, status
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    container = re.search(r'<div id="(phx-[^"]+)" data-phx-main data-phx-session="([^"]+)"', page)
    assert csrf is not None
    assert container is not None
    async with phx.connect(
        port,
        f"_csrf_token={quote(csrf.group(1))}",
        path="/live/websocket",
        headers=[(b"cookie", cookie.encode())],
    ) as c:
        topic = f"lv:{container.group(1)}"
        url = f"http://x{path}"
        join_ref, reply = await c.join(topic, {"url": url, "session": container.group(2)})
        assert reply["status"] == "ok", reply
        yield Page(c, topic, join_ref, reply["response"]["rendered"])


async def socket_token(port: int, username: str, password: str = DEMO_PASSWORD) -> dict[str, Any]:
    body = f"username={username}&password={password}".encode()
    status, _, answer = await http(port, post_form("/api/token", body))
    result: dict[str, Any] = json.loads(answer)
    result["status"] = status
    return result


#: How long a browser test waits for any one thing on a page (ms).
TIMEOUT_MS = 10_000


def sign_in_browser(context: Any, base: str, username: str) -> Any:
    """A new page of the browser *context* on the chat at *base*, signed in as *username*
    (a demo user) and connected."""
    page = context.new_page()
    page.set_viewport_size({"width": 1100, "height": 640})
    page.goto(f"{base}/")
    page.wait_for_selector("#username", timeout=TIMEOUT_MS)  # redirected to sign in
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#sign-in")
    page.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
    return page
