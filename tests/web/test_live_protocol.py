"""LiveView over the wire: the dead render, the join, events, server pushes and crashes,
spoken as the phoenix_live_view client does (Phoenix V2 frames on /live/websocket)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NamedTuple
from urllib.parse import quote

import pytest
import trio

import beam
import web
from web.live._rendered import merge, to_html

from ..support import phx
from ..support.http import http
from ..support.liveviews import Cards, Counter, Feed, Form, Loading


@asynccontextmanager
async def live_server() -> AsyncIterator[int]:
    async with beam.open_node():
        endpoint = web.Endpoint()
        router = web.LiveRouter(endpoint)
        router.live("/counter", Counter)
        router.live("/form", Form)
        router.live("/loading", Loading)
        router.live("/feed", Feed)
        router.live("/cards", Cards)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield port
            nursery.cancel_scope.cancel()


class Csrf(NamedTuple):
    """A page's CSRF token and the ``_csrf`` cookie it is bound to (set with the page)."""

    token: str
    cookie: str


def live(port: int, csrf: Csrf) -> AbstractAsyncContextManager[phx.Phx]:
    """Connect to /live/websocket as the browser that got *csrf*: token and cookie."""
    headers = [(b"cookie", f"_csrf={csrf.cookie}".encode())]
    return phx.connect(
        port, f"_csrf_token={quote(csrf.token)}", path="/live/websocket", headers=headers
    )


async def dead_render(port: int, path: str) -> tuple[str, Csrf, str, str]:
    """The page's HTML, its csrf token (and cookie), container id and session token."""
    status, headers, body = await http(
        port, f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n".encode()
    )
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    cookie = re.match(r"_csrf=([^;]+);", headers["set-cookie"])
    page = body.decode()
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    container = re.search(r'<div id="(phx-[^"]+)" data-phx-main data-phx-session="([^"]+)"', page)
    assert cookie is not None
    assert csrf is not None
    assert container is not None
    return page, Csrf(csrf.group(1), cookie.group(1)), container.group(1), container.group(2)


async def test_dead_render_then_join_event_and_push() -> None:
    async with live_server() as port:
        page, csrf, element_id, session = await dead_render(port, "/counter?start=5")
        assert '<h1 id="count">5</h1>' in page
        assert "<title>Counter</title>" in page
        assert '<script type="module" src="/assets/live/app.js">' in page

        async with live(port, csrf) as client:
            topic = f"lv:{element_id}"
            join_ref, reply = await client.join(
                topic,
                {
                    "url": f"http://127.0.0.1:{port}/counter?start=5",
                    "params": {"_csrf_token": csrf.token, "_mounts": 0},
                    "session": session,
                    "static": None,
                },
            )
            assert reply["status"] == "ok"
            response = reply["response"]
            assert response["liveview_version"] == web.LIVEVIEW_VERSION
            tree = response["rendered"]
            assert '<h1 id="count">5</h1>' in to_html(tree)

            event = {"type": "click", "event": "inc", "value": {"value": ""}}
            answer = await client.push(join_ref, topic, "event", event)
            assert answer == {"status": "ok", "response": {"diff": {"0": "6"}}}
            tree = merge(tree, answer["response"]["diff"])
            assert '<h1 id="count">6</h1><button' in to_html(tree)

            # A message to the view's process: the change arrives as a "diff" push.
            beam.broadcast("counter", ("set", 1))
            push = await client.event(topic, "diff")
            assert push[0] == join_ref
            assert push[1] is None
            tree = merge(tree, push[4])
            assert '<h1 id="count">1</h1>' in to_html(tree)
            assert '<p id="big">' not in to_html(tree)

            # Every push is answered, even ones with nothing to say.
            answer = await client.push(join_ref, topic, "cids_destroyed", {"cids": [3]})
            assert answer == {"status": "ok", "response": {"cids": []}}  # no component 3

            # A crash: phx_error, then a rejoin mounts the view afresh.
            await client.send(join_ref, topic, "event", {"type": "click", "event": "crash"})
            assert (await client.event(topic, "phx_error"))[0] == join_ref
            _, reply = await client.join(topic, {"url": "http://x/counter", "session": session})
            assert '<h1 id="count">0</h1>' in to_html(reply["response"]["rendered"])


