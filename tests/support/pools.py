"""The Channels pools as tests look at them: the processes under every partition of a pool."""

from __future__ import annotations

import beam
from supervisors import DynamicSupervisor
from web.channels._pools import PARTITIONS


async def children_of(pool: str) -> list[beam.Pid]:
    """The live children of every partition of *pool* (``web.channels``, ``web.transports``)."""
    pids: list[beam.Pid] = []
    for i in range(PARTITIONS):
        pids.extend(c.pid for c in await DynamicSupervisor.which_children(f"{pool}.{i}") if c.pid)
    return pids
