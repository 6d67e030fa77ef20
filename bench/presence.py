"""The ``presence`` suite: Presence operations against plain-dict baselines, in the same run.

Figures (goal from the issue: presence operations within 5x of a plain dict update):

* track + untrack through the tracker (``presence.track``/``presence.untrack``: a call to the
  shard, the CRDT change, a monitor, the diff broadcast), 10,000 presences in one topic and
  10,000 topics of one presence, in µs per operation: <= 5x the same calls to a GenServer
  that keeps the presences in a plain dict;
* the same joins and leaves on the CRDT alone (``presence.State``, no process): <= 5x a plain
  dict presence table (topic -> (pid, key) -> meta, plus the pid index a table needs to drop a
  process's presences when it exits);
* merging two 10,000-entry replica states (one replica's whole state into the other's):
  <= 5x merging two such dict tables (a union of the entries, reporting the joins);
* across nodes (each node its own OS process, replicating through a Redis of the suite's own;
  see :mod:`bench._presence_cluster`), broadcast period 0.2 s and down_period 1.0 s:
  ``track`` on node A to the ``presence_diff`` on node B, p50 and p99 over every track,
  against one broadcast period (goals <= 0.6x and <= 1.0x); and the time from a node's
  SIGKILL until both survivors received the leave of every presence it tracked, against
  ``down_period`` (goal: <= down_period + one broadcast period). Without Redis these four
  figures are unavailable.

Every presence is tracked for its own process (spawned before the clock starts). The pure
workloads (state and dict table) run with the garbage collector set up as ``beam.run`` sets it
(the heap so far frozen, a young-generation threshold of 100,000), as they would inside a
tracker shard, on both sides alike.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Any

import beam
import presence

from ._measure import Config, Contender, Sample, measure
from ._presence_cluster import cross_node_figures
from ._report import Figure

__all__ = ["run"]

GOAL = "<= 5x"
#: What beam.run(tune_gc=True) does to the collector (see beam.open_node).
GC_THRESHOLD = (100_000, 50, 100)
LAYOUTS = {
    "10,000 presences in one topic": lambda i: ("room:lobby", f"user{i}"),
    "10,000 topics of one presence": lambda i: (f"room:{i}", "user"),
}


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite."""
    n = config.size(10_000, 10_000, 300)
    figures: list[Figure] = []
    for layout in LAYOUTS:
        figures.append(_tracker_figure(config, n, layout))
    for layout in LAYOUTS:
        figures.append(_crdt_figure(config, n, layout))
    figures.append(_merge_figure(config, n))
    figures.extend(cross_node_figures(config))
    return figures


def _named(layout: str, n: int) -> str:
    return layout.replace("10,000", f"{n:,}")


def _tracker_figure(config: Config, n: int, layout: str) -> Figure:
    medians = measure(f"track+untrack via processes, {_named(layout, n)}", [
        Contender("presence", partial(tracker_ops, n, layout)),
        Contender("GenServer + dict", partial(dict_server_ops, n, layout)),
    ], config.reps)
    return Figure.measured(
        f"track+untrack, {_named(layout, n)}", medians["presence"]["us_per_op"], "µs/op",
        "GenServer + dict, call per op", medians["GenServer + dict"]["us_per_op"], GOAL,
    )


def _crdt_figure(config: Config, n: int, layout: str) -> Figure:
    medians = measure(f"join+leave on the state alone, {_named(layout, n)}", [
        Contender("State", partial(state_ops, n, layout)),
        Contender("dict table", partial(dict_table_ops, n, layout)),
    ], config.reps)
    return Figure.measured(
        f"CRDT join+leave, {_named(layout, n)}", medians["State"]["us_per_op"], "µs/op",
        "plain dict presence table", medians["dict table"]["us_per_op"], GOAL,
    )


def _merge_figure(config: Config, n: int) -> Figure:
    medians = measure(f"merge two {n:,}-entry replica states", [
        Contender("State.merge", partial(state_merge, n)),
        Contender("dict union", partial(dict_merge, n)),
    ], config.reps)
    return Figure.measured(
        f"merge two {n:,}-entry replica states", medians["State.merge"]["ms"], "ms",
        "union of two dict tables", medians["dict union"]["ms"], GOAL,
    )


# -- through processes --------------------------------------------------------------------------


async def _idle() -> None:
    await beam.receive()


def tracker_ops(n: int, layout: str) -> Sample:
    """Track *n* processes (one presence each, laid out by *layout*), then untrack them."""
    where = LAYOUTS[layout]

    async def main() -> float:
        await presence.Tracker.start_link()
        pids = [beam.spawn(_idle) for _ in range(n)]
        places = [where(i) for i in range(n)]
        meta = {"online_at": 1_700_000_000}
        track, untrack = presence.track, presence.untrack
        started = perf_counter()
        for pid, (topic, key) in zip(pids, places, strict=True):
            await track(pid, topic, key, meta)
        for pid, (topic, key) in zip(pids, places, strict=True):
            await untrack(pid, topic, key)
        return perf_counter() - started

    return {"us_per_op": beam.run(main) / (2 * n) * 1e6}


