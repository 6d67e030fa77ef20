"""The chat page: one LiveView with the room list, the messages, the typing line and who is
online. Switching rooms is a live patch (``/?room=<id>``), so the page never reloads.

The view's process subscribes to every room's topic: messages of the open room are streamed
into the page, the others raise that room's unread badge. Presence tracks the view in the open
room; typing is a broadcast to the room's other views that expires after three seconds.

Opening a room and editing a message are :class:`domain.Form` values bound to ``Room.open``
and ``Message.edit``: ``phx-change`` validates (no write) and shows each field's error next to
it once the user has been in it; ``phx-submit`` runs the action for the user; what was typed
stays on any error. Files picked in the composer upload at once (LiveView uploads, with their
progress) and go with the next message (:mod:`examples.chat.attachments`).

Sends, edits, opened rooms and typing notices count against the user's rate limits
(:mod:`examples.chat.ratelimit`); a refused one shows why. The session the view mounts with
comes from the route's guard, on every mount (see :func:`examples.chat.app.build`).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, urlsplit

import trio
from markupsafe import Markup, escape

import beam
import domain
import presence
import web

from . import attachments, notifications, ratelimit
from . import rooms as rooms_
from .errors import plain, spoken
from .forms import refused, taken
from .model import UNREAD, Chat, Message, Room, User
from .sending import SendRefused, delete, in_room, save_edit, send
from .serving import note

TYPING_SECONDS = 3.0
HISTORY = 50
#: The longest message (the domain's rule); the composer counts down near it.
MESSAGE_LIMIT: Final = 2000

TEMPLATE = """<div class="shell{{ ' previewing' if not joined else '' }}">
<div class="banner" id="reconnecting" role="status">Reconnecting… your text is kept.</div>
<aside class="sidebar" id="sidebar">
  <div class="brand">trio-beam chat</div>
  <div class="me">signed in as <b id="me">{{ me }}</b>
    {%- if admin %} · <a href="/admin" id="admin-link">processes</a>{% endif %}
    <form method="post" action="/logout" style="display:inline" id="logout">
      <input type="hidden" name="_csrf_token" value="{{ csrf_token }}">
      <button class="secondary" style="padding:2px 8px">sign out</button></form></div>
  <ul class="rooms">{% for r in rooms %}<li><a id="room-{{ r.name }}"
    class="{{ 'current' if r.id == room_id else '' }}" href="/?room={{ r.id }}"
    data-phx-link="patch" data-phx-link-state="push"><span># {{ r.name }}</span>
    {%- if unread.get(r.id) %}<span class="badge" id="unread-{{ r.name }}">
    {{- unread[r.id] if unread[r.id] < 100 else "99+" }}</span>
    {%- endif %}</a></li>{% endfor %}</ul>
  <div class="bell-row"><button id="bell" class="secondary" phx-click="toggle_notifications">
    Notifications{% if unread_notifications %} <span class="badge" id="notification-count">
    {{- unread_notifications }}</span>{% endif %}</button></div>
  {% if show_notifications %}<div class="dropdown" id="notifications">
    {%- for n in notifications %}<a class="notification{{ '' if n.read else ' unread' }}"
      id="n-{{ n.id }}" href="{{ n.url }}" data-phx-link="patch" data-phx-link-state="push"
      phx-click="read" phx-value-id="{{ n.id }}"><b>{{ n.title }}</b>
      {%- if n.room %} in #{{ n.room }}{% endif %} · <time datetime="{{ n.inserted_at }}"
      data-format="full">{{ n.inserted_at[:16] | replace("T", " ") }}</time><br>{{ n.body }}</a>
    {%- else %}<p class="muted">No notifications yet: mention someone with @name.</p>
    {%- endfor %}
    <button id="read-all" class="secondary" phx-click="read_all">Mark all as read</button>
  </div>{% endif %}
  <form phx-change="validate_room" phx-submit="new_room" id="new-room-form" class="row new-room">
    {{ form_input(room_form, "name", label="New room", placeholder="new room",
                  autocomplete="off", phx_debounce="150") }}
    <button aria-label="Open the room">+</button>{{ form_errors(room_form) }}</form>
