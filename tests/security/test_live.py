"""LiveView hardening (issue 13): live sessions, guards on every mount, redirects from the
dead render, the LiveView CSRF token bound to the browser's cookie, revocation of open views,
and bounded form decoding. Each test runs against a live server on loopback, as a client
speaking the phoenix_live_view protocol would."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import trio
import trio.lowlevel
from hypothesis import given, settings
from hypothesis import strategies as st

import beam
import web
from web.live._forms import MAX_FORM_DEPTH, MAX_FORM_FIELDS, FormError, form_params
from web.live._rendered import to_html

from ..support import phx, wsclient
from ..support.http import http
from ..support.liveviews import Form

#: Users whose sessions were revoked (as if their server-side session tokens were deleted).
REVOKED: set[str] = set()


def _user(request: web.Request) -> str | None:
    return request.cookie("user")


def public(request: web.Request) -> Mapping[str, Any]:
    """Anyone: the session names the user, if any."""
    return {"user": _user(request) or ""}


async def signed_in(request: web.Request) -> Mapping[str, Any] | web.Response:
    """Signed-in users (an async guard, as one that looks tokens up in a database)."""
    await trio.lowlevel.checkpoint()
    user = _user(request)
    if not user or user in REVOKED:
        return web.Response(302, b"", (("location", "/login"),))
    return {"user": user, "live_socket_id": f"users_sessions:{user}"}


def admins(request: web.Request) -> Mapping[str, Any] | web.Response:
    """Admins only."""
    if _user(request) != "admin":
        return web.Response(302, b"", (("location", "/login"),))
    return {"user": "admin"}


class Page(web.LiveView):
    template = '<p id="who">{{ who }}</p><p id="view">{{ view }}</p>'

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(who=session.get("user", "?"), view=type(self).__name__)


class Public(Page):
    pass


class Home(Page):
    pass


class Settings(Page):
    pass


class Admin(Page):
    template = '<p id="secret">the admin secret</p>'


#: What the dead render of GuestsOut ran (handle_params must not run after a redirect).
RAN: list[str] = []


class GuestsOut(web.LiveView):
    """Redirects guests from mount, as a view without a route guard would."""

    template = "<p>{{ secret }}</p>"

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        if not session.get("user"):
            socket.redirect("/login")
            return
        socket.assign(secret="data for signed-in users")

    async def handle_params(
        self, params: Mapping[str, Any], url: str, socket: web.LiveSocket
    ) -> None:
        RAN.append("handle_params")
        socket.assign(secret=socket.assigns.get("secret", "data for signed-in users"))


class Moved(web.LiveView):
    """Navigates away from handle_params."""

    template = "<p>moved</p>"

    async def handle_params(
        self, params: Mapping[str, Any], url: str, socket: web.LiveSocket
    ) -> None:
        socket.push_navigate("/public?from=moved")


@asynccontextmanager
async def live_site() -> AsyncIterator[int]:
    REVOKED.clear()
    RAN.clear()
    async with beam.open_node():
        endpoint = web.Endpoint()
        router = web.LiveRouter(endpoint)
        router.live("/public", Public, session=public)
        router.live("/home", Home, session=signed_in)
        router.live("/settings", Settings, session=signed_in)  # same guard: one live session
        router.live("/admin", Admin, session=admins)
        router.live("/guests-out", GuestsOut, session=public)
        router.live("/moved", Moved)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            with trio.fail_after(30):
                yield port
            nursery.cancel_scope.cancel()


@dataclass
class Browser:
    """A client's cookie jar: what it sends with every request and WebSocket upgrade."""

    cookies: dict[str, str] = field(default_factory=dict)

    def header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    async def get(self, port: int, path: str) -> tuple[int, dict[str, str], str]:
        cookie = f"cookie: {self.header()}\r\n" if self.cookies else ""
        raw = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{cookie}connection: close\r\n\r\n"
        status, headers, body = await http(port, raw.encode())
        set_cookie = headers.get("set-cookie")
        if set_cookie is not None:
            name, _, rest = set_cookie.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return status, headers, body.decode()

    async def page(self, port: int, path: str) -> tuple[str, str, str]:
        """Dead-render *path*: (csrf token, container id, session token)."""
        status, _, page = await self.get(port, path)
        assert status == 200, (status, page)
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
        container = re.search(
            r'<div id="(phx-[^"]+)" data-phx-main data-phx-session="([^"]+)"', page
        )
        assert csrf is not None
        assert container is not None
        return csrf.group(1), container.group(1), container.group(2)

    def live(self, port: int, csrf: str) -> Any:
        """Open /live/websocket with *csrf*, sending this browser's cookies."""
        headers = [(b"cookie", self.header().encode())] if self.cookies else []
        return phx.connect(
            port, f"_csrf_token={quote(csrf)}", path="/live/websocket", headers=headers
        )


