"""The ``presence`` suite's cross-node figures: trackers on separate nodes (OS processes)
replicating through a Redis of the suite's own.

* ``track`` on node A to the ``presence_diff`` on node B, p50 and p99 over every track of
  every round (pooled, not a median of each round's; the warm-up round left out), against
  one broadcast period (:data:`BROADCAST_PERIOD`). Tracks are spaced by random gaps (a
  quarter to three quarters of a period) so they fall at every phase of the broadcast: a
  track that follows a delta sent less than a period ago is replicated at its shard's next
  broadcast (at most one period, plus the trip), the first after a quiet spell at once.
  Goals: p99 <= 1.0x the period, p50 <= 0.6x (half a period, plus a tenth for the trip);
* the same after a quiet spell: tracks spaced by one and a quarter to two periods, so each
  is the first change after a quiet spell and goes to node B at once, the trip alone.
  Goals: p50 <= 0.25x and p99 <= 0.5x the period (Phoenix, which waits for the next
  broadcast, would show the figures above);
* convergence after a node's SIGKILL: a node tracks :func:`_victim_presences` presences,
  both survivors' subscribers receive their joins, the node is killed; the figure is the time
  from the kill until both survivors' subscribers have received the leave of every one of
  them (and ``presence.list`` shows none). Goal: <= ``down_period`` (:data:`DOWN_PERIOD`) +
  one broadcast period, against ``down_period``. The kill comes right after the survivors
  heard from the node (the broadcast that carried its presences), the slowest phase for
  Phoenix's rule: a replica is down ``down_period`` after it was last heard from, seen at a
  survivor's next broadcast tick. Here it is down sooner: as soon as beam declares its node
  down, which for a node killed outright is when Redis shows its channel without a
  subscriber (a few tenths of a second), so the figure is far below the goal.

Tracker options, the same on every node: :data:`TRACKER_OPTIONS` (Phoenix's, with short
periods; ``max_silent_periods`` 2 so a quiet node still heartbeats well within
``down_period``). beam's own node heartbeat and timeout: :data:`NODE_HEARTBEAT`,
:data:`NODE_TIMEOUT` (not what the tracker uses to declare a node down).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import selectors
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from ._cluster_control import NodeError, NodeProgram, bench_redis
from ._measure import Config, Contender, Sample, log, measure
from ._report import Figure

__all__ = [
    "BROADCAST_PERIOD",
    "DOWN_PERIOD",
    "TRACKER_OPTIONS",
    "PresenceNode",
    "cross_node_figures",
]

BROADCAST_PERIOD: Final = 0.2
DOWN_PERIOD: Final = 1.0
TRACKER_OPTIONS: Final[dict[str, Any]] = {
    "broadcast_period": BROADCAST_PERIOD,
    "down_period": DOWN_PERIOD,
    "max_silent_periods": 2,
}
NODE_HEARTBEAT: Final = 0.2
NODE_TIMEOUT: Final = 1.0
TOPIC: Final = "room:bench"

_MODULE: Final = "bench._presence_node"
_REPO: Final = Path(__file__).resolve().parent.parent


class PresenceNode(NodeProgram):
    """A :class:`~bench._cluster_control.NodeProgram` that runs :mod:`bench._presence_node`
    (the same command protocol, presence commands).

    >>> with PresenceNode(url, "bench-1", "a") as a:
    ...     a.call("start", topic="room:bench", **TRACKER_OPTIONS)
    """

    def __init__(self, url: str, namespace: str, name: str) -> None:
        # NodeProgram starts bench._cluster_node; this is its start with our module, and
        # every other method is NodeProgram's.
        self.name = name
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", _MODULE),
                *(url, namespace, name, str(NODE_HEARTBEAT), str(NODE_TIMEOUT)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_REPO,
            env=env,
            bufsize=0,
        )
        assert self.process.stdout is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self._next_id = 0
        self._ready = False


def _p(ordered: list[float], q: float) -> float:
    return ordered[int(q * (len(ordered) - 1))]


def cross_node_figures(config: Config) -> list[Figure]:
    """Measure the cross-node figures (unavailable without Redis or when a node fails).

    >>> for figure in cross_node_figures(Config(quick=True)):
    ...     print(figure.name, figure.value, figure.status)
    """
    latencies: list[float] | None = None
    quiet: list[float] | None = None
    downs: list[float] | None = None
    with bench_redis() as url:
        if url is None:
            log("  no Redis: no redis-server binary and none at 127.0.0.1:6379")
            log("  the cross-node presence figures are unavailable")
        else:
            namespace = f"bench-presence-{os.getpid()}-{secrets.token_hex(3)}"
            try:
                with _pair(url, namespace) as (a, b):
                    latencies = _track_to_diff(config, a, b)
                    quiet = _track_to_diff(config, a, b, quiet=True)
                    downs = _convergence(config, url, namespace, a, b)
            except NodeError as error:
                log(f"  cross-node presence: unavailable: {error}")
    return [
        *_latency_figures(latencies),
        *_latency_figures(quiet, quiet=True),
        *_down_figures(config, downs),
    ]


@contextlib.contextmanager
def _pair(url: str, namespace: str) -> Iterator[tuple[PresenceNode, PresenceNode]]:
    a, b = PresenceNode(url, namespace, "a"), PresenceNode(url, namespace, "b")
    with a, b:
        for node in (a, b):
            node.call("start", topic=TOPIC, **TRACKER_OPTIONS)
        yield a, b


# -- track on A -> presence_diff on B ------------------------------------------------------


def _track_to_diff(
    config: Config, a: PresenceNode, b: PresenceNode, *, quiet: bool = False
) -> list[float]:
    n = config.size(40, 20, 4) if quiet else config.size(100, 50, 8)
    gaps = (1.25, 2.0) if quiet else (0.25, 0.75)
    latencies: list[float] = []
    rounds = itertools.count()
    prefix = "q" if quiet else "r"

    def one(count: int, keep: bool) -> Sample:
        keys = [f"{prefix}{next(rounds)}:{i}" for i in range(count)]
        tracked = a.call(
            "track",
            topic=TOPIC,
            keys=keys,
            gap_min=gaps[0] * BROADCAST_PERIOD,
            gap_max=gaps[1] * BROADCAST_PERIOD,
        )["at"]
        seen = b.call("seen", topic=TOPIC, keys=keys, event="join", within=30.0)
        if seen["listed"] != count:
            raise NodeError(f"node b lists {seen['listed']} of {count} presences after the diff")
        ms = sorted(1e3 * (got - sent) for sent, got in zip(tracked, seen["at"], strict=True))
        if keep:
            latencies.extend(ms)
        return {"p50_ms": statistics.median(ms), "p99_ms": _p(ms, 0.99)}

    spaced = "after a quiet spell, " if quiet else ""
    measure(
        f"track on A -> presence_diff on B, {spaced}{n} tracks a round, broadcast every "
        f"{BROADCAST_PERIOD} s",
        [Contender("track -> diff", lambda: one(n, True), lambda: one(min(n, 10), False))],
        config.reps,
    )
    ordered = sorted(latencies)
    log(
        f"  pooled over {len(ordered)} tracks: min {ordered[0]:.1f} ms, p50 "
        f"{statistics.median(ordered):.1f}, p99 {_p(ordered, 0.99):.1f}, max {ordered[-1]:.1f}"
    )
    return latencies


def _latency_figures(latencies: list[float] | None, *, quiet: bool = False) -> list[Figure]:
    ordered = sorted(latencies) if latencies else None
    period_ms = BROADCAST_PERIOD * 1e3
    baseline = f"one broadcast period ({BROADCAST_PERIOD} s)"
    count = "" if ordered is None else f", {len(ordered)} tracks"
    spaced = " after a quiet spell" if quiet else ""
    return [
        Figure.measured(
            f"track on A -> presence_diff on B{spaced}, p50{count}",
            None if ordered is None else statistics.median(ordered),
            "ms",
            baseline,
            period_ms,
            "<= 0.25x" if quiet else "<= 0.6x",
        ),
        Figure.measured(
            f"track on A -> presence_diff on B{spaced}, p99{count}",
            None if ordered is None else _p(ordered, 0.99),
            "ms",
            baseline,
            period_ms,
            "<= 0.5x" if quiet else "<= 1.0x",
        ),
    ]


# -- convergence after SIGKILL -------------------------------------------------------------


def _victim_presences(config: Config) -> int:
    return config.size(100, 100, 10)


def _kills(config: Config) -> int:
    return config.size(5, 3, 1)


def _convergence(
    config: Config, url: str, namespace: str, a: PresenceNode, b: PresenceNode
) -> list[float]:
    kills, count = _kills(config), _victim_presences(config)
    victims = [PresenceNode(url, namespace, f"down{i}") for i in range(kills)]
    seconds: list[float] = []
    try:

        def one() -> Sample:
            i = len(seconds)
            victim = victims[i]
            victim.call("start", topic=TOPIC, **TRACKER_OPTIONS)
            keys = [f"down{i}:{k}" for k in range(count)]
            victim.call("track_all", topic=TOPIC, keys=keys)
            for survivor in (a, b):
                survivor.call("seen", topic=TOPIC, keys=keys, event="join", within=30.0)
            killed = victim.kill()
            gone = 0.0
            for survivor in (a, b):
                seen = survivor.call("seen", topic=TOPIC, keys=keys, event="leave", within=30.0)
                if seen["listed"]:
                    raise NodeError(f"node {survivor.name} still lists {seen['listed']} of them")
                gone = max(gone, *seen["at"])
            seconds.append(gone - killed)
            return {"seconds": seconds[-1]}

        measure(
            f"convergence after SIGKILL of a node tracking {count} presences, "
            f"{kills} kill{'s' if kills > 1 else ''}, down_period {DOWN_PERIOD} s",
            [Contender("convergence", one, lambda: None)],
            kills,
        )
    finally:
        for victim in victims:
            victim.stop()
    return seconds


def _down_figures(config: Config, seconds: list[float] | None) -> list[Figure]:
    goal = (
        f"<= {1e3 * (DOWN_PERIOD + BROADCAST_PERIOD):.0f} ms (down_period {DOWN_PERIOD} s + "
        f"broadcast {BROADCAST_PERIOD} s)"
    )
    ordered = sorted(1e3 * s for s in seconds) if seconds else None
    baseline = f"down_period ({DOWN_PERIOD} s)"
    return [
        Figure.measured(
            "presence convergence after SIGKILL (median)",
            None if ordered is None else ordered[len(ordered) // 2],
            "ms",
            baseline,
            1e3 * DOWN_PERIOD,
            goal,
        ),
        Figure.measured(
            f"presence convergence after SIGKILL (worst of {_kills(config)})",
            None if ordered is None else ordered[-1],
            "ms",
            baseline,
            1e3 * DOWN_PERIOD,
            goal,
        ),
    ]
