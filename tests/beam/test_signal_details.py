"""Section 1.6 of the reference: signal-level details that are easy to get wrong.

One test (at least) per bullet. The ``gen_server`` ``init`` bullet belongs to the GenServer
tests (section 1.4) and is not repeated here.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import beam

from .conftest import down_reason, exit_on, exit_with, receive_all, settle

# -- a link signal to a dead process triggers an exit signal back with reason noproc ----------


async def test_link_signal_to_dead_process_returns_exit_noproc() -> None:
    async with beam.open_node():
        me = beam.self()
        dead = beam.spawn(exit_with, "boom")
        await settle()

        async def trapping_linker() -> None:
            beam.trap_exit(True)
            beam.link(dead)
            beam.send(me, ("got", await beam.receive()))

        beam.spawn(trapping_linker)
        assert await beam.receive() == ("got", beam.Exit(dead, beam.NOPROC))


async def test_link_to_dead_process_crashes_nontrapping_linker_with_error_noproc() -> None:
    # OTP 25 (tests/beam/otp/link_dead.erl): link/1 raises error:noproc, so the uncaught
    # error crashes the linker (with {noproc, Stack} there, with the NoProcError here).
    async with beam.open_node():
        dead = beam.spawn(exit_with, "boom")
        await settle()

        async def linker() -> None:
            beam.link(dead)
            await trio.sleep_forever()

        _, ref = beam.spawn_monitor(linker)
        reason = await down_reason(ref)
        assert isinstance(reason, beam.NoProcError)
        assert reason.reason == beam.NOPROC


# -- Exit/Down are sent only after the dying process released its name ---------------------


@pytest.mark.parametrize("reason", ["boom", beam.NORMAL, beam.KILL])
async def test_names_released_before_links_fire(reason: Any) -> None:
    """A trapping parent that gets the Exit can re-register the child's name at once."""
    async with beam.open_node():
        beam.trap_exit(True)

        async def child() -> None:
            beam.register("service", beam.self())
            await exit_on("die", reason)

        first = beam.spawn_link(child)
        await settle()
        assert beam.whereis("service") == first
        beam.send("service", "die")
        exit_message = await beam.receive(beam.Exit)
        assert exit_message == beam.Exit(first, reason)
        # No await between the Exit and the restart: the name must already be free.
        assert beam.whereis("service") is None
        beam.register("service", beam.self())
        assert beam.whereis("service") == beam.self()


async def test_names_released_before_links_fire_when_killed() -> None:
    async with beam.open_node():
        beam.trap_exit(True)

        async def child() -> None:
            beam.register("service", beam.self())
            await trio.sleep_forever()

        first = beam.spawn_link(child)
        await settle()
        beam.exit(first, beam.KILL)
        assert await beam.receive(beam.Exit) == beam.Exit(first, beam.KILLED)
        beam.register("service", beam.self())  # free already: no AlreadyRegistered
        assert beam.whereis("service") == beam.self()


async def test_names_released_before_monitors_fire() -> None:
    async with beam.open_node():

        async def child() -> None:
            beam.register("service", beam.self())
            await exit_on("die", "boom")

        pid, ref = beam.spawn_monitor(child)
        await settle()
        beam.send("service", "die")
        assert await beam.receive(beam.Down) == beam.Down(ref, pid, "boom")
        beam.register("service", beam.self())
        assert beam.whereis("service") == beam.self()


# -- runtime services are separate entities: no order between their replies -----------------


async def test_runtime_service_replies_not_ordered_with_direct_sends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The timer service is its own sender: a timer set first may arrive after a send.

    OTP does the same (checked with ``erl``): ``send_after(0, self(), timer0), self() ! direct``
    delivers ``direct`` first.
    """
    async with beam.open_node():
        me = beam.self()
        beam.send_after(me, "timer0", 0)
        beam.send(me, "direct")
        await settle()
        assert await receive_all() == ["direct", "timer0"]
