"""The official ``phoenix`` JavaScript client (npm, unmodified) against our server.

A Node script (``js/channels_conformance.cjs``) drives phoenix.js's ``Socket``, ``Channel``
and ``Presence`` over the ``ws`` package and prints one JSON line per step; this test serves
it, restarts the server when the script asks, and checks every step's facts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

import beam
import presence
import web

from ..support.jsclient import require_node_package, run_node_script
from .rooms import SECRET, UserSocket

SCRIPT = Path(__file__).resolve().parent / "js" / "channels_conformance.cjs"


class _Server:
    """One endpoint served on a fixed port, stoppable and restartable."""

    def __init__(self) -> None:
        self.endpoint = web.Endpoint()
        self.endpoint.socket("/socket", UserSocket())
        self.scope = trio.CancelScope()

    async def start(self, nursery: trio.Nursery, port: int) -> int:
        self.scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[int]) -> None:
            with self.scope:
                await web.serve(self.endpoint, "127.0.0.1", port, task_status=task_status)

        bound: int = await nursery.start(run)
        return bound


async def test_phoenix_js_socket_channel_and_presence() -> None:
    node = require_node_package("phoenix")
    token = web.Token.sign(SECRET, "user socket", "alice")
    steps: dict[str, dict[str, Any]] = {}
    async with beam.open_node():
        await presence.Tracker.start_link()
        server = _Server()
        async with trio.open_nursery() as nursery:
            port = await server.start(nursery, 0)
            script = str(SCRIPT)

            async def on_fact(fact: dict[str, Any]) -> None:
                if fact.get("restart"):
                    server.scope.cancel()
                    await trio.sleep(0.3)  # the client retries against a closed port
                    await server.start(nursery, port)
                else:
                    steps[fact.pop("step")] = fact

            await run_node_script([node, script, str(port), token], on_fact)
            nursery.cancel_scope.cancel()

    assert steps["join_and_push"] == {
        "joined": {"user": "alice"},
        "echo": {"status": "ok", "response": {"echo": {"text": "héllo"}}},
    }
    assert steps["bad_token_refused"] == {"refused": True}
    assert steps["broadcast"] == {"alice": {"text": "to everyone"}, "bob": {"text": "to everyone"}}
    assert steps["presence"] == {"events": ["join:alice", "join:bob", "leave:bob"]}
    crash = steps["crash_and_rejoin"]
    assert crash["joins"] == 2
    assert crash["afterCrash"] == {"status": "ok", "response": {"echo": {"again": True}}}
    assert crash["lobbyStillThere"]["status"] == "ok"
    assert steps["heartbeat"] == {"answered": True}
    restart = steps["restart_and_reconnect"]
    assert restart["closeCode"] == 1001
    assert restart["afterRestart"] == {"status": "ok", "response": {"echo": {"restarted": True}}}
