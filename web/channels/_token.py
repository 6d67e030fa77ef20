"""Signed, expiring tokens, in the spirit of ``Phoenix.Token``.

A token carries a JSON value and the time it was signed, authenticated with an HMAC-SHA256
key derived from the application's secret key and a *salt* naming the token's purpose (so a
token minted for sockets cannot pass as a password-reset token). Tokens are signed, not
encrypted: do not put secrets in them::

    token = Token.sign(SECRET_KEY, "user socket", {"user_id": 42})
    Token.verify(SECRET_KEY, "user socket", token, max_age=86_400)    # {'user_id': 42}

A token is three URL-safe base64 parts joined by dots: a version header, the payload
``{"d": data, "t": signed_at_ms}``, and the signature of the first two.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any, Final

__all__ = ["InvalidToken", "Token", "TokenExpired"]

_HEADER: Final = b"bt1"  # beam token, version 1
_ITERATIONS: Final = 1000  # Phoenix's key generator default
DEFAULT_MAX_AGE: Final = 86_400.0


class InvalidToken(ValueError):
    """A token that was not signed with this key and salt, or is not a token at all.

    >>> Token.verify("k" * 32, "user socket", "not-a-token")
    Traceback (most recent call last):
    web.InvalidToken: not a token: expected three dot-separated parts
    """


class TokenExpired(InvalidToken):
    """A genuine token, older than the ``max_age`` it was checked against.

    >>> old = Token.sign("k" * 32, "user socket", 42, signed_at=0)
    >>> Token.verify("k" * 32, "user socket", old, max_age=60, now=120)
    Traceback (most recent call last):
    web.TokenExpired: the token expired: signed 120 s ago, max_age 60 s
    """


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _unb64(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


@functools.lru_cache(maxsize=64)
def _key(secret_key: str, salt: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret_key.encode(), salt.encode(), _ITERATIONS, 32)


def _check_secret(secret_key: str) -> None:
    if not isinstance(secret_key, str) or len(secret_key) < 32:
        raise ValueError(
            "the secret key must be a string of at least 32 characters; generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )


class Token:
    """Sign and verify tokens; see the module documentation.

    >>> token = Token.sign(SECRET_KEY, "user socket", {"user_id": 42})
    >>> Token.verify(SECRET_KEY, "user socket", token, max_age=86_400)
    {'user_id': 42}
    """

    @staticmethod
    def sign(secret_key: str, salt: str, data: Any, *, signed_at: float | None = None) -> str:
        """A token carrying *data* (any JSON value), signed now (or at *signed_at*, in
        seconds since the epoch).

        >>> token = Token.sign("k" * 32, "user socket", {"user_id": 42})
        >>> token.count(".")
        2
        """
        _check_secret(secret_key)
        at = time.time() if signed_at is None else signed_at
        try:
            body = json.dumps({"d": data, "t": int(at * 1000)}, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"token data must be JSON-serializable: {exc}") from None
        signed = _b64(_HEADER) + b"." + _b64(body.encode())
        signature = hmac.new(_key(secret_key, salt), signed, hashlib.sha256).digest()
        return (signed + b"." + _b64(signature)).decode("ascii")

    @staticmethod
    def verify(
        secret_key: str,
        salt: str,
        token: str,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        now: float | None = None,
    ) -> Any:
        """The data of *token* if it was signed with this key and salt less than *max_age*
        seconds ago; raises :class:`InvalidToken` or :class:`TokenExpired` otherwise.

        >>> secret = "k" * 32
        >>> Token.verify(secret, "user socket", Token.sign(secret, "user socket", 7))
        7
        """
        _check_secret(secret_key)
        if not isinstance(token, str):
            raise InvalidToken(f"a token is a string, got {type(token).__name__}")
        parts = token.encode("ascii", "replace").split(b".")
        if len(parts) != 3:
            raise InvalidToken("not a token: expected three dot-separated parts")
        header, body, signature = parts
        expected = hmac.new(_key(secret_key, salt), header + b"." + body, hashlib.sha256).digest()
        try:
            genuine = hmac.compare_digest(_unb64(signature), expected)
            version = _unb64(header)
        except ValueError:
            raise InvalidToken("not a token: its parts are not URL-safe base64") from None
        if not genuine or version != _HEADER:
            raise InvalidToken("the token was not signed with this secret key and salt")
        decoded: dict[str, Any] = json.loads(_unb64(body))  # ours: we signed it
        signed_at = decoded["t"] / 1000
        current = time.time() if now is None else now
        if current - signed_at > max_age:
            raise TokenExpired(
                f"the token expired: signed {current - signed_at:.0f} s ago, max_age {max_age:g} s"
            )
        return decoded["d"]