</aside>
<div class="scrim"></div>
<main class="main">
  <div class="header"><button class="icon" data-drawer="rooms" id="open-rooms"
    aria-label="Rooms">☰</button><span id="room-name"># {{ room_name }}</span>
    <button class="icon" data-drawer="people" id="open-people" aria-label="Who is online">
    {{- online | length }} online</button></div>
  {% for kind, text in flash.items() %}<div class="flash {{ kind }}" id="flash-{{ kind }}"
    phx-click="lv:clear-flash" phx-value-key="{{ kind }}">{{ text }}</div>{% endfor %}
  {% if has_older %}<div class="older" id="older">{% if loading_older %}
    <span class="muted" id="loading-older">Loading older messages…</span>{% else %}
    <button class="link" id="load-older" phx-click="load_older">Load older messages</button>
    {%- endif %}</div>{% endif %}
  <div id="pane" class="messages" phx-hook="Messages">
  <div id="messages" class="stream" phx-update="stream" phx-viewport-top="load_older">
  {%- for dom_id, m in messages %}<div id="{{ dom_id }}"
    class="item{{ ' mine' if m.author == me else '' }}">
    <div class="message{{ ' mine' if m.author == me else '' }}{{ ' to-me' if m.to_me else '' }}">
    <span class="who">{{ m.author }}</span><span class="when"><time datetime="{{ m.at }}">
    {{- m.time }}</time>{%- if m.edited %} (edited){% endif %}</span>
    {%- if m.editing %}<form class="edit" id="edit-{{ m.id }}" phx-change="validate_edit"
      phx-submit="save_edit"><input type="hidden" name="id" value="{{ m.id }}">
      {{- form_input(m.form, "content", label="Edit the message", autocomplete="off",
                     phx_hook="EditBox", data_id=m.id, phx_debounce="150") -}}
      <button>Save</button><button type="button" class="secondary" phx-click="cancel_edit"
      phx-value-id="{{ m.id }}">Cancel</button>{{ form_errors(m.form) }}</form>
    {%- else %}{% if m.html %}<div class="body" dir="auto">{{ m.html }}</div>{% endif %}
    {%- if m.author == me %}<div class="actions"><button class="link" phx-click="edit"
      phx-value-id="{{ m.id }}">edit</button> <button class="link" phx-click="delete"
      phx-value-id="{{ m.id }}" data-confirm="Delete this message?">delete</button></div>
    {%- endif %}{% endif %}
    {%- if m.files %}<div class="files">{% for f in m.files %}
      {%- if f.image %}<a class="picture" href="{{ f.url }}" target="_blank" rel="noopener"
        title="{{ f.name }} ({{ f.size }})"><img src="{{ f.thumb }}" alt="{{ f.name }}"
        width="{{ f.width }}" height="{{ f.height }}" loading="lazy"></a>
      {%- else %}<a class="file" href="{{ f.url }}" download="{{ f.name }}">{{ clip }}
        {{- f.name }} <span class="size">{{ f.size }}</span></a>{% endif %}{% endfor %}</div>
    {%- endif %}</div></div>
  {%- endfor -%}
  </div></div>
  <div id="marker-box" phx-update="ignore"><button id="new-messages" class="new-marker"
    type="button" hidden>New messages ↓</button></div>
  {% if joined %}
  <div class="typing" id="typing">{% if typing %}{{ typing|join(", ") }}
    {{ "is" if typing|length == 1 else "are" }} typing…{% endif %}</div>
  {% if error %}<div class="error" id="error" role="alert">{{ error }}</div>{% endif %}
  <form class="composer" id="composer" phx-submit="send" phx-change="typing"
    phx-drop-target="{{ uploads.files.ref }}">
    <div id="mention-box" phx-update="ignore"><ul class="mentions" id="mention-list" hidden>
    </ul></div>
    {%- if uploads.files.entries or uploads.files.errors %}<ul class="uploads" id="uploads">
    {%- for entry in uploads.files.entries %}<li class="upload
      {{- ' refused' if entry.errors else '' }}" id="upload-{{ entry.ref }}"
      data-name="{{ entry.name }}"><span class="name">{{ entry.name }}</span>
      {%- if entry.errors %}<span class="upload-error">{{ upload_words(entry.errors) }}</span>
      {%- else %}<progress value="{{ entry.progress }}" max="100" aria-label="{{ entry.name }}
        uploaded">{{ entry.progress }}%</progress>{% endif %}<button type="button"
      class="link cancel" phx-click="cancel_upload" phx-value-ref="{{ entry.ref }}"
      aria-label="Remove {{ entry.name }}">&times;</button></li>{% endfor %}
    {%- if uploads.files.errors %}<li class="upload-error" id="uploads-error">
      {{- upload_words(uploads.files.errors) }}</li>{% endif %}
    {%- if uploads.files.errors or uploads.files.entries | selectattr("errors") | list %}
      <li class="upload-hint" id="uploads-hint">Remove the files marked in red to send.</li>
    {%- endif %}</ul>{% endif %}
    <label class="attach" for="{{ uploads.files.ref }}" title="Attach pictures or files"
      role="button" aria-label="Attach pictures or files">{{ clip }}</label>
    {{- live_file_input(uploads.files, class_="picker") }}
    <textarea id="content" name="content" rows="1" placeholder="Message #{{ room_name }}"
      autocomplete="off" autofocus phx-hook="ComposerBox" dir="auto"
      data-names="{{ names | join(' ') }}">{{ draft }}</textarea>
    {%- if draft | length >= limit - 200 %}<span id="counter"
      class="counter{{ ' over' if draft | length > limit else '' }}">
      {{- draft | length }}/{{ limit }}</span>{% endif %}
    <button id="send">Send</button></form>
  {% else %}
  <div class="join" id="join-room">You are not in #{{ room_name }} yet.
    <button id="join" phx-click="join">Join #{{ room_name }}</button></div>
  {% endif %}
