"""Oban's retry backoff: exponential, padded, with jitter that only adds."""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(
    attempt: int,
    max_attempts: int,
    *,
    clamped_max: int = 20,
    rand: random.Random | None = None,
) -> float:
    """Seconds to wait before retrying after failed *attempt*: Oban's default, ``15 +
    2**attempt`` (the attempt scaled to at most 20 when ``max_attempts`` is larger), plus up
    to 10% jitter::

        backoff(1, 20)     # 17..18.7 s
        backoff(20, 20)    # about 12 days
    """
    if max_attempts > clamped_max:
        attempt = round(attempt / max_attempts * clamped_max)
    base = 15 + 2 ** min(attempt, 100)
    r = (rand or random).random()
    return float(base + int(r * 0.1 * base))
