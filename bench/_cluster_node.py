"""The node program of the ``cluster`` suite: one beam node in its own OS process.

``python -m bench._cluster_node URL NAMESPACE NAME HEARTBEAT TIMEOUT`` joins the cluster at
Redis *URL* (:func:`beam.cluster.start_pubsub` with that namespace, heartbeat and timeout) as
*NAME*, registers its command process as :data:`COMMANDER`, prints ``{"event": "ready"}``
and obeys one JSON command a line on stdin (``{"op": ..., "id": ..., **args}``), answering
each with ``{"event": "answer", "id": ..., **fields}`` on stdout (``error`` when it failed).
The suite drives it with :class:`bench._cluster_control.NodeProgram`.

Commands, ours and the raw baseline of each figure side by side:

* ``sink`` (n, reply_node) / ``raw_sink`` (n, channel, done): a process that takes *n*
  messages (registered as :data:`SINK`; raw: read from *channel*), then tells the sender
  (``(COMMANDER, reply_node)``; raw: a message on *done*);
* ``blast`` (n, to) / ``raw_blast`` (n, channel, done): send *n* copies of :data:`MESSAGE`
  to ``(SINK, to)`` with ``beam.send`` (raw: publish the same encoded bytes in pipelined
  batches of :data:`BATCH`) and answer the ``seconds`` until the sink said it had them all;
* ``server`` / ``raw_echo`` (channel, reply): a GenServer registered as :data:`SERVER` that
  answers every call with its request (raw: every message on *channel* republished on
  *reply*);
* ``call`` (n, to) / ``raw_ping`` (n, channel, reply): *n* sequential round trips
  (``beam.call((SERVER, to), REQUEST)``; raw: publish, then wait for the echo), answering
  ``p50_us`` and ``p99_us``;
* ``await_nodes`` (names): wait until ``beam.nodes()`` lists them all;
* ``watch`` (node) then ``wait_down`` (node): see *node* in ``beam.nodes()``, call
  ``beam.monitor_node(node)`` and answer; ``wait_down`` answers ``at``, the
  ``time.monotonic()`` of the ``beam.NodeDown`` (one clock for every process of the machine).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import trio

import beam
import beam.cluster

from ._cluster_raw import raw_client

#: What a one-way send carries (the raw loop publishes its encoding).
MESSAGE: Final = ("bench", 42, "0123456789abcdef")
#: What a call asks (the raw round trip publishes its encoding).
REQUEST: Final = ("get", 7)
COMMANDER: Final = "bench.node"
SINK: Final = "bench.sink"
SERVER: Final = "bench.server"
#: Envelopes per pipelined round trip: the adapter's batch, used by the raw loop too.
BATCH: Final = 1000
#: How often ``await_nodes`` and the watcher poll ``beam.nodes()`` for a node to appear.
POLL: Final = 0.005
#: The longest any one command may wait (a stuck figure fails instead of hanging).
LIMIT: Final = 120.0

_DONE: Final = "bench.done"
_READY: Final = "bench.ready"


def delivery_bytes(to: str, message: Any) -> bytes:
    """The bytes the adapter publishes for ``beam.send((to, node), message)``."""
    return beam.cluster.encode_delivery(to, None, message)


def _say(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _is(expected: Any) -> Callable[[Any], bool]:
    return lambda message: bool(message == expected)


# -- one-way sends -------------------------------------------------------------------------


async def _sink(n: int, reply_node: str) -> None:
    receive = beam.receive
    for _ in range(n):
        await receive()
    beam.send((COMMANDER, reply_node), (_DONE, n))


async def _raw_sink(url: str, commander: beam.Pid, n: int, channel: str, done: str) -> None:
    async with raw_client(url, subscribe=[channel]) as redis:
        beam.send(commander, (_READY, channel))
        for _ in range(n):
            await redis.next_message()
        await redis.publish(done, b"done")


async def _blast(n: int, to: str) -> dict[str, Any]:
    send = beam.send
    dest = (SINK, to)
    started = time.perf_counter()
    for _ in range(n):
        send(dest, MESSAGE)
    await beam.receive(_is((_DONE, n)), timeout=LIMIT)
    return {"seconds": time.perf_counter() - started}


async def _raw_blast(url: str, n: int, channel: str, done: str) -> dict[str, Any]:
    data = delivery_bytes(SINK, MESSAGE)
    async with raw_client(url, subscribe=[done]) as redis:
        started = time.perf_counter()
        for first in range(0, n, BATCH):
            await redis.publish_all(channel, [data] * min(BATCH, n - first))
        with trio.fail_after(LIMIT):
            await redis.next_message()
        return {"seconds": time.perf_counter() - started}


# -- round trips ---------------------------------------------------------------------------


class _Echo(beam.GenServer[None]):
    async def init(self, arg: Any) -> beam.Ok[None]:
        return beam.Ok(None)

    async def handle_call(self, request: Any, from_: beam.From, state: None) -> beam.Reply[None]:
        return beam.Reply(request, state)


async def _raw_echo(url: str, commander: beam.Pid, channel: str, reply: str) -> None:
    async with raw_client(url, subscribe=[channel]) as redis:
        beam.send(commander, (_READY, channel))
        while True:
            await redis.publish(reply, await redis.next_message())


def _percentiles(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    return {
        "p50_us": 1e6 * statistics.median(ordered),
        "p99_us": 1e6 * ordered[int(0.99 * (len(ordered) - 1))],
    }


async def _caller(commander: beam.Pid, n: int, to: str) -> None:
    """The calls run in a process of their own: whatever a call raises ends it, not the node."""
    try:
        dest: Any = (SERVER, to)
        call: Any = beam.call
        seconds = []
        for _ in range(n):
            started = time.perf_counter()
            await call(dest, REQUEST, timeout=10.0)
            seconds.append(time.perf_counter() - started)
        beam.send(commander, ("bench.called", _percentiles(seconds)))
    except Exception as error:
        beam.send(commander, ("bench.called", {"error": f"{type(error).__name__}: {error}"}))


async def _call(n: int, to: str) -> dict[str, Any]:
    beam.spawn(_caller, beam.self(), n, to)
    _, result = await beam.receive(
        lambda m: type(m) is tuple and m[:1] == ("bench.called",), timeout=LIMIT
    )
    answer: dict[str, Any] = result
    return answer


async def _raw_ping(url: str, n: int, channel: str, reply: str) -> dict[str, Any]:
    data = delivery_bytes(SERVER, REQUEST)
    seconds = []
    async with raw_client(url, subscribe=[reply]) as redis:
        with trio.fail_after(LIMIT):
            for _ in range(n):
                started = time.perf_counter()
                await redis.publish(channel, data)
                await redis.next_message()
                seconds.append(time.perf_counter() - started)
    return _percentiles(seconds)


# -- nodes ---------------------------------------------------------------------------------


async def _await_nodes(names: list[str]) -> dict[str, Any]:
    with trio.fail_after(LIMIT):
        while not set(names) <= set(beam.nodes()):  # noqa: ASYNC110 - polls the cluster view
            await trio.sleep(POLL)
    return {"nodes": beam.nodes()}


async def _watcher(commander: beam.Pid, node: str) -> None:
    with trio.fail_after(LIMIT):
        while node not in beam.nodes():  # noqa: ASYNC110 - polls the cluster view
            await trio.sleep(POLL)
    beam.monitor_node(node)
    beam.send(commander, ("bench.watching", node))
    await beam.receive(lambda m: type(m) is beam.NodeDown and m.node == node, timeout=LIMIT)
    beam.send(commander, ("bench.down", node, time.monotonic()))


async def _watch(node: str) -> None:
    beam.spawn(_watcher, beam.self(), node)
    await beam.receive(_is(("bench.watching", node)), timeout=LIMIT)


async def _wait_down(node: str) -> dict[str, Any]:
    message = await beam.receive(
        lambda m: type(m) is tuple and m[:2] == ("bench.down", node), timeout=LIMIT
    )
    return {"at": message[2]}


# -- the command loop ----------------------------------------------------------------------


async def _serve(url: str) -> None:
    me = beam.self()
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
            if op == "sink":
                beam.register(SINK, beam.spawn(_sink, command["n"], command["reply_node"]))
            elif op == "raw_sink":
                beam.spawn(_raw_sink, url, me, command["n"], command["channel"], command["done"])
                await beam.receive(_is((_READY, command["channel"])), timeout=LIMIT)
            elif op == "blast":
                answer.update(await _blast(**command))
            elif op == "raw_blast":
                answer.update(await _raw_blast(url, **command))
            elif op == "server":
                await _Echo.start(name=SERVER)
            elif op == "raw_echo":
                beam.spawn(_raw_echo, url, me, command["channel"], command["reply"])
                await beam.receive(_is((_READY, command["channel"])), timeout=LIMIT)
            elif op == "call":
                answer.update(await _call(**command))
            elif op == "raw_ping":
                answer.update(await _raw_ping(url, **command))
            elif op == "await_nodes":
                answer.update(await _await_nodes(**command))
            elif op == "watch":
                await _watch(**command)
            elif op == "wait_down":
                answer.update(await _wait_down(**command))
            elif op != "ping":
                raise ValueError(f"unknown command {op!r}")
        except Exception as error:
            answer["error"] = f"{type(error).__name__}: {error}"
        _say(answer)


async def _main(url: str, namespace: str, name: str, heartbeat: float, timeout: float) -> None:
    await beam.cluster.start_pubsub(
        url, node=name, namespace=namespace, heartbeat=heartbeat, timeout=timeout
    )
    beam.register(COMMANDER, beam.self())
    await _serve(url)


if __name__ == "__main__":
    url, namespace, name, heartbeat, timeout = sys.argv[1:6]
    beam.run(_main, url, namespace, name, float(heartbeat), float(timeout))
