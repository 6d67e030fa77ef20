"""The chat page: one LiveView with the room list, the messages, the typing line and who is
online. Switching rooms is a live patch (``/?room=<id>``), so the page never reloads.

The view's process subscribes to every room's topic: messages of the open room are streamed
into the page, the others raise that room's unread badge. Presence tracks the view in the open
room; typing is a broadcast to the room's other views that expires after three seconds.

Sends, edits, opened rooms and typing notices count against the user's rate limits
(:mod:`examples.chat.ratelimit`); a refused one shows why. The session the view mounts with
comes from the route's guard, on every mount (see :func:`examples.chat.app.build`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import beam
import domain
import presence
import web

from . import notifications, ratelimit
from . import rooms as rooms_
from .model import UNREAD, Chat, Message, Room, User
from .sending import SendRefused, delete, edit, in_room, send

TYPING_SECONDS = 3.0
HISTORY = 50

TEMPLATE = """<div class="shell">
<aside class="sidebar">
  <div class="brand">trio-beam chat</div>
  <div class="me">signed in as <b id="me">{{ me }}</b>
    {%- if admin %} · <a href="/admin">processes</a>{% endif %}
    <form method="post" action="/logout" style="display:inline" id="logout">
      <input type="hidden" name="_csrf_token" value="{{ csrf_token }}">
      <button class="secondary" style="padding:2px 8px">sign out</button></form></div>
  <ul class="rooms">{% for r in rooms %}<li><a id="room-{{ r.name }}"
    class="{{ 'current' if r.id == room_id else '' }}" href="/?room={{ r.id }}"
    data-phx-link="patch" data-phx-link-state="push"><span># {{ r.name }}</span>
    {%- if unread.get(r.id) %}<span class="badge" id="unread-{{ r.name }}">{{ unread[r.id] }}</span>
    {%- endif %}</a></li>{% endfor %}</ul>
  <div class="bell-row"><button id="bell" class="secondary" phx-click="toggle_notifications">
    Notifications{% if unread_notifications %} <span class="badge" id="notification-count">
    {{- unread_notifications }}</span>{% endif %}</button></div>
  {% if show_notifications %}<div class="dropdown" id="notifications">
    {%- for n in notifications %}<div class="notification{{ '' if n.read else ' unread' }}"
      id="n-{{ n.id }}"><b>{{ n.title }}</b>: {{ n.body }}
      {%- if not n.read %} <button class="link" phx-click="read" phx-value-id="{{ n.id }}">
      mark read</button>{% endif %}</div>
    {%- else %}<p class="muted">No notifications yet: mention someone with @name.</p>
    {%- endfor %}
    <button id="read-all" class="secondary" phx-click="read_all">Mark all as read</button>
  </div>{% endif %}
  <form phx-submit="new_room" class="row"><input name="name" id="new-room" placeholder="new room">
    <button>+</button></form>
</aside>
<main class="main">
  <div class="header" id="room-name"># {{ room_name }}</div>
  {% if has_older %}<div class="older" id="older">{% if loading_older %}
    <span class="muted" id="loading-older">Loading older messages…</span>{% else %}
    <button class="link" id="load-older" phx-click="load_older">Load older messages</button>
    {%- endif %}</div>{% endif %}
  <div id="messages" class="messages" phx-update="stream" phx-viewport-top="load_older">
  {%- for dom_id, m in messages %}<div id="{{ dom_id }}"
    class="message{{ ' mine' if m.author == me else '' }}">
    <span class="who">{{ m.author }}</span><span class="when">{{ m.time }}
    {%- if m.edited %} (edited){% endif %}</span>
    {%- if m.editing %}<form class="edit" phx-submit="save_edit">
      <input type="hidden" name="id" value="{{ m.id }}"><input name="content"
      value="{{ m.content }}" autocomplete="off"><button>Save</button><button type="button"
      class="secondary" phx-click="cancel_edit" phx-value-id="{{ m.id }}">Cancel</button></form>
    {%- else %}<div class="body">{{ m.content }}</div>
    {%- if m.author == me %}<div class="actions"><button class="link" phx-click="edit"
      phx-value-id="{{ m.id }}">edit</button> <button class="link" phx-click="delete"
      phx-value-id="{{ m.id }}" data-confirm="Delete this message?">delete</button></div>
    {%- endif %}{% endif %}</div>{% endfor -%}
  </div>
  <div class="typing" id="typing">{% if typing %}{{ typing|join(", ") }}
    {{ "is" if typing|length == 1 else "are" }} typing…{% endif %}</div>
  {% if error %}<div class="error" id="error">{{ error }}</div>{% endif %}
  <form class="composer" id="composer-{{ sent }}" phx-submit="send" phx-change="typing">
    <input id="content" name="content" placeholder="Message #{{ room_name }}" autocomplete="off"
      autofocus><button id="send">Send</button></form>
