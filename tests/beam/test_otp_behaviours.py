"""Behaviours pinned against what Erlang/OTP prints (issue 18, "Behaviours that differ").

Each test names the OTP behaviour it checks; the escript beside it in ``tests/beam/otp/``
shows what OTP 25 does (run it with ``escript tests/beam/otp/<name>.erl``).
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import trio
import trio.testing

import beam
from beam.testing import assert_receive, refute_receive

from .conftest import down_reason, drain, settle

# -- 1. exit(boom) in handle_call: terminate first (handle_call_exit.erl) -----------------------


class ExitsInCall(beam.GenServer[beam.Pid]):
    async def init(self, report_to: beam.Pid) -> beam.Ok[beam.Pid]:
        return beam.Ok(report_to)

    async def handle_call(self, request: Any, from_: beam.From, report_to: beam.Pid) -> Any:
        raise beam.ProcessExit(request)

    async def handle_cast(self, request: Any, report_to: beam.Pid) -> Any:
        raise beam.ProcessExit(request)

    async def terminate(self, reason: Any, report_to: beam.Pid) -> None:
        beam.send(report_to, ("terminated", reason))


async def test_exit_in_handle_call_runs_terminate_before_the_caller_exits() -> None:
    async with beam.open_node():
        pid = await ExitsInCall.start(beam.self())
        assert pid is not None
        ref = beam.monitor(pid)
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.call(pid, "boom")
        assert caught.value.reason == ("boom", ("beam.call", pid))
        # terminate(boom, State) ran before the caller got its exit: its message is there.
        assert drain()[0] == ("terminated", "boom")
        assert await down_reason(ref) == "boom"


async def test_exit_in_handle_cast_runs_terminate_with_the_exit_reason() -> None:
    async with beam.open_node():
        pid = await ExitsInCall.start(beam.self())
        assert pid is not None
        ref = beam.monitor(pid)
        beam.cast(pid, ("shutdown", "done"))
        assert await assert_receive(tuple) == ("terminated", ("shutdown", "done"))
        assert await down_reason(ref) == ("shutdown", "done")


class SelfExit(beam.GenServer[beam.Pid]):
    async def init(self, report_to: beam.Pid) -> beam.Ok[beam.Pid]:
        return beam.Ok(report_to)

    async def handle_cast(self, request: Any, report_to: beam.Pid) -> Any:
        beam.exit(beam.self(), "shot")  # an exit signal, not exit/1: no terminate
        return beam.NoReply(report_to)

    async def terminate(self, reason: Any, report_to: beam.Pid) -> None:
        beam.send(report_to, ("terminated", reason))


async def test_exit_signal_to_itself_skips_terminate_as_in_otp() -> None:
    async with beam.open_node():
        pid = await SelfExit.start(beam.self())
        assert pid is not None
        ref = beam.monitor(pid)
        beam.cast(pid, "go")
        assert await down_reason(ref) == "shot"
        await refute_receive(tuple)


# -- 2. exit(boom) in init (init_exit.erl) ------------------------------------------------------


class ExitsInInit(beam.GenServer[None]):
    async def init(self, reason: Any) -> beam.Ok[None]:
        raise beam.ProcessExit(reason)


async def test_exit_in_init_makes_the_start_error_reason_the_bare_exit_reason() -> None:
    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await ExitsInInit.start("boom")
        assert caught.value.reason == "boom"
        beam.trap_exit(True)
        with pytest.raises(beam.StartError) as caught:
            await ExitsInInit.start_link("boom")
        assert caught.value.reason == "boom"


class ExitsInInitOnGo(beam.GenServer[None]):
    async def init(self, reason: Any) -> beam.Ok[None]:
        await beam.receive(lambda m: m == "go")
        raise beam.ProcessExit(reason)


async def test_exit_in_init_is_what_monitors_of_the_server_see() -> None:
    async with beam.open_node():
        me = beam.self()

        async def starter() -> None:
            try:
                await ExitsInInitOnGo.start("boom", name="doomed")
            except beam.StartError as exc:
                beam.send(me, ("start error", exc.reason))

        beam.spawn(starter)
        await settle()
        pid = beam.whereis("doomed")
        assert pid is not None
        ref = beam.monitor(pid)
        beam.send(pid, "go")
        assert await down_reason(ref) == "boom"
        assert await assert_receive(tuple) == ("start error", "boom")


# -- 3. ignore from init (init_ignore.erl) ------------------------------------------------------


class Ignores(beam.GenServer[None]):
    async def init(self, arg: Any) -> beam.Ignore:
        return beam.Ignore()


async def test_ignore_from_init_sends_a_trapping_caller_exit_normal() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        assert await Ignores.start_link(None, name="ignored") is None
        exit_message = await assert_receive(beam.Exit)
        assert exit_message.reason == beam.NORMAL
        assert beam.whereis("ignored") is None


async def test_ignore_from_init_leaves_a_non_trapping_caller_alive() -> None:
    async with beam.open_node():
        assert await Ignores.start_link(None) is None
        await settle()
        assert drain() == []


# -- 5. {stop, Reason, Reply, State}: terminate before the reply (stop_reply.erl) ----------------


class StopsReplying(beam.GenServer[beam.Pid]):
    async def init(self, report_to: beam.Pid) -> beam.Ok[beam.Pid]:
        return beam.Ok(report_to)

    async def handle_call(self, request: Any, from_: beam.From, report_to: beam.Pid) -> Any:
        return beam.Stop.replying(beam.NORMAL, "done", report_to)

    async def terminate(self, reason: Any, report_to: beam.Pid) -> None:
        await trio.lowlevel.checkpoint()  # a terminate that awaits still runs first
        beam.send(report_to, "cleaned up")


async def test_stop_with_a_reply_runs_terminate_before_the_reply_is_sent() -> None:
    async with beam.open_node():
        pid = await StopsReplying.start(beam.self())
        assert pid is not None
        assert await beam.call(pid, "go") == "done"
        assert drain() == ["cleaned up"]  # already there when the reply came


class TerminateFails(StopsReplying):
    async def terminate(self, reason: Any, report_to: beam.Pid) -> None:
        raise RuntimeError("cleanup failed")


async def test_stop_with_a_reply_still_replies_when_terminate_raises() -> None:
    # OTP: try terminate(...) after reply(From, Reply) end; the server exits with the error.
    async with beam.open_node():
        pid = await TerminateFails.start(beam.self())
        assert pid is not None
        ref = beam.monitor(pid)
        assert await beam.call(pid, "go") == "done"
        reason = await down_reason(ref)
        assert isinstance(reason, RuntimeError)


# -- 6. start_timer (start_timer.erl) -----------------------------------------------------------


async def test_start_timer_delivers_timeout_tagged_with_the_timer_ref(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        ref = beam.start_timer(beam.self(), "hello", 0.05)
        remaining = beam.read_timer(ref)
        assert remaining is not None
        assert 0 < remaining <= 0.05
        assert await beam.receive() == beam.TimerTimeout(ref, "hello")
        assert beam.read_timer(ref) is None
        assert beam.cancel_timer(ref) is None
        later = beam.start_timer(beam.self(), "later", 5.0)
        assert beam.cancel_timer(later) is not None
        await trio.sleep(6)
        assert drain() == []
        plain = beam.send_after(beam.self(), "plain", 0.01)
        assert await beam.receive() == "plain"  # send_after: the bare message
        assert beam.read_timer(plain) is None


async def test_start_timer_to_a_name_resolves_it_when_it_fires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        beam.register("me", beam.self())
        ref = beam.start_timer("me", ("tick", 1), 1.0)
        assert await beam.receive(timeout=2) == beam.TimerTimeout(ref, ("tick", 1))


# -- 6. hibernate (hibernate.erl) ---------------------------------------------------------------


class Hoarder(beam.GenServer[dict[int, bytes]]):
    async def init(self, arg: Any) -> beam.Ok[dict[int, bytes]]:
        return beam.Ok({})

    async def handle_call(self, request: Any, from_: beam.From, state: dict[int, bytes]) -> Any:
        if request == "fill":
            for n in range(50_000):
                state[n] = b"x"
            return beam.Reply(sys.getsizeof(state), state)
        if request == "drain":
            for n in range(1, 50_000):
                del state[n]
            return beam.Reply(sys.getsizeof(state), state)
        if request == "hibernate":
            return beam.Reply("hibernating", state, hibernate=True)
        return beam.Reply((sys.getsizeof(state), dict(state)), state)


async def test_hibernate_compacts_the_state_and_keeps_its_value() -> None:
    async with beam.open_node():
        pid = await Hoarder.start()
        assert pid is not None
        full = await beam.call(pid, "fill")
        drained = await beam.call(pid, "drain")
        assert drained == full  # a dict keeps its table when entries go: the garbage
        assert await beam.call(pid, "hibernate") == "hibernating"
        size, value = await beam.call(pid, "get")
        assert value == {0: b"x"}
        assert size * 100 < drained  # measured: from the 50,000-entry table to a small one


async def test_hibernate_drops_the_empty_mailbox_and_tables() -> None:
    from beam._node import current_node

    class Idle(beam.GenServer[None]):
        async def init(self, arg: Any) -> beam.Ok[None]:
            return beam.Ok(None)

        async def handle_info(self, message: Any, state: None) -> beam.NoReply[None]:
            return beam.NoReply(state, hibernate=message == "sleep")

    async with beam.open_node():
        pid = await Idle.start()
        assert pid is not None
        proc = current_node()._procs[pid.id]
        for n in range(1000):
            beam.send(pid, n)
        beam.send(pid, "sleep")
        await settle()
        assert proc.queue is None
        assert proc.replies is None
        assert beam.is_alive(pid)


def test_compact_rebuilds_builtin_containers_and_keeps_sharing_and_other_objects() -> None:
    from beam._hibernate import compact

    marker = object()
    shared = [1, 2, 3]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    state = {"a": shared, "b": (shared, marker), "c": {1, 2}, "d": cyclic}
    result = compact(state)
    assert result == {"a": [1, 2, 3], "b": ([1, 2, 3], marker), "c": {1, 2}, "d": result["d"]}
    assert result["a"] is not shared
    assert result["b"][0] is result["a"]
    assert result["b"][1] is marker
    assert result["d"][0] is result["d"]


# -- 7. Task.shutdown (Elixir's Task.shutdown/2) ------------------------------------------------


async def sleep_then(seconds: float, value: Any) -> Any:
    await trio.sleep(seconds)
    return value


async def trap_and_sleep(seconds: float) -> str:
    beam.trap_exit(True)
    await trio.sleep(seconds)
    return "survived"


async def test_task_shutdown_after_a_caught_await_timeout_stops_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 3600, "late")
        with pytest.raises(beam.CallTimeout):
            await task.await_(timeout=1)
        ref = beam.monitor(task.pid)
        assert await task.shutdown() is None
        assert await down_reason(ref) == beam.SHUTDOWN
        await settle()
        assert drain() == []
        with pytest.raises(RuntimeError, match="already awaited or shut down"):
            await task.shutdown()


async def test_task_shutdown_kills_a_task_that_traps_exits_after_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        task = beam.Task.async_(trap_and_sleep, 3600)
        await settle()
        ref = beam.monitor(task.pid)
        started = trio.current_time()
        assert await task.shutdown(timeout=2) is None
        assert trio.current_time() - started == pytest.approx(2)
        assert await down_reason(ref) == beam.KILLED
        assert beam.is_alive(beam.self())


async def test_task_shutdown_returns_the_result_of_a_task_that_finished_first() -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 0, "finished")
        await settle()
        assert await task.shutdown() == "finished"
        await settle()
        assert drain() == []


async def test_task_shutdown_waits_for_the_task_to_be_gone() -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 3600, None)
        await settle()
        await task.shutdown()
        assert not beam.is_alive(task.pid)
