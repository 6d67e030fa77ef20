"""Channels for clients without a browser (the terminal client, bots, mobile apps).

Connect to ``/socket/websocket`` with ``?token=<socket token>`` (``POST /api/token`` with a
username and password returns one, valid for a day; it names a session on the server, so it
stops working once that session is revoked), then join:

* ``room:<room id>``: ``history`` is pushed after the join (the latest messages), then every
  ``new_message``; push ``new_message`` ``{"content", "client_id"}`` to send (the reply
  carries the stored message; a retry with the same client id is stored once) and ``typing``
  ``{}`` to tell the others (at most one a second; extra ones are dropped);
  ``edit_message`` ``{"id", "content"}`` and ``delete_message`` ``{"id"}`` change your own
  messages (anyone else's are forbidden), and everyone gets
  ``message_edited``/``message_deleted``; ``presence_state``/``presence_diff`` say who is
  there. Sends, edits and deletes are rate-limited per user (the error says how long to
  wait).
* ``user:<your id>``: only your own; ``initial_state`` (your rooms) is pushed after the join.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import beam
import presence
import web

from . import notifications, ratelimit, rooms, sessions
from .accounts import socket_token_id
from .attachments import shown
from .errors import plain
from .live import HISTORY
from .model import Chat, Message, Room, User
from .sending import SendRefused, delete, edit, send
from .serving import note


def message_payload(record: Message) -> dict[str, Any]:
    """A message as channels send it."""
    return {
        "id": str(record.id),
        "room_id": str(record.room_id),
        "author": record.author_name,
        "content": record.content,
        "client_id": record.client_id,
        "inserted_at": record.inserted_at.isoformat(),
        "edited_at": record.edited_at.isoformat() if record.edited_at else None,
        # The files it carries: their names, and where members fetch them (with a session).
        "attachments": [{"name": f["name"], "url": f["url"]} for f in shown(record)],
    }


def _refusal(
    exc: BaseException, forbidden: str = "Only the author can change a message."
) -> dict[str, Any]:
    """A refused push's reply: ``reason`` (what went wrong, for programs) and ``message``
    (the same in plain words, for a person to read)."""
    return {"reason": str(exc), "message": plain(exc, forbidden)}


def _user(socket: web.ChannelSocket) -> User:
    """The connection's user, as the socket's ``connect`` read it (no query per join)."""
    return User(id=uuid.UUID(socket.assigns["user_id"]), username=socket.assigns["username"])


class RoomChannel(web.Channel):
    """``room:<room id>``: messages, typing and presence of one room."""

    def __init__(self) -> None:
        self.user: User | None = None
        self.room: Room | None = None

    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        self.user = _user(socket)
        try:
            room_id = uuid.UUID(topic.removeprefix("room:"))
        except ValueError:
            return web.error({"reason": "no such room"})
        room = await rooms.enter(self.user, room_id)  # joining the channel joins the room
        if room is None:
            return web.error({"reason": "no such room"})
        self.room = room
        note(f"{self.user.username} · channel {topic} (#{room.name})")
        beam.send(beam.self(), "after_join")
        return web.ok({"room": self.room.name})

    async def handle_info(self, message: Any, socket: web.ChannelSocket) -> web.Stop | None:
        assert self.user is not None
        assert self.room is not None
        if message == "after_join":
            history = await Chat.read(
                Message,
                actor=self.user,
                filter={"room_id": self.room.id},
                sort=("-inserted_at",),
                limit=HISTORY,
            )
            socket.push("history", {"messages": [message_payload(m) for m in reversed(history)]})
            await presence.track(beam.self(), socket.topic, self.user.username, {"at": time.time()})
            socket.push("presence_state", presence.list(socket.topic))
        elif isinstance(message, tuple) and message[0] in (
            "new_message",
            "message_edited",
            "message_deleted",
        ):
            socket.push(message[0], message_payload(message[1]))
        elif (
            isinstance(message, tuple)
            and message[:2] == ("typing", str(self.room.id))  # ("typing", room id, name)
            and len(message) == 3
        ):
            socket.push("typing", {"user": message[2]})
        return None

    async def handle_in(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | web.Stop | None:
        assert self.user is not None
        assert self.room is not None
        if event == "new_message":
            content = str(payload.get("content", ""))
            client_id = payload.get("client_id")
            try:
                record = await send(self.user, self.room.id, content, client_id and str(client_id))
            except SendRefused as exc:
                return web.error(_refusal(exc, "Join the room to send to it."))
            return web.ok(message_payload(record))
        if event in ("edit_message", "delete_message"):
            message_id = str(payload.get("id", ""))
            try:
                if event == "edit_message":
                    content = str(payload.get("content", ""))
                    record = await edit(self.user, self.room.id, message_id, content)
                else:
                    record = await delete(self.user, self.room.id, message_id)
            except SendRefused as exc:
                return web.error(_refusal(exc))
            return web.ok(message_payload(record))
        if event == "typing":
            try:
                # Per user and room: typing in a room just opened is shown at once.
                await ratelimit.check("typing", f"{self.user.id}:{self.room.id}")
            except web.RateLimited:
                return None  # typing is a hint: extra ones are dropped
            notice = ("typing", str(self.room.id), self.user.username)
            beam.broadcast_from(beam.self(), socket.topic, notice)
            return None
        return web.error({"reason": f"unknown event {event!r}"})


class UserChannel(web.Channel):
    """``user:<your id>``: your own state; nobody else may join it.

    After the join: ``initial_state`` (``user``, ``rooms``, ``counters``, ``notifications``).
    Pushed later: ``counter_updated``, ``new_notification``, ``all_notifications_read``. In:
    ``refresh_counters``, ``mark_notification_read`` ``{"id"}``,
    ``mark_all_notifications_read``.
    """

    def __init__(self) -> None:
        self.user: User | None = None

    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        if topic != f"user:{socket.assigns['user_id']}":
            return web.error({"reason": "unauthorized"})
        note(f"{socket.assigns['username']} · channel {topic}")
        beam.send(beam.self(), "after_join")
        return web.ok()

    async def handle_info(self, message: Any, socket: web.ChannelSocket) -> web.Stop | None:
        if message == "after_join":
            self.user = user = _user(socket)
            records = await Chat.read(Room, actor=user, sort=("name",))
            listed = [{"id": str(r.id), "name": r.name} for r in records]
            state = await notifications.initial_state(user)
            socket.push("initial_state", {"user": user.username, "rooms": listed, **state})
        elif isinstance(message, tuple) and message[0] in (
            "counter_updated",
            "all_notifications_read",
        ):
            socket.push(message[0], message[1])
        elif isinstance(message, tuple) and message[0] == "new_notification":
            socket.push("new_notification", notifications.notification_payload(message[1]))
        return None

    async def handle_in(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | web.Stop | None:
        user = self.user or _user(socket)
        if event == "refresh_counters":
            return web.ok({"unread_notifications": await notifications.unread_count(user)})
        if event == "mark_notification_read":
            await notifications.mark_read(user, str(payload.get("id", "")))
            return web.ok()
        if event == "mark_all_notifications_read":
            count = await notifications.mark_all_read(user)  # the broadcast is pushed too
            return web.ok({"count": count})
        return web.error({"reason": f"unknown event {event!r}"})


class ChatSocket(web.Socket):
    """``/socket``: signed socket tokens naming a live session on the server; one socket id
    per session (:func:`sessions.socket_id`: signing out closes them)."""

    channels: ClassVar[Mapping[str, type[web.Channel]]] = {
        "room:*": RoomChannel,
        "user:*": UserChannel,
    }
    check_origin = False  # terminal clients and bots send no Origin; tokens do the checking

    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def connect(
        self, params: Mapping[str, str], connect_info: web.ConnectInfo
    ) -> Mapping[str, Any] | None:
        token_id = socket_token_id(self.secret, params.get("token") or connect_info.auth_token)
        if token_id is None:
            return None
        record = await sessions.lookup_id(token_id)  # revoked or expired: gone
        if record is None or record.user is None:
            return None
        user_id = str(record.user_id)
        return {"user_id": user_id, "username": record.user.username, "session": token_id}

    def id(self, assigns: Mapping[str, Any]) -> str | None:
        return sessions.socket_id(assigns["session"])