</main>
<aside class="people"><div class="brand" style="font-size:14px">Online</div>
  <ul class="online" id="online">{% for name in online %}<li>{{ name }}</li>{% endfor %}</ul>
</aside>
</div>"""


def _message(record: Message, *, editing: bool = False) -> dict[str, Any]:
    """A message as the page shows it: a plain value, not the database record (being edited:
    a form in its place)."""
    return {
        "id": str(record.id),
        "author": record.author_name,
        "content": record.content,
        "time": record.inserted_at.strftime("%H:%M"),
        "edited": record.edited_at is not None,
        "editing": editing,
    }


def _marked(listed: list[dict[str, Any]], ids: set[str] | None) -> list[dict[str, Any]]:
    """*listed* with the notifications *ids* (``None``: all) marked read, as new values."""
    return [dict(n, read=True) if ids is None or n["id"] in ids else n for n in listed]


def _rooms(records: list[Room]) -> list[dict[str, str]]:
    return [{"id": str(r.id), "name": r.name} for r in records]


class ChatLive(web.LiveView):
    """The chat page (see the module documentation)."""

    template = TEMPLATE
    title = "trio-beam chat"

    def __init__(self) -> None:
        self.user: User | None = None
        #: The keyset cursor of the oldest message shown, while older ones exist.
        self.older: str | None = None
        #: Counts the rooms opened, so that older pages of an earlier visit are dropped.
        self.visit = 0
        self.last_typing = 0.0
        #: When each typist was last heard from: only the newest timer may clear them.
        self.typing_seen: dict[str, float] = {}
        #: The rooms the user is a member of (their topics are subscribed).
        self.joined: set[str] = set()

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        users = await Chat.read(User, filter={"id": uuid.UUID(session["user_id"])}, limit=1)
        self.user = users[0]
        rooms = _rooms(await Chat.read(Room, actor=self.user, sort=("name",)))
        socket.assign(
            me=self.user.username,
            admin=bool(session.get("admin")),
            csrf_token=str(session.get("csrf_token", "")),
            rooms=rooms,
            room_id="",
            room_name="",
            has_older=False,
            loading_older=False,
            unread={},
            typing=[],
            online=[],
            error="",
            sent=0,
            page_title="trio-beam chat",
            unread_notifications=0,
            notifications=[],
            show_notifications=False,
        )
        socket.stream("messages", [])
        if socket.connected:
            beam.subscribe("rooms")
            beam.subscribe(f"user:{self.user.id}")  # counters and notifications
            self.joined = await rooms_.joined(self.user)
            for room_id in self.joined:  # their messages: streamed, or an unread badge
                beam.subscribe(f"room:{room_id}")
            state = await notifications.initial_state(self.user)
            socket.assign(
                unread_notifications=state["counters"][UNREAD.name],
                notifications=state["notifications"],
            )

    async def handle_params(
        self, params: Mapping[str, Any], url: str, socket: web.LiveSocket
    ) -> None:
        rooms = socket.assigns["rooms"]
        wanted = str(params.get("room", ""))
        room = next((r for r in rooms if r["id"] == wanted), rooms[0] if rooms else None)
        if room is None or room["id"] == socket.assigns["room_id"]:
            return
        previous = socket.assigns["room_id"]
        if socket.connected and previous:
            await presence.untrack(beam.self(), f"room:{previous}", socket.assigns["me"])
        assert self.user is not None
        await rooms_.enter(self.user, uuid.UUID(room["id"]))  # a member from now on
        if socket.connected and room["id"] not in self.joined:
            self.joined.add(room["id"])
            beam.subscribe(f"room:{room['id']}")
        history = await self._history(room["id"], None)
        self.visit += 1
        socket.stream("messages", [_message(m) for m in reversed(history.results)], reset=True)
        self.older = history.after if history.more else None
        unread = dict(socket.assigns["unread"])
        unread.pop(room["id"], None)
        socket.assign(
            room_id=room["id"],
            room_name=room["name"],
            has_older=self.older is not None,
            loading_older=False,
            unread=unread,
            typing=[],
            error="",
            page_title=f"#{room['name']} · trio-beam chat",
        )
        if socket.connected:
            topic = f"room:{room['id']}"
            await presence.track(beam.self(), topic, socket.assigns["me"], {"at": time.time()})
            socket.assign(online=sorted(presence.list(topic)))

    async def _history(self, room_id: str, after: str | None) -> domain.Page[Message]:
        """A page of the room's messages, newest first, older than the cursor *after*."""
        return await Chat.page(
            Message,
            actor=self.user,
            filter={"room_id": uuid.UUID(room_id)},
            sort=("-inserted_at",),
            limit=HISTORY,
            after=after,
        )

    def _load_older(self, socket: web.LiveSocket) -> None:
        """Fetch the page before the oldest shown, off the view's process (the page shows a
        loading line meanwhile); :meth:`handle_async` streams it in above."""
        if self.older is None or socket.assigns["loading_older"]:
            return
        room_id, after = socket.assigns["room_id"], self.older
        socket.assign(loading_older=True)
        # Named for this visit of the room: a page still loading when the user moves on
        # (even back to the same room) is recognised as stale when it arrives.
        socket.start_async(f"older:{self.visit}", lambda: self._history(room_id, after))

    async def handle_async(
        self, name: str, result: web.AsyncResult, socket: web.LiveSocket
    ) -> None:
        if name != f"older:{self.visit}":
            return  # the room changed while this page loaded
        page = result.result
        socket.assign(loading_older=False)
        if not result.ok:
            socket.assign(error=f"could not load older messages ({result.failed}); try again")
            return
        for record in page.results:  # newest first, each inserted above the last
            socket.stream_insert("messages", _message(record), at=0)
        self.older = page.after if page.more else None
        socket.assign(has_older=self.older is not None)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "load_older":
            self._load_older(socket)
        elif event in ("edit", "cancel_edit", "save_edit", "delete"):
            await self._change(event, value, socket)
        elif event == "send":
            await self._send(str(value.get("content", "")).strip(), socket)
        elif event == "typing":
            now = time.monotonic()
            if now - self.last_typing > 1.0 and value.get("content"):
                self.last_typing = now
                await self._typing(socket)
        elif event == "new_room":
            await self._open_room(str(value.get("name", "")).strip(), socket)
        elif event == "toggle_notifications":
            socket.assign(show_notifications=not socket.assigns["show_notifications"])
        elif event == "read":
            assert self.user is not None
            wanted = str(value.get("id", ""))
            await notifications.mark_read(self.user, wanted)
            socket.assign(notifications=_marked(socket.assigns["notifications"], {wanted}))
        elif event == "read_all":
            assert self.user is not None
            await notifications.mark_all_read(self.user)
            socket.assign(notifications=_marked(socket.assigns["notifications"], None))

    async def _change(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        """Edit or delete one of the user's messages. Everyone's page (this one too) shows
        the result when the domain's ``message_edited``/``message_deleted`` comes back."""
        assert self.user is not None
        message_id = str(value.get("id", ""))
        try:
            room_id = uuid.UUID(socket.assigns["room_id"])
            if event == "save_edit":
                content = str(value.get("content", "")).strip()
                await edit(self.user, room_id, message_id, content)
            elif event == "delete":
                await delete(self.user, room_id, message_id)
            else:
                record = await in_room(self.user, room_id, message_id)
                if event == "edit" and record.author_id != self.user.id:
                    raise domain.Forbidden("you can only edit your own messages")
                socket.stream_insert("messages", _message(record, editing=event == "edit"))
        except (*SendRefused, ValueError) as exc:
            socket.assign(error=str(exc))
            return
        socket.assign(error="")

    async def _typing(self, socket: web.LiveSocket) -> None:
        """Tell the room's other views (at most once a second per user, every tab
        together: the ``typing`` limit; extra notices are dropped)."""
        assert self.user is not None
        try:
            await ratelimit.check("typing", str(self.user.id))
        except web.RateLimited:
            return
        topic = f"room:{socket.assigns['room_id']}"
        beam.broadcast_from(beam.self(), topic, ("typing", socket.assigns["me"]))

    async def _send(self, content: str, socket: web.LiveSocket) -> None:
        if not content:
            return
        assert self.user is not None
        try:
            await send(self.user, uuid.UUID(socket.assigns["room_id"]), content, None)
        except SendRefused as exc:
            socket.assign(error=str(exc))
            return
        socket.assign(error="", sent=socket.assigns["sent"] + 1)

    async def _open_room(self, name: str, socket: web.LiveSocket) -> None:
        assert self.user is not None
        try:
            await ratelimit.check("room", str(self.user.id))
            room = await Chat.open_room(name, actor=self.user)
        except SendRefused as exc:
            socket.assign(error=str(exc))
            return
        beam.broadcast("rooms", ("room_opened", {"id": str(room.id), "name": room.name}))
        socket.push_patch(f"/?room={room.id}")

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        current = f"room:{socket.assigns['room_id']}"
        if isinstance(message, tuple) and message[0] == "counter_updated":
            if message[1]["counter"] == UNREAD.name:
                socket.assign(unread_notifications=message[1]["value"])
            return
        if isinstance(message, tuple) and message[0] == "new_notification":
            latest = notifications.notification_payload(message[1])
            listed = [latest, *socket.assigns["notifications"]][: notifications.RECENT]
            socket.assign(notifications=listed)
            return
        if isinstance(message, tuple) and message[0] == "all_notifications_read":
            socket.assign(notifications=_marked(socket.assigns["notifications"], None))
            return
        if isinstance(message, presence.PresenceDiff):
            if message.topic == current:
                socket.assign(online=sorted(presence.list(current)))
        elif isinstance(message, tuple) and message[0] == "message_edited":
            if str(message[1].room_id) == socket.assigns["room_id"]:
                socket.stream_insert("messages", _message(message[1]))  # replaced in place
        elif isinstance(message, tuple) and message[0] == "message_deleted":
            if str(message[1].room_id) == socket.assigns["room_id"]:
                socket.stream_delete("messages", _message(message[1]))
        elif isinstance(message, tuple) and message[0] == "new_message":
            record = message[1]
            if str(record.room_id) == socket.assigns["room_id"]:
                socket.stream_insert("messages", _message(record))
                self._stop_typing(record.author_name, socket)
            else:
                unread = dict(socket.assigns["unread"])
                unread[str(record.room_id)] = unread.get(str(record.room_id), 0) + 1
                socket.assign(unread=unread)
        elif isinstance(message, tuple) and message[0] == "typing":
            name = message[1]
            if name not in socket.assigns["typing"]:
                socket.assign(typing=sorted([*socket.assigns["typing"], name]))
            heard = self.typing_seen[name] = time.monotonic()
            beam.send_after(beam.self(), ("typing_over", name, heard), TYPING_SECONDS)
        elif isinstance(message, tuple) and message[0] == "typing_over":
            _, name, heard = message
            if self.typing_seen.get(name) == heard:
                self._stop_typing(name, socket)
        elif isinstance(message, tuple) and message[0] == "room_opened":
            room = message[1]
            if all(r["id"] != room["id"] for r in socket.assigns["rooms"]):
                rooms = sorted([*socket.assigns["rooms"], room], key=lambda r: r["name"])
                socket.assign(rooms=rooms)  # listed; entering it makes one a member

    def _stop_typing(self, name: str, socket: web.LiveSocket) -> None:
        self.typing_seen.pop(name, None)
        if name in socket.assigns["typing"]:
            socket.assign(typing=[n for n in socket.assigns["typing"] if n != name])
