"""The ``chat`` suite: a soak of the example chat, first without and then with crashes.

N bots across R rooms send M messages per second in all over Channels (each waits for its ack
before its next send, and recovers from any failure by rejoining or reconnecting and sending
the same client id again), see :mod:`bench._chat_work`. A message's end-to-end latency runs
from its send until the last other member of its room has seen it. Figures (goals from the
issue):

* latency p50 and p99, and the acked messages per second, with one injected crash per second
  (a room channel, a socket's transport, a PubSub janitor, a database connection actor or the
  presence tracker, killed at random inside the server) against the same soak without crashes:
  p99 <= 2x;
* messages lost (acked but not stored) and duplicated (stored more than once), over both soaks,
  against the messages acked: zero.

The soak without crashes is the baseline of the soak with them: the same bots, rooms, rate and
duration, in the same run on the same box, each against a fresh server (its own interpreter and
its own SQLite file) driven by a fresh load generator (another interpreter).

``python -m bench chat --nodes 2`` runs instead the soak against the chat on two nodes (one
PostgreSQL database, a fresh one per soak, and a ``redis-server`` of the soak's own; each room
has members on both nodes), once without a kill, once with node 2 SIGKILLed halfway through,
and once with node 1 SIGKILLed (it started first, so it holds the cluster's global names, the
chat's shared rate limiter among them: ``globals`` in the figures' names); the killed node's
bots move to the survivor and resend what was not acked (see
:func:`bench._chat_work.soak_nodes`). Figures: latency p50 (<= 1.5x) and p99 (<= 2x) and acked
messages per second (>= 0.95x) with each kill against the soak without one; lost, duplicated
and never-seen messages over the three soaks: zero. It needs PostgreSQL (``DATABASE_URL``'s
server, else 127.0.0.1:5432 as ``postgres``): without it the figures are unavailable.
"""

from __future__ import annotations

from functools import partial

from . import _chat_work as work
from ._chat_nodes import postgres_unreachable
from ._measure import Config, Contender, Sample, fresh, log, measure, run_fresh
from ._report import Figure

__all__ = ["run"]

CRASHES_PER_S = 1.0
WITH = "1 crash/s"
WITHOUT = "no crashes"
NO_KILL = "no kill"
#: The node kills of the soak on several nodes: label -> index of the node killed.
KILLS = {"node 2 killed": 1, "node 1 (globals) killed": 0}


def _contender(label: str, config: Config, crashes_per_s: float, **sizes: int) -> Contender:
    short = {"bots": 4, "rooms": 2, "rate": 8, "seconds": 1}
    contender = fresh(label, work.soak, short, crashes_per_s=crashes_per_s, **sizes)
    if config.tiny:  # a warm-up soak would double a smoke run for nothing measured
        return Contender(label, contender.run, lambda: None)
    return contender


def _sizes(config: Config) -> dict[str, int]:
    return {
        "bots": config.size(40, 20, 4),
        "rooms": config.size(4, 4, 2),
        "rate": config.size(40, 20, 8),
        "seconds": config.size(20, 8, 2),
    }


