"""Mentions and notifications, in the AshDispatch manner: what the pages and channels share.

Sending a message that says ``@bob`` creates a notification for bob (after the message is
stored). The domain then broadcasts ``("new_notification", record)`` and
``("counter_updated", {"counter": "unread_notifications", "value": n})`` to ``user:<bob's id>``,
where bob's pages and user channel listen.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

import beam

from .model import UNREAD, Chat, Message, Notification, User

MENTION: Final = re.compile(r"@([a-z0-9_]{3,20})")
RECENT: Final = 10


async def notify_mentions(message: Message) -> None:
    """Notify every user *message* mentions (not its author, each once)."""
    names = set(MENTION.findall(message.content)) - {message.author_name}
    if not names:
        return
    users = await Chat.read(User, filter=User.__table__.c.username.in_(sorted(names)))
    for user in users:
        await Chat.mention(
            user_id=user.id,
            room_id=message.room_id,
            author_name=message.author_name,
            excerpt=message.content[:120],
        )


def notification_payload(record: Notification) -> dict[str, Any]:
    """A notification as pages and channels show it."""
    return {
        "id": str(record.id),
        "room_id": str(record.room_id),
        "author": record.author_name,
        "excerpt": record.excerpt,
        "read": record.is_read,
        "inserted_at": record.inserted_at.isoformat(),
    }


async def unread_count(user: User) -> int:
    """The user's unread notifications."""
    values = await Chat.counter_values(Notification, UNREAD, [user.id])
    return values[user.id]


async def recent(user: User) -> list[dict[str, Any]]:
    """The user's latest notifications, newest first."""
    records = await Chat.read(Notification, actor=user, sort=("-inserted_at",), limit=RECENT)
    return [notification_payload(r) for r in records]


async def initial_state(user: User) -> dict[str, Any]:
    """Counters and recent notifications, loaded concurrently (a task process each: one
    process waits for one reply at a time)."""
    count: beam.Task[Any] = beam.Task.async_(unread_count, user)
    latest: beam.Task[Any] = beam.Task.async_(recent, user)
    unread, notes = await beam.Task.await_many([count, latest])
    return {"counters": {UNREAD.name: unread}, "notifications": notes}


async def mark_read(user: User, notification_id: str) -> None:
    """Mark one of the user's notifications as read (others' are not found)."""
    records = await Chat.read(
        Notification, actor=user, filter={"id": uuid.UUID(notification_id)}, limit=1
    )
    if records:
        await Chat.mark_notification_read(records[0], actor=user)


async def mark_all_read(user: User) -> int:
    """Mark every unread notification of the user as read, in one transaction."""
    done = await Chat.bulk_update(
        Notification,
        "mark_as_read",
        filter=Notification.__table__.c.is_read.is_(False),
        actor=user,
    )
    return len(done)
