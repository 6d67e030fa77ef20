"""Section 1.2 of the reference: links, exit signals, trap_exit and monitors.

Where the reference left room for doubt the expected values were taken from real Erlang/OTP
(``erl``): e.g. a process that exits with reason ``kill`` takes its non-trapping links down
with reason ``kill`` (not ``killed``), through a whole chain; ``exit(self(), kill)`` kills
even a trapping process, as ``killed``; ``exit(self(), normal)`` leaves linked processes
alive; ``demonitor(Ref)`` is always true and ``demonitor(Ref, [info])`` is false once the
monitor fired (tests/beam/otp/demonitor.erl).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

import beam

from .conftest import (
    down_reason,
    drain,
    exit_on,
    exit_with,
    forwarder,
    idle,
    info,
    non_process_context,
    receive_all,
    settle,
    waiter,
)


async def linked_pair() -> tuple[beam.Pid, beam.Pid]:
    """Two idle processes, linked to each other."""
    a = beam.spawn(idle)
    b = beam.spawn(link_to, a)
    await settle()
    return a, b


async def link_to(pid: beam.Pid) -> None:
    beam.link(pid)
    await trio.sleep_forever()


# -- links ---------------------------------------------------------------------------------------


async def test_links_are_bidirectional() -> None:
    async with beam.open_node():
        a, b = await linked_pair()
        assert info(a).links == (b,)
        assert info(b).links == (a,)
        ref_b = beam.monitor(b)
        beam.exit(a, "boom")  # a dies, and the link takes b down with it
        assert await down_reason(ref_b) == "boom"


async def test_links_repeated_link_is_noop() -> None:
    async with beam.open_node():
        me = beam.self()
        pid = beam.spawn(idle)
        beam.link(pid)
        beam.link(pid)
        assert info(me).links == (pid,)
        assert info(pid).links == (me,)
        beam.unlink(pid)  # one unlink removes the one link
        assert info(me).links == ()
        assert info(pid).links == ()


async def test_links_either_side_may_unlink() -> None:
    async with beam.open_node():
        me = beam.self()

        async def unlinker() -> None:
            await beam.receive(lambda m: m == "unlink")
            beam.unlink(me)
            await trio.sleep_forever()

        pid = beam.spawn_link(unlinker)
        assert info(me).links == (pid,)
        beam.send(pid, "unlink")
        await settle()
        assert info(me).links == ()
        assert info(pid).links == ()
        beam.exit(pid, "boom")  # no link any more: the test process survives
        await settle()
        assert beam.is_alive(me)


async def test_links_link_to_self_is_noop() -> None:
    async with beam.open_node():
        beam.link(beam.self())
        assert info(beam.self()).links == ()


async def test_links_exit_signal_goes_to_every_linked_process() -> None:
    async with beam.open_node():
        me = beam.self()
        trappers = [beam.spawn(forwarder, me, True) for _ in range(3)]
        await settle()

        async def hub() -> None:
            for pid in trappers:
                beam.link(pid)
            await exit_on("die", "boom")

        hub_pid = beam.spawn(hub)
        await settle()
        beam.send(hub_pid, "die")
        await settle()
        got = await receive_all()
        assert sorted(got, key=lambda m: m[0]) == [
            (pid, beam.Exit(hub_pid, "boom")) for pid in trappers
        ]


# -- link/1 to a dead pid ------------------------------------------------------------------------


async def test_link_to_a_dead_pid_raises_error_noproc_not_an_exit() -> None:
    # OTP (tests/beam/otp/link_dead.erl): `link raised error:noproc`, an error, not an exit.
    async with beam.open_node():
        dead = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        with pytest.raises(beam.NoProcError) as caught:
            beam.link(dead)
        assert not isinstance(caught.value, beam.ProcessExit)
        assert caught.value.reason == beam.NOPROC
        assert info(beam.self()).links == ()


async def test_link_to_dead_pid_gives_exit_noproc_when_trapping() -> None:
    async with beam.open_node():
        dead = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        beam.trap_exit(True)
        beam.link(dead)  # does not raise
        assert await beam.receive(timeout=0) == beam.Exit(dead, beam.NOPROC)
        assert info(beam.self()).links == ()


async def test_link_to_a_dead_pid_uncaught_crashes_the_caller_with_the_noproc_error() -> None:
    # OTP: the uncaught error:noproc crashes the process with {noproc, Stack} (a crash
    # report, as for any error); ours with the NoProcError itself.
    async with beam.open_node():
        dead = beam.spawn(exit_with, beam.NORMAL)
        await settle()

        async def linker() -> None:
            beam.link(dead)

        _, ref = beam.spawn_monitor(linker)
        reason = await down_reason(ref)
        assert isinstance(reason, beam.NoProcError)
        assert reason.reason == beam.NOPROC


# -- exit reason normal ----------------------------------------------------------------------


async def test_normal_exit_does_not_kill_linked() -> None:
    async with beam.open_node():
        me = beam.self()
        partner = beam.spawn(idle)

        async def body() -> None:
            beam.link(partner)
            beam.link(me)

        pid = beam.spawn(body)
        await settle()
        assert not beam.is_alive(pid)
        assert beam.is_alive(partner)
        assert beam.is_alive(me)
        assert info(partner).links == ()


async def test_normal_exit_is_trapped_as_exit_normal() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = beam.spawn_link(exit_with, beam.NORMAL)
        assert await beam.receive() == beam.Exit(pid, beam.NORMAL)


async def test_exit_self_normal_kills_self() -> None:
    async with beam.open_node():
        me = beam.self()
        partner = beam.spawn(idle)

        async def body() -> None:
            beam.link(partner)
            beam.exit(beam.self(), beam.NORMAL)
            beam.send(me, "still running")  # pragma: no cover - must not run

        pid, ref = beam.spawn_monitor(body)
        assert await down_reason(ref) == beam.NORMAL
        assert not beam.is_alive(pid)
        # It died with reason normal, so its non-trapping link partner lives on (as in OTP).
        assert beam.is_alive(partner)
        assert drain() == []


async def test_exit_self_normal_when_trapping_is_a_message() -> None:
    async with beam.open_node():
        me = beam.self()
        beam.trap_exit(True)
        beam.exit(me, beam.NORMAL)
        assert await beam.receive(timeout=0) == beam.Exit(me, beam.NORMAL)


async def test_exit_normal_from_another_process_is_ignored_when_not_trapping() -> None:
    async with beam.open_node():
        pid = beam.spawn(waiter)
        await settle()
        beam.exit(pid, beam.NORMAL)
        await settle()
        assert beam.is_alive(pid)


async def test_exit_normal_from_another_process_is_trapped() -> None:
    async with beam.open_node():
        me = beam.self()
        pid = beam.spawn(forwarder, me, True)
        await settle()
        beam.exit(pid, beam.NORMAL)
        assert await beam.receive() == (pid, beam.Exit(me, beam.NORMAL))


# -- abnormal reasons --------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["boom", ("error", 42), ValueError("bad value")])
async def test_abnormal_exit_kills_nontrapping_linked_with_same_reason(reason: Any) -> None:
    async with beam.open_node():
        a, b = await linked_pair()
        ref_b = beam.monitor(b)
        beam.exit(a, reason)
        assert await down_reason(ref_b) is reason


@pytest.mark.parametrize("reason", ["boom", ("error", 42), ValueError("bad value")])
async def test_abnormal_exit_is_trapped_as_exit_message(reason: Any) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = beam.spawn_link(exit_with, reason)
        message = await beam.receive()
        assert message == beam.Exit(pid, reason)
        assert message.reason is reason
        assert beam.is_alive(beam.self())


# -- kill vs killed ----------------------------------------------------------------------------


async def test_kill_is_untrappable_and_becomes_killed() -> None:
    async with beam.open_node():
        me = beam.self()
        pid, ref = beam.spawn_monitor(forwarder, me, True)
        await settle()
        assert info(pid).trap_exit
        beam.exit(pid, beam.KILL)
        assert await down_reason(ref) == beam.KILLED
        assert drain() == []  # it never saw an Exit message


async def test_kill_links_see_killed_which_is_trappable() -> None:
    async with beam.open_node():
        me = beam.self()
        trapper = beam.spawn(forwarder, me, True)
        bystander = beam.spawn(idle)
        await settle()

        async def victim() -> None:
            beam.trap_exit(True)  # no help against an untrappable kill
            beam.link(trapper)
            beam.link(bystander)
            await trio.sleep_forever()

        pid = beam.spawn(victim)
        ref = beam.monitor(bystander)
        await settle()
        beam.exit(pid, beam.KILL)
        assert await beam.receive(tuple) == (trapper, beam.Exit(pid, beam.KILLED))
        assert await down_reason(ref) == beam.KILLED


async def test_link_borne_kill_is_trappable() -> None:
    """A process exiting with reason ``kill`` sends ``kill`` over its links: trappable."""
    async with beam.open_node():
        beam.trap_exit(True)
        pid = beam.spawn_link(exit_with, beam.KILL)
        assert await beam.receive() == beam.Exit(pid, beam.KILL)  # not converted to killed
        assert beam.is_alive(beam.self())


async def test_link_borne_kill_kills_nontrapping_chain_with_kill() -> None:
    """OTP: a <- b <- c chain of non-trapping links all die with ``kill``."""
    async with beam.open_node():
        c = beam.spawn(idle)
        b = beam.spawn(link_to, c)
        await settle()
        ref_b = beam.monitor(b)
        ref_c = beam.monitor(c)

        async def a_body() -> None:
            beam.link(b)
            raise beam.ProcessExit(beam.KILL)

        beam.spawn(a_body)
        assert await down_reason(ref_b) == beam.KILL
        assert await down_reason(ref_c) == beam.KILL


async def test_exit_self_kill_gives_killed_even_when_trapping() -> None:
    async with beam.open_node():

        async def body() -> None:
            beam.trap_exit(True)
            beam.exit(beam.self(), beam.KILL)

        _, ref = beam.spawn_monitor(body)
        assert await down_reason(ref) == beam.KILLED


# -- stale link signals ------------------------------------------------------------------------


async def test_stale_link_signal_after_unlink() -> None:
    """After unlink no exit signal comes over the link; one already queued stays queued."""
    async with beam.open_node():
        beam.trap_exit(True)
        early = beam.spawn_link(exit_on, "die", "boom")
        late = beam.spawn_link(exit_on, "die", "boom")
        # `early` dies while linked: its Exit is queued before the unlink...
        beam.send(early, "die")
        await settle()
        beam.unlink(early)
        # ...`late` is unlinked first, so its death sends nothing over the removed link.
        beam.unlink(late)
        beam.send(late, "die")
        await settle()
        assert not beam.is_alive(late)
        assert await receive_all() == [beam.Exit(early, "boom")]


async def test_stale_link_signal_after_unlink_nontrapping_survives() -> None:
    async with beam.open_node():
        pid = beam.spawn_link(exit_on, "die", "boom")
        beam.unlink(pid)
        beam.send(pid, "die")
        await settle()
        assert not beam.is_alive(pid)
        assert beam.is_alive(beam.self())


# -- exit/2 ------------------------------------------------------------------------------------


async def test_exit2_sender_keeps_running() -> None:
    async with beam.open_node():
        pid, ref = beam.spawn_monitor(waiter)
        beam.exit(pid, "shutdown")  # returns at once
        assert beam.is_alive(beam.self())
        assert await down_reason(ref) == "shutdown"
        assert info(beam.self()).links == ()  # exit/2 needs no link


async def test_exit2_to_trapping_process_is_message_from_sender() -> None:
    async with beam.open_node():
        me = beam.self()
        pid = beam.spawn(forwarder, me, True)
        await settle()
        beam.exit(pid, ("custom", 1))
        assert await beam.receive() == (pid, beam.Exit(me, ("custom", 1)))
        assert beam.is_alive(pid)


async def test_exit2_to_dead_pid_is_noop_and_unknown_name_raises() -> None:
    async with beam.open_node():
        dead = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        beam.exit(dead, "boom")
        with pytest.raises(beam.UnknownName, match="ghost"):
            beam.exit("ghost", "boom")


async def test_exit2_before_the_first_step_body_never_runs() -> None:
    async with beam.open_node():
        ran: list[str] = []

        async def body() -> None:
            ran.append("ran")

        pid, ref = beam.spawn_monitor(body)
        beam.exit(pid, "boom")  # struck before it was ever scheduled
        assert await down_reason(ref) == "boom"
        assert ran == []


async def test_exit2_normal_from_outside_any_process_is_ignored() -> None:
    """``exit(Pid, normal)`` kills only when a process sends it to itself."""
    async with beam.open_node():
        pid = beam.spawn(waiter)
        await settle()

        async def not_a_process() -> None:
            beam.exit(pid, beam.NORMAL)

        trio.lowlevel.spawn_system_task(not_a_process, context=non_process_context())
        await settle()
        assert beam.is_alive(pid)


async def test_exit2_to_registered_name() -> None:
    async with beam.open_node():
        pid, ref = beam.spawn_monitor(waiter)
        beam.register("victim", pid)
        beam.exit("victim", "boom")
        assert await down_reason(ref) == "boom"


async def test_exit2_to_self_with_abnormal_reason_raises_process_exit() -> None:
    async with beam.open_node():

        async def body() -> None:
            with pytest.raises(beam.ProcessExit) as caught:
                beam.exit(beam.self(), "boom")
            assert caught.value.reason == "boom"
            raise caught.value

        _, ref = beam.spawn_monitor(body)
        assert await down_reason(ref) == "boom"


# -- trap_exit -------------------------------------------------------------------------------


async def test_trap_exit_converts_signals_to_messages() -> None:
    async with beam.open_node():
        me = beam.self()
        assert beam.trap_exit(True) is False
        assert info(me).trap_exit
        pid = beam.spawn_link(exit_with, "boom")
        beam.exit(me, "from self")
        await settle()
        assert sorted(map(repr, await receive_all())) == sorted(
            [repr(beam.Exit(pid, "boom")), repr(beam.Exit(me, "from self"))]
        )
        assert beam.trap_exit(False) is True
        assert not info(me).trap_exit


async def test_trap_exit_off_again_makes_signals_kill() -> None:
    async with beam.open_node():

        async def body() -> None:
            beam.trap_exit(True)
            beam.trap_exit(False)
            await trio.sleep_forever()

        pid, ref = beam.spawn_monitor(body)
        await settle()
        beam.exit(pid, "boom")
        assert await down_reason(ref) == "boom"


# -- monitors ----------------------------------------------------------------------------------


async def test_monitors_down_carries_ref_pid_and_reason() -> None:
    async with beam.open_node():
        pid = beam.spawn(exit_on, "die", ("reason", 7))
        ref = beam.monitor(pid)
        assert isinstance(ref, beam.Ref)
        beam.send(pid, "die")
        assert await beam.receive() == beam.Down(ref, pid, ("reason", 7))


async def test_monitors_are_unidirectional() -> None:
    async with beam.open_node():
        me = beam.self()
        target = beam.spawn(idle)

        async def watcher() -> None:
            beam.monitor(target)
            await exit_on("die", "boom")

        watcher_pid = beam.spawn(watcher)
        await settle()
        assert info(target).monitored_by == (watcher_pid,)
        beam.send(watcher_pid, "die")
        await settle()
        # The watcher's death does not touch the watched process, and frees the monitor.
        assert beam.is_alive(target)
        assert info(target).monitored_by == ()
        # And a monitored process's death does not kill its watcher.
        ref = beam.monitor(target)
        beam.exit(target, "boom")
        assert await down_reason(ref) == "boom"
        assert beam.is_alive(me)


async def test_monitors_each_call_is_independent() -> None:
    async with beam.open_node():
        pid = beam.spawn(exit_on, "die", "boom")
        refs = [beam.monitor(pid) for _ in range(3)]
        assert len(set(refs)) == 3
        beam.demonitor(refs[1])
        beam.send(pid, "die")
        await settle()
        assert await receive_all() == [
            beam.Down(refs[0], pid, "boom"),
            beam.Down(refs[2], pid, "boom"),
        ]


async def test_monitor_dead_pid_gives_noproc_at_once() -> None:
    async with beam.open_node():
        dead = beam.spawn(exit_with, "boom")
        await settle()
        ref = beam.monitor(dead)
        # Already in the mailbox: no checkpoint was needed.
        assert drain() == [beam.Down(ref, dead, beam.NOPROC)]


async def test_monitor_by_registered_name() -> None:
    async with beam.open_node():
        pid = beam.spawn(exit_on, "die", "boom")
        beam.register("watched", pid)
        ref = beam.monitor("watched")
        assert info(pid).monitored_by == (beam.self(),)
        beam.send("watched", "die")
        assert await down_reason(ref) == "boom"


async def test_monitor_unknown_name_gives_noproc_at_once() -> None:
    async with beam.open_node():
        ref = beam.monitor("nobody")
        down = await beam.receive(timeout=0)
        assert down == beam.Down(ref, "nobody", beam.NOPROC)


async def test_monitor_bad_target_type_raises_type_error() -> None:
    async with beam.open_node():
        with pytest.raises(TypeError, match="12345"):
            beam.monitor(12345)  # type: ignore[arg-type]


# -- demonitor -----------------------------------------------------------------------------------


async def test_demonitor_stops_the_down() -> None:
    async with beam.open_node():
        pid = beam.spawn(exit_on, "die", "boom")
        ref = beam.monitor(pid)
        assert beam.demonitor(ref) is True
        assert info(pid).monitored_by == ()
        assert info(beam.self()).monitors == ()
        beam.send(pid, "die")
        await settle()
        assert drain() == []


async def test_demonitor_flush_removes_down() -> None:
    async with beam.open_node():
        me = beam.self()
        pid = beam.spawn(exit_with, "boom")
        ref = beam.monitor(pid)
        other_pid = beam.spawn(exit_with, "other")
        other_ref = beam.monitor(other_pid)
        beam.send(me, "before")
        await settle()
        beam.send(me, "after")
        assert len(drain()) == 4
        # The monitor already fired: demonitor(info) says so, and flush removes its Down only.
        assert beam.demonitor(ref, flush=True, info=True) is False
        assert drain() == ["before", beam.Down(other_ref, other_pid, "other"), "after"]


async def test_demonitor_without_flush_leaves_down() -> None:
    async with beam.open_node():
        pid = beam.spawn(exit_with, "boom")
        ref = beam.monitor(pid)
        await settle()
        assert beam.demonitor(ref, info=True) is False  # [info]: the monitor was already gone
        assert drain() == [beam.Down(ref, pid, "boom")]


async def test_plain_demonitor_returns_true_as_erlang_demonitor_1_does() -> None:
    # OTP (tests/beam/otp/demonitor.erl): demonitor/1 is true whether the monitor was
    # active, already off, or already fired; demonitor/2 with [info] tells which.
    async with beam.open_node():
        pid = beam.spawn(exit_on, "die", "boom")
        ref = beam.monitor(pid)
        assert beam.demonitor(ref) is True
        assert beam.demonitor(ref) is True
        assert beam.demonitor(ref, info=True) is False
        ref = beam.monitor(pid)
        assert beam.demonitor(ref, info=True) is True
        fired = beam.monitor(pid)
        beam.send(pid, "die")
        assert await down_reason(fired) == "boom"
        assert beam.demonitor(fired) is True
        assert beam.demonitor(fired, info=True) is False


async def test_demonitor_flush_on_active_monitor() -> None:
    async with beam.open_node():
        pid = beam.spawn(idle)
        ref = beam.monitor(pid)
        beam.send(beam.self(), "unrelated")
        assert beam.demonitor(ref, flush=True, info=True) is True
        assert drain() == ["unrelated"]
        assert beam.demonitor(ref, flush=True, info=True) is False  # a second time: gone


# -- termination reasons -----------------------------------------------------------------------


async def test_termination_reasons() -> None:
    async with beam.open_node():
        error = RuntimeError("crash")

        async def returns() -> None:
            return None

        async def raises() -> None:
            raise error

        async def exits() -> None:
            raise beam.ProcessExit(("custom", "reason"))

        refs = [beam.spawn_monitor(fn)[1] for fn in (returns, raises, exits)]
        reasons = [await down_reason(ref) for ref in refs]
        assert reasons[0] == beam.NORMAL
        assert reasons[1] is error  # a runtime error: the exception itself is the reason
        assert reasons[2] == ("custom", "reason")


@pytest.mark.parametrize("reason", [beam.SHUTDOWN, (beam.SHUTDOWN, "detail")])
async def test_shutdown_reasons_kill_nontrapping_links(reason: Any) -> None:
    async with beam.open_node():
        a, b = await linked_pair()
        ref_b = beam.monitor(b)

        async def stopper() -> None:
            beam.link(a)
            beam.link(b)
            raise beam.ProcessExit(reason)

        beam.spawn(stopper)
        assert await down_reason(ref_b) == reason
        assert not beam.is_alive(a)


@pytest.mark.parametrize("reason", [beam.SHUTDOWN, (beam.SHUTDOWN, "detail")])
async def test_shutdown_reasons_are_trapped_like_any_other(reason: Any) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = beam.spawn_link(exit_with, reason)
        assert await beam.receive() == beam.Exit(pid, reason)


def test_is_normal_exit_matches_otp() -> None:
    assert beam.is_normal_exit(beam.NORMAL)
    assert beam.is_normal_exit(beam.SHUTDOWN)
    assert beam.is_normal_exit((beam.SHUTDOWN, {"any": "detail"}))
    for reason in (beam.KILL, beam.KILLED, "boom", ("shutdown",), ValueError("x"), None):
        assert not beam.is_normal_exit(reason)