def run(config: Config, nodes: int = 1) -> list[Figure]:
    """Measure every figure of the suite: the soak with crashes on one node, or with a node
    killed on *nodes* nodes (``python -m bench chat --nodes 2``).

    >>> figures = run(Config(quick=True), nodes=2)
    """
    if nodes > 1:
        return _nodes(config, nodes)
    sizes = _sizes(config)
    contenders = [
        _contender(WITHOUT, config, 0.0, **sizes),
        _contender(WITH, config, CRASHES_PER_S, **sizes),
    ]
    soak = f"{sizes['bots']} bots, {sizes['rooms']} rooms, {sizes['rate']} msg/s"
    medians = measure(
        f"chat soak: {soak}, {sizes['seconds']} s, without and with {WITH}",
        contenders,
        1 if config.tiny or config.quick else 3,
    )
    crashed, calm = medians[WITH], medians[WITHOUT]
    acked = crashed["acked"] + calm["acked"]
    return [
        Figure.measured(
            f"chat soak latency p50 ({soak}), {WITH}",
            crashed["p50_ms"],
            "ms",
            WITHOUT,
            calm["p50_ms"],
            "<= 2.0x",
        ),
        Figure.measured(
            f"chat soak latency p99, {WITH}",
            crashed["p99_ms"],
            "ms",
            WITHOUT,
            calm["p99_ms"],
            "<= 2.0x",
        ),
        Figure.measured(
            f"chat soak messages acked per second, {WITH}",
            crashed["per_s"],
            "msg/s",
            WITHOUT,
            calm["per_s"],
            ">= 0.95x",
        ),
        Figure.measured(
            "chat soak messages lost (acked, not stored)",
            crashed["lost"] + calm["lost"],
            "msgs",
            "messages acked",
            acked,
            "<= 0 msgs",
        ),
        Figure.measured(
            "chat soak messages duplicated (stored twice)",
            crashed["duplicated"] + calm["duplicated"],
            "msgs",
            "messages acked",
            acked,
            "<= 0 msgs",
        ),
    ]


def _nodes(config: Config, nodes: int) -> list[Figure]:
    sizes = _sizes(config)
    soak = f"{sizes['bots']} bots, {sizes['rooms']} rooms, {sizes['rate']} msg/s, {nodes} nodes"
    medians: dict[str, Sample] | None = None
    reason = postgres_unreachable()
    if reason is not None:
        log(f"  {reason}: the figures of the soak on {nodes} nodes are unavailable")
    else:
        victims = {label: index for label, index in KILLS.items() if index < nodes}
        contenders = [
            # No warm-up: each soak starts its nodes afresh, a warm-up would only add time.
            Contender(
                label,
                partial(run_fresh, work.soak_nodes, victim=victim, nodes=nodes, **sizes),
                lambda: None,
            )
            for label, victim in {NO_KILL: -1, **victims}.items()
        ]
        medians = measure(
            f"chat soak: {soak}, {sizes['seconds']} s, without and with a node SIGKILLed halfway",
            contenders,
            1 if config.tiny or config.quick else 3,
        )
    return _nodes_figures(soak, medians)


def _nodes_figures(soak: str, medians: dict[str, Sample] | None) -> list[Figure]:
    def value(label: str, key: str) -> float | None:
        return None if medians is None else medians[label][key]

    def total(key: str) -> float | None:
        return None if medians is None else sum(sample[key] for sample in medians.values())

    figures: list[Figure] = []
    for label in KILLS:
        if medians is not None and label not in medians:
            continue
        described = "" if figures else f" ({soak})"
        figures += [
            Figure.measured(
                f"chat on nodes{described}, latency p50, {label}",
                value(label, "p50_ms"),
                "ms",
                NO_KILL,
                value(NO_KILL, "p50_ms"),
                "<= 1.5x",
            ),
            Figure.measured(
                f"chat on nodes, latency p99, {label}",
                value(label, "p99_ms"),
                "ms",
                NO_KILL,
                value(NO_KILL, "p99_ms"),
                "<= 2.0x",
            ),
            Figure.measured(
                f"chat on nodes, messages acked per second, {label}",
                value(label, "per_s"),
                "msg/s",
                NO_KILL,
                value(NO_KILL, "per_s"),
                ">= 0.95x",
            ),
        ]
    acked = total("acked")
    for key, what in (
        ("lost", "lost (acked, not stored)"),
        ("duplicated", "duplicated (stored twice)"),
        ("unseen", "never seen by a member of the room"),
    ):
        figures.append(
            Figure.measured(
                f"chat on nodes, messages {what}",
                total(key),
                "msgs",
                "messages acked",
                acked,
                "<= 0 msgs",
            )
        )
    return figures