</main>
<aside class="people" id="people"><div class="brand" style="font-size:14px">Online</div>
  <ul class="online" id="online">{% for name in online %}<li>{{ name }}</li>{% endfor %}</ul>
</aside>
</div>"""

#: Where a link ends: at white space or a closing bracket or quote.
_LINK = re.compile(r"\bhttps?://[^\s<>\"')\]]+")
_NOTICES: Final = {"admin": "Only admins can open the process page."}
#: How long after a message arrives in the open room its reading is stored.
READ_DELAY = 2.0


def default_room() -> str:
    """The room a newcomer lands in: ``CHAT_DEFAULT_ROOM``, else ``lobby``.

    >>> default_room()
    'lobby'
    """
    return os.environ.get("CHAT_DEFAULT_ROOM", "lobby").strip() or "lobby"


def rich(content: str, me: str = "") -> Markup:
    """*content* as HTML: escaped, links clickable, ``@name`` mentions marked (the reader's
    own more strongly).

    >>> str(rich("@bob: https://example.org", "bob"))
    '<span class="mention me">@bob</span>: <a href="https://example.org" ...>https://...</a>'
    """
    out: list[str] = []
    place = 0
    for link in _LINK.finditer(content):
        out.append(_mentions(content[place : link.start()], me))
        url = link.group(0).rstrip(".,;:!?")
        escaped = escape(url)
        out.append(f'<a href="{escaped}" target="_blank" rel="noopener noreferrer">{escaped}</a>')
        out.append(_mentions(link.group(0)[len(url) :], me))
        place = link.end()
    out.append(_mentions(content[place:], me))
    return Markup("".join(out))


def _mentions(text: str, me: str) -> str:
    parts: list[str] = []
    place = 0
    for found in notifications.MENTION.finditer(text):
        parts.append(str(escape(text[place : found.start()])))
        mine = " me" if found.group(1) == me else ""
        parts.append(f'<span class="mention{mine}">{escape(found.group(0))}</span>')
        place = found.end()
    parts.append(str(escape(text[place:])))
    return "".join(parts)


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _message(
    record: Message, me: str = "", *, editing: domain.Form | None = None
) -> dict[str, Any]:
    """A message as the page shows it: a plain value, not the database record (being edited:
    its form in its place). ``at`` is its UTC time, which the page shows in the reader's
    zone."""
    at = _utc(record.inserted_at)
    return {
        "id": str(record.id),
        "author": record.author_name,
        "content": record.content,
        "html": rich(record.content, me),
        "to_me": bool(me) and f"@{me}" in record.content,
        "at": at.isoformat(),
        "time": at.strftime("%H:%M"),
        "edited": record.edited_at is not None,
        "editing": editing is not None,
        "form": editing,
        "files": attachments.shown(record),
    }


#: The paper clip of the attach button and of file links (an emoji may have no font).
CLIP: Final = Markup(
    '<svg class="clip" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">'
    '<path d="M21 11.5l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l9-9a3.7 3.7 0 0 1 5.2 5.2l-9 9a1.8 1.8'
    ' 0 0 1-2.6-2.6l8.3-8.3" fill="none" stroke="currentColor" stroke-width="2"'
    ' stroke-linecap="round"/></svg>'
)

#: A refused upload's reasons, as the composer says them.
_UPLOAD_WORDS: Final = {
    "too_large": f"too large (at most {attachments.MAX_FILE_SIZE // 1_000_000} MB)",
    "not_accepted": "only pictures (PNG, JPEG, GIF, WebP), PDF, text, CSV or ZIP files",
    "too_many_files": f"at most {attachments.MAX_ATTACHMENTS} files per message",
    "file_size_limit_exceeded": "larger than it said it was",
}


def upload_words(codes: tuple[str, ...]) -> str:
    """An upload's error codes in plain words.

    >>> upload_words(("too_large",))
    'too large (at most 5 MB)'
    """
    return "; ".join(_UPLOAD_WORDS.get(code, "the upload failed") for code in codes)


def _room_form(user: User | None) -> domain.Form:
    return domain.Form.for_create(Chat, Room, "open", actor=user, name="room")


def _marked(listed: list[dict[str, Any]], ids: set[str] | None) -> list[dict[str, Any]]:
    """*listed* with the notifications *ids* (``None``: all) marked read, as new values."""
    return [dict(n, read=True) if ids is None or n["id"] in ids else n for n in listed]


def _rooms(records: list[Room]) -> list[dict[str, str]]:
    return [{"id": str(r.id), "name": r.name} for r in records]


class ChatLive(web.LiveView):
    """The chat page (see the module documentation)."""

    template = TEMPLATE
    title = "trio-beam chat"
    #: Where attachments are stored (``app.build`` serves a subclass with the data directory's).
    media: ClassVar[Path] = Path(".chat-data") / "attachments"

    def __init__(self) -> None:
        self.user: User | None = None
        #: The keyset cursor of the oldest message shown, while older ones exist.
        self.older: str | None = None
        #: Counts the rooms opened, so that older pages of an earlier visit are dropped.
        self.visit = 0
        #: The room and time of this view's last typing notice (one a second per room).
        self.last_typing: tuple[Any, float] = (None, 0.0)
        #: When each typist was last heard from: only the newest timer may clear them.
        self.typing_seen: dict[str, float] = {}
        #: The rooms the user is a member of (their topics are subscribed).
        self.joined: set[str] = set()
        #: Whether storing that the open room is read is already scheduled.
        self.read_pending = False
        #: The edit forms open on this page, by message id.
        self.editing: dict[str, domain.Form] = {}

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        users = await Chat.read(User, filter={"id": uuid.UUID(session["user_id"])}, limit=1)
        self.user = users[0]
        rooms = _rooms(await Chat.read(Room, actor=self.user, sort=("name",)))
        mine = await rooms_.memberships(self.user)
        self.joined = {str(m.room_id) for m in mine}
        socket.assign(
            me=self.user.username,
            admin=bool(session.get("admin")),
            csrf_token=str(session.get("csrf_token", "")),
            rooms=rooms,
            landing=rooms_.landing(rooms, mine, default_room()),
            room_id="",
            room_name="",
            joined=True,
            has_older=False,
            loading_older=False,
            unread={},
            typing=[],
            online=[],
            error="",
            room_form=_room_form(self.user),
            upload_words=upload_words,
            clip=CLIP,
            draft="",
            limit=MESSAGE_LIMIT,
            names=[],
            page_title="trio-beam chat",
            unread_notifications=0,
            notifications=[],
            show_notifications=False,
        )
        notice = _NOTICES.get(str(session.get("notice") or params.get("notice", "")))
        if notice:
            socket.put_flash("error", notice)
        socket.stream("messages", [])
        attachments.allow(socket)
        if socket.connected:
            beam.subscribe("rooms")
            beam.subscribe(f"user:{self.user.id}")  # counters and notifications
            for room_id in self.joined:  # their messages: streamed, or an unread badge
                beam.subscribe(f"room:{room_id}")
            state = await notifications.initial_state(self.user)
            names = await Chat.read(User, sort=("username",), limit=500)
            socket.assign(
                unread=await rooms_.unread_counts(self.user, mine),
                unread_notifications=state["counters"][UNREAD.name],
                notifications=self._listed(state["notifications"], rooms),
                names=[u.username for u in names if u.username != self.user.username],
            )

    async def handle_params(
        self, params: Mapping[str, Any], url: str, socket: web.LiveSocket
    ) -> None:
        rooms = socket.assigns["rooms"]
        wanted = str(params.get("room", ""))
        if params.get("message"):  # from a notification: show that message once it is there
            socket.push_event("show_message", {"id": f"messages-{params['message']}"})
        chosen = next((r for r in rooms if r["id"] == wanted), None)
        # A room asked for (a link, the room list) is entered: its member from now on. The
        # page opened without one lands in the last room visited and joins nothing.
        room = chosen or socket.assigns["landing"]
        if room is None:
            return
        assert self.user is not None
        joining = chosen is not None and room["id"] not in self.joined
        if room["id"] == socket.assigns["room_id"] and not joining:
            return
        previous = socket.assigns["room_id"]
        if socket.connected and previous:
            await presence.untrack(beam.self(), f"room:{previous}", socket.assigns["me"])
        if joining:
            await rooms_.enter(self.user, uuid.UUID(room["id"]))
            self.joined.add(room["id"])
            if socket.connected:
                beam.subscribe(f"room:{room['id']}")
        member = room["id"] in self.joined
        if member:
            if socket.connected:
                await rooms_.visit(self.user, uuid.UUID(room["id"]))
            history = await self._history(room["id"], None)
            records = list(reversed(history.results))
            self.older = history.after if history.more else None
        else:
            records, self.older = [], None  # a preview: only members read a room
        self.visit += 1
        me = socket.assigns["me"]
        socket.stream("messages", [_message(m, me) for m in records], reset=True)
        unread = dict(socket.assigns["unread"])
        unread.pop(room["id"], None)
        socket.assign(
            room_id=room["id"],
            room_name=room["name"],
            joined=member,
            has_older=self.older is not None,
            loading_older=False,
            unread=unread,
            typing=[],
            error="",
        )
        self._title(socket)
        if socket.connected:
            note(f"{me} · chat page #{room['name']}")
            topic = f"room:{room['id']}"
            if member:
                await presence.track(beam.self(), topic, me, {"at": time.time()})
            socket.assign(online=sorted(presence.list(topic)))

    def _title(self, socket: web.LiveSocket) -> None:
        """The tab's title: the open room, after the count of unread messages and mentions."""
        waiting = sum(socket.assigns["unread"].values()) + socket.assigns["unread_notifications"]
        prefix = f"({waiting}) " if waiting else ""
        name = socket.assigns["room_name"]
        socket.assign(page_title=f"{prefix}#{name} · trio-beam chat" if name else "trio-beam chat")

    @staticmethod
    def _listed(listed: list[dict[str, Any]], rooms: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Notifications with the name of the room each one links to."""
        names = {r["id"]: r["name"] for r in rooms}
        return [dict(n, room=names.get(_room_of(n["url"]), "")) for n in listed]

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
            socket.assign(error="Could not load older messages; try again.")
            return
        for record in page.results:  # newest first, each inserted above the last
            socket.stream_insert("messages", _message(record, socket.assigns["me"]), at=0)
        self.older = page.after if page.more else None
        socket.assign(has_older=self.older is not None)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "load_older":
            self._load_older(socket)
        elif event in ("edit", "cancel_edit", "delete"):
            await self._change(event, value, socket)
        elif event in ("validate_edit", "save_edit"):
            await self._edit_form(event, value, socket)
        elif event == "cancel_upload":
            socket.cancel_upload(attachments.UPLOAD, str(value.get("ref", "")))
        elif event == "send":
            await self._send(str(value.get("content", "")), socket)
        elif event == "typing":
            content = str(value.get("content", ""))
            socket.assign(draft=content)
            now = time.monotonic()
            room_id = socket.assigns["room_id"]
            last_room, last_time = self.last_typing
            if content.strip() and (room_id != last_room or now - last_time > 1.0):
                self.last_typing = (room_id, now)
                await self._typing(socket)
        elif event == "validate_room":
            form = socket.assigns["room_form"].validate(_params(value, "room"))
            socket.assign(room_form=spoken(await taken(form, "name")))
        elif event == "new_room":
            await self._open_room(_params(value, "room"), socket)
        elif event == "join":
            self._go(socket.assigns["room_id"], socket)
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
        me = socket.assigns["me"]
        try:
            room_id = uuid.UUID(socket.assigns["room_id"])
            if event == "delete":
                deleted = await delete(self.user, room_id, message_id)
                self.editing.pop(message_id, None)
                await trio.to_thread.run_sync(attachments.forget, self.media, deleted)
            else:
                record = await in_room(self.user, room_id, message_id)
                if event == "edit" and record.author_id != self.user.id:
                    raise domain.Forbidden("you can only edit your own messages")
                form = None
                if event == "edit":
                    form = domain.Form.for_update(
                        Chat, record, "edit", actor=self.user, name="message"
                    )
                    form = self.editing[message_id] = replace(form, id=f"edit_{record.id}")
                else:
                    self.editing.pop(message_id, None)
                socket.stream_insert("messages", _message(record, me, editing=form))
        except (*SendRefused, ValueError) as exc:
            socket.assign(error=plain(exc))
            return
        socket.assign(error="")

    async def _edit_form(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        """The edit form of one message: ``validate_edit`` checks what is typed (no write),
        ``save_edit`` runs ``Message.edit``; on an error the form, with the text as typed and
        the error under it, takes the message's place again."""
        assert self.user is not None
        message_id = str(value.get("id", ""))
        form = self.editing.get(message_id)
        if form is None or form.record is None:
            return  # cancelled (another tab) or deleted meanwhile
        params = _params(value, form.name)
        if event == "validate_edit":
            form = spoken(form.validate(params))
        else:
            edited, form = await save_edit(self.user, form, params)
            if edited is not None:  # everyone's page shows it when message_edited comes
                del self.editing[message_id]
                socket.assign(error="")
                return
            form = spoken(form)
        self.editing[message_id] = form
        original = form.record
        assert isinstance(original, Message)
        socket.stream_insert("messages", _message(original, socket.assigns["me"], editing=form))

    async def _typing(self, socket: web.LiveSocket) -> None:
        """Tell the room's other views (at most once a second per user and room, every tab
        together: the ``typing`` limit; extra notices are dropped). The notice names its
        room: a view shows only its open room's typists."""
        assert self.user is not None
        room_id = socket.assigns["room_id"]
        try:
            await ratelimit.check("typing", f"{self.user.id}:{room_id}")
        except web.RateLimited:
            return
        notice = ("typing", room_id, socket.assigns["me"])
        beam.broadcast_from(beam.self(), f"room:{room_id}", notice)

    async def _send(self, content: str, socket: web.LiveSocket) -> None:
        """Send the composer's text with the files uploaded for it; a refusal leaves the text
        in the composer (it is the page's ``draft``, rendered back) and says why."""
        upload = socket.upload(attachments.UPLOAD)
        if not content.strip() and not upload.entries:
            return
        assert self.user is not None
        socket.assign(draft=content)
        if upload.errors or any(entry.errors for entry in upload.entries):
            socket.assign(error="Remove the files marked in red first.")
            return
        if attachments.entries_waiting(upload):
            socket.assign(error="The files are still uploading; send again in a moment.")
            return
        try:
            files = await attachments.store(socket, self.media)
        except attachments.Refused as exc:
            socket.assign(error=f"{exc}, so nothing was sent.")
            return
        try:
            room_id = uuid.UUID(socket.assigns["room_id"])
            await send(self.user, room_id, content.strip(), None, files)
        except SendRefused as exc:
            for file in files:  # stored for nothing: the files are picked again
                attachments.discard(self.media, file)
            again = " Pick the files again." if files else ""
            socket.assign(error=plain(exc, "Join the room to send messages to it.") + again)
            return
        socket.assign(error="", draft="")
        socket.push_event("sent", {})

    async def _open_room(self, params: Mapping[str, Any], socket: web.LiveSocket) -> None:
        """Open a room (the room form's ``Room.open``) and go into it at once (its opener is
        its first member); refused, the form keeps the name with the reason under it."""
        assert self.user is not None
        form: domain.Form = socket.assigns["room_form"]
        try:
            await ratelimit.check("room", str(self.user.id))
        except web.RateLimited as exc:
            socket.assign(room_form=refused(form, params, str(exc)))
            return
        room, form = await form.submit(params)
        if room is None:
            socket.assign(room_form=spoken(form))
            return
        listed = {"id": str(room.id), "name": room.name}
        beam.broadcast("rooms", ("room_opened", listed))
        self._list_room(listed, socket)
        self.joined.add(listed["id"])
        beam.subscribe(f"room:{listed['id']}")
        socket.assign(room_form=_room_form(self.user), error="")
        self._go(listed["id"], socket)

    def _go(self, room_id: str, socket: web.LiveSocket) -> None:
        """Enter the room *room_id*: ``push_patch`` puts it in the address bar, and ``web``
        runs :meth:`handle_params` with it before the reply renders the page."""
        socket.push_patch(f"/?room={room_id}")

    @staticmethod
    def _list_room(room: dict[str, str], socket: web.LiveSocket) -> None:
        if all(r["id"] != room["id"] for r in socket.assigns["rooms"]):
            rooms = sorted([*socket.assigns["rooms"], room], key=lambda r: r["name"])
            socket.assign(rooms=rooms)

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        current = f"room:{socket.assigns['room_id']}"
        kind = message[0] if isinstance(message, tuple) and message else None
        me = socket.assigns["me"]
        if kind == "counter_updated":
            if message[1]["counter"] == UNREAD.name:
                socket.assign(unread_notifications=message[1]["value"])
                self._title(socket)
        elif kind == "new_notification":
            latest = notifications.notification_payload(message[1])
            listed = [latest, *socket.assigns["notifications"]][: notifications.RECENT]
            socket.assign(notifications=self._listed(listed, socket.assigns["rooms"]))
        elif kind == "all_notifications_read":
            socket.assign(notifications=_marked(socket.assigns["notifications"], None))
        elif isinstance(message, presence.PresenceDiff):
            if message.topic == current:
                socket.assign(online=sorted(presence.list(current)))
        elif kind == "message_edited":
            if str(message[1].room_id) == socket.assigns["room_id"]:
                socket.stream_insert("messages", _message(message[1], me))  # replaced in place
        elif kind == "message_deleted":
            if str(message[1].room_id) == socket.assigns["room_id"]:
                socket.stream_delete("messages", _message(message[1], me))
        elif kind == "new_message":
            self._new_message(message[1], socket)
        elif kind == "typing" and len(message) == 3:
            _, room_id, name = message
            if room_id != socket.assigns["room_id"]:
                return  # someone typing in another of the user's rooms
            if name not in socket.assigns["typing"]:
                socket.assign(typing=sorted([*socket.assigns["typing"], name]))
            heard = self.typing_seen[name] = time.monotonic()
            beam.send_after(beam.self(), ("typing_over", name, heard), TYPING_SECONDS)
        elif kind == "typing_over":
            _, name, heard = message
            if self.typing_seen.get(name) == heard:
                self._stop_typing(name, socket)
        elif kind == "room_opened":
            self._list_room(message[1], socket)  # listed; entering it makes one a member
        elif message == "store_read":
            self.read_pending = False
            assert self.user is not None
            if socket.assigns["joined"] and socket.assigns["room_id"]:
                await rooms_.mark_read(self.user, uuid.UUID(socket.assigns["room_id"]))

    def _new_message(self, record: Message, socket: web.LiveSocket) -> None:
        if str(record.room_id) == socket.assigns["room_id"]:
            socket.stream_insert("messages", _message(record, socket.assigns["me"]))
            self._stop_typing(record.author_name, socket)
            if not self.read_pending:  # read while open: stored shortly, in one write
                self.read_pending = True
                beam.send_after(beam.self(), "store_read", READ_DELAY)
        elif record.author_name != socket.assigns["me"]:
            unread = dict(socket.assigns["unread"])
            unread[str(record.room_id)] = unread.get(str(record.room_id), 0) + 1
            socket.assign(unread=unread)
            self._title(socket)

    def _stop_typing(self, name: str, socket: web.LiveSocket) -> None:
        self.typing_seen.pop(name, None)
        if name in socket.assigns["typing"]:
            socket.assign(typing=[n for n in socket.assigns["typing"] if n != name])


def _params(value: Any, name: str) -> Mapping[str, Any]:
    """A form's part of an event's value (``name[field]`` inputs arrive as ``{name: {...}}``)."""
    found = value.get(name) if isinstance(value, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _room_of(url: str) -> str:
    """The room id in a notification's link (``/?room=<id>...``)."""
    query = parse_qs(urlsplit(url).query)
    return query.get("room", [""])[0]
