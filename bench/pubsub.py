"""The ``pubsub`` suite: broadcast fan-out against raw sends, in the same run.

Figure (goal from the issue):

* fan-out: one topic, 10,000 subscriber processes, messages *received* per second (each
  subscriber takes every message out of its mailbox, and the clock stops when the last one
  has): ``beam.broadcast`` >= 0.8x a loop of raw ``beam.send`` to the same pids, in the same
  node, rounds alternating between the two.

Both sides deliver message *i* to every subscriber before message *i + 1*, and both end a
round the same way (each subscriber acknowledges the round's last message), so the only
difference is who walks the subscriber list: the broadcast reads the topic's subscriber set,
the baseline loops over a list of pids.
"""

from __future__ import annotations

import statistics
from functools import partial
from time import perf_counter

import beam

from ._measure import Config, Contender, Sample, measure
from ._report import Figure

__all__ = ["run"]

TOPIC = "bench:fan-out"
_DONE = "done"


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite."""
    return [_fan_out_figure(config)]


def _fan_out_figure(config: Config) -> Figure:
    subscribers = config.size(10_000, 10_000, 200)
    messages = config.size(20, 10, 5)
    rounds = config.size(6, 4, 2)
    medians = measure(
        f"fan-out to {subscribers:,} subscribers, {messages} messages x {rounds} rounds/side",
        [Contender("fan-out", partial(fan_out, subscribers, messages, rounds))],
        config.reps,
    )
    sample = medians["fan-out"]
    return Figure.measured(
        f"fan-out, 1 topic, {subscribers:,} subscribers", sample["broadcast"], "msg/s",
        "raw beam.send loop to the same pids", sample["send"], ">= 0.8x",
    )


async def _subscriber(parent: beam.Pid, per_round: int) -> None:
    beam.subscribe(TOPIC)
    beam.send(parent, _DONE)
    while True:
        for _ in range(per_round):
            await beam.receive()
        beam.send(parent, _DONE)


def fan_out(subscribers: int, messages: int, rounds: int) -> Sample:
    """One node with *subscribers* processes on one topic; *rounds* rounds per side (broadcast
    and raw sends, alternating which goes first) of *messages* messages each. Returns the
    median delivery rate of each side, in messages received per second."""

    async def main() -> dict[str, list[float]]:
        me = beam.self()
        pids = [beam.spawn(_subscriber, me, messages) for _ in range(subscribers)]
        for _ in pids:
            await beam.receive()
        assert len(beam.subscribers(TOPIC)) == subscribers
        times: dict[str, list[float]] = {"broadcast": [], "send": []}
        for round_ in range(rounds):
            for side in ("broadcast", "send") if round_ % 2 == 0 else ("send", "broadcast"):
                started = perf_counter()
                if side == "broadcast":
                    for i in range(messages):
                        beam.broadcast(TOPIC, i)
                else:
                    send = beam.send
                    for i in range(messages):
                        for pid in pids:
                            send(pid, i)
                for _ in pids:
                    await beam.receive()
                times[side].append(perf_counter() - started)
        return times

    times = beam.run(main)
    delivered = subscribers * messages
    return {side: delivered / statistics.median(t) for side, t in times.items()}
