"""Node-side steps of the ``beam.cluster.flush`` tests (run with the ``run`` command of
:mod:`tests.support.nodes`)."""

from __future__ import annotations

import os
import signal

import beam


async def broadcast_flush_and_die(topic: str, count: int) -> None:
    """Broadcast ``("m", i)`` for each i in ``range(count)``, wait for ``flush``, then SIGKILL
    this node program at once (as a crash or an OOM kill would)."""
    for i in range(count):
        beam.broadcast(topic, ("m", i))
    if not await beam.cluster.flush():
        raise RuntimeError("flush: the broadcasts did not reach Redis")
    os.kill(os.getpid(), signal.SIGKILL)
