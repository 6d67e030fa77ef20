"""Node-side steps of the shared rate limiter test (``run`` command of
:mod:`tests.support.nodes`)."""

from __future__ import annotations

import beam
import web

SCOPES = {"message": web.Limit(3, 60.0, "messages")}
SHARED = web.Shared("test.limiter", local_name="test.limiter")


async def start_limiter() -> str:
    """Start this node's limiter for the shared scopes; answer who holds the global name."""
    pid = await web.RateLimiter.start((SCOPES, SHARED), name=SHARED.local_name)
    assert pid is not None
    holder = beam.whereis_global(SHARED.global_name)
    return "here" if holder == pid else "elsewhere"


async def hit(key: str) -> str:
    """One hit of *key*: ``"ok"`` or the refusal's text."""
    try:
        await web.rate_limit("message", key, server=SHARED)
    except web.RateLimited as refused:
        return str(refused)
    return "ok"
