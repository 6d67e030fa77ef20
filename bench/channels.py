"""The ``channels`` suite: broadcast fan-out to WebSocket clients, and idle connections.

Figures (goals from the issue):

* fan-out: one topic, 2,000 connected clients, a broadcast every 10 ms; delivered messages
  per second against python-socketio (its ASGI app on uvicorn) running the same scenario in
  the same run: >= 4x; plus the p50/p99 delivery latency and the messages lost by each
  (goal: 0, out of the messages sent);
* memory per idle joined connection, 10,000 of them held by one node: <= 20 KiB, against a
  bare trio server holding the same number of plain TCP connections (one task each).

Each server runs in its own interpreter and the load generator in another (the two cores of
the box are shared by the two processes), see :mod:`bench._channels_work`.
"""

from __future__ import annotations

from . import _channels_work as work
from ._measure import Config, fresh, measure
from ._report import Figure

__all__ = ["run"]


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite."""
    return [*_fanout(config), *_idle(config)]


def _fanout(config: Config) -> list[Figure]:
    clients = config.size(2_000, 1_000, 50)
    broadcasts = config.size(200, 100, 20)
    interval = 0.01
    warm = {"clients": min(clients, 100), "broadcasts": 10}
    contenders = [
        fresh(
            "ours",
            work.fanout,
            warm,
            kind="ours",
            clients=clients,
            broadcasts=broadcasts,
            interval=interval,
        ),
        fresh(
            "python-socketio",
            work.fanout,
            warm,
            kind="socketio",
            clients=clients,
            broadcasts=broadcasts,
            interval=interval,
        ),
    ]
    reps = 1 if config.tiny else min(config.reps, 3)
    medians = measure(
        f"fan-out to {clients:,} clients, {broadcasts} broadcasts every {interval * 1000:.0f} ms",
        contenders,
        reps,
    )
    ours, peer = medians["ours"], medians["python-socketio"]
    return [
        Figure.measured(
            f"fan-out delivered, {clients:,} clients",
            ours["per_s"],
            "msg/s",
            "python-socketio",
            peer["per_s"],
            ">= 4.0x",
        ),
        Figure.measured(
            "fan-out latency p50",
            ours["p50_ms"],
            "ms",
            "python-socketio",
            peer["p50_ms"],
            "<= 1.0x",
        ),
        Figure.measured(
            "fan-out latency p99",
            ours["p99_ms"],
            "ms",
            "python-socketio",
            peer["p99_ms"],
            "<= 1.0x",
        ),
        Figure.measured(
            "fan-out messages lost",
            ours["lost"],
            "msgs",
            "messages sent",
            float(clients * broadcasts),
            "<= 0 msgs",
        ),
        Figure.measured(
            "fan-out messages lost by python-socketio",
            peer["lost"],
            "msgs",
            "messages sent",
            float(clients * broadcasts),
            "<= 0 msgs",
        ),
    ]


def _idle(config: Config) -> list[Figure]:
    clients = config.size(10_000, 2_000, 100)
    contenders = [
        fresh(
            "ours", work.idle_memory, {"clients": min(clients, 100)}, kind="ours", clients=clients
        ),
        fresh(
            "bare trio TCP",
            work.idle_memory,
            {"clients": min(clients, 100)},
            kind="raw",
            clients=clients,
        ),
    ]
    medians = measure(f"{clients:,} idle connections", contenders, 1 if config.tiny else 2)
    return [
        Figure.measured(
            f"memory per idle joined connection ({clients:,})",
            medians["ours"]["bytes"],
            "B",
            "bare trio TCP",
            medians["bare trio TCP"]["bytes"],
            "<= 20480 B",
        )
    ]
