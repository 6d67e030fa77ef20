"""Workloads of the ``supervisors`` suite (some run in fresh interpreters)."""

from __future__ import annotations

import logging
import statistics
from time import perf_counter
from typing import Any

import trio
import trio.testing

import beam
from supervisors import DynamicSupervisor, Supervisor, child_spec, worker

from ._measure import Sample, report_and_exit, rss_bytes

__all__ = ["bare_children", "baseline_restarts", "dynamic_children", "supervised_restarts"]

NAME = "bench.child"


def quiet() -> None:
    """Supervisor reports would dominate the figures: switch them off for the measurement."""
    logging.getLogger("supervisors").setLevel(logging.CRITICAL + 1)
    logging.getLogger("beam.crash").setLevel(logging.CRITICAL + 1)


class Announcer(beam.GenServer[None]):
    """A child that tells the bench process it is up, as soon as ``init`` runs."""

    async def init(self, report_to: beam.Pid) -> beam.Ok[None]:
        beam.send(report_to, ("started", beam.self()))
        return beam.Ok(None)


def _percentiles(latencies: list[float]) -> Sample:
    ordered = sorted(latencies)
    return {
        "p50_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
    }


def _is_started(message: Any) -> bool:
    return isinstance(message, tuple) and len(message) == 2 and message[0] == "started"


def supervised_restarts(crashes: int) -> Sample:
    """Kill a supervised, named child *crashes* times; crash-to-restarted latencies."""
    quiet()

    async def main() -> Sample:
        me = beam.self()
        spec = child_spec(Announcer, me, name=NAME)
        # Never escalate, with a window as short as a production one holds (a few entries):
        # the window is a tuple that each restart copies.
        await Supervisor.start_link([spec], max_restarts=10**9, max_seconds=0.001)
        _, pid = await beam.receive(_is_started)
        latencies = []
        for _ in range(crashes):
            started = perf_counter()
            beam.exit(pid, "kill")
            _, pid = await beam.receive(_is_started)
            latencies.append(perf_counter() - started)
            assert beam.whereis(NAME) == pid
        return _percentiles(latencies)

    return beam.run(main)


async def _announce(report_to: beam.Pid) -> None:
    beam.register(NAME, beam.self())
    beam.send(report_to, ("started", beam.self()))
    await beam.receive()  # up until killed, like the supervised child


async def _kill_and_wait(pid: beam.Pid) -> None:
    ref = beam.monitor(pid)
    beam.exit(pid, "kill")
    await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref)


def baseline_restarts(crashes: int) -> Sample:
    """Spawn a fresh process that registers the name and announces itself, *crashes* times."""

    async def main() -> Sample:
        me = beam.self()
        latencies = []
        for _ in range(crashes):
            started = perf_counter()
            beam.spawn(_announce, me)
            _, pid = await beam.receive(_is_started)
            latencies.append(perf_counter() - started)
            assert beam.whereis(NAME) == pid
            await _kill_and_wait(pid)  # frees the name for the next one
        return _percentiles(latencies)

    return beam.run(main)


async def _idle() -> None:
    await beam.receive()


def dynamic_children(n: int) -> None:
    """Start *n* children under one DynamicSupervisor, then stop it (fresh interpreter)."""
    quiet()

    async def main() -> None:
        pool = await DynamicSupervisor.start_link(max_restarts=10**9, max_seconds=1)
        spec = worker(_idle, restart="temporary", shutdown="brutal_kill")
        before = rss_bytes()
        started = perf_counter()
        for _ in range(n):
            await DynamicSupervisor.start_child(pool, spec)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = perf_counter() - started
        grown = rss_bytes() - before
        stopping = perf_counter()
        await DynamicSupervisor.stop(pool)
        stopped = perf_counter() - stopping
        alive = len(beam.processes())
        report_and_exit(
            {
                "us_per_child": elapsed / n * 1e6,
                "bytes_per_child": grown / n,
                "stop_s": stopped,
                "left": float(alive),
            }
        )

    beam.run(main)


def bare_children(n: int) -> None:
    """The baseline of :func:`dynamic_children`: *n* linked bare processes, then exit them."""

    async def main() -> None:
        beam.trap_exit(True)
        before = rss_bytes()
        started = perf_counter()
        pids = [beam.spawn_link(_idle) for _ in range(n)]
        await trio.testing.wait_all_tasks_blocked()
        elapsed = perf_counter() - started
        grown = rss_bytes() - before
        stopping = perf_counter()
        for pid in pids:
            beam.exit(pid, "kill")
        await trio.testing.wait_all_tasks_blocked()
        stopped = perf_counter() - stopping
        report_and_exit(
            {
                "us_per_child": elapsed / n * 1e6,
                "bytes_per_child": grown / n,
                "stop_s": stopped,
                "left": float(len(beam.processes())),
            }
        )

    beam.run(main)