async def test_forms_are_decoded_and_validated() -> None:
    async with live_server() as port:
        _, csrf, element_id, session = await dead_render(port, "/form")
        async with live(port, csrf) as client:
            topic = f"lv:{element_id}"
            join_ref, reply = await client.join(topic, {"url": "http://x/form", "session": session})
            tree = reply["response"]["rendered"]
            form: dict[str, Any] = {
                "type": "form",
                "event": "validate",
                "value": "user%5Bname%5D=Jo",
            }
            answer = await client.push(
                join_ref, topic, "event", {**form, "meta": {"_target": "user[name]"}}
            )
            tree = merge(tree, answer["response"]["diff"])
            assert '<span id="error">too short</span>' in to_html(tree)
            submit = {"type": "form", "event": "save", "value": "user%5Bname%5D=Josephine"}
            answer = await client.push(join_ref, topic, "event", submit)
            tree = merge(tree, answer["response"]["diff"])
            html = to_html(tree)
            assert '<p id="saved">Josephine</p>' in html
            assert "too short" not in html


async def test_joins_with_a_forged_session_or_csrf_token_are_refused() -> None:
    async with live_server() as port:
        _, csrf, element_id, session = await dead_render(port, "/counter")
        async with live(port, csrf) as client:
            _, reply = await client.join(f"lv:{element_id}", {"session": session + "x"})
            assert reply == {"status": "error", "response": {"reason": "stale"}}
            _, reply = await client.join("lv:phx-other", {"session": session})
            assert reply == {"status": "error", "response": {"reason": "stale"}}


async def join_view(client: phx.Phx, port: int, path: str) -> tuple[str, str, dict[str, Any], str]:
    """Dead-render *path*, join it; returns (topic, join_ref, rendered, session)."""
    _, _, element_id, session = await dead_render(port, path)
    topic = f"lv:{element_id}"
    join_ref, reply = await client.join(
        topic, {"url": f"http://127.0.0.1:{port}{path}", "session": session}
    )
    assert reply["status"] == "ok", reply
    return topic, join_ref, reply["response"]["rendered"], session


async def test_assign_async_flash_title_events_and_patch() -> None:
    async with live_server() as port:
        page, csrf, _, _ = await dead_render(port, "/loading")
        assert "<p>loading</p>" in page  # the dead render shows the loading state
        async with live(port, csrf) as c:
            topic, join_ref, tree, _ = await join_view(c, port, "/loading")
            assert tree["t"] == "Rooms"
            push = await c.event(topic, "diff")
            tree = merge(tree, push[4])
            assert "<li>lobby</li><li>random</li>" in to_html(tree)

            answer = await c.push(join_ref, topic, "event", {"type": "click", "event": "save"})
            diff = answer["response"]["diff"]
            assert diff["t"] == "Rooms (saved)"
            assert diff["e"] == [["saved", {"at": 1}]]
            tree = merge(tree, {k: v for k, v in diff.items() if k not in ("t", "e")})
            assert '<p id="flash">Saved!</p>' in to_html(tree)
            clear = {"type": "click", "event": "lv:clear-flash", "value": {"key": "info"}}
            answer = await c.push(join_ref, topic, "event", clear)
            tree = merge(tree, answer["response"]["diff"])
            assert "Saved!" not in to_html(tree)

            answer = await c.push(join_ref, topic, "event", {"type": "click", "event": "go"})
            assert answer["response"]["live_patch"] == {"to": "/loading?page=2", "kind": "push"}
            answer = await c.push(join_ref, topic, "event", {"type": "click", "event": "leave"})
            assert answer["response"]["redirect"] == {"to": "/login"}

            topic2, _, tree2, _ = await join_view(c, port, "/loading?fail=1")
            push = await c.event(topic2, "diff")
            assert "failed: LookupError: no rooms today" in to_html(merge(tree2, push[4]))


async def test_live_navigation_rejoins_the_same_element_with_another_view() -> None:
    async with live_server() as port:
        _, csrf, element_id, session = await dead_render(port, "/counter")
        async with live(port, csrf) as c:
            topic = f"lv:{element_id}"
            join_ref, _ = await c.join(topic, {"url": "http://x/counter", "session": session})
            await c.send(join_ref, topic, "phx_leave", {})
            _, reply = await c.join(topic, {"redirect": "http://x/form", "session": session})
            assert 'id="name"' in to_html(reply["response"]["rendered"])
            _, reply = await c.join(topic, {"redirect": "http://x/nowhere", "session": session})
            assert reply["response"] == {"reason": "stale"}


