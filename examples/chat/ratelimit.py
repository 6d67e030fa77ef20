"""The chat's rate limits: a :class:`web.RateLimiter` on every node (registered as
``chat.ratelimit``, supervised with the rest of the chat) and the scopes it counts. The limits
hold for the whole cluster, not per node: the limiter holding the global name
``chat.ratelimit`` counts for every node (:class:`web.Shared`), and another takes over if it
goes.

Per client address (``ip:<address>``; behind a proxy every client shares the proxy's):
``login`` (sign-in attempts, whatever their outcome), ``signup`` (new accounts), ``api``
(``POST /api/token``), and ``signin_address`` (growing delays after failed sign-ins). Per
account name: ``signin_account`` (growing delays after failed sign-ins; a success resets
it). Per user: ``message`` (sends), ``room`` (rooms opened), ``edit`` (edits and deletes),
``typing`` (typing notices: extra ones are dropped). The counters are soft: a restarted
limiter starts empty.

``CHAT_RATE_LIMITS`` overrides Limit scopes, ``scope=COUNT/SECONDS`` separated by commas
(``CHAT_RATE_LIMITS="message=120/60,api=100/60"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import web

NAME: Final = "chat.ratelimit"
#: Where the chat's calls go: the cluster's limiter, else this node's.
SHARED: Final = web.Shared(NAME, local_name=NAME)

DEFAULTS: Final[Mapping[str, web.Limit | web.Backoff]] = {
    "login": web.Limit(30, 60.0, "sign-in attempts"),
    "signup": web.Limit(10, 3600.0, "new accounts"),
    # JSON API requests per user, and socket-token requests per address (whose passwords
    # are also checked against the sign-in backoffs below).
    "api": web.Limit(300, 60.0, "API requests"),
    "signin_account": web.Backoff(free=5, base=1.0, cap=900.0, what="failed sign-ins"),
    "signin_address": web.Backoff(free=20, base=1.0, cap=900.0, what="failed sign-ins"),
    "message": web.Limit(60, 60.0, "messages"),
    "room": web.Limit(10, 3600.0, "new rooms"),
    "edit": web.Limit(30, 60.0, "edits"),
    "typing": web.Limit(1, 1.0, "typing notices"),
}


def from_environment(text: str | None = None) -> dict[str, web.Limit]:
    """The Limit scopes ``CHAT_RATE_LIMITS`` (or *text*) overrides.

    >>> from_environment("message=120/60")
    {'message': Limit(count=120, seconds=60.0, what='messages')}
    """
    text = os.environ.get("CHAT_RATE_LIMITS", "") if text is None else text
    found: dict[str, web.Limit] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        scope, _, spec = item.partition("=")
        count, _, seconds = spec.partition("/")
        default = DEFAULTS.get(scope.strip())
        try:
            if not isinstance(default, web.Limit):
                raise ValueError(f"not one of {sorted(DEFAULTS)} that takes COUNT/SECONDS")
            found[scope.strip()] = web.Limit(int(count), float(seconds), default.what)
        except ValueError as exc:
            raise ValueError(
                f"CHAT_RATE_LIMITS: cannot read {item!r} ({exc}); write scope=COUNT/SECONDS, "
                "e.g. message=60/60"
            ) from None
    return found


def scopes(
    messages_per_minute: int = 60, overrides: Mapping[str, web.Limit | web.Backoff] | None = None
) -> dict[str, web.Limit | web.Backoff]:
    """The scopes the chat's limiter starts with: the defaults, *messages_per_minute*, then
    ``CHAT_RATE_LIMITS``, then *overrides*.

    >>> scopes(3)["message"]
    Limit(count=3, seconds=60.0, what='messages')
    """
    found = dict(DEFAULTS)
    found["message"] = web.Limit(messages_per_minute, 60.0, "messages")
    found.update(from_environment())
    found.update(overrides or {})
    return found


async def check(scope: str, key: str) -> None:
    """Count one hit of *key* in *scope*; raises :class:`web.RateLimited` when over.

    >>> await check("message", str(user.id))
    """
    await web.rate_limit(scope, key, server=SHARED)


async def failed(scope: str, key: str) -> None:
    """Count a failed sign-in of *key* in the Backoff *scope*.

    >>> await failed("signin_account", "user:alice")
    """
    await web.record_failure(scope, key, server=SHARED)


async def succeeded(scope: str, key: str) -> None:
    """Forget *key*'s failures in *scope*.

    >>> await succeeded("signin_account", "user:alice")
    """
    await web.reset_limit(scope, key, server=SHARED)
