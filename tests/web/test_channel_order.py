"""Pushes reach their channel in the order the client sent them, whichever way they go: the
connection's task hands a push for a joined channel straight to the channel's process, and
anything else (joins, leaves) to the transport process; a push sent right behind a join waits
behind it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import trio

import beam
import web
from tests.support import phx


class Seq(web.Channel):
    """Tells the test each push it handles, in the order it handles them."""

    def __init__(self) -> None:
        self.serial = beam.make_ref()

    async def handle_in(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        beam.send("observer", (self.serial, socket.join_ref, payload))
        return web.ok({"n": payload})


class SeqSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"seq:*": Seq}
    rate_limit = None


async def test_pushes_keep_their_order_through_joins_rejoins_and_both_paths() -> None:
    async with beam.open_node():
        beam.register("observer", beam.self())
        endpoint = web.Endpoint()
        endpoint.socket("/socket", SeqSocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            async with phx.connect(port) as client:
                sent: list[tuple[str, int]] = []
                n = 0
                for round_ in range(3):  # each round joins again (a duplicate join)
                    join_ref = f"j{round_}"
                    frame = [join_ref, join_ref, "seq:a", "phx_join", {}]
                    await client.client.send(json.dumps(frame))
                    if round_ == 1:  # joined before its pushes: they go the direct way
                        assert (await client.reply(join_ref))["status"] == "ok"
                    for _ in range(40):  # back to back, no waiting for replies
                        await client.send(join_ref, "seq:a", "n", n)
                        sent.append((join_ref, n))
                        n += 1
                got: list[tuple[Any, str, int]] = []
                with trio.fail_after(10):
                    while len(got) < len(sent):
                        got.append(await beam.receive())
            nursery.cancel_scope.cancel()
    assert [(join_ref, payload) for _, join_ref, payload in got] == sent
    serials = [serial for serial, _, _ in got]
    assert len(set(serials)) == 3  # one channel process per join
    assert serials == sorted(serials, key=serials.index)  # each one's pushes together
