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
"""

from __future__ import annotations

from . import _chat_work as work
from ._measure import Config, Contender, fresh, measure
from ._report import Figure

__all__ = ["run"]

CRASHES_PER_S = 1.0
WITH = "1 crash/s"
WITHOUT = "no crashes"


def _contender(label: str, config: Config, crashes_per_s: float, **sizes: int) -> Contender:
    short = {"bots": 4, "rooms": 2, "rate": 8, "seconds": 1}
    contender = fresh(label, work.soak, short, crashes_per_s=crashes_per_s, **sizes)
    if config.tiny:  # a warm-up soak would double a smoke run for nothing measured
        return Contender(label, contender.run, lambda: None)
    return contender


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite."""
    sizes = {
        "bots": config.size(40, 20, 4),
        "rooms": config.size(4, 4, 2),
        "rate": config.size(40, 20, 8),
        "seconds": config.size(20, 8, 2),
    }
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