class _DictServer(beam.GenServer[dict[str, dict[tuple[beam.Pid, str], Any]]]):
    """The baseline server: presences in a plain dict, one call per operation."""

    async def init(self, arg: Any) -> beam.Ok[dict[str, dict[tuple[beam.Pid, str], Any]]]:
        return beam.Ok({})

    async def handle_call(
        self, request: Any, from_: beam.From, state: dict[str, dict[tuple[beam.Pid, str], Any]]
    ) -> beam.Reply[dict[str, dict[tuple[beam.Pid, str], Any]]]:
        op, pid, topic, key, meta = request
        if op == "track":
            entries = state.get(topic)
            if entries is None:
                entries = state[topic] = {}
            entries[(pid, key)] = meta
        else:
            entries = state[topic]
            del entries[(pid, key)]
            if not entries:
                del state[topic]
        return beam.Reply("ok", state)


def dict_server_ops(n: int, layout: str) -> Sample:
    """The same operations as :func:`tracker_ops`, as calls to a GenServer holding a dict."""
    where = LAYOUTS[layout]

    async def main() -> float:
        server = await _DictServer.start_link(None)
        assert server is not None
        pids = [beam.spawn(_idle) for _ in range(n)]
        places = [where(i) for i in range(n)]
        meta = {"online_at": 1_700_000_000}
        call = beam.call
        started = perf_counter()
        for pid, (topic, key) in zip(pids, places, strict=True):
            await call(server, ("track", pid, topic, key, meta))
        for pid, (topic, key) in zip(pids, places, strict=True):
            await call(server, ("untrack", pid, topic, key, None))
        return perf_counter() - started

    return {"us_per_op": beam.run(main) / (2 * n) * 1e6}


# -- the state alone ----------------------------------------------------------------------------


@contextmanager
def _tuned_gc() -> Iterator[None]:
    """The collector as inside a node started by ``beam.run``, for the timed section."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


@dataclass
class DictTable:
    """The baseline presence table: what a single-node, non-replicated Presence keeps."""

    topics: dict[str, dict[tuple[Any, str], dict[str, Any]]] = field(default_factory=dict)
    pids: dict[Any, set[tuple[str, str]]] = field(default_factory=dict)
    clock: int = 0

    def join(self, pid: Any, topic: str, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        self.clock += 1
        entry = {**meta, "phx_ref": str(self.clock)}
        entries = self.topics.get(topic)
        if entries is None:
            entries = self.topics[topic] = {}
        entries[(pid, key)] = entry
        keys = self.pids.get(pid)
        if keys is None:
            keys = self.pids[pid] = set()
        keys.add((topic, key))
        return entry

    def leave(self, pid: Any, topic: str, key: str) -> dict[str, Any]:
        entries = self.topics[topic]
        entry = entries.pop((pid, key))
        if not entries:
            del self.topics[topic]
        keys = self.pids[pid]
        keys.discard((topic, key))
        if not keys:
            del self.pids[pid]
        return entry

    def merge(self, other: DictTable) -> list[dict[str, Any]]:
        joined = []
        for topic, theirs in other.topics.items():
            ours = self.topics.get(topic)
            if ours is None:
                ours = self.topics[topic] = {}
            for place, entry in theirs.items():
                if place not in ours:
                    ours[place] = entry
                    joined.append(entry)
        return joined


def state_ops(n: int, layout: str) -> Sample:
    """*n* joins then *n* leaves on a :class:`presence.State`."""
    where = LAYOUTS[layout]
    places = [where(i) for i in range(n)]
    meta = {"online_at": 1_700_000_000}
    state = presence.State("bench")
    join, leave = state.join, state.leave
    with _tuned_gc():
        started = perf_counter()
        for pid, (topic, key) in enumerate(places):
            join(pid, topic, key, meta)
        for pid, (topic, key) in enumerate(places):
            leave(pid, topic, key)
        elapsed = perf_counter() - started
    return {"us_per_op": elapsed / (2 * n) * 1e6}


def dict_table_ops(n: int, layout: str) -> Sample:
    """*n* joins then *n* leaves on the :class:`DictTable` baseline."""
    where = LAYOUTS[layout]
    places = [where(i) for i in range(n)]
    meta = {"online_at": 1_700_000_000}
    table = DictTable()
    join, leave = table.join, table.leave
    with _tuned_gc():
        started = perf_counter()
        for pid, (topic, key) in enumerate(places):
            join(pid, topic, key, meta)
        for pid, (topic, key) in enumerate(places):
            leave(pid, topic, key)
        elapsed = perf_counter() - started
    return {"us_per_op": elapsed / (2 * n) * 1e6}


def _place(i: int) -> tuple[str, str]:
    return f"room:{i % 100}", f"user{i}"


def state_merge(n: int) -> Sample:
    """Merge replica b's whole state (*n* presences) into replica a (*n* others)."""
    a, b = presence.State("a"), presence.State("b")
    for i in range(n):
        a.join(i, *_place(i), {"i": i})
        b.join(i, *_place(n + i), {"i": i})
    transfer = b.extract()
    with _tuned_gc():
        started = perf_counter()
        joins, _ = a.merge(transfer)
        elapsed = perf_counter() - started
    assert len(joins) == n
    return {"ms": elapsed * 1e3}


def dict_merge(n: int) -> Sample:
    """Merge dict table b (*n* presences) into dict table a (*n* others)."""
    a, b = DictTable(), DictTable()
    for i in range(n):
        a.join(i, *_place(i), {"i": i})
        b.join(i, *_place(n + i), {"i": i})
    with _tuned_gc():
        started = perf_counter()
        joins = a.merge(b)
        elapsed = perf_counter() - started
    assert len(joins) == n
    return {"ms": elapsed * 1e3}
