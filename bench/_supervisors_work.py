"""Workloads of the ``supervisors`` suite (some run in fresh interpreters)."""

from __future__ import annotations

import logging
import statistics
from time import perf_counter, thread_time
from typing import Any

import trio
import trio.testing

import beam
from supervisors import DynamicSupervisor, Supervisor, child_spec, worker

from ._measure import Sample, report_and_exit, rss_bytes

__all__ = ["bare_children", "dynamic_children", "restart_latencies"]

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


FRESH = "bench.fresh"


async def _kill_and_wait(pid: beam.Pid) -> None:
    ref = beam.monitor(pid)
    beam.exit(pid, "kill")
    await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref)


async def _announce(report_to: beam.Pid) -> None:
    beam.register(FRESH, beam.self())
    beam.send(report_to, ("started", beam.self()))
    await beam.receive()  # up until killed, like the supervised child


def restart_latencies(crashes: int) -> Sample:
    """Supervised restarts and their baseline, interleaved sample by sample in one node.

    Each of the *crashes* rounds takes one sample of each side, in alternating order, from a
    quiet node (every task blocked), so load on a shared box and the heap's growth reach both
    sides alike:

    * supervised: kill the named child of a one_for_one Supervisor, until the restarted child
      announces itself from ``init`` (by then it holds the name);
    * baseline: spawn a fresh process that registers a name and announces itself (it is then
      killed, unmeasured, to free the name).

    Returns p50 and p99 (µs) of each side.
    """
    quiet()

    async def supervised(pid: beam.Pid) -> tuple[float, float, beam.Pid]:
        cpu = thread_time()
        started = perf_counter()
        beam.exit(pid, "kill")
        _, pid = await beam.receive(_is_started)
        elapsed = perf_counter() - started
        cpu = thread_time() - cpu
        assert beam.whereis(NAME) == pid
        return elapsed, cpu, pid

    async def fresh(me: beam.Pid) -> tuple[float, float]:
        cpu = thread_time()
        started = perf_counter()
        beam.spawn(_announce, me)
        _, pid = await beam.receive(_is_started)
        elapsed = perf_counter() - started
        cpu = thread_time() - cpu
        assert beam.whereis(FRESH) == pid
        await _kill_and_wait(pid)
        return elapsed, cpu

    async def main() -> Sample:
        me = beam.self()
        spec = child_spec(Announcer, me, name=NAME)
        # Never escalate, with a window as short as a production one holds (a few entries).
        await Supervisor.start_link([spec], max_restarts=10**9, max_seconds=0.001)
        _, pid = await beam.receive(_is_started)
        ours: list[float] = []
        base: list[float] = []
        ours_cpu: list[float] = []
        base_cpu: list[float] = []
        for round_ in range(crashes):
            for side in (0, 1) if round_ % 2 == 0 else (1, 0):
                await trio.testing.wait_all_tasks_blocked()
                if side == 0:
                    elapsed, cpu, pid = await supervised(pid)
                    ours.append(elapsed)
                    ours_cpu.append(cpu)
                else:
                    elapsed, cpu = await fresh(me)
                    base.append(elapsed)
                    base_cpu.append(cpu)
        sample: Sample = {}
        for label, wall, spent in (("ours", ours, ours_cpu), ("base", base, base_cpu)):
            for key, value in _percentiles(wall).items():
                sample[f"{label}_{key}"] = value
            # The same in this thread's CPU time: what the box's other load does not change
            # (logged beside the figures, to tell the runtime's cost from the box's noise).
            for key, value in _percentiles(spent).items():
                sample[f"{label}_cpu_{key}"] = value
        for key in ("p50_us", "p99_us", "cpu_p50_us", "cpu_p99_us"):
            ratio = sample[f"ours_{key}"] / sample[f"base_{key}"]
            sample[f"ratio_{key.removesuffix('_us')}"] = ratio
        return sample

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
