"""A supervision tree under fire: seeded crashes hit it for a few seconds, and it recovers.

Run it with ``python -m examples.supervision_tree [--seconds 3] [--seed 1234]``. The tree is
an :class:`~supervisors.Application` ("shop", one_for_one):

* ``ledger``: a GenServer that keeps the durable count (it is never crashed here);
* ``counter``: a GenServer that serves increments and writes each one through to the
  ledger; when it crashes, its restarted self rebuilds its state from the ledger in
  ``init``: the "known good state" of "let it crash";
* ``workers``: a DynamicSupervisor of workers that increment the counter in a loop.

A :class:`~supervisors.FaultInjector` crashes a random worker every 150 ms and the counter
every 400 ms (seeded: the same seed picks the same victims). Then the injections stop, and
the program checks that the same names answer again, every worker runs, and the counter
agrees with the ledger. It exits 0 when the tree recovered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter as Tally
from typing import Any

import trio

import beam
from supervisors import (
    Application,
    DynamicSupervisor,
    FaultInjector,
    Subtree,
    Supervisor,
    child_spec,
    worker,
)

WORKERS = 5


class Ledger(beam.GenServer[int]):
    """The durable store: holds the last count written."""

    async def init(self, start: int) -> beam.Ok[int]:
        return beam.Ok(start)

    async def handle_call(self, request: Any, from_: beam.From, count: int) -> beam.Reply[int]:
        if request == "read":
            return beam.Reply(count, count)
        _, value = request  # ("write", value)
        return beam.Reply(value, value)


class CounterServer(beam.GenServer[int]):
    """Counts increments; every increment is written to the ledger before it is answered."""

    async def init(self, _: None) -> beam.Ok[int]:
        restored: int = await beam.call("ledger", "read")  # rebuild the state after a crash
        return beam.Ok(restored)

    async def handle_call(self, request: Any, from_: beam.From, count: int) -> beam.Reply[int]:
        if request == "value":
            return beam.Reply(count, count)
        await beam.call("ledger", ("write", count + 1))
        return beam.Reply(count + 1, count + 1)


async def increment_forever(stats: Tally[str], pause: float) -> None:
    """A worker: increment the counter, again and again; count what happens."""
    while True:
        await trio.sleep(pause)
        try:
            await beam.call("counter", "increment", timeout=1)
            stats["ok"] += 1
        except beam.ProcessExit:  # the counter crashed mid-call, or is restarting
            stats["failed"] += 1


async def main(seconds: float, seed: int) -> int:
    stats: Tally[str] = Tally()
    for n in range(WORKERS):
        await DynamicSupervisor.start_child(
            "workers", worker(increment_forever, stats, 0.02 + 0.007 * n, id=f"worker-{n}")
        )
    before = {name: beam.whereis(name) for name in ("ledger", "counter", "workers")}

    chaos = FaultInjector(seed)
    chaos.every(0.15, Subtree("workers"))
    chaos.every(0.4, "counter")
    await trio.sleep(seconds)
    chaos.stop()
    await trio.sleep(0.2)  # let the last restarts finish

    crashed = Tally(record.target.rsplit("/", 1)[-1].split("-")[0] for record in chaos.log)
    print(
        f"injected {len(chaos.log)} crashes in {seconds:g} s (seed {seed}): "
        + ", ".join(f"{name} x{count}" for name, count in sorted(crashed.items()))
    )
    for record in chaos.log[:3]:
        print(f"  t={record.time - chaos.log[0].time:6.3f}s {record.action} {record.target}")
    if len(chaos.log) > 3:
        print(f"  ... and {len(chaos.log) - 3} more")

    ok = True
    for name, old in before.items():
        now = beam.whereis(name)
        changed = "restarted" if now != old else "never crashed"
        print(f"name {name!r} answers again: {now} ({changed})")
        ok &= now is not None
    workers = await DynamicSupervisor.count_children("workers")
    print(f"workers running: {workers.active}/{WORKERS}")
    ok &= workers.active == WORKERS
    value = await beam.call("counter", "value")
    ledger = await beam.call("ledger", "read")
    print(f"calls: {stats['ok']} answered, {stats['failed']} failed by a crash")
    print(f"counter rebuilt its state from the ledger: counter={value} ledger={ledger}")
    ok &= value == ledger and ledger >= stats["ok"]
    top = await Supervisor.count_children("shop")
    ok &= top.active == 3
    print("tree recovered" if ok else "tree did NOT recover")
    return 0 if ok else 1


def build(seconds: float) -> Application:
    """The application: ledger, counter, and the pool of workers."""
    crashes = int(seconds / 0.15) + int(seconds / 0.4) + 10
    return Application(
        "shop",
        [
            child_spec(Ledger, 0, name="ledger"),
            child_spec(CounterServer, name="counter"),
            DynamicSupervisor.child_spec(
                id="workers", name="workers", max_restarts=crashes, max_seconds=seconds + 1
            ),
        ],
        # tuned to the fault rate of this demo; the defaults (3 in 5 s) would give up
        max_restarts=crashes,
        max_seconds=seconds + 1,
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to inject")
    parser.add_argument("--seed", type=int, default=1234, help="the fault injector's seed")
    parser.add_argument("--verbose", action="store_true", help="show supervisor reports")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(name)s: %(message)s",
    )
    code = build(args.seconds).run(main, args.seconds, args.seed)
    sys.exit(code)


if __name__ == "__main__":
    cli()
