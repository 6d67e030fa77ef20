"""Test LiveViews in-process: mount, click, submit and read the HTML, without a browser.

:func:`live` runs the view exactly as a connection would (its own process, linked to the test)
and keeps the client's copy of the rendered tree, merged with every reply and push::

    async def test_counter():
        async with beam.open_node():
            view = await web.testing.live(Counter)
            assert "<h1>0</h1>" in view.html
            await view.click("inc")
            assert "<h1>1</h1>" in view.html
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import beam

from ..channels import Broadcast, Message
from ..channels.testing import join
from ._channel import LiveChannel
from ._rendered import merge, to_html
from ._routes import LiveRoutes
from ._view import LiveView
from ._wire import DIFF, EVENT, EVENTS, LIVE_PATCH, LIVE_REDIRECT, REDIRECT, RENDERED, TITLE

__all__ = ["LiveViewClient", "live"]


class LiveViewClient:
    """A mounted LiveView driven by the test (see :func:`live`)."""

    def __init__(self, channel: Any, tree: dict[str, Any]) -> None:
        self._channel = channel
        self.tree = tree
        #: ``push_event`` events the view sent, in order: ``[name, payload]``.
        self.events: list[list[Any]] = []
        #: The last navigation the view asked for (``live_patch``, ``live_redirect`` or
        #: ``redirect``, with its payload), if any.
        self.navigation: tuple[str, Any] | None = None

    @property
    def html(self) -> str:
        """The view's HTML as the client would show it now (streams: their last inserts)."""
        return to_html(self.tree)

    @property
    def pid(self) -> beam.Pid:
        """The view's process."""
        pid: beam.Pid = self._channel.pid
        return pid

    async def click(self, event: str, value: Mapping[str, Any] | None = None) -> Any:
        """Send a ``phx-click`` event; returns the reply's response.

        >>> await view.click("inc")
        """
        return await self._event("click", event, dict(value or {}))

    async def submit(self, event: str, form: Mapping[str, Any]) -> Any:
        """Send a ``phx-submit`` of the fields *form* (nested dicts become ``a[b]`` names).

        >>> await view.submit("save", {"user": {"name": "ann"}})
        """
        return await self._event("form", event, _encode(form))

    async def change(self, event: str, form: Mapping[str, Any], target: str | None = None) -> Any:
        """Send a ``phx-change`` of the fields *form* (``_target`` names the changed field).

        >>> await view.change("validate", {"user": {"name": "a"}}, target="user[name]")
        """
        payload: dict[str, Any] = {"type": "form", "event": event, "value": _encode(form)}
        if target is not None:
            payload["meta"] = {"_target": target}
        return await self._push(EVENT, payload)

    async def sync(self, timeout: float = 1.0) -> None:
        """Apply the updates the view pushed by itself (from ``handle_info``), waiting up to
        *timeout* for at least one.

        >>> beam.broadcast("counter", ("set", 5)); await view.sync()
        """
        try:
            push = await self._channel.receive_push(_PUSHED, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"the view pushed no update within {timeout} s") from None
        self._apply_push(push)
        while True:
            try:
                push = await self._channel.receive_push(_PUSHED, timeout=0)
            except AssertionError:
                return
            self._apply_push(push)

    async def assert_close(self, *, timeout: float = 1.0) -> None:
        """Wait for the view to stop cleanly, as after ``web.disconnect`` of the session's
        ``live_socket_id`` (a real client would reconnect, and the route's guard decide).

        >>> web.disconnect("users_sessions:7"); await view.assert_close()
        """
        await self._channel.assert_close(timeout=timeout)

    async def push(self, event: str, payload: Mapping[str, Any]) -> Any:
        """Push any client event on the view's topic (``allow_upload``, ``progress``...) and
        return the reply's response, its diff applied.

        >>> await view.push("allow_upload", {"ref": ref, "entries": [entry]})
        """
        return await self._push(event, dict(payload))

    async def _event(self, kind: str, event: str, value: Any) -> Any:
        return await self._push(EVENT, {"type": kind, "event": event, "value": value})

    async def _push(self, event: str, payload: dict[str, Any]) -> Any:
        ref = self._channel.push(event, payload)
        response = await self._channel.assert_reply(ref, "ok")
        self._apply(response)
        return response

    def _apply(self, response: Mapping[str, Any]) -> None:
        diff = response.get(DIFF)
        if diff:
            self._merge(diff)
        for kind in _NAVIGATION:
            if kind in response:
                self.navigation = (kind, response[kind])

    def _apply_push(self, message: Message | Broadcast) -> None:
        if message.event == DIFF:
            self._merge(message.payload)
        else:
            self.navigation = (message.event, message.payload)

    def _merge(self, diff: Mapping[str, Any]) -> None:
        self.events.extend(diff.get(EVENTS, []))
        self.tree = merge(self.tree, {k: v for k, v in diff.items() if k not in (EVENTS, TITLE)})
        if TITLE in diff:
            self.tree[TITLE] = diff[TITLE]


_NAVIGATION = (LIVE_PATCH, LIVE_REDIRECT, REDIRECT)
_PUSHED = frozenset({DIFF, *_NAVIGATION})


def _encode(form: Mapping[str, Any], prefix: str = "") -> str:
    pairs: list[tuple[str, str]] = []

    def walk(value: Any, name: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, f"{name}[{key}]" if name else str(key))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, f"{name}[]")
        else:
            pairs.append((name, "" if value is None else str(value)))

    walk(form, prefix)
    return urlencode(pairs)


async def live(
    view: type[LiveView],
    url: str = "http://localhost/",
    *,
    session: Mapping[str, Any] | None = None,
    timeout: float = 1.0,
) -> LiveViewClient:
    """Mount *view* (connected) at *url* with *session*, in a process linked to the caller.

    >>> view = await web.testing.live(Counter, "http://localhost/counter?start=5")
    """
    routes = LiveRoutes(secrets.token_urlsafe(32))
    route = routes.add("/", view)
    channel = type("LiveChannel", (LiveChannel,), {"routes": routes})
    element = "phx-test" + secrets.token_hex(4)
    token = routes.sign_session(route, element, dict(session or {}))
    client = await join(channel, f"lv:{element}", {"url": url, "session": token}, timeout=timeout)
    return LiveViewClient(client, client.reply[RENDERED])
