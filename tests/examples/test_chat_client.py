"""The chat's Phoenix Channels client (``examples/chat/client.py``) against a scripted server:
what a server that stops its channels before closing the connection sends (``phx_error``
for each channel, then the close frame) must end in a reconnect, never in a client that
hangs."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from types import FrameType

import trio
from trio_websocket import WebSocketRequest, serve_websocket

from examples.chat.client import connect


class Hung(Exception):
    """The client ran for seconds without letting any other task run."""


@contextmanager
def alarm_after(seconds: int) -> Iterator[None]:
    """Raise :class:`Hung` in whatever runs after *seconds*: a loop that never yields to trio
    cannot be stopped by a trio deadline, but a signal handler still runs in it."""

    def hung(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s: a loop without a checkpoint")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


_served: set[str] = set()


async def stop_channels_then_close(request: WebSocketRequest) -> None:
    """Answer the join, then do what a server shutting down does: the channel stops
    (``phx_error``), then the connection closes (1001) at once, while the client rejoins.
    A client that reconnects (the same token) is kept waiting."""
    ws = await request.accept()
    if request.path in _served:
        await trio.sleep_forever()
    _served.add(request.path)
    join_ref, ref, topic, _event, _payload = json.loads(await ws.get_message())
    await ws.send_message(
        json.dumps([join_ref, ref, topic, "phx_reply", {"status": "ok", "response": {}}])
    )
    await ws.send_message(json.dumps([join_ref, join_ref, topic, "phx_error", {}]))
    await ws.aclose(1001, "server closing")


async def test_a_channel_error_followed_by_the_close_frame_ends_in_a_reconnect() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            serve_websocket, stop_channels_then_close, "127.0.0.1", 0, None
        )
        port = server.port
        with alarm_after(10), trio.fail_after(8):
            for i in range(20):  # the race depends on trio's scheduling: run it many times
                async with connect(f"http://127.0.0.1:{port}", f"token{i}") as socket:
                    await socket.join("room:1")
                    async with aclosing(socket.messages()) as messages:
                        async for topic, event, _payload in messages:
                            if (topic, event) == ("phoenix", "disconnected"):
                                break
        nursery.cancel_scope.cancel()
