"""Entering rooms: a signed-in user sees every room and becomes a member of one by entering
it (the page's room list, or joining its channel). Members read and send its messages.
Opening the page lands in the room last visited (or a default room) without joining it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from .model import Chat, Membership, Message, Room, User


async def enter(user: User, room_id: uuid.UUID) -> Room | None:
    """Make *user* a member of the room (once, however often they enter) and return it;
    ``None`` when there is no such room.

    >>> room = await enter(alice, lobby_id)
    """
    # Already a member (rejoins are frequent): one read, the room loaded with it.
    member = await Chat.memberships(
        actor=user, filter={"user_id": user.id, "room_id": room_id}, load=("room",)
    )
    if member and member[0].room is not None:
        room: Room = member[0].room
        return room
    rooms = await Chat.read(Room, actor=user, filter={"id": room_id}, limit=1)
    if not rooms:
        return None
    await Chat.join_room(room_id, actor=user)
    return rooms[0]


async def joined(user: User) -> set[str]:
    """The ids (as text) of the rooms *user* is a member of.

    >>> str(lobby_id) in await joined(alice)
    True
    """
    memberships = await Chat.memberships(actor=user, filter={"user_id": user.id})
    return {str(m.room_id) for m in memberships}


async def memberships(user: User) -> list[Membership]:
    """*user*'s memberships, the latest visited first (never visited: last).

    >>> [m.room_id for m in await memberships(alice)]
    """
    found = await Chat.memberships(actor=user, filter={"user_id": user.id})
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda m: _aware(m.last_visited_at) or never, reverse=True)


def _aware(when: datetime | None) -> datetime | None:
    """*when* with a time zone (SQLite hands timestamps back without one: they are UTC)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def landing(
    rooms: list[dict[str, str]], mine: list[Membership], default: str
) -> dict[str, str] | None:
    """Where the page opens without a room in its address: the room last visited, else the
    room named *default*, else the first room (by name) the user is a member of, else the
    *default* room or the first of all as a preview. Landing never joins a room.

    >>> landing([{"id": "1", "name": "lobby"}], [], "lobby")
    {'id': '1', 'name': 'lobby'}
    """
    by_id = {r["id"]: r for r in rooms}
    visited = [m for m in mine if m.last_visited_at is not None and str(m.room_id) in by_id]
    if visited:
        return by_id[str(visited[0].room_id)]
    named = next((r for r in rooms if r["name"] == default), None)
    member_of = {str(m.room_id) for m in mine}
    if named is not None and named["id"] in member_of:
        return named
    first = next((r for r in rooms if r["id"] in member_of), None)
    return first or named or (rooms[0] if rooms else None)


async def visit(user: User, room_id: uuid.UUID) -> None:
    """Remember that *user* opened the room now (and has read it up to now).

    >>> await visit(alice, lobby_id)
    """
    found = await Chat.memberships(actor=user, filter={"user_id": user.id, "room_id": room_id})
    if found:
        await Chat.visit_room(found[0], actor=user)


async def mark_read(user: User, room_id: uuid.UUID) -> None:
    """Remember that *user* has read the room up to now.

    >>> await mark_read(alice, lobby_id)
    """
    found = await Chat.memberships(actor=user, filter={"user_id": user.id, "room_id": room_id})
    if found:
        await Chat.mark_room_read(found[0], actor=user)


#: Unread counts stop at this (the badge then says "99+").
UNREAD_CAP = 100


async def unread_counts(user: User, mine: list[Membership]) -> dict[str, int]:
    """Per room of *mine* (by id as text), the messages of others newer than its last read
    (at most :data:`UNREAD_CAP`); rooms with none are left out.

    >>> await unread_counts(bob, await memberships(bob))
    {'4f3c…': 2}
    """
    columns = Message.__table__.c
    counts: dict[str, int] = {}
    for member in mine:
        since = member.last_read_at or member.inserted_at
        if since is None:
            continue
        found = await Chat.read(
            Message,
            actor=user,
            filter=(columns.room_id == member.room_id)
            & (columns.inserted_at > since)
            & (columns.author_id != user.id),
            limit=UNREAD_CAP,
        )
        if found:
            counts[str(member.room_id)] = len(found)
    return counts
