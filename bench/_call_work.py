"""GenServer workloads of the runtime suite: ``beam.call`` round trips to an echo server.

Kept apart from :mod:`bench._runtime_work` because it needs ``beam.GenServer``: the suite
imports this module only once beam has that API.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import beam

from ._measure import Sample


class _Echo(beam.GenServer[None]):
    async def init(self, arg: Any) -> beam.Ok[None]:
        return beam.Ok(None)

    async def handle_call(self, request: Any, from_: beam.From, state: None) -> beam.Reply[None]:
        return beam.Reply(request, state)


def gen_server_calls(n: int, queued: int = 0) -> Sample:
    """*n* ``beam.call`` round trips from a caller with *queued* unrelated messages waiting in
    its mailbox (untouched by the calls: replies arrive in reply slots)."""

    async def main() -> float:
        server = await _Echo.start_link(None)
        assert server is not None
        me = beam.self()
        for i in range(queued):
            beam.send(me, ("unrelated", i))
        started = perf_counter()
        for i in range(n):
            await beam.call(server, i)
        return perf_counter() - started

    return {"rate": n / beam.run(main)}
