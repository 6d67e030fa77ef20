"""The chat's domain: users, rooms and messages, with their rules.

* a username is 3 to 20 lowercase letters, digits or underscores, unique;
* a room name is 1 to 40 characters, unique;
* a message is 1 to 2,000 characters, sent by its author (the actor) to a room, carrying a
  client id so that a retried send is stored once (an upsert on author and client id);
* only signed-in users read and send; only the author edits or deletes a message;
* every sent, edited (``edited_at`` is set) or deleted message is broadcast to
  ``room:<room_id>`` after commit;
* a message that mentions ``@username`` notifies that user: a notification only they may
  read and mark as read, an ``unread_notifications`` counter recomputed after every change
  and pushed to ``user:<id>`` (``counter_updated``), and ``new_notification`` pushed there.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from domain import (
    Domain,
    Resource,
    action_type,
    actor_present,
    always,
    attribute,
    authorize_if,
    belongs_to,
    create,
    create_timestamp,
    define,
    define_read,
    destroy,
    identity,
    notification_resource,
    policy,
    pubsub,
    read,
    relate_actor,
    relates_to_actor_via,
    set_attribute,
    update,
    uuid_primary_key,
)


class User(Resource):
    __tablename__ = "chat_accounts"
    id: uuid.UUID = uuid_primary_key()
    username: str = attribute(min_length=3, max_length=20, match=r"^[a-z0-9_]+$")
    password_hash: str = attribute(max_length=200)
    inserted_at: datetime = create_timestamp()
    identities = (identity("unique_username", "username"),)
    actions = (create("register", accept=("username", "password_hash")), read("read"))
    policies = (policy(action_type("create", "read"), authorize_if(always())),)


class Room(Resource):
    __tablename__ = "chat_rooms"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute(min_length=1, max_length=40)
    inserted_at: datetime = create_timestamp()
    identities = (identity("unique_room_name", "name"),)
    actions = (create("open", accept=("name",)), read("read"))
    policies = (policy(action_type("create", "read"), authorize_if(actor_present())),)


def _now() -> datetime:
    return datetime.now(UTC)


class Message(Resource):
    __tablename__ = "chat_messages"
    id: uuid.UUID = uuid_primary_key()
    content: str = attribute(min_length=1, max_length=2000)
    client_id: str = attribute(min_length=1, max_length=64)
    room_id: uuid.UUID = attribute()
    room = belongs_to("Room", source_attribute="room_id", allow_nil=False)
    author_id: uuid.UUID = attribute(writable=False)
    author = belongs_to("User", source_attribute="author_id", allow_nil=False)
    author_name: str = attribute(max_length=20, writable=False)
    inserted_at: datetime = create_timestamp()
    edited_at: datetime | None = attribute(writable=False)
    identities = (identity("unique_client_id", "author_id", "client_id"),)
    actions = (
        create(
            "send",
            relate_actor("author"),
            set_attribute("author_name", lambda cs: cs.actor.username),
            accept=("content", "room_id", "client_id"),
            upsert_identity="unique_client_id",
            upsert_fields=("client_id",),
        ),
        read("read"),
        update("edit", set_attribute("edited_at", lambda _cs: _now()), accept=("content",)),
        destroy("delete"),
    )
    policies = (
        policy(action_type("create", "read"), authorize_if(actor_present())),
        policy(action_type("update", "destroy"), authorize_if(relates_to_actor_via("author"))),
    )
    notifiers = (
        pubsub("room:{room_id}", actions=("send",), event="new_message"),
        pubsub("room:{room_id}", actions=("edit",), event="message_edited"),
        pubsub("room:{room_id}", actions=("delete",), event="message_deleted"),
    )


#: Mention notifications: the domain's ready-made resource (owner-only reads, ``notify``
#: broadcasting ``new_notification``, the ``unread_notifications`` counter).
Notification = notification_resource("Notification", user="User", tablename="chat_notifications")


UNREAD: Final = Notification.counters[0]


class Chat(Domain):
    resources = (User, Room, Message, Notification)
    register = define(User, "register", args=("username", "password_hash"))
    users = define_read(User, "read")
    open_room = define(Room, "open", args=("name",))
    rooms = define_read(Room, "read")
    send_message = define(Message, "send")
    edit_message = define(Message, "edit")
    delete_message = define(Message, "delete")
    messages = define_read(Message, "read")
    mention = define(Notification, "notify")
    mark_notification_read = define(Notification, "mark_as_read")
