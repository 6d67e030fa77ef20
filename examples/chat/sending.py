"""Sending, editing and deleting a message, the one way both the page and the channels do it.

A send counts against the sender's rate limit (scope ``message``), is stored (a retried
client id is stored once), then notifies mentions. Edits and deletes count against the
``edit`` scope and are the author's only (the domain's policy says so; anyone else gets
:class:`domain.Forbidden`); the domain broadcasts ``message_edited`` and ``message_deleted``
to the room's topic after the commit.

Each returns only once its broadcasts have left the node (``beam.cluster.flush``): on a
cluster, a node SIGKILLed just after acknowledging a message would otherwise take the
broadcast along, and the other nodes' clients would never see the message.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import beam
import domain
import web

from . import notifications, ratelimit
from .forms import refused
from .model import Chat, Message, User

#: What a refused send, edit or delete raises: the domain's errors (invalid, forbidden) and
#: the rate limit.
SendRefused = (domain.DomainError, web.RateLimited)


async def send(
    user: User,
    room_id: uuid.UUID,
    content: str,
    client_id: str | None,
    files: list[dict[str, Any]] | None = None,
) -> Message:
    """Send *content* to the room as *user*, with the *files* the page stored (see
    :mod:`examples.chat.attachments`); raises one of :data:`SendRefused` with a clear
    message when the send is refused.

    >>> record = await send(alice, lobby_id, "hi @bob", None)
    """
    await ratelimit.check("message", str(user.id))
    client_id = client_id or uuid.uuid4().hex
    if files:
        record = await Chat.share_message(
            content=content, client_id=client_id, room_id=room_id, files=files, actor=user
        )
    else:
        record = await Chat.send_message(
            content=content, client_id=client_id, room_id=room_id, actor=user
        )
    await notifications.notify_mentions(record)
    await beam.cluster.flush()
    return record


async def in_room(user: User, room_id: uuid.UUID, message_id: str) -> Message:
    """The message *message_id* of the room, as *user* may read it; else
    :class:`domain.NotFound`.

    >>> record = await in_room(alice, lobby_id, message_id)
    """
    try:
        wanted = uuid.UUID(message_id)
    except ValueError:
        raise domain.NotFound(f"message {message_id!r}", resource="Message") from None
    record = await Chat.get(Message, wanted, actor=user)
    if record.room_id != room_id:
        raise domain.NotFound(f"message {message_id} in this room", resource="Message")
    return record


async def edit(user: User, room_id: uuid.UUID, message_id: str, content: str) -> Message:
    """Replace the text of *user*'s message in the room; raises :class:`domain.DomainError`
    (not found, forbidden for someone else's message, invalid content) or
    :class:`web.RateLimited`.

    >>> record = await edit(alice, lobby_id, str(record.id), "hi @bob, again")
    """
    await ratelimit.check("edit", str(user.id))
    record = await in_room(user, room_id, message_id)
    edited = await Chat.edit_message(record, content=content, actor=user)
    await beam.cluster.flush()
    return edited


async def save_edit(
    user: User, form: domain.Form, params: Mapping[str, Any]
) -> tuple[Message | None, domain.Form]:
    """Submit the page's edit *form* (``Message.edit`` of one of *user*'s messages) with what
    was typed: the edited message and the form, or ``None`` and the form with its errors
    (rate limited: the whole form's).

    >>> record, form = await save_edit(alice, form, {"content": "hi again"})
    """
    try:
        await ratelimit.check("edit", str(user.id))
    except web.RateLimited as exc:
        return None, refused(form, params, str(exc))
    record, form = await form.submit(params)
    if record is not None:
        await beam.cluster.flush()
    return record, form


async def delete(user: User, room_id: uuid.UUID, message_id: str) -> Message:
    """Delete *user*'s message in the room; raises like :func:`edit`.

    >>> await delete(alice, lobby_id, str(record.id))
    """
    await ratelimit.check("edit", str(user.id))
    record = await in_room(user, room_id, message_id)
    deleted = await Chat.delete_message(record, actor=user)
    await beam.cluster.flush()
    return deleted
