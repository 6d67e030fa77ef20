"""An exit signal tears a GenServer idle in its loop down at once (as BEAM does): nothing of
its own is on its stack, so its name, links and monitors are released in the signalling
context, and its supervisor hears of it without waiting for the task to unwind. A process
idle in a ``receive`` of its own code keeps unwinding first (its ``finally`` may await)."""

from __future__ import annotations

from typing import Any

import trio

import beam

from .conftest import settle


class Idle(beam.GenServer[None]):
    async def init(self, arg: Any) -> beam.Ok[None]:
        return beam.Ok(None)


class Chain(beam.GenServer[None]):
    """Starts the next link of a chain of linked servers, *arg* more of them."""

    async def init(self, arg: int) -> beam.Ok[None]:
        if arg > 0:
            await Chain.start_link(arg - 1)
        return beam.Ok(None)


async def test_a_killed_idle_server_is_gone_before_the_killer_runs_on() -> None:
    async with beam.open_node():
        pid = await Idle.start(name="idle")
        assert pid is not None
        ref = beam.monitor(pid)
        await settle()
        beam.exit(pid, "kill")
        # No checkpoint in between: the name, the process and the monitor are done with.
        assert beam.whereis("idle") is None
        assert not beam.is_alive(pid)
        down = await beam.receive(beam.Down, timeout=0)
        assert (down.ref, down.reason) == (ref, "killed")
        await settle()  # and its task finished quietly
        assert beam.current_node().statistics().crashes == 0


async def test_a_plain_process_in_receive_unwinds_before_its_exit_is_heard() -> None:
    cleaned: list[str] = []

    async def body() -> None:
        try:
            await beam.receive()
        finally:
            await trio.lowlevel.cancel_shielded_checkpoint()
            cleaned.append("finally")

    async with beam.open_node():
        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        await settle()
        beam.exit(pid, "kill")
        assert beam.is_alive(pid)  # still unwinding: its finally runs first
        down = await beam.receive(beam.Down)
        assert (down.ref, down.reason, cleaned) == (ref, "killed", ["finally"])


async def test_a_server_between_callbacks_only_is_torn_down_at_once() -> None:
    class Busy(beam.GenServer[None]):
        async def init(self, arg: Any) -> beam.Ok[None]:
            return beam.Ok(None)

        async def handle_cast(self, request: Any, state: None) -> beam.NoReply[None]:
            await trio.sleep_forever()
            return beam.NoReply(state)  # pragma: no cover

    async with beam.open_node():
        pid = await Busy.start()
        assert pid is not None
        beam.cast(pid, "work")
        await settle()  # now inside handle_cast, not idle in its loop
        ref = beam.monitor(pid)
        beam.exit(pid, "kill")
        assert beam.is_alive(pid)  # the callback is cancelled at its await first
        down = await beam.receive(beam.Down)
        assert (down.ref, down.reason) == (ref, "killed")


async def test_a_long_chain_of_linked_idle_servers_dies_without_recursion() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        head = await Chain.start_link(3_000)  # deeper than Python's recursion limit
        assert head is not None
        await settle()
        before = len(beam.processes())
        beam.exit(head, "boom")
        assert len(beam.processes()) == before - 3_001
        exit_ = await beam.receive(beam.Exit, timeout=0)
        assert (exit_.pid, exit_.reason) == (head, "boom")