async def test_a_live_redirect_into_another_live_session_is_refused() -> None:
    """Item 4: a page of one live session cannot live-navigate into a route guarded by
    another guard; the client is told to load the page in full (where the guard runs)."""
    async with live_site() as port:
        bob = Browser({"user": "bob"})
        csrf, element, session = await bob.page(port, "/public")
        async with bob.live(port, csrf) as client:
            topic = f"lv:{element}"
            _, reply = await client.join(
                topic, {"redirect": f"http://127.0.0.1:{port}/admin", "session": session}
            )
            assert reply == {"status": "error", "response": {"reason": "unauthorized"}}
            # Even the admin's own cookie does not make a public page's token an admin one.
            _, reply = await client.join(
                topic, {"redirect": f"http://127.0.0.1:{port}/home", "session": session}
            )
            assert reply == {"status": "error", "response": {"reason": "unauthorized"}}


async def test_live_navigation_within_a_live_session_runs_the_target_guard() -> None:
    async with live_site() as port:
        alice = Browser({"user": "alice"})
        csrf, element, session = await alice.page(port, "/home")
        async with alice.live(port, csrf) as client:
            topic = f"lv:{element}"
            url = f"http://127.0.0.1:{port}/settings"
            join_ref, reply = await client.join(topic, {"redirect": url, "session": session})
            assert reply["status"] == "ok", reply
            html = to_html(reply["response"]["rendered"])
            assert '<p id="who">alice</p><p id="view">Settings</p>' in html
            await client.send(join_ref, topic, "phx_leave", {})
            REVOKED.add("alice")
            _, reply = await client.join(topic, {"redirect": url, "session": session})
            assert reply == {"status": "error", "response": {"redirect": {"to": "/login"}}}


async def test_named_live_sessions_group_routes_whatever_their_guards() -> None:
    """``live_session="name"`` puts routes in one live session even with different guards
    (each still runs its own); the same guard under another name is another live session."""
    async with beam.open_node():
        endpoint = web.Endpoint()
        router = web.LiveRouter(endpoint)
        router.live("/public", Public, session=public, live_session="site")
        router.live("/home", Home, session=signed_in, live_session="site")
        router.live("/settings", Settings, session=signed_in, live_session="account")
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            bob = Browser({"user": "bob"})
            csrf, element, session = await bob.page(port, "/public")
            async with bob.live(port, csrf) as client:
                topic = f"lv:{element}"
                home = {"redirect": f"http://127.0.0.1:{port}/home", "session": session}
                join_ref, reply = await client.join(topic, home)
                assert '<p id="view">Home</p>' in to_html(reply["response"]["rendered"])
                await client.send(join_ref, topic, "phx_leave", {})
                settings = {"redirect": f"http://127.0.0.1:{port}/settings", "session": session}
                _, reply = await client.join(topic, settings)
                assert reply == {"status": "error", "response": {"reason": "unauthorized"}}
            nursery.cancel_scope.cancel()


