"""The servers of the ``liveview`` suite, each run in its own interpreter.

``python -m bench._liveview_server KIND [TEMPLATE]`` where KIND is:

* ``ours``: our endpoint serving the counter LiveView at ``/counter`` (``web.LiveRouter``);
* ``pyview``: pyview (``pyview-web``) serving the same counter in its documented deployment,
  its Starlette app on ``uvicorn[standard]``: uvicorn picks its WebSocket implementation (the
  ``websockets`` library's sans-I/O protocol with its C speedups when installed), its HTTP
  parser (httptools) and its event loop (uvloop) itself, as ``uvicorn app:app`` does; the
  server reports what it picked;
* ``raw``: a bare trio TCP server holding each connection in one task (the memory baseline
  when pyview is not installed).

TEMPLATE (see :data:`TEMPLATES`) is ``minimal`` (a heading and one button) or ``count``, a
card shaped as pyview's own count example (the count in a styled card, a minus and a plus button,
static text around them). Both LiveView servers render the same HTML and add one to the count
on ``inc`` / ``increment``, subtract one on ``decrement``. The server prints ``STACK ...``
(what serves the WebSockets), then ``PORT <n>`` once listening; then every line ``rss`` on
its stdin is answered with ``RSS <bytes>`` (its resident memory, garbage collected first). It
runs until killed.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Mapping
from typing import Any, Final

from ._measure import rss_bytes

PATH = "/counter"

#: The minimal counter, in the Jinja2 syntax both template engines read.
MINIMAL = (
    '<div class="counter"><h1 id="count">{{ count }}</h1><button phx-click="inc">+1</button></div>'
)

#: A counter card shaped as pyview's count example (``examples/views/count/count.html``):
#: the same structure, utility classes and amount of static text around one dynamic.
COUNT = """<div class="max-w-md mx-auto">
    <div class="bg-white rounded-lg shadow-sm border border-gray-200 p-8">
        <h1 class="text-3xl font-bold text-center text-gray-900 mb-8">A Simple Counter</h1>

        <div class="text-center mb-8">
            <div class="text-6xl font-bold text-gray-800 tabular-nums">{{ count }}</div>
        </div>

        <div class="flex items-center justify-center space-x-4">
            <button phx-click="decrement"
                    class="w-16 h-16 rounded-full bg-white border-2 border-gray-300 text-gray-700 text-2xl font-medium hover:bg-gray-50 hover:border-gray-400 focus:outline-none focus:ring-2 focus:ring-offset-2 focus:ring-blue-500 transition-colors">
                &minus;
            </button>
            <button phx-click="increment"
                    class="w-16 h-16 rounded-full bg-blue-600 text-white text-2xl font-medium hover:bg-blue-700 focus:outline-none focus:ring-2 focus:ring-offset-2 focus:ring-blue-500 transition-colors">
                +
            </button>
        </div>

        <div class="mt-8 text-center">
            <p class="text-sm text-gray-500">
                Open this page with <code class="px-2 py-1 bg-gray-100 rounded text-xs">?c=100</code> to start counting from a hundred
            </p>
        </div>
    </div>
</div>"""  # noqa: E501 - the card's long class lists are what the page sends

#: Template name -> (template, the event that adds one).
TEMPLATES: Final = {"minimal": (MINIMAL, "inc"), "count": (COUNT, "increment")}


def say(*words: object) -> None:
    print(*words, flush=True)


def _rss() -> int:
    gc.collect()
    return rss_bytes()


def _step(event: str) -> int:
    return -1 if event == "decrement" else 1 if event in ("inc", "increment") else 0


def ours(template_name: str) -> None:
    import trio

    import beam
    import web

    class Counter(web.LiveView):
        template = TEMPLATES[template_name][0]

        async def mount(
            self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
        ) -> None:
            socket.assign(count=0)

        async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
            step = _step(event)
            if step:
                socket.assign(count=socket.assigns["count"] + step)

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
            say("STACK", "trio-beam (httptools; websockets sans-I/O framing, C speedups)")
            say("PORT", port)

    beam.run(main)


def pyview(template_name: str) -> None:
    import asyncio
    import socket

    import uvicorn
    from pyview import LiveView, PyView  # type: ignore[import-untyped]
    from pyview.template import LiveRender, LiveTemplate, Template  # type: ignore[import-untyped]

    # Compiled once (pyview's template_file() would stat the .html file on every render).
    template = LiveTemplate(Template(TEMPLATES[template_name][0], template_id="counter"))

    class Counter(LiveView):
        async def mount(self, socket: Any, session: Any) -> None:
            socket.context = {"count": 0}

        async def handle_event(self, event: str, payload: Any, socket: Any) -> None:
            step = _step(event)
            if step:
                socket.context["count"] += step

        async def render(self, assigns: Any, meta: Any) -> Any:
            return LiveRender(template, assigns, meta)

    async def control() -> None:
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            say("RSS", _rss())

    app = PyView()
    app.add_live_view(PATH, Counter)
    # uvicorn's defaults: ws, http and loop "auto" (what `uvicorn app:app` runs).
    config = uvicorn.Config(app, log_level="warning", backlog=4096)
    config.load()

    async def main() -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.01)
        control_task = asyncio.create_task(control())
        loop = type(asyncio.get_running_loop())
        ws = config.ws_protocol_class
        http = config.http_protocol_class
        say(
            "STACK",
            f"uvicorn {uvicorn.__version__}: ws={getattr(ws, '__name__', ws)} "
            f"({getattr(ws, '__module__', '?')}{_websockets_speedups()}), "
            f"http={getattr(http, '__name__', http)}, loop={loop.__module__}.{loop.__name__}",
        )
        say("PORT", listener.getsockname()[1])
        await task
        control_task.cancel()

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())


def _websockets_speedups() -> str:
    """Whether the ``websockets`` library runs with its C extension (frame unmasking)."""
    try:
        import websockets.speedups  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return ""
    return "; websockets C speedups loaded"


def raw(template_name: str) -> None:
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
            say("STACK", "bare trio TCP")
            say("PORT", listeners[0].socket.getsockname()[1])

    trio.run(main)


if __name__ == "__main__":
    kinds = {"ours": ours, "pyview": pyview, "raw": raw}
    kinds[sys.argv[1]](sys.argv[2] if len(sys.argv) > 2 else "minimal")
