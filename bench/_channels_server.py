"""The servers of the ``channels`` suite, each run in its own interpreter.

``python -m bench._channels_server KIND CLIENTS BROADCASTS INTERVAL`` where KIND is:

* ``ours``: our endpoint with a Channels socket; clients join ``bench:fanout``;
* ``socketio``: python-socketio's ASGI app on uvicorn; clients connect to the default
  namespace;
* ``raw``: a bare trio TCP server holding each connection in one task (the memory baseline).

The server prints ``PORT <n>`` once listening and ``RSS <bytes>`` (its resident memory,
garbage collected) right then and again once CLIENTS clients are in. With BROADCASTS > 0 it
then broadcasts ``tick`` to all of them every INTERVAL seconds on a fixed schedule, each
payload ``{"seq": "000042", "t": "<send time>"}`` of fixed width, so that every frame of a run
has the same size, and prints ``DONE <count>`` after the last one. It runs until killed.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from ._measure import rss_bytes

TOPIC = "bench:fanout"
EVENT = "tick"


def payload(seq: int) -> dict[str, str]:
    """A tick's payload: the same width for every tick of a run."""
    return {"seq": f"{seq:06d}", "t": f"{time.time():.6f}"}


def say(*words: object) -> None:
    print(*words, flush=True)


def _rss() -> int:
    gc.collect()
    return rss_bytes()


def ours(clients: int, broadcasts: int, interval: float) -> None:
    import trio

    import beam
    import web

    class FanoutChannel(web.Channel):
        async def join(
            self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
        ) -> web.ChannelReply | None:
            return None

    class BenchSocket(web.Socket):
        channels: ClassVar[Mapping[str, type[web.Channel]]] = {TOPIC: FanoutChannel}
        check_origin = False
        rate_limit = None
        idle_timeout = 3600.0
        # Every load-generator socket comes from 127.0.0.1: no per-address or global cap.
        max_connections = None
        max_connections_per_address = None

    async def main() -> None:
        endpoint = web.Endpoint()
        endpoint.socket("/socket", BenchSocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            say("RSS", _rss())
            say("PORT", port)
            while len(beam.subscribers(TOPIC)) < clients:  # noqa: ASYNC110 - polls a count
                await trio.sleep(0.05)
            say("RSS", _rss())
            await trio.sleep(0.2)
            start = trio.current_time()
            for seq in range(broadcasts):
                web.broadcast(TOPIC, EVENT, payload(seq))
                await trio.sleep_until(start + (seq + 1) * interval)
            say("DONE", broadcasts)
            await trio.sleep_forever()

    beam.run(main)


def socketio(clients: int, broadcasts: int, interval: float) -> None:
    import asyncio
    import socket

    import socketio as sio_lib  # type: ignore[import-untyped]
    import uvicorn

    sio = sio_lib.AsyncServer(async_mode="asgi", ping_interval=3600, ping_timeout=3600)
    connected = 0

    @sio.event
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        nonlocal connected
        connected += 1

    async def broadcaster() -> None:
        while connected < clients:  # noqa: ASYNC110 - polls a count
            await asyncio.sleep(0.05)
        say("RSS", _rss())
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for seq in range(broadcasts):
            await sio.emit(EVENT, payload(seq))
            await asyncio.sleep(max(0.0, start + (seq + 1) * interval - loop.time()))
        say("DONE", broadcasts)

    async def main() -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        config = uvicorn.Config(sio_lib.ASGIApp(sio), log_level="warning", backlog=4096)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.01)
        say("RSS", _rss())
        say("PORT", listener.getsockname()[1])
        await broadcaster()
        await task

    asyncio.run(main())


def raw(clients: int, broadcasts: int, interval: float) -> None:
    import trio

    held = 0

    async def hold(stream: trio.SocketStream) -> None:
        nonlocal held
        held += 1
        while await stream.receive_some(4096):
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=4096)
            nursery.start_soon(trio.serve_listeners, hold, listeners)
            say("RSS", _rss())
            say("PORT", listeners[0].socket.getsockname()[1])
            while held < clients:  # noqa: ASYNC110 - polls a count
                await trio.sleep(0.05)
            say("RSS", _rss())

    trio.run(main)


if __name__ == "__main__":
    kind, n, count, every = sys.argv[1:5]
    {"ours": ours, "socketio": socketio, "raw": raw}[kind](int(n), int(count), float(every))
