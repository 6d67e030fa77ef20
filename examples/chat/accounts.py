"""Passwords and tokens: what the pages and sockets use to know who is who.

Passwords are hashed with scrypt (the standard library's, with a random salt per user), on a
worker thread (at most two at once: scrypt takes tens of milliseconds and must not hold up the
trio loop), and compared in constant time. A sign-in for a name nobody has still runs scrypt,
against a dummy hash, so its timing does not tell which names exist.

A signed-in browser holds a random session token in its cookie; the server keeps only its
SHA-256 (a :class:`~examples.chat.model.UserToken`, see :mod:`examples.chat.sessions`), so
deleting the row signs the browser out. A terminal client's socket token is a
:class:`web.Token` carrying the id of such a row (context ``api``): it stops working when the
row is gone or older than a day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from typing import Final

import trio

import web

SESSION_COOKIE: Final = "chat_session"
#: How long a browser's session lasts (its cookie, and its row on the server).
SESSION_MAX_AGE: Final = 14 * 86_400
#: How long a terminal client's socket token (and its row) lasts.
API_MAX_AGE: Final = 86_400
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
#: At most this many hashes at once, each on a worker thread.
_HASHERS: Final = trio.CapacityLimiter(2)
#: A well-formed hash nothing matches: what a sign-in for an unknown name is checked against.
_DUMMY_HASH: Final = (
    "scrypt$" + base64.b64encode(b"\0" * 16).decode() + "$" + base64.b64encode(b"\0" * 32).decode()
)


def hash_password(password: str) -> str:
    """``scrypt$<salt>$<hash>`` for *password* (blocking: use :func:`hash_off_loop` in a
    server).

    >>> hash_password("wonderland").startswith("scrypt$")
    True
    """
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    """Whether *password* matches the *stored* hash (constant-time comparison; blocking).

    >>> check_password("wonderland", hash_password("wonderland"))
    True
    """
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    computed = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), **_SCRYPT)
    return hmac.compare_digest(computed, base64.b64decode(digest))


async def hash_off_loop(password: str) -> str:
    """:func:`hash_password` on a worker thread (two at most at once).

    >>> stored = await hash_off_loop("wonderland")
    """
    return await trio.to_thread.run_sync(hash_password, password, limiter=_HASHERS)


async def verify_password(password: str, stored: str | None) -> bool:
    """Whether *password* matches *stored*, checked on a worker thread; ``None`` (no such
    user) is checked against a dummy hash and answers ``False``, taking as long.

    >>> await verify_password("wonderland", user.password_hash if user else None)
    True
    """
    against = _DUMMY_HASH if stored is None else stored
    matched = await trio.to_thread.run_sync(check_password, password, against, limiter=_HASHERS)
    return matched and stored is not None


def new_token() -> tuple[str, str]:
    """A fresh random token (for the cookie) and its SHA-256 (for the database).

    >>> token, digest = new_token()
    >>> digest == token_digest(token)
    True
    """
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    """The SHA-256 (hex) of *token*, as stored.

    >>> len(token_digest("abc"))
    64
    """
    return hashlib.sha256(token.encode()).hexdigest()


def socket_token(secret: str, token_id: str) -> str:
    """A token for ``new Socket("/socket", {params: {token}})`` (and the terminal client),
    carrying the id of its server-side row.

    >>> token = socket_token(secret, str(record.id))
    """
    return web.Token.sign(secret, "chat socket", token_id)


def socket_token_id(secret: str, token: str | None) -> str | None:
    """The row id a socket token carries, if it is genuine and fresh (a day).

    >>> socket_token_id(secret, socket_token(secret, "42"))
    '42'
    """
    if not token:
        return None
    try:
        token_id = web.Token.verify(secret, "chat socket", token, max_age=API_MAX_AGE)
    except web.InvalidToken:
        return None
    return token_id if isinstance(token_id, str) else None
