"""Sending a message, the one way both the page and the channels do it: count it against the
sender's rate limit, store it (a retried client id is stored once), then notify mentions."""

from __future__ import annotations

import uuid

import domain

from . import notifications, ratelimit
from .model import Chat, Message, User

#: What a refused send raises: the domain's errors (invalid, forbidden) and the rate limit.
SendRefused = (domain.DomainError, ratelimit.RateLimited)


async def send(user: User, room_id: uuid.UUID, content: str, client_id: str | None) -> Message:
    """Send *content* to the room as *user*; raises one of :data:`SendRefused` with a clear
    message when the send is refused.

    >>> record = await send(alice, lobby_id, "hi @bob", None)
    """
    await ratelimit.check(str(user.id))
    record = await Chat.send_message(
        content=content, client_id=client_id or uuid.uuid4().hex, room_id=room_id, actor=user
    )
    await notifications.notify_mentions(record)
    return record
