"""The chat's JSON API: :mod:`web.api` over the chat's domain, under ``/api`` on the chat's
own port, beside its pages and sockets.

* ``POST /api/session`` (username, password) signs in and answers a bearer token: a
  :class:`web.api.BearerTokens` token carrying the id of a stored ``UserToken`` row (context
  ``api``, a day), so ``DELETE /api/session`` (signing out) or the row's age revokes it.
  Sign-ins are throttled as the sign-in page's are (growing delays after failures);
* ``/api/rooms`` (list, get, open), ``/api/memberships`` (one's own: list, join, leave),
  ``/api/messages`` (history pages with ``filter[room_id]``, get, send, edit, delete: a send
  goes through :func:`examples.chat.sending.send`, so it is rate limited and notifies
  mentions), ``/api/notifications`` (one's own: list, ``POST /{id}/read``,
  ``POST /read_all``), ``/api/users`` (names only; password hashes never leave);
* every request counts in the rate-limit scope ``api`` (per user), sends in ``message``,
  edits and deletes in ``edit``, rooms opened in ``room``; the policies are the domain's;
* ``GET /api/openapi.json`` describes all of it.

A write through the API is a domain action like any other: its notifiers broadcast to the
room's topic after the commit, and every LiveView and channel in the room sees it::

    curl -s -X POST localhost:4000/api/session -H 'content-type: application/vnd.api+json' \\
      -d '{"data":{"type":"session","attributes":{"username":"alice","password":"wonderland"}}}'
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

import web
from web import api

from . import notifications, ratelimit, sending, sessions
from .accounts import API_MAX_AGE, verify_password
from .model import Chat, Membership, Message, Notification, Room, User

__all__ = ["API_PREFIX", "make_api", "mount_api"]

API_PREFIX: Final = "/api"
#: What the bearer tokens are signed for (distinct from the socket tokens').
_SALT: Final = "chat api bearer"
_SEND_FIELDS: Final = frozenset({"content", "room_id", "client_id"})


async def _load(token_id: str) -> User | None:
    """The user of the live ``api`` session *token_id*; ``None`` once it is revoked or old."""
    record = await sessions.lookup_id(token_id)
    return record.user if record is not None else None


def _address(request: web.Request) -> str:
    return f"ip:{request.client[0] if request.client else 'unknown'}"


async def _issue(attributes: Mapping[str, Any], request: web.Request) -> str | None:
    """Sign in: the id of a new ``api`` session, ``None`` for a wrong name or password."""
    username = str(attributes["username"]).strip().lower()[:40]
    await ratelimit.check("signin_account", f"user:{username}")
    await ratelimit.check("signin_address", _address(request))
    found = await Chat.read(User, filter={"username": username}, limit=1)
    user = found[0] if found else None
    matched = await verify_password(
        str(attributes["password"]), user.password_hash if user else None
    )
    if user is None or not matched:
        await ratelimit.failed("signin_account", f"user:{username}")
        await ratelimit.failed("signin_address", _address(request))
        return None
    await ratelimit.succeeded("signin_account", f"user:{username}")
    _, record = await sessions.issue(user, "api")
    return str(record.id)


async def _revoke(token_id: str, actor: Any) -> None:
    """Sign out: delete the session (its open sockets close too)."""
    record = await sessions.lookup_id(token_id)
    if record is not None:
        await sessions.sign_out(record)


def _invalid(field: str, message: str) -> api.ApiError:
    return api.ApiError.one(
        422, f"{field} {message}", code="invalid", pointer=f"/data/attributes/{field}"
    )


async def _send(call: api.ApiCall) -> Message:
    """``POST /api/messages``: send as the actor (rate limited; mentions notified)."""
    values = call.input
    unknown = sorted(set(values) - _SEND_FIELDS)
    if unknown:
        accepted = ", ".join(sorted(_SEND_FIELDS))
        raise _invalid(unknown[0], f"is not accepted (accepted: {accepted})")
    try:
        room_id = uuid.UUID(str(values.get("room_id")))
    except ValueError:
        raise _invalid("room_id", "is not a valid UUID") from None
    content, client_id = values.get("content"), values.get("client_id")
    if not isinstance(content, str):
        raise _invalid("content", "is required (a string)")
    if client_id is not None and not isinstance(client_id, str):
        raise _invalid("client_id", "must be a string")
    return await sending.send(call.actor, room_id, content, client_id)


async def _read_all(call: api.ApiCall) -> dict[str, int]:
    """``POST /api/notifications/read_all``: mark every notification of the actor's read."""
    return {"marked": await notifications.mark_all_read(call.actor)}


def make_api(secret_key: str) -> api.JsonApi:
    """The chat's API (tokens signed with *secret_key*), not yet mounted.

    >>> make_api(secret).openapi()["info"]["title"]
    'trio-beam chat'
    """
    tokens = api.BearerTokens(secret_key, _load, max_age=API_MAX_AGE, salt=_SALT, realm="chat")
    chat_api = api.JsonApi(
        Chat,
        prefix=API_PREFIX,
        tokens=tokens,
        scope="api",
        limiter=ratelimit.SHARED,
        title="trio-beam chat",
        description="Rooms, memberships, messages and notifications of the chat.",
    )
    chat_api.resource(User, "users", api.index(), api.get(), hide=("password_hash",))
    chat_api.resource(Room, "rooms", api.index(), api.get(), api.post("open", limit="room"))
    chat_api.resource(Membership, "memberships", api.index(), api.post("join"), api.delete("leave"))
    chat_api.resource(
        Message,
        "messages",
        api.index("read", default_limit=50, max_limit=200),
        api.get("read"),
        api.route("POST", "", _send, input="send", summary="Send a message to a room"),
        api.patch("edit", limit="edit"),
        api.delete("delete", limit="edit"),
    )
    chat_api.resource(
        Notification,
        "notifications",
        api.index(),
        api.get(),
        api.route("POST", "/{id}/read", "mark_as_read"),
        api.route("POST", "/read_all", _read_all, summary="Mark every notification read"),
    )
    chat_api.sign_in(_issue, revoke=_revoke)
    return chat_api


def mount_api(endpoint: web.Endpoint, secret_key: str) -> api.JsonApi:
    """Serve the chat's API on *endpoint* (the one hook ``app.build`` calls).

    >>> mount_api(endpoint, secret)
    """
    chat_api = make_api(secret_key)
    chat_api.mount(endpoint)
    return chat_api
