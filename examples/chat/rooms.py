"""Entering rooms: a signed-in user sees every room and becomes a member of one by entering
it (the page's room list, or joining its channel). Members read and send its messages."""

from __future__ import annotations

import uuid

from .model import Chat, Room, User


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
