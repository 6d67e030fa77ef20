"""One server of the ``cluster`` suite's channel fan-out, in an interpreter of its own.

``python -m bench._cluster_fanout_server URL NAME``: an endpoint with a Channels socket whose
clients join ``bench:fanout``, on a node called NAME that joins the cluster at Redis URL
(``beam.run(..., name=NAME, cluster=URL)``), or runs alone when URL is :data:`ALONE`. It
prints ``PORT <n>`` once listening, then obeys stdin: ``CPU`` answers ``CPU <seconds>`` (its
process CPU time, every thread), ``GO <count> <interval>`` broadcasts ``tick`` to the topic
``count`` times on a fixed schedule (each payload of the same width, see
:func:`bench._channels_server.payload`) and then says ``DONE <count>``. It runs until its
stdin closes or it is killed. :class:`bench._cluster_fanout.FanoutRig` drives it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import trio

import beam
import web

from ._channels_server import EVENT, TOPIC, payload, say

__all__ = ["ALONE"]

#: The URL argument of a server that runs alone.
ALONE = "-"


class _FanoutChannel(web.Channel):
    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        return None


class _BenchSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {TOPIC: _FanoutChannel}
    check_origin = False
    rate_limit = None
    idle_timeout = 3600.0
    # Every load-generator socket comes from 127.0.0.1: no per-address or global cap.
    max_connections = None
    max_connections_per_address = None


async def _obey(stdin: trio.lowlevel.FdStream) -> None:
    """Answer ``CPU`` and run each ``GO`` burst, until stdin closes."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        words = line.decode().split()
        if words[0] == "CPU":
            say("CPU", time.process_time())
        elif words[0] == "GO":
            count, interval = int(words[1]), float(words[2])
            start = trio.current_time()
            for seq in range(count):
                web.broadcast(TOPIC, EVENT, payload(seq))
                await trio.sleep_until(start + (seq + 1) * interval)
            say("DONE", count)


async def _main() -> None:
    endpoint = web.Endpoint()
    endpoint.socket("/socket", _BenchSocket())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
        say("PORT", port)
        await _obey(trio.lowlevel.FdStream(os.dup(0)))
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    url, name = sys.argv[1:3]
    if url == ALONE:
        beam.run(_main)  # a node alone, as in the channels suite
    else:
        beam.run(_main, name=name, cluster=url)