async def test_the_guard_runs_on_every_connected_join_with_the_upgrade_cookies() -> None:
    """Item 4: the session a connected view mounts with is the guard's fresh answer for the
    WebSocket's own request, not what was signed into the page."""
    async with live_site() as port:
        alice = Browser({"user": "alice"})
        csrf, element, session = await alice.page(port, "/home")
        topic = f"lv:{element}"
        join = {"url": f"http://127.0.0.1:{port}/home", "session": session}
        async with alice.live(port, csrf) as client:
            _, reply = await client.join(topic, join)
            assert '<p id="who">alice</p>' in to_html(reply["response"]["rendered"])
        # The same page token, joined from a connection without the user's cookie.
        anonymous = Browser({"_csrf": alice.cookies.get("_csrf", "")})
        async with anonymous.live(port, csrf) as client:
            _, reply = await client.join(topic, join)
            assert reply == {"status": "error", "response": {"redirect": {"to": "/login"}}}
        # Another user's cookie: the view mounts as that user, not as the page's.
        carol = Browser({"_csrf": alice.cookies.get("_csrf", ""), "user": "carol"})
        async with carol.live(port, csrf) as client:
            _, reply = await client.join(topic, join)
            assert '<p id="who">carol</p>' in to_html(reply["response"]["rendered"])


async def test_a_dead_render_that_redirects_answers_302_and_renders_nothing() -> None:
    """Item 6: a redirect from mount (or handle_params) on the first HTTP render is a 302."""
    async with live_site() as port:
        guest = Browser()
        status, headers, body = await guest.get(port, "/guests-out")
        assert (status, headers.get("location")) == (302, "/login")
        assert "signed-in" not in body
        assert RAN == []  # handle_params did not run after mount's redirect
        status, headers, _ = await guest.get(port, "/moved")
        assert (status, headers.get("location")) == (302, "/public?from=moved")
        # A guard refusing on the dead render still answers with its own response.
        status, headers, _ = await guest.get(port, "/admin")
        assert (status, headers.get("location")) == (302, "/login")
        signed = Browser({"user": "dana"})
        status, _, body = await signed.get(port, "/guests-out")
        assert status == 200
        assert "data for signed-in users" in body


async def test_the_live_csrf_token_is_bound_to_the_browser_cookie() -> None:
    """Item 10: the page sets the CSRF cookie; a token is good only with that cookie."""
    async with live_site() as port:
        one, two = Browser(), Browser()
        csrf_one, _, _ = await one.page(port, "/public")
        csrf_two, _, _ = await two.page(port, "/public")
        assert "_csrf" in one.cookies
        assert "_csrf" in two.cookies
        assert one.cookies["_csrf"] != two.cookies["_csrf"]
        with pytest.raises(wsclient.Rejected) as refused:
            async with two.live(port, csrf_one):
                pass
        assert refused.value.status == 403
        with pytest.raises(wsclient.Rejected):
            async with Browser().live(port, csrf_one):  # the token alone, no cookie
                pass
        async with one.live(port, csrf_one) as client, two.live(port, csrf_two) as other:
            assert client
            assert other
        # A page seen again keeps the cookie it has (no new Set-Cookie).
        _, headers, _ = await one.get(port, "/public")
        assert "set-cookie" not in headers


