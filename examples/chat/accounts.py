"""Passwords and signed tokens: what the pages and sockets use to know who is who.

Passwords are hashed with scrypt (the standard library's, with a random salt per user), and
compared in constant time. A signed-in browser holds a session cookie, a :class:`web.Token`
carrying the user's id; sockets get their own token, signed with another salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Final

import web

SESSION_COOKIE: Final = "chat_session"
SESSION_MAX_AGE: Final = 14 * 86_400
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str) -> str:
    """``scrypt$<salt>$<hash>`` for *password*.

    >>> hash_password("wonderland").startswith("scrypt$")
    True
    """
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    """Whether *password* matches the *stored* hash (constant-time comparison).

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


def session_token(secret: str, user_id: str) -> str:
    """The session cookie's value for *user_id*."""
    return web.Token.sign(secret, "chat session", user_id)


def session_user(secret: str, token: str | None) -> str | None:
    """The user id a session cookie carries, if it is genuine and fresh."""
    if not token:
        return None
    try:
        user_id = web.Token.verify(secret, "chat session", token, max_age=SESSION_MAX_AGE)
    except web.InvalidToken:
        return None
    return user_id if isinstance(user_id, str) else None


def socket_token(secret: str, user_id: str) -> str:
    """A token for ``new Socket("/socket", {params: {token}})`` (and the terminal client)."""
    return web.Token.sign(secret, "chat socket", user_id)


def socket_user(secret: str, token: str | None) -> str | None:
    """The user id a socket token carries, if it is genuine and fresh (a day)."""
    if not token:
        return None
    try:
        user_id = web.Token.verify(secret, "chat socket", token, max_age=86_400)
    except web.InvalidToken:
        return None
    return user_id if isinstance(user_id, str) else None
