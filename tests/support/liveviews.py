"""LiveViews shared by the LiveView tests (protocol-level and in the browser)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

import beam
import web


class Counter(web.LiveView):
    template = (
        '<div class="counter"><h1 id="count">{{ count }}</h1>'
        '<button id="inc" phx-click="inc">+1</button>'
        '<button id="crash" phx-click="crash">crash</button>'
        '<button id="share" phx-click="share">share</button>'
        '<a id="to-form" href="/form" data-phx-link="redirect" data-phx-link-state="push">form</a>'
        '{% if count > 2 %}<p id="big">big</p>{% endif %}</div>'
    )
    title = "Counter"

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(count=int(params.get("start", 0)))
        if socket.connected:
            beam.subscribe("counter")

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "inc":
            socket.assign(count=socket.assigns["count"] + 1)
        elif event == "crash":
            raise RuntimeError("the counter crashed on purpose")
        elif event == "share":
            beam.broadcast("counter", ("set", socket.assigns["count"]))

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        if isinstance(message, tuple) and message[0] == "set":
            socket.assign(count=message[1])


class Form(web.LiveView):
    template = (
        '<form id="f" phx-change="validate" phx-submit="save">'
        '<input id="name" name="user[name]" value="{{ name }}">'
        '{% if error %}<span id="error">{{ error }}</span>{% endif %}'
        '</form><p id="saved">{{ saved }}</p>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(name="", error="", saved="")

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        name = value.get("user", {}).get("name", "")
        error = "too short" if 0 < len(name) < 3 else ""
        socket.assign(name=name, error=error)
        if event == "save" and not error:
            socket.assign(saved=name)


class Loading(web.LiveView):
    template = (
        '{% if flash.info %}<p id="flash">{{ flash.info }}</p>{% endif %}'
        "{% if rooms.loading %}<p>loading</p>{% elif rooms.ok %}"
        "<ul>{% for r in rooms.result %}<li>{{ r }}</li>{% endfor %}</ul>"
        "{% else %}<p>failed: {{ rooms.failed }}</p>{% endif %}"
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(page_title="Rooms")
        fail = params.get("fail") == "1"

        async def rooms() -> list[str]:
            if fail:
                raise LookupError("no rooms today")
            return ["lobby", "random"]

        socket.assign_async("rooms", rooms)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "save":
            socket.put_flash("info", "Saved!")
            socket.assign(page_title="Rooms (saved)")
            socket.push_event("saved", {"at": 1})
        elif event == "go":
            socket.push_patch("/loading?page=2")
        elif event == "leave":
            socket.redirect("/login")


class Feed(web.LiveView):
    template = (
        '<div id="feed" phx-update="stream">'
        '{% for dom_id, m in messages %}<p id="{{ dom_id }}">{{ m.body }}</p>{% endfor %}'
        "</div><span>{{ total }}</span>"
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(total=2)
        socket.stream("messages", [{"id": 1, "body": "one"}, {"id": 2, "body": "two"}], limit=-3)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "add":
            socket.stream_insert("messages", {"id": value["id"], "body": value["body"]})
            socket.assign(total=socket.assigns["total"] + 1)
        elif event == "remove":
            socket.stream_delete("messages", {"id": value["id"]})
        elif event == "reset":
            socket.stream("messages", [{"id": 9, "body": "fresh"}], reset=True)


class Card(web.LiveComponent):
    template = (
        '<div id="card-{{ id }}"><b>{{ title }}</b> {{ likes }}'
        '<button phx-click="like" phx-target="{{ myself }}">+1</button></div>'
    )

    def mount(self, socket: web.LiveSocket) -> None:
        socket.assign(likes=0)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        socket.assign(likes=socket.assigns["likes"] + 1)


class Cards(web.LiveView):
    components = (Card,)
    template = (
        "<section>{% for c in cards %}"
        "{{ live_component(Card, id=c.id, title=c.title) }}{% endfor %}</section>"
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(
            Card=Card, cards=[{"id": "a", "title": "Apples"}, {"id": "b", "title": "Bananas"}]
        )

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "rename":
            cards = [dict(socket.assigns["cards"][0], title="APPLES"), socket.assigns["cards"][1]]
            socket.assign(cards=cards)


class Rows(web.LiveView):
    template = (
        '<button id="add" phx-click="add">add</button>'
        '<button id="drop" phx-click="drop">drop</button>'
        '<ul id="rows" phx-update="stream">'
        '{% for dom_id, r in rows %}<li id="{{ dom_id }}">row {{ r.id }}</li>{% endfor %}</ul>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(next_id=1000)
        socket.stream("rows", [{"id": i} for i in range(1000)])

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "add":
            socket.stream_insert("rows", {"id": socket.assigns["next_id"]}, at=0)
            socket.assign(next_id=socket.assigns["next_id"] + 1)
        elif event == "drop":
            socket.stream_delete("rows", "rows-5")


class Older(web.LiveView):
    """A stream whose older entries arrive from ``start_async`` (fails on the third page)."""

    template = (
        '{% if loading %}<p id="loading">loading older…</p>{% endif %}'
        '{% if error %}<p id="error">{{ error }}</p>{% endif %}'
        '<div id="items" phx-update="stream">'
        '{% for dom_id, m in items %}<p id="{{ dom_id }}">{{ m.body }}</p>{% endfor %}</div>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(loading=False, error="", page=0)
        socket.stream("items", [{"id": 100, "body": "newest"}])

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        page = socket.assigns["page"] + 1
        socket.assign(loading=True, page=page)

        async def fetch() -> list[dict[str, Any]]:
            await trio.sleep(0.05)
            if page == 3:
                raise LookupError("no more history")
            return [{"id": page * 10 + i, "body": f"p{page}.{i}"} for i in range(2)]

        socket.start_async("older", fetch)

    async def handle_async(
        self, name: str, result: web.AsyncResult, socket: web.LiveSocket
    ) -> None:
        socket.assign(loading=False)
        if not result.ok:
            socket.assign(error=result.failed)
            return
        for item in reversed(result.result):
            socket.stream_insert("items", item, at=0)


#: Users signed out since their pages were opened (their server-side sessions deleted).
REVOKED: set[str] = set()


async def signed_in(request: web.Request) -> Mapping[str, Any] | web.Response:
    """A route guard: users with a ``user`` cookie who were not signed out (async, as one
    that looks the session up in a database)."""
    await trio.lowlevel.checkpoint()
    user = request.cookie("user")
    if not user or user in REVOKED:
        return web.Response(302, b"", (("location", "/login"),))
    return {"user": user, "live_socket_id": f"users_sessions:{user}"}


def admins(request: web.Request) -> Mapping[str, Any] | web.Response:
    """A route guard: the user ``admin`` only."""
    if request.cookie("user") != "admin":
        return web.Response(302, b"", (("location", "/login"),))
    return {"user": "admin"}


class Home(web.LiveView):
    """A signed-in page linking live to another page of its live session and to the admin's."""

    template = (
        '<p id="home">home of {{ user }}</p>'
        '<a id="to-settings" href="/settings" data-phx-link="redirect" '
        'data-phx-link-state="push">settings</a>'
        '<a id="to-admin" href="/admin" data-phx-link="redirect" '
        'data-phx-link-state="push">admin</a>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(user=session["user"])


class Settings(web.LiveView):
    template = '<p id="settings">settings of {{ user }}</p>'

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(user=session["user"])


class AdminPage(web.LiveView):
    template = '<p id="admin">admin only</p>'
