"""The workloads of the runtime suite: the same job written with beam, raw trio and pykka.

Each function does one repetition and returns (or, in a fresh interpreter, reports) a
:data:`~bench._measure.Sample`. Only the work itself is timed: starting and stopping a node,
a trio run or an actor thread happens outside the clock. Ours always runs as a user gets it,
under :func:`beam.run` with its defaults (GC tuning on); the raw trio baselines use trio as is.

The two sides are kept as alike as the models allow: the trio echo task owns a fixed pair of
channels, so our echo process is told its peer's pid once rather than receiving it in every
message.
"""

from __future__ import annotations

import gc
import math
import resource
from time import perf_counter
from typing import Any

import pykka
import trio
import trio.testing

import beam

from ._measure import Sample, report_and_exit, rss_bytes

#: What beam.run(tune_gc=True) does to the collector; the "tuned" trio baseline copies it.
GC_THRESHOLD = (100_000, 50, 100)


# -- ping-pong: round trips between two processes ---------------------------------------------


async def _beam_echo(peer: beam.Pid) -> None:
    while True:
        beam.send(peer, await beam.receive())


def beam_ping_pong(n: int) -> Sample:
    """*n* round trips between the main process and an echo process."""

    async def main() -> float:
        echo = beam.spawn(_beam_echo, beam.self())
        started = perf_counter()
        for i in range(n):
            beam.send(echo, i)
            await beam.receive()
        return perf_counter() - started

    return {"rate": n / beam.run(main)}


async def _trio_echo(
    inbox: trio.MemoryReceiveChannel[int], outbox: trio.MemorySendChannel[int]
) -> None:
    async for message in inbox:
        outbox.send_nowait(message)


def trio_ping_pong(n: int) -> Sample:
    """*n* round trips between two trio tasks over unbounded memory channels (send_nowait)."""

    async def main() -> float:
        to_echo, echo_inbox = trio.open_memory_channel[int](math.inf)
        to_main, main_inbox = trio.open_memory_channel[int](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_trio_echo, echo_inbox, to_main)
            started = perf_counter()
            for i in range(n):
                to_echo.send_nowait(i)
                await main_inbox.receive()
            elapsed = perf_counter() - started
            nursery.cancel_scope.cancel()
        return elapsed

    return {"rate": n / trio.run(main)}


class _PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def pykka_ping_pong(n: int) -> Sample:
    """*n* ``ask`` round trips from the main thread to a pykka ThreadingActor."""
    actor = _PykkaEcho.start()
    try:
        started = perf_counter()
        for i in range(n):
            actor.ask(i)
        elapsed = perf_counter() - started
    finally:
        actor.stop()
    return {"rate": n / elapsed}


# -- one-way: a stream of sends, then one acknowledgement -------------------------------------


async def _beam_drain(parent: beam.Pid, n: int) -> None:
    for _ in range(n):
        await beam.receive()
    beam.send(parent, "done")


def beam_one_way(n: int) -> Sample:
    """Send *n* messages to a process, which receives them all and then acknowledges."""

    async def main() -> float:
        sink = beam.spawn(_beam_drain, beam.self(), n)
        started = perf_counter()
        for i in range(n):
            beam.send(sink, i)
        await beam.receive()
        return perf_counter() - started

    return {"rate": n / beam.run(main)}


async def _trio_drain(
    inbox: trio.MemoryReceiveChannel[int], ack: trio.MemorySendChannel[str], n: int
) -> None:
    for _ in range(n):
        await inbox.receive()
    ack.send_nowait("done")


def trio_one_way(n: int) -> Sample:
    """``send_nowait`` *n* items into a task's channel; it receives them all and acknowledges."""

    async def main() -> float:
        to_sink, sink_inbox = trio.open_memory_channel[int](math.inf)
        to_main, main_inbox = trio.open_memory_channel[str](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_trio_drain, sink_inbox, to_main, n)
            started = perf_counter()
            for i in range(n):
                to_sink.send_nowait(i)
            await main_inbox.receive()
            return perf_counter() - started

    return {"rate": n / trio.run(main)}


