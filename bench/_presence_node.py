"""The node program of the ``presence`` suite's cross-node figures: one beam node, its own
OS process, running a presence tracker.

``python -m bench._presence_node URL NAMESPACE NAME HEARTBEAT TIMEOUT`` joins the cluster at
Redis *URL* as *NAME* (as :mod:`bench._cluster_node` does), prints ``{"event": "ready"}`` and
obeys one JSON command a line on stdin (``{"op": ..., "id": ..., **args}``), answering each
with ``{"event": "answer", "id": ..., **fields}`` (``error`` when it failed). The suite
drives it with :class:`bench._presence_cluster.PresenceNode`.

Times are ``time.monotonic()``: one clock for every process of the machine, so a time taken
on one node and one taken on another subtract.

Commands:

* ``start`` (topic, **options): start a *viewer* subscribed to *topic*, then the tracker
  :data:`TRACKER` with *options* (``broadcast_period``, ``down_period`` and the other
  :class:`presence.Tracker` options). The viewer notes when it first saw each key join and
  leave in a ``presence_diff``;
* ``track`` (topic, keys, gap_min, gap_max): for each key, sleep a random gap in
  [*gap_min*, *gap_max*] seconds, then track it (for one holder process); answer ``at``,
  the time each ``presence.track`` was called;
* ``track_all`` (topic, keys): track every key at once, no gaps;
* ``seen`` (topic, keys, event, within): wait until the viewer saw every key's *event*
  (``"join"`` or ``"leave"``); answer ``at``, the time it saw each, and ``listed``, how many
  of the keys ``presence.list`` shows then.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import trio

import beam
import beam.cluster
import presence

#: The tracker's name on every node of the suite.
TRACKER: Final = "bench.presence"
#: How often ``seen`` asks the viewer (the times it answers are the viewer's own).
POLL: Final = 0.005
#: The longest any one command may wait (a stuck figure fails instead of hanging).
LIMIT: Final = 120.0

_ASK: Final = "bench.ask"
_TOLD: Final = "bench.told"


def _say(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _is(expected: Any) -> Callable[[Any], bool]:
    return lambda message: bool(message == expected)


async def _viewer(topic: str, started: beam.Pid) -> None:
    """Subscribe to *topic*; note when each key first joined and left; answer asks."""
    beam.subscribe(topic)
    beam.send(started, ("bench.viewing", topic))
    seen: dict[str, dict[str, float]] = {"join": {}, "leave": {}}
    while True:
        message = await beam.receive()
        if isinstance(message, presence.PresenceDiff):
            now = time.monotonic()
            for event, keys in (("join", message.joins), ("leave", message.leaves)):
                times = seen[event]
                for key in keys:
                    times.setdefault(key, now)
        elif type(message) is tuple and message[:1] == (_ASK,):
            _, asker, event, keys = message
            times = seen[event]
            beam.send(asker, (_TOLD, tuple(times.get(key) for key in keys)))


async def _holder() -> None:
    await beam.receive(lambda message: False)  # holds its presences until the node ends


def _holder_pid() -> beam.Pid:
    pid = beam.whereis("bench.holder")
    if pid is None:
        pid = beam.spawn(_holder)
        beam.register("bench.holder", pid)
    return pid


async def _start(topic: str, **options: Any) -> None:
    viewer = beam.spawn(_viewer, topic, beam.self())
    beam.register(f"bench.view:{topic}", viewer)
    await beam.receive(_is(("bench.viewing", topic)), timeout=LIMIT)
    await presence.Tracker.start(name=TRACKER, **options)


async def _track(topic: str, keys: list[str], gap_min: float, gap_max: float) -> dict[str, Any]:
    holder = _holder_pid()
    at = []
    for key in keys:
        await trio.sleep(random.uniform(gap_min, gap_max))
        at.append(time.monotonic())
        await presence.track(holder, topic, key, {"at": at[-1]}, tracker=TRACKER)
    return {"at": at}


async def _track_all(topic: str, keys: list[str]) -> None:
    holder = _holder_pid()
    for key in keys:
        await presence.track(holder, topic, key, {}, tracker=TRACKER)


async def _seen(topic: str, keys: list[str], event: str, within: float) -> dict[str, Any]:
    viewer = f"bench.view:{topic}"
    with trio.fail_after(within):
        while True:
            beam.send(viewer, (_ASK, beam.self(), event, tuple(keys)))
            _, times = await beam.receive(
                lambda m: type(m) is tuple and m[:1] == (_TOLD,), timeout=LIMIT
            )
            if None not in times:
                break
            await trio.sleep(POLL)
    listed = presence.list(topic, tracker=TRACKER)
    return {"at": list(times), "listed": sum(1 for key in keys if key in listed)}


async def _serve() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    buffer = b""
    _say({"event": "ready", "node": beam.node()})
    while True:
        while b"\n" not in buffer:
            chunk = await stdin.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        command = json.loads(line)
        answer: dict[str, Any] = {"event": "answer", "id": command.pop("id")}
        op = command.pop("op")
        try:
            if op == "start":
                await _start(**command)
            elif op == "track":
                answer.update(await _track(**command))
            elif op == "track_all":
                await _track_all(**command)
            elif op == "seen":
                answer.update(await _seen(**command))
            elif op != "ping":
                raise ValueError(f"unknown command {op!r}")
        except Exception as error:
            answer["error"] = f"{type(error).__name__}: {error}"
        _say(answer)


async def _main(url: str, namespace: str, name: str, heartbeat: float, timeout: float) -> None:
    await beam.cluster.start_pubsub(
        url, node=name, namespace=namespace, heartbeat=heartbeat, timeout=timeout
    )
    await _serve()


if __name__ == "__main__":
    url, namespace, name, heartbeat, timeout = sys.argv[1:6]
    beam.run(_main, url, namespace, name, float(heartbeat), float(timeout))
