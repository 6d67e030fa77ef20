"""The servers of the ``liveview`` suite, each run in its own interpreter.

``python -m bench._liveview_server KIND`` where KIND is:

* ``ours``: our endpoint serving the counter LiveView at ``/counter`` (``web.LiveRouter``);
* ``pyview``: pyview (``pyview-web``) serving the same counter, its Starlette app on uvicorn
  (pyview's own deployment; uvicorn picks wsproto, the only WebSocket library installed);
* ``raw``: a bare trio TCP server holding each connection in one task (the memory baseline
  when pyview is not installed).

Both LiveView servers render the same HTML for the counter, ``<div class="counter"><h1
id="count">N</h1><button phx-click="inc">+1</button></div>``, and add one to N on the
``inc`` event. The server prints ``PORT <n>`` once listening; then every line ``rss`` on its
stdin is answered with ``RSS <bytes>`` (its resident memory, garbage collected first). It runs
until killed.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Mapping
from typing import Any

from ._measure import rss_bytes

PATH = "/counter"
#: The counter, in the Jinja2 syntax both template engines read.
TEMPLATE = (
    '<div class="counter"><h1 id="count">{{ count }}</h1><button phx-click="inc">+1</button></div>'
)


def say(*words: object) -> None:
    print(*words, flush=True)


def _rss() -> int:
    gc.collect()
    return rss_bytes()


def ours() -> None:
    import trio

    import beam
    import web

    class Counter(web.LiveView):
        template = TEMPLATE

        async def mount(
            self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
        ) -> None:
            socket.assign(count=0)

        async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
            if event == "inc":
                socket.assign(count=socket.assigns["count"] + 1)

    async def control() -> None:
        while await trio.to_thread.run_sync(sys.stdin.readline):
            say("RSS", _rss())

    async def main() -> None:
        endpoint = web.Endpoint()
        # The load comes from 127.0.0.1, as fast as it can: no caps, no rate limit.
        router = web.LiveRouter(
            endpoint, rate_limit=None, max_connections=None, max_connections_per_address=None
        )
        router.live(PATH, Counter)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(control)
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            say("PORT", port)

    beam.run(main)


def pyview() -> None:
    import asyncio
    import socket

    import uvicorn
    from pyview import LiveView, PyView  # type: ignore[import-untyped]
    from pyview.template import LiveRender, LiveTemplate, Template  # type: ignore[import-untyped]

    # Compiled once (pyview's template_file() would stat the .html file on every render).
    template = LiveTemplate(Template(TEMPLATE, template_id="counter"))

    class Counter(LiveView):
        async def mount(self, socket: Any, session: Any) -> None:
            socket.context = {"count": 0}

        async def handle_event(self, event: str, payload: Any, socket: Any) -> None:
            if event == "inc":
                socket.context["count"] += 1

        async def render(self, assigns: Any, meta: Any) -> Any:
            return LiveRender(template, assigns, meta)

    async def control() -> None:
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            say("RSS", _rss())

    async def main() -> None:
        app = PyView()
        app.add_live_view(PATH, Counter)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", backlog=4096)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.01)
        control_task = asyncio.create_task(control())
        say("PORT", listener.getsockname()[1])
        await task
        control_task.cancel()

    asyncio.run(main())


def raw() -> None:
    import trio

    async def hold(stream: trio.SocketStream) -> None:
        while await stream.receive_some(4096):
            pass

    async def control() -> None:
        while await trio.to_thread.run_sync(sys.stdin.readline):
            say("RSS", _rss())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(control)
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=4096)
            nursery.start_soon(trio.serve_listeners, hold, listeners)
            say("PORT", listeners[0].socket.getsockname()[1])

    trio.run(main)


if __name__ == "__main__":
    {"ours": ours, "pyview": pyview, "raw": raw}[sys.argv[1]]()