async def test_streams_send_only_inserts_and_operations() -> None:
    async with live_server() as port:
        page, csrf, _, _ = await dead_render(port, "/feed")
        assert '<p id="messages-1">one</p><p id="messages-2">two</p>' in page
        async with live(port, csrf) as c:
            topic, join_ref, tree, _ = await join_view(c, port, "/feed")
            assert tree["0"] == {
                "s": ['<p id="', '">', "</p>"],
                "k": {
                    "0": {"0": "messages-1", "1": "one"},
                    "1": {"0": "messages-2", "1": "two"},
                    "kc": 2,
                },
                "stream": ["0", [["messages-1", -1, -3, False], ["messages-2", -1, -3, False]], []],
            }
            add = {"type": "click", "event": "add", "value": {"id": 3, "body": "three"}}
            diff = (await c.push(join_ref, topic, "event", add))["response"]["diff"]
            assert diff == {
                "0": {
                    "k": {"0": {"0": "messages-3", "1": "three"}, "kc": 1},
                    "stream": ["0", [["messages-3", -1, None, False]], []],
                },
                "1": "3",
            }
            remove = {"type": "click", "event": "remove", "value": {"id": 1}}
            diff = (await c.push(join_ref, topic, "event", remove))["response"]["diff"]
            assert diff == {"0": {"k": {"kc": 0}, "stream": ["0", [], ["messages-1"]]}}
            reset = {"type": "click", "event": "reset", "value": {}}
            diff = (await c.push(join_ref, topic, "event", reset))["response"]["diff"]
            assert diff["0"]["stream"] == ["0", [["messages-9", -1, None, False]], [], True]
            # Nothing pending: the stream is left out of the next diff.
            diff = (await c.push(join_ref, topic, "event", add))["response"]["diff"]
            assert diff["1"] == "4"


async def test_live_components_render_by_cid_and_handle_their_own_events() -> None:
    async with live_server() as port:
        page, csrf, _, _ = await dead_render(port, "/cards")
        assert '<div id="card-a"><b>Apples</b> 0' in page
        async with live(port, csrf) as c:
            topic, join_ref, tree, _ = await join_view(c, port, "/cards")
            assert tree["0"]["k"]["0"] == {"0": 1}  # dynamics hold the cids
            assert tree["c"]["1"]["r"] == 1
            assert '<div id="card-b"><b>Bananas</b> 0' in to_html(tree)

            like = {"type": "click", "event": "like", "value": {}, "cid": 2}
            diff = (await c.push(join_ref, topic, "event", like))["response"]["diff"]
            assert diff == {"c": {"2": {"2": "1"}}}  # only card b's count travels
            tree = merge(tree, diff)
            assert '<div id="card-b"><b>Bananas</b> 1' in to_html(tree)

            rename = {"type": "click", "event": "rename", "value": {}}
            diff = (await c.push(join_ref, topic, "event", rename))["response"]["diff"]
            assert diff == {"c": {"1": {"1": "APPLES"}}}  # new assigns from the parent
            tree = merge(tree, diff)
            assert "<b>APPLES</b> 0" in to_html(tree)

            gone = await c.push(join_ref, topic, "cids_destroyed", {"cids": [1, 99]})
            assert gone["response"] == {"cids": [1]}


def test_a_live_router_extends_an_endpoint_from_outside() -> None:
    endpoint = web.Endpoint()
    assert endpoint.upgrader("/live/websocket") is None  # the HTTP layer has no LiveView in it
    first = web.LiveRouter(endpoint, max_connections_per_address=3, rate_limit=None)
    first.live("/counter", Counter)
    socket = endpoint.upgrader("/live/websocket")
    assert isinstance(socket, web.Socket)
    assert (socket.max_connections_per_address, socket.rate_limit) == (3, None)
    # Another router for the same endpoint adds to the same routes and socket.
    second = web.LiveRouter(endpoint)
    second.live("/form", Form)
    assert second.routes is first.routes
    assert set(first.routes.routes) == {"/counter", "/form"}
    assert endpoint.upgrader("/live/websocket") is socket
    with pytest.raises(ValueError, match="give the socket options to the first one"):
        web.LiveRouter(endpoint, rate_limit=(10, 1.0))
    with pytest.raises(TypeError, match="not max_frames"):
        web.LiveRouter(web.Endpoint(), max_frames=3)
    with pytest.raises(TypeError, match="expects a LiveView subclass"):
        first.live("/nope", Form())  # type: ignore[arg-type]

    async def echo(ws: web.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    taken = web.Endpoint()
    taken.websocket("/live/websocket", echo)
    with pytest.raises(ValueError, match="LiveView needs it for its socket"):
        web.LiveRouter(taken)
