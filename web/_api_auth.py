"""Bearer tokens for the JSON API: signed, expiring, revocable.

A token is a :class:`web.Token` (HMAC-signed, timestamped) carrying the id of a row the app
stores when it issues one (the chat's ``UserToken``): verifying checks the signature and the
age, then asks the app's ``load(token_id)`` for the actor, which answers ``None`` once the
row is deleted (revoked). So a token can be neither forged, nor used past ``max_age``, nor
after its revocation::

    async def load(token_id: str) -> User | None:
        record = await sessions.lookup_id(token_id)     # None when revoked
        return record.user if record else None

    tokens = BearerTokens(secret_key, load, max_age=86_400)
    token = tokens.sign(str(record.id))                 # what the client sends:
    #   Authorization: Bearer <token>
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from .channels import InvalidToken, Token, TokenExpired

__all__ = ["BearerTokens", "Unauthorized"]


class Unauthorized(Exception):
    """No valid credentials: answered 401 with a ``WWW-Authenticate`` challenge; *error*
    is the challenge's ``error`` (``invalid_token``), ``None`` when none were given.

    >>> raise Unauthorized("wrong username or password")
    """

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


class BearerTokens:
    """Signs and verifies the API's bearer tokens (see the module docstring).

    >>> tokens = BearerTokens(secret_key, load, max_age=3600)
    >>> actor = await tokens.actor(tokens.sign("4f3c..."))
    """

    def __init__(
        self,
        secret_key: str,
        load: Callable[[str], Awaitable[Any]],
        *,
        max_age: float = 86_400.0,
        salt: str = "api bearer token",
        realm: str = "api",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret_key = secret_key
        self.load = load
        self.max_age = max_age
        self.salt = salt
        self.realm = realm
        self.clock = clock

    def sign(self, token_id: str, *, signed_at: float | None = None) -> str:
        """A token for the stored row *token_id* (signed now, or at *signed_at*).

        >>> tokens.sign(str(record.id))
        'SFMyNTY.g2gD...'
        """
        at = self.clock() if signed_at is None else signed_at
        return Token.sign(self.secret_key, self.salt, token_id, signed_at=at)

    def token_id(self, token: str) -> str:
        """The row id *token* carries; :class:`Unauthorized` when it is forged, malformed
        or expired.

        >>> tokens.token_id(tokens.sign("42"))
        '42'
        """
        try:
            found = Token.verify(
                self.secret_key, self.salt, token, max_age=self.max_age, now=self.clock()
            )
        except TokenExpired:
            raise Unauthorized(
                "the token has expired: sign in again", error="invalid_token"
            ) from None
        except (InvalidToken, ValueError, KeyError, TypeError):
            raise Unauthorized("the token is not valid", error="invalid_token") from None
        if not isinstance(found, str):
            raise Unauthorized("the token is not valid", error="invalid_token")
        return found

    async def actor(self, token: str) -> Any:
        """The actor *token* stands for; :class:`Unauthorized` when it is not valid or was
        revoked.

        >>> user = await tokens.actor(token)
        """
        actor = await self.load(self.token_id(token))
        if actor is None:
            raise Unauthorized("the token was revoked: sign in again", error="invalid_token")
        return actor

    def challenge(self, error: str | None = None, description: str | None = None) -> str:
        """The ``WWW-Authenticate`` value of a 401 (RFC 6750).

        >>> tokens.challenge("invalid_token")
        'Bearer realm="api", error="invalid_token"'
        """
        parts = [f'Bearer realm="{self.realm}"']
        if error:
            parts.append(f'error="{error}"')
        if description:
            safe = description.replace('"', "'")
            parts.append(f'error_description="{safe}"')
        return ", ".join(parts)
