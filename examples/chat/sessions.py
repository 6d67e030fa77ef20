"""Sessions on the server, revocable (phx.gen.auth's way): issue, look up, sign out.

Signing in issues a :class:`~examples.chat.model.UserToken` (context ``session``, the cookie's
random token, 14 days) and ``POST /api/token`` one of context ``api`` (a day). Every page
mount (HTTP and live) and every socket connect looks its token up again, so a deleted or
expired row stops working at once; signing out deletes the row and closes the session's open
LiveViews and sockets (:func:`web.disconnect` of :func:`socket_id`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import web

from .accounts import API_MAX_AGE, SESSION_MAX_AGE, new_token, token_digest
from .model import Chat, User, UserToken

#: How long a token of each context lives, in seconds.
MAX_AGE: Final = {"session": SESSION_MAX_AGE, "api": API_MAX_AGE}
_COLUMNS: Final = UserToken.__table__.c


def socket_id(token_id: uuid.UUID | str) -> str:
    """The id the session's LiveViews and sockets share (``web.disconnect`` closes them).

    >>> socket_id("4f3c…")
    'chat_session:4f3c…'
    """
    return f"chat_session:{token_id}"


def _cutoff(context: str) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=MAX_AGE[context])


async def issue(user: User, context: str = "session") -> tuple[str, UserToken]:
    """A new session for *user*: its random token (for the cookie) and its row. The user's
    expired rows are dropped on the way.

    >>> token, record = await issue(alice)
    """
    await Chat.bulk_destroy(
        UserToken,
        "revoke",
        filter=(_COLUMNS.user_id == user.id)
        & (_COLUMNS.inserted_at < _cutoff(context))
        & (_COLUMNS.context == context),
        actor=user,
    )
    token, digest = new_token()
    record: UserToken = await Chat.issue_token(digest, context, actor=user)
    return token, record


async def lookup(token: str | None) -> UserToken | None:
    """The live session a cookie's *token* names, its user loaded; ``None`` when there is no
    such row (signed out, revoked) or it is older than 14 days.

    >>> record = await lookup(request.cookie(SESSION_COOKIE))
    """
    if not token or len(token) > 100:
        return None
    found = await Chat.read(
        UserToken,
        filter=(_COLUMNS.token_hash == token_digest(token))
        & (_COLUMNS.context == "session")
        & (_COLUMNS.inserted_at > _cutoff("session")),
        load=("user",),
        limit=1,
    )
    return found[0] if found and found[0].user is not None else None


async def lookup_id(token_id: str) -> UserToken | None:
    """The live ``api`` session with id *token_id* (a socket token's), its user loaded.

    >>> record = await lookup_id(socket_token_id(secret, token))
    """
    try:
        wanted = uuid.UUID(token_id)
    except ValueError:
        return None
    found = await Chat.read(
        UserToken,
        filter=(_COLUMNS.id == wanted)
        & (_COLUMNS.context == "api")
        & (_COLUMNS.inserted_at > _cutoff("api")),
        load=("user",),
        limit=1,
    )
    return found[0] if found and found[0].user is not None else None


async def sign_out(record: UserToken) -> None:
    """Delete the session and close its open LiveViews and sockets.

    >>> await sign_out(record)
    """
    await Chat.revoke_token(record, actor=record.user)
    web.disconnect(socket_id(record.id))


def live_session(record: UserToken) -> dict[str, Any]:
    """What a page's LiveView mounts with for the session *record*.

    >>> live_session(record)["user_id"] == str(record.user_id)
    True
    """
    assert record.user is not None
    return {
        "user_id": str(record.user_id),
        "admin": bool(record.user.admin),
        "live_socket_id": socket_id(record.id),
    }
