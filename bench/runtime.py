"""The ``runtime`` suite: beam's processes against raw trio and pykka, in the same run.

Figures (goals from the issue):

* ping-pong round trips/s: >= 1.0x raw trio channel ping-pong, >= 4x pykka ``ask``;
* one-way messages/s: >= 1.0x trio ``send_nowait`` stream, >= 1.5x pykka ``tell``;
* GenServer ``call`` round trips/s: >= 0.7x our raw ping-pong;
* spawn to waiting in ``receive``: <= 1.0x a trio task with its own channel, against trio with
  default GC and with beam's GC tuning (each side in a fresh interpreter);
* memory per idle process: <= 2600 B, a fresh BEAM process (fresh interpreters too);
* a call with 10,000 unrelated messages queued: <= 2x the same call on an empty mailbox;
* skynet: <= 1.0x raw trio skynet (fresh interpreters).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import beam

from . import _runtime_work as work
from ._measure import Config, Contender, Sample, fresh, measure
from ._report import Figure

__all__ = ["run"]

QUEUED = 10_000


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite."""
    return [
        *_ping_pong(config),
        *_one_way(config),
        *_spawn_and_memory(config),
        _queued_call(config),
        _skynet(config),
    ]


def _ping_pong(config: Config) -> list[Figure]:
    n = config.size(50_000, 10_000, 300)
    asks = config.size(10_000, 2_000, 100)  # a pykka ask is ~10x slower: fewer of them
    contenders = [
        Contender("beam", partial(work.beam_ping_pong, n)),
        Contender("trio", partial(work.trio_ping_pong, n)),
        Contender("pykka", partial(work.pykka_ping_pong, asks)),
    ]
    calls = _gen_server_calls()
    if calls is not None:
        contenders.append(Contender("GenServer call", partial(calls, n, 0)))
    rate = _rates(measure("ping-pong", contenders, config.reps))
    return [
        Figure.measured(
            name="ping-pong round trips (vs trio)",
            value=rate["beam"],
            unit="rt/s",
            baseline_name="trio channel ping-pong (send_nowait)",
            baseline_value=rate["trio"],
            goal=">= 1.0x",
        ),
        Figure.measured(
            name="ping-pong round trips (vs pykka)",
            value=rate["beam"],
            unit="rt/s",
            baseline_name="pykka ask, main thread -> actor",
            baseline_value=rate["pykka"],
            goal=">= 4x",
        ),
        Figure.measured(
            name="GenServer call round trips",
            value=rate.get("GenServer call"),  # None (unavailable) without beam.GenServer
            unit="rt/s",
            baseline_name="beam raw send/receive ping-pong",
            baseline_value=rate["beam"],
            goal=">= 0.7x",
        ),
    ]


def _one_way(config: Config) -> list[Figure]:
    n = config.size(200_000, 50_000, 2_000)
    contenders = [
        Contender("beam", partial(work.beam_one_way, n)),
        Contender("trio", partial(work.trio_one_way, n)),
        Contender("pykka", partial(work.pykka_tell, n)),
    ]
    rate = _rates(measure(f"one-way, {n:,} messages", contenders, config.reps))
    return [
        Figure.measured(
            name="one-way send+receive (vs trio)",
            value=rate["beam"],
            unit="msg/s",
            baseline_name="trio send_nowait stream + ack",
            baseline_value=rate["trio"],
            goal=">= 1.0x",
        ),
        Figure.measured(
            name="one-way send+receive (vs pykka)",
            value=rate["beam"],
            unit="msg/s",
            baseline_name="pykka tell stream + final ask",
            baseline_value=rate["pykka"],
            goal=">= 1.5x",
        ),
    ]


def _spawn_and_memory(config: Config) -> list[Figure]:
    n = config.size(100_000, 20_000, 500)
    warm = {"n": min(n, 1_000)}
    contenders = [
        fresh("beam", work.beam_spawn, warm, n=n),
        fresh("trio", work.trio_spawn, warm, n=n, tune_gc=False),
        fresh("tuned trio", work.trio_spawn, warm, n=n, tune_gc=True),
    ]
    medians = measure(f"spawn {n:,} idle processes, fresh interpreters", contenders, config.reps)
    ours, trio, tuned = medians["beam"], medians["trio"], medians["tuned trio"]
    per_process = ours["bytes_per_proc"]
    return [
        Figure.measured(
            name="spawn to waiting in receive (vs trio)",
            value=ours["us_per_proc"],
            unit="µs/proc",
            baseline_name="trio task + own channel, default GC",
            baseline_value=trio["us_per_proc"],
            goal="<= 1.0x",
        ),
        Figure.measured(
            name="spawn to waiting in receive (vs tuned trio)",
            value=ours["us_per_proc"],
            unit="µs/proc",
            baseline_name="same, gc.freeze + threshold 100k",
            baseline_value=tuned["us_per_proc"],
            goal="<= 1.0x",
        ),
        Figure.measured(
            name="memory per idle process",
            value=per_process,
            unit=f"B/proc (1M: {per_process * 1e6 / 1e9:.2f} GB)",
            baseline_name="trio task blocked on own channel",
            baseline_value=trio["bytes_per_proc"],
            goal="<= 2600 B (BEAM)",
        ),
    ]


def _queued_call(config: Config) -> Figure:
    calls = _gen_server_calls()
    queued = empty = None
    if calls is not None:
        n = config.size(20_000, 5_000, 200)
        contenders = [
            Contender("queued", partial(calls, n, QUEUED)),
            Contender("empty", partial(calls, n, 0)),
        ]
        rate = _rates(measure(f"{n:,} calls, {QUEUED:,} messages queued", contenders, config.reps))
        queued, empty = 1e6 / rate["queued"], 1e6 / rate["empty"]
    return Figure.measured(
        name=f"call with {QUEUED:,} messages queued",
        value=queued,
        unit="µs/call",
        baseline_name="same call, empty mailbox",
        baseline_value=empty,
        goal="<= 2x",
    )


def _skynet(config: Config) -> Figure:
    leaves = config.size(1_000_000, 100_000, 1_000)
    processes = (leaves * 10 - 1) // 9
    warm = {"leaves": 1_000}
    contenders = [
        fresh("beam", work.beam_skynet, warm, leaves=leaves),
        fresh("trio", work.trio_skynet, warm, leaves=leaves),
    ]
    # Full size takes ~25 s per side and round: three rounds keep the run within minutes.
    reps = min(config.reps, 3)
    seconds = measure(f"skynet, {processes:,} processes, fresh interpreters", contenders, reps)
    return Figure.measured(
        name=f"skynet, {processes:,} processes",
        value=seconds["beam"]["seconds"],
        unit="s",
        baseline_name="raw trio skynet (nursery+channel per node)",
        baseline_value=seconds["trio"]["seconds"],
        goal="<= 1.0x",
    )


def _rates(medians: dict[str, Sample]) -> dict[str, float]:
    return {label: sample["rate"] for label, sample in medians.items()}


def _gen_server_calls() -> Callable[[int, int], Sample] | None:
    """The GenServer call workload, or ``None`` (figures say "unavailable") if this checkout
    of beam has no GenServer yet."""
    if not all(hasattr(beam, name) for name in ("GenServer", "call", "Ok", "Reply")):
        return None
    from ._call_work import gen_server_calls

    return gen_server_calls
