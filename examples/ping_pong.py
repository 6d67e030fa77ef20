"""Ping-pong, a bank account and a crash, in one small program.

Run it with ``scripts/example`` (or ``python -m examples.ping_pong [rounds]``). It shows:

* two processes exchanging messages with selective receive;
* a GenServer holding state behind ``call``/``cast``;
* a crash noticed through a link (the parent traps exits) and through a monitor;
* the node's processes listed with ``process_info``.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import beam


@dataclass(frozen=True, slots=True)
class Ping:
    sender: beam.Pid
    n: int


@dataclass(frozen=True, slots=True)
class Pong:
    n: int


async def ponger() -> None:
    """Answer every Ping with a Pong until told to stop."""
    while True:
        message = await beam.receive((Ping, str))
        if message == "stop":
            return
        beam.send(message.sender, Pong(message.n))


class Account(beam.GenServer[int]):
    """A bank account: the balance is the state; withdrawals may not overdraw."""

    async def init(self, opening: int) -> beam.Ok[int]:
        return beam.Ok(opening)

    async def handle_call(self, request: object, from_: beam.From, balance: int) -> beam.Reply[int]:
        match request:
            case ("withdraw", int(amount)) if amount <= balance:
                return beam.Reply("ok", balance - amount)
            case ("withdraw", int()):
                return beam.Reply("insufficient funds", balance)
            case "balance":
                return beam.Reply(balance, balance)
        raise ValueError(f"unknown request {request!r}")

    async def handle_cast(self, request: object, balance: int) -> beam.NoReply[int]:
        match request:
            case ("deposit", int(amount)):
                return beam.NoReply(balance + amount)
        raise ValueError(f"unknown request {request!r}")


async def main(rounds: int) -> None:
    me = beam.self()
    pong = beam.spawn(ponger)
    started = time.perf_counter()
    for n in range(rounds):
        beam.send(pong, Ping(me, n))
        reply = await beam.receive(Pong)
        assert reply.n == n
    elapsed = time.perf_counter() - started
    print(f"ping-pong: {rounds} round trips in {elapsed * 1000:.1f} ms ({rounds / elapsed:,.0f}/s)")
    beam.send(pong, "stop")

    account = await Account.start_link(100, name="account")
    assert account is not None  # start_link gives None only when init returns beam.Ignore()
    beam.cast("account", ("deposit", 50))
    print("withdraw 120:", await beam.call("account", ("withdraw", 120)))
    print("withdraw 120:", await beam.call("account", ("withdraw", 120)))
    print("balance:", await beam.call(account, "balance"))

    # A bad request crashes the server. We trap exits, so the link brings us a message
    # instead of taking us down, and the caller sees the crash as an exception.
    beam.trap_exit(True)
    watcher = beam.monitor(account)
    try:
        await beam.call(account, "rob the bank")
    except beam.ProcessExit as exc:
        print("call failed:", type(exc.reason[0]).__name__, exc.reason[0])
    exit_message = await beam.receive(beam.Exit)
    down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == watcher)
    print(
        "link said:",
        type(exit_message.reason).__name__,
        "| monitor said:",
        type(down.reason).__name__,
    )
    print("name released:", beam.whereis("account") is None)

    for pid in beam.processes():
        info = beam.process_info(pid)
        if info is not None:
            print(
                f"process {info.pid}: {info.status}, {info.messages_handled} handled, "
                f"started by {info.initial_call}"
            )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=10_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    beam.run(main, args.rounds)


if __name__ == "__main__":
    cli()
