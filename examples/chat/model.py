"""The chat's domain: users, rooms and messages, with their rules.

* a username is 3 to 20 lowercase letters, digits or underscores, unique; an admin (who may
  open the process page) is made only by the operator at start-up (no actor may update a
  user);
* a signed-in browser (or a terminal client) holds a random token whose SHA-256 is stored as
  a :class:`UserToken` (phx.gen.auth's): signing out deletes it, which revokes the session;
* a room name is 1 to 40 characters, unique;
* a message is 1 to 2,000 characters, sent by its author (the actor) to a room, carrying a
  client id so that a retried send is stored once (an upsert on author and client id); a
  message shared with files (``share``: at most :data:`MAX_ATTACHMENTS`, images or other
  files the chat checked and stored, see :mod:`examples.chat.attachments`) may have no text;
* a new account (``sign_up``) has a password of 8 characters or more, of which only the
  hash is stored (the caller hashes it, off the event loop);
* a signed-in user sees every room and joins one by entering it (a membership; opening a
  room joins it); only a room's members read and send its messages; only the author edits or
  deletes a message; a membership remembers when its member last visited the room and up to
  when they have read it (their own to update);
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

import sqlalchemy as sa

from domain import (
    Changeset,
    Domain,
    Resource,
    Tx,
    action_type,
    actor_present,
    always,
    argument,
    attribute,
    authorize_if,
    belongs_to,
    change,
    create,
    create_timestamp,
    define,
    define_read,
    destroy,
    identity,
    index,
    many_to_many,
    policy,
    pubsub,
    read,
    relate_actor,
    relates_to_actor_via,
    set_attribute,
    update,
    uuid_primary_key,
    validate,
)
from domain.jobs import with_jobs_tables
from domain.notifications import notification_resource


class User(Resource):
    __tablename__ = "chat_accounts"
    id: uuid.UUID = uuid_primary_key()
    username: str = attribute(min_length=3, max_length=20, match=r"^[a-z0-9_]+$")
    password_hash: str = attribute(max_length=200)
    admin: bool = attribute(default=False, writable=False)
    inserted_at: datetime = create_timestamp()
    identities = (identity("unique_username", "username"),)
    actions = (
        create("register", accept=("username", "password_hash")),
        # The sign-up form's: the password is an argument (checked, never stored); the page
        # passes its hash along on submit (scrypt runs off the loop, not in a change).
        create(
            "sign_up",
            accept=("username", "password_hash"),
            arguments=(argument("password", min_length=8, max_length=200, trim=False),),
        ),
        read("read"),
        # The operator's, at start-up (authorize=False): no policy lets an actor run them.
        update("set_password", accept=("password_hash",)),
        update("make_admin", set_attribute("admin", lambda _cs: True)),
    )
    policies = (policy(action_type("create", "read"), authorize_if(always())),)


class UserToken(Resource):
    """A session on the server (phx.gen.auth's ``UserToken``): the SHA-256 of a random token
    that only its holder knows (the browser's session cookie, or the id a terminal client's
    socket token carries), its user, its context (``session`` or ``api``) and its age.
    Deleting it signs that session out; a token older than its context allows is refused."""

    __tablename__ = "chat_user_tokens"
    id: uuid.UUID = uuid_primary_key()
    token_hash: str = attribute(min_length=64, max_length=64)
    context: str = attribute(one_of=("session", "api"))
    user_id: uuid.UUID = attribute(writable=False)
    user = belongs_to("User", source_attribute="user_id", allow_nil=False)
    inserted_at: datetime = create_timestamp()
    identities = (identity("unique_token_hash", "token_hash"),)
    indexes = (index("user_id"),)
    actions = (
        create("issue", relate_actor("user"), accept=("token_hash", "context")),
        read("read"),
        destroy("revoke"),
    )
    policies = (
        # Looked up by the hash of a secret the caller holds (nothing else finds a row).
        policy(action_type("read"), authorize_if(always())),
        # One's own sessions only: issued to the actor, revoked by their owner.
        policy(action_type("create", "destroy"), authorize_if(relates_to_actor_via("user"))),
    )


def _opener_joins(cs: Changeset) -> None:
    """Whoever opens a room is its first member (in the same transaction)."""

    def join(tx: Tx, cs: Changeset, room: Room) -> None:
        Chat.create_in(tx, Membership, "join", {"room_id": room.id}, actor=cs.actor)

    cs.after_action(join)


class Room(Resource):
    __tablename__ = "chat_rooms"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute(min_length=1, max_length=40)
    inserted_at: datetime = create_timestamp()
    members = many_to_many("User", through="Membership")
    identities = (identity("unique_room_name", "name"),)
    actions = (create("open", change(_opener_joins), accept=("name",)), read("read"))
    policies = (policy(action_type("create", "read"), authorize_if(actor_present())),)


class Membership(Resource):
    """A user who joined a room: only members read and send its messages."""

    __tablename__ = "chat_memberships"
    id: uuid.UUID = uuid_primary_key()
    user_id: uuid.UUID = attribute(writable=False)
    user = belongs_to("User", source_attribute="user_id", allow_nil=False)
    room_id: uuid.UUID = attribute()
    room = belongs_to("Room", source_attribute="room_id", allow_nil=False)
    inserted_at: datetime = create_timestamp()
    #: When the member last opened the room (the page lands in the latest one).
    last_visited_at: datetime | None = attribute(writable=False)
    #: Up to when the member has read the room (newer messages are unread).
    last_read_at: datetime | None = attribute(writable=False)
    identities = (identity("unique_membership", "user_id", "room_id"),)
    actions = (
        create(
            "join",
            relate_actor("user"),
            accept=("room_id",),
            upsert_identity="unique_membership",  # joining twice is joining once
        ),
        read("read"),
        update(
            "visit",
            set_attribute("last_visited_at", lambda _cs: _now()),
            set_attribute("last_read_at", lambda _cs: _now()),
        ),
        update("mark_read", set_attribute("last_read_at", lambda _cs: _now())),
        destroy("leave"),
    )
    policies = (
        policy(action_type("create"), authorize_if(actor_present())),
        # One's own memberships only: who is in which room is not everyone's business.
        policy(
            action_type("read", "update", "destroy"), authorize_if(relates_to_actor_via("user"))
        ),
    )


def _now() -> datetime:
    return datetime.now(UTC)


#: The most files one message carries.
MAX_ATTACHMENTS: Final = 4
#: What each attachment of a message says of its file (see examples/chat/attachments.py).
ATTACHMENT_KEYS: Final = frozenset({"key", "name", "type", "size", "kind", "width", "height"})


def _says_something(cs: Changeset) -> tuple[str, str] | None:
    """A message has text, unless it carries files (only then may it have none)."""
    if cs.get("content") or cs.get("attachments"):
        return None
    return "content", "is required"


def _attach(cs: Changeset) -> None:
    """``share``: the files the chat stored become the message's ``attachments``."""
    files = cs.arguments.get("files") or []
    if not isinstance(files, list) or len(files) > MAX_ATTACHMENTS:
        cs.add_error("files", f"must be a list of at most {MAX_ATTACHMENTS} files")
        return
    if any(not isinstance(f, dict) or set(f) != ATTACHMENT_KEYS for f in files):
        cs.add_error("files", "must be files stored by the chat")
        return
    cs.set("attachments", files or None)


class Message(Resource):
    __tablename__ = "chat_messages"
    id: uuid.UUID = uuid_primary_key()
    #: Empty only when the message carries files (see ``_says_something``).
    content: str = attribute(max_length=2000, allow_empty=True)
    client_id: str = attribute(min_length=1, max_length=64)
    room_id: uuid.UUID = attribute()
    room = belongs_to("Room", source_attribute="room_id", allow_nil=False)
    author_id: uuid.UUID = attribute(writable=False)
    author = belongs_to("User", source_attribute="author_id", allow_nil=False)
    author_name: str = attribute(max_length=20, writable=False)
    inserted_at: datetime = create_timestamp()
    edited_at: datetime | None = attribute(writable=False)
    #: The files it carries (``None``: none), each a dict of :data:`ATTACHMENT_KEYS`.
    attachments: list | None = attribute(writable=False)
    identities = (identity("unique_client_id", "author_id", "client_id"),)
    indexes = (index("room_id", "inserted_at"),)  # a room's history, newest first
    actions = (
        create(
            "send",
            relate_actor("author"),
            set_attribute("author_name", lambda cs: cs.actor.username),
            validate(_says_something),
            accept=("content", "room_id", "client_id"),
            upsert_identity="unique_client_id",
            upsert_fields=("client_id",),
        ),
        # A message with files: only the chat's page calls it, with files it stored itself.
        create(
            "share",
            relate_actor("author"),
            set_attribute("author_name", lambda cs: cs.actor.username),
            change(_attach),
            validate(_says_something),
            accept=("content", "room_id", "client_id"),
            arguments=(argument("files", list),),
            upsert_identity="unique_client_id",
            upsert_fields=("client_id",),
        ),
        read("read"),
        update(
            "edit",
            set_attribute("edited_at", lambda _cs: _now()),
            validate(_says_something),
            accept=("content",),
        ),
        destroy("delete"),
    )
    policies = (
        # Members read a room's messages and send to it; for anyone else the room's messages
        # are simply not there, and a send is forbidden (checked on the written row).
        policy(
            action_type("create", "read"), authorize_if(relates_to_actor_via("room", "members"))
        ),
        policy(action_type("update", "destroy"), authorize_if(relates_to_actor_via("author"))),
    )
    notifiers = (
        pubsub("room:{room_id}", actions=("send", "share"), event="new_message"),
        pubsub("room:{room_id}", actions=("edit",), event="message_edited"),
        pubsub("room:{room_id}", actions=("delete",), event="message_deleted"),
    )


#: Mention notifications: the domain's ready-made resource (owner-only reads, ``notify``
#: broadcasting ``new_notification``, the ``unread_notifications`` counter).
Notification = notification_resource("Notification", user="User", tablename="chat_notifications")


UNREAD: Final = Notification.counters[0]


class Chat(Domain):
    resources = (User, UserToken, Room, Membership, Message, Notification)
    register = define(User, "register", args=("username", "password_hash"))
    sign_up = define(User, "sign_up")
    set_password = define(User, "set_password", args=("password_hash",))
    make_admin = define(User, "make_admin")
    issue_token = define(UserToken, "issue", args=("token_hash", "context"))
    revoke_token = define(UserToken, "revoke")
    users = define_read(User, "read")
    open_room = define(Room, "open", args=("name",))
    join_room = define(Membership, "join", args=("room_id",))
    leave_room = define(Membership, "leave")
    visit_room = define(Membership, "visit")
    mark_room_read = define(Membership, "mark_read")
    memberships = define_read(Membership, "read")
    rooms = define_read(Room, "read")
    send_message = define(Message, "send")
    share_message = define(Message, "share")
    edit_message = define(Message, "edit")
    delete_message = define(Message, "delete")
    messages = define_read(Message, "read")
    mention = define(Notification, "notify")
    mark_notification_read = define(Notification, "mark_as_read")

    @classmethod
    def metadata(cls) -> sa.MetaData:
        """The resources' tables and the background jobs' (``oban_jobs``, ``oban_producers``:
        see :mod:`examples.chat.background`), for the migrations."""
        return with_jobs_tables(super().metadata())