async def test_disconnect_closes_the_live_view_and_the_rejoin_is_refused() -> None:
    """Item 7: ``web.disconnect(session["live_socket_id"])`` closes the user's LiveView
    connections; the client reconnects and rejoins, the guard refuses, the client is told
    to redirect."""
    async with live_site() as port:
        alice = Browser({"user": "alice"})
        csrf, element, session = await alice.page(port, "/home")
        topic = f"lv:{element}"
        join = {"url": f"http://127.0.0.1:{port}/home", "session": session}
        bob = Browser({"user": "bob"})
        csrf_b, element_b, session_b = await bob.page(port, "/home")
        topic_b = f"lv:{element_b}"
        async with bob.live(port, csrf_b) as bobs:
            join_b = {"url": f"http://127.0.0.1:{port}/home", "session": session_b}
            ref_b, reply = await bobs.join(topic_b, join_b)
            assert reply["status"] == "ok"
            async with alice.live(port, csrf) as client:
                _, reply = await client.join(topic, join)
                assert reply["status"] == "ok"
                REVOKED.add("alice")
                web.disconnect("users_sessions:alice")
                with pytest.raises(wsclient.Closed):
                    await client.expect(lambda frame: False, timeout=5)
            # Bob's view is still there.
            event = {"type": "click", "event": "x", "value": {}}
            assert (await bobs.push(ref_b, topic_b, "event", event))["status"] == "ok"
        async with alice.live(port, csrf) as client:
            _, reply = await client.join(topic, join)
            assert reply == {"status": "error", "response": {"redirect": {"to": "/login"}}}


async def test_huge_forms_are_refused_and_the_view_lives_on() -> None:
    """Item 3: over 1,000 fields, or keys nested deeper than 32, the event is refused with a
    clear error reply; the view keeps serving."""
    async with beam.open_node():
        view = await web.testing.live(Form)
        many = "&".join(f"f{i}=x" for i in range(MAX_FORM_FIELDS + 1))
        ref = view._channel.push("event", {"type": "form", "event": "save", "value": many})
        response = await view._channel.assert_reply(ref, "error")
        assert "1000 fields" in response["reason"]
        deep = "a" + "[b]" * 10_000 + "=1"
        ref = view._channel.push("event", {"type": "form", "event": "save", "value": deep})
        response = await view._channel.assert_reply(ref, "error")
        assert f"{MAX_FORM_DEPTH} levels" in response["reason"]
        await view.submit("save", {"user": {"name": "Josephine"}})
        assert '<p id="saved">Josephine</p>' in view.html


def test_form_params_limits() -> None:
    assert form_params("user%5Bname%5D=Jo&tags%5B%5D=a&tags%5B%5D=b") == {
        "user": {"name": "Jo"},
        "tags": ["a", "b"],
    }
    assert form_params("a=1&a%5Bb%5D%5Bc%5D=2") == {"a": "1"}  # a string is not a dict
    assert form_params("&".join(["x=1"] * MAX_FORM_FIELDS)) == {"x": "1"}
    with pytest.raises(FormError, match="1000 fields"):
        form_params("&".join(["x=1"] * (MAX_FORM_FIELDS + 1)))
    assert form_params("a" + "[b]" * (MAX_FORM_DEPTH - 1) + "=1")
    with pytest.raises(FormError, match="32 levels"):
        form_params("a" + "[b]" * MAX_FORM_DEPTH + "=1")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_leaves(v) for v in value)
    return 1


_KEY = st.text(alphabet="ab[]%5BD=&;x", max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_KEY, max_size=40).map("&".join)))
def test_form_params_never_crashes_and_respects_its_limits(encoded: str) -> None:
    try:
        result = form_params(encoded, max_fields=20, max_depth=4)
    except FormError:
        return
    assert isinstance(result, dict)
    assert _leaves(result) <= 20
    assert _depth(result) <= 4


@pytest.mark.parametrize("secure", [False, True])
async def test_the_pages_csrf_cookie_is_secure_when_the_endpoint_says_so(secure: bool) -> None:
    async with beam.open_node():
        endpoint = web.Endpoint(secure_cookies=secure)
        router = web.LiveRouter(endpoint)
        router.live("/public", Public, session=public)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            status, headers, _ = await http(
                port, b"GET /public HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            nursery.cancel_scope.cancel()
    assert status == 200
    assert headers["set-cookie"].startswith("_csrf=")
    assert headers["set-cookie"].endswith("; Secure") is secure
