"""The per-user message rate limit: at most N messages a minute, across every tab and socket.

One GenServer (registered as ``chat.ratelimit``, supervised with the rest of the chat) keeps a
sliding window of send times per user; asking it is one call. Its state is soft: if it is
killed, it restarts empty, which at worst forgives a burst.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import beam

NAME: Final = "chat.ratelimit"
WINDOW_SECONDS: Final = 60.0


class RateLimited(Exception):
    """Over the limit; the message says how long to wait."""


@dataclass
class _Limits:
    per_minute: int
    sent: dict[str, deque[float]] = field(default_factory=dict)


class RateLimiter(beam.GenServer[_Limits]):
    """``call(NAME, user_id)`` answers ``("ok",)`` or ``("wait", seconds, per_minute)``."""

    async def init(self, per_minute: int) -> beam.Ok[_Limits]:
        return beam.Ok(_Limits(per_minute))

    async def handle_call(
        self, request: Any, from_: beam.From, state: _Limits
    ) -> beam.Reply[_Limits]:
        now = time.monotonic()
        times = state.sent.setdefault(str(request), deque())
        while times and now - times[0] >= WINDOW_SECONDS:
            times.popleft()
        if len(times) >= state.per_minute:
            wait = WINDOW_SECONDS - (now - times[0])
            return beam.Reply(("wait", wait, state.per_minute), state)
        times.append(now)
        return beam.Reply(("ok",), state)


async def check(user_id: str) -> None:
    """Count one message for *user_id*; raise :class:`RateLimited` when over the limit."""
    answer = await beam.call(NAME, user_id)
    if answer[0] == "wait":
        _, seconds, per_minute = answer
        raise RateLimited(
            f"slow down: at most {per_minute} messages a minute; try again in {seconds:.0f} s"
        )
