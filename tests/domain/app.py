"""A small chat domain used by the domain tests."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain import (
    Domain,
    Resource,
    action_type,
    actor_attribute_equals,
    actor_present,
    aggregate_count,
    aggregate_exists,
    always,
    attribute,
    authorize_if,
    belongs_to,
    bypass,
    calculation,
    counter,
    create,
    create_timestamp,
    define,
    define_read,
    destroy,
    forbid_if,
    has_many,
    identity,
    match,
    policy,
    pubsub,
    read,
    relate_actor,
    relates_to_actor_via,
    set_attribute,
    update,
    uuid_primary_key,
)


class ChatUser(Resource):
    __tablename__ = "chat_users"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute(min_length=2, max_length=20, match=r"^[a-z0-9_]+$")
    is_admin: bool = attribute(default=False)
    is_banned: bool = attribute(default=False)
    identities = (identity("unique_name", "name"),)
    actions = (
        create("create", accept=("name", "is_admin")),
        read("read"),
        update("update"),
        destroy("destroy"),
    )


class Room(Resource):
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute(max_length=40)
    messages = has_many("Message")
    message_count = aggregate_count("messages")
    has_messages = aggregate_exists("messages")
    actions = (create("create", accept=("name",)), read("read"))


class Message(Resource):
    id: uuid.UUID = uuid_primary_key()
    content: str = attribute(min_length=1, max_length=200)
    room_id: uuid.UUID = attribute()
    room = belongs_to("Room", source_attribute="room_id", allow_nil=False)
    author_id: uuid.UUID = attribute(writable=False)
    author = belongs_to("ChatUser", source_attribute="author_id", allow_nil=False)
    inserted_at: datetime = create_timestamp()
    shout = calculation(lambda: Message.__table__.c.content + "!")
    actions = (
        create(
            "send",
            relate_actor("author"),
            match("content", r"^[^<>]*$", message="no html"),
            accept=("content", "room_id"),
        ),
        read("read"),
        update("edit", accept=("content",)),
        destroy("destroy"),
    )
    policies = (
        bypass(actor_attribute_equals("is_admin", True), authorize_if(always())),
        policy(
            action_type("create"),
            forbid_if(actor_attribute_equals("is_banned", True)),
            authorize_if(actor_present()),
        ),
        policy(action_type("read"), authorize_if(actor_present())),
        policy(action_type("update", "destroy"), authorize_if(relates_to_actor_via("author"))),
    )
    notifiers = (pubsub("room:{room_id}", actions=("send",), event="new_message"),)


class Notice(Resource):
    id: uuid.UUID = uuid_primary_key()
    user_id: uuid.UUID = attribute()
    title: str = attribute()
    is_read: bool = attribute(default=False)
    actions = (
        create("create", accept=("user_id", "title")),
        read("read"),
        update("mark_as_read", set_attribute("is_read", True), accept=()),
    )
    policies = (
        policy(action_type("read", "update"), authorize_if(relates_to_actor_via("user"))),
        policy(action_type("create"), authorize_if(always())),
    )
    user = belongs_to("ChatUser", source_attribute="user_id")
    counters = (
        counter(
            "unread_notices",
            trigger_on=("create", "mark_as_read"),
            audience="user_id",
            where=lambda: Notice.__table__.c.is_read.is_(False),
        ),
    )


class Chat(Domain):
    resources = (ChatUser, Room, Message, Notice)
    register = define(ChatUser, "create", args=("name",))
    open_room = define(Room, "create", args=("name",))
    send_message = define(Message, "send")
    edit_message = define(Message, "edit")
    delete_message = define(Message, "destroy")
    list_messages = define_read(Message, "read")
    notify = define(Notice, "create")
    mark_as_read = define(Notice, "mark_as_read")