_DONE = object()


class _PykkaCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message is _DONE:
            return self.count
        self.count += 1
        return None


def pykka_tell(n: int) -> Sample:
    """*n* ``tell`` to a pykka ThreadingActor, then one ``ask`` that waits for them all."""
    actor = _PykkaCounter.start()
    try:
        started = perf_counter()
        for i in range(n):
            actor.tell(i)
        actor.ask(_DONE)
        elapsed = perf_counter() - started
    finally:
        actor.stop()
    return {"rate": n / elapsed}


# -- spawn and memory: n idle processes, each blocked on its own mailbox (fresh interpreter) --


async def _beam_idle() -> None:
    await beam.receive()


def beam_spawn(n: int) -> None:
    """Spawn *n* processes waiting in ``receive``; report µs and RSS bytes per process."""

    async def main() -> None:
        before = rss_bytes()
        started = perf_counter()
        for _ in range(n):
            beam.spawn(_beam_idle)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = perf_counter() - started
        report_and_exit(
            {"us_per_proc": elapsed / n * 1e6, "bytes_per_proc": (rss_bytes() - before) / n}
        )

    beam.run(main)


async def _trio_idle(inbox: trio.MemoryReceiveChannel[Any]) -> None:
    await inbox.receive()


def trio_spawn(n: int, tune_gc: bool) -> None:
    """Start *n* trio tasks, each waiting on its own unbounded channel; report like
    :func:`beam_spawn`. With *tune_gc*, first tune the collector as ``beam.run`` does."""

    async def main() -> None:
        if tune_gc:
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLD)
        mailboxes: list[trio.MemorySendChannel[Any]] = []
        async with trio.open_nursery() as nursery:
            before = rss_bytes()
            started = perf_counter()
            for _ in range(n):
                send, receive = trio.open_memory_channel[Any](math.inf)
                mailboxes.append(send)
                nursery.start_soon(_trio_idle, receive)
            await trio.testing.wait_all_tasks_blocked()
            elapsed = perf_counter() - started
            report_and_exit(
                {"us_per_proc": elapsed / n * 1e6, "bytes_per_proc": (rss_bytes() - before) / n}
            )

    trio.run(main)


# -- skynet: a tree of 10 children per node down to `leaves` leaves, sums sent up -----------


def _skynet_sample(leaves: int, total: int, elapsed: float) -> Sample:
    expected = leaves * (leaves - 1) // 2
    if total != expected:
        raise AssertionError(f"skynet summed {total}, expected {expected}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": elapsed, "peak_rss_mb": peak_kib / 1024}


async def _beam_skynet(parent: beam.Pid, num: int, size: int) -> None:
    if size == 1:
        beam.send(parent, num)
        return
    me = beam.self()
    size //= 10
    for i in range(10):
        beam.spawn(_beam_skynet, me, num + i * size, size)
    total = 0
    for _ in range(10):
        total += await beam.receive()
    beam.send(parent, total)


def beam_skynet(leaves: int) -> Sample:
    """Skynet with one beam process per node; *leaves* is a power of ten."""

    async def main() -> Sample:
        started = perf_counter()
        beam.spawn(_beam_skynet, beam.self(), 0, leaves)
        total = await beam.receive()
        return _skynet_sample(leaves, total, perf_counter() - started)

    return beam.run(main)


async def _trio_skynet(parent: trio.MemorySendChannel[int], num: int, size: int) -> None:
    if size == 1:
        parent.send_nowait(num)
        return
    size //= 10
    send, receive = trio.open_memory_channel[int](math.inf)
    total = 0
    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(_trio_skynet, send, num + i * size, size)
        for _ in range(10):
            total += await receive.receive()
    parent.send_nowait(total)


def trio_skynet(leaves: int) -> Sample:
    """Skynet with raw trio: a nursery and a channel per node, default GC."""

    async def main() -> Sample:
        send, receive = trio.open_memory_channel[int](math.inf)
        started = perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_trio_skynet, send, 0, leaves)
            total = await receive.receive()
        return _skynet_sample(leaves, total, perf_counter() - started)

    return trio.run(main)
