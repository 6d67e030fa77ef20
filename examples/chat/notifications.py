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

import domain.notifications

from . import background
from .model import UNREAD, Chat, Message, Notification, User

MENTION: Final = re.compile(r"@([a-z0-9_]{3,20})")
RECENT: Final = 10


async def notify_mentions(message: Message) -> None:
    """Notify every user *message* mentions (not its author, each once, even when a retried
    send stores the message again: the notification's idempotency key is taken). Each
    notification and its digest job (:func:`examples.chat.background.schedule_digest`) are
    written in one transaction."""
    names = set(MENTION.findall(message.content)) - {message.author_name}
    if not names:
        return
    users = await Chat.read(User, filter=User.__table__.c.username.in_(sorted(names)))
    async with Chat.transaction():
        for user in users:
            try:
                record = await Chat.mention(
                    user_id=user.id,
                    kind="mention",
                    title=f"{message.author_name} mentioned you",
                    body=message.content[:120],
                    action_url=f"/?room={message.room_id}&message={message.id}",
                    idempotency_key=f"mention:{message.id}:{user.id}",
                    authorize=False,  # the server notifies; no user may
                )
            except domain.Invalid as exc:
                if "idempotency_key" not in exc.errors:
                    raise  # only "already notified of this message" is expected
                continue  # its digest was scheduled with it
            await background.schedule_digest(record)


def notification_payload(record: domain.notifications.BaseNotification) -> dict[str, Any]:
    """A notification as pages and channels show it."""
    return {
        "id": str(record.id),
        "kind": record.kind,
        "title": record.title,
        "body": record.body,
        "url": record.action_url,
        "read": record.is_read,
        "inserted_at": record.inserted_at.isoformat(),
    }


async def unread_count(user: User) -> int:
    """The user's unread notifications."""
    values = await Chat.counter_values(Notification, UNREAD, [user.id])
    return values[user.id]


async def initial_state(user: User) -> dict[str, Any]:
    """Counters and recent notifications, loaded concurrently (by the domain's loader)."""
    state = await domain.notifications.initial_state(
        Chat, user, notifications=Notification, recent=RECENT
    )
    return {
        "counters": state["counters"],
        "notifications": [notification_payload(r) for r in state["notifications"]],
    }


async def mark_read(user: User, notification_id: str) -> None:
    """Mark one of the user's notifications as read (others' are not found)."""
    try:
        wanted = uuid.UUID(notification_id)
    except ValueError:
        return
    records = await Chat.read(Notification, actor=user, filter={"id": wanted}, limit=1)
    if records:
        await Chat.mark_notification_read(records[0], actor=user)
        # After the read commits: a digest that starts meanwhile finds it read and cancels
        # itself (see examples.chat.background).
        await background.cancel_digests(user, wanted)


async def mark_all_read(user: User) -> int:
    """Mark every unread notification of the user as read, in one statement; the user's
    topic gets ``all_notifications_read`` and one counter update; the user's waiting mention
    digests are cancelled."""
    count = await domain.notifications.mark_all_as_read(Chat, Notification, actor=user)
    await background.cancel_digests(user)
    return count
