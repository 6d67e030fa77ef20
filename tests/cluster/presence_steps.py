"""Node-side steps of the multi-node presence tests (run with the ``run`` command of
:mod:`tests.support.nodes`).

A node starts a :class:`presence.Tracker` with the test's periods and, before it, one
*viewer* process per topic: a subscriber that applies every ``presence_diff`` it receives to
its own copy of the presences exactly as phoenix.js ``Presence.syncDiff`` does
(:mod:`tests.presence.phoenix_js`). Presences belong to *holder* processes registered by
name, started on first use; killing a holder makes its presences leave. :func:`serve` runs a
web endpoint with the Channels tests' ``room:*`` channel, which tracks a joining client when
its join params say ``track`` (phoenix.js clients connect to it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

import beam
import presence
import web
from tests.presence.phoenix_js import sync_diff
from tests.web.rooms import UserSocket

_VIEW = "presence_steps.view"


async def _viewer(topic: str, started: beam.Pid) -> None:
    beam.subscribe(topic)
    beam.send(started, ("viewing", topic))
    client: dict[str, Any] = {}
    while True:
        message = await beam.receive()
        if isinstance(message, presence.PresenceDiff):
            sync_diff(client, message.payload)
        elif type(message) is tuple and message[:1] == (_VIEW,):
            beam.send(message[1], (_VIEW, topic, json.loads(json.dumps(client))))


async def _holder() -> None:
    await beam.receive(lambda message: False)  # until killed


def _is(expected: Any) -> Callable[[Any], bool]:
    return lambda message: bool(message == expected)


def _view_of(topic: str) -> Callable[[Any], bool]:
    return lambda message: type(message) is tuple and message[:2] == (_VIEW, topic)


def _viewer_name(tracker: str, topic: str) -> str:
    return f"{tracker}:view:{topic}"


async def start(tracker: str, topics: list[str], **options: Any) -> str:
    """Start a viewer for each of *topics*, then the tracker *tracker* with *options*
    (``shards``, ``broadcast_period`` and the other :class:`presence.Tracker` options);
    answer this node's name."""
    for topic in topics:
        pid = beam.spawn(_viewer, topic, beam.self())
        beam.register(_viewer_name(tracker, topic), pid)
        await beam.receive(_is(("viewing", topic)), timeout=5)
    await presence.Tracker.start(name=tracker, **options)
    return beam.node()


async def stop(tracker: str, topics: list[str]) -> None:
    """Stop the tracker and the viewers."""
    await beam.GenServer.stop(tracker)
    for topic in topics:
        pid = beam.whereis(_viewer_name(tracker, topic))
        if pid is not None:
            beam.exit(pid, beam.KILL)


def _holder_pid(name: str) -> beam.Pid:
    pid = beam.whereis(name)
    if pid is None:
        pid = beam.spawn(_holder)
        beam.register(name, pid)
    return pid


async def track(tracker: str, holder: str, topic: str, key: str, meta: dict[str, Any]) -> str:
    """Track the holder *holder* (started if needed); answer the ``phx_ref``."""
    return await presence.track(_holder_pid(holder), topic, key, meta, tracker=tracker)


async def untrack(tracker: str, holder: str, topic: str, key: str) -> None:
    """Untrack the holder *holder* in *topic* as *key*."""
    await presence.untrack(_holder_pid(holder), topic, key, tracker=tracker)


async def update(tracker: str, holder: str, topic: str, key: str, meta: dict[str, Any]) -> str:
    """Replace the meta of a presence; answer the new ``phx_ref``."""
    return await presence.update(_holder_pid(holder), topic, key, meta, tracker=tracker)


async def kill_holder(holder: str) -> None:
    """Kill the holder *holder* (its presences leave) and wait until it is gone."""
    pid = beam.whereis(holder)
    if pid is None:
        return
    ref = beam.monitor(pid)
    beam.exit(pid, beam.KILL)
    await beam.receive(lambda m: type(m) is beam.Down and m.ref == ref, timeout=5)


async def view(tracker: str, topics: list[str]) -> dict[str, dict[str, Any]]:
    """For each topic: ``list``, what ``presence.list`` says, and ``client``, what its viewer
    made of the diffs it got."""
    seen: dict[str, dict[str, Any]] = {}
    for topic in topics:
        beam.send(_viewer_name(tracker, topic), (_VIEW, beam.self()))
        _, _, client = await beam.receive(_view_of(topic), timeout=5)
        seen[topic] = {"list": presence.list(topic, tracker=tracker), "client": client}
    return seen


async def _server(started: beam.Pid) -> None:
    endpoint = web.Endpoint()
    endpoint.socket("/socket", UserSocket())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
        beam.send(started, ("serving", port))


async def serve() -> int:
    """Serve the ``room:*`` channel on a free port (until the node ends); answer the port."""
    beam.spawn(_server, beam.self())
    _, port = await beam.receive(lambda m: type(m) is tuple and m[:1] == ("serving",), timeout=5)
    assert type(port) is int
    return port


async def track_many(tracker: str, holder: str, topic: str, count: int) -> float:
    """Track the holder *holder* in *topic* under *count* keys; answer the seconds it took."""
    pid = _holder_pid(holder)
    start = trio.current_time()
    for i in range(count):
        await presence.track(pid, topic, f"user{i}", {"i": i}, tracker=tracker)
    return trio.current_time() - start


async def wait_count(tracker: str, topic: str, count: int, within: float) -> float:
    """Wait until *topic* lists *count* presences; answer the seconds it took."""
    start = trio.current_time()
    with trio.fail_after(within):
        while _count(presence.list(topic, tracker=tracker)) != count:  # noqa: ASYNC110 - a read
            await trio.sleep(0.005)
    return trio.current_time() - start


def _count(presences: dict[str, Any]) -> int:
    return sum(len(value["metas"]) for value in presences.values())


async def refused_meta(tracker: str) -> str:
    """Track with a meta that cannot cross nodes; answer the error's message."""
    pid = _holder_pid(f"{tracker}:refused")
    try:
        await presence.track(pid, "room:refused", "k", {"at": object()}, tracker=tracker)
    except TypeError as error:
        return str(error)
    return "accepted"
