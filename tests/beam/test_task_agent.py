"""Section 1.5 of the reference, the Task and Agent rows (supervisors are tested elsewhere).

Elixir's semantics: ``Task.async`` links and monitors; ``Task.await`` defaults to 5 s and on
timeout the caller exits; a crashing task takes its (non-trapping) owner with it; a task is
awaited once and only by its owner; a successful await leaves no ``:DOWN`` behind. ``Agent``
is a GenServer holding one value whose functions run inside the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

import beam
from beam.testing import assert_receive, refute_receive

from .conftest import down_reason, drain, non_process_context, settle


async def double(x: int) -> int:
    return 2 * x


async def sleep_then(seconds: float, value: Any) -> Any:
    await trio.sleep(seconds)
    return value


async def crash(message: str) -> None:
    raise ZeroDivisionError(message)


async def exit_with(reason: Any) -> None:
    raise beam.ProcessExit(reason)


async def trap_and_sleep(seconds: float) -> str:
    beam.trap_exit(True)
    await trio.sleep(seconds)
    return "survived"


# -- async_ / await_ --------------------------------------------------------------------------


async def test_task_async_await_returns_the_result() -> None:
    async with beam.open_node():
        task = beam.Task.async_(double, 21)
        assert task.owner == beam.self()
        assert task.pid != beam.self()
        assert await task.await_() == 42


async def test_task_runs_concurrently_with_its_owner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        before = trio.current_time()
        tasks = [beam.Task.async_(sleep_then, 3, n) for n in range(10)]
        assert [await t.await_() for t in tasks] == list(range(10))
        assert trio.current_time() - before == pytest.approx(3.0)


async def test_task_is_linked_to_its_owner() -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 3600, None)
        await settle()
        info = beam.process_info(task.pid)
        assert info is not None
        assert beam.self() in info.links
        await task.shutdown(brutal=True)


async def test_task_result_can_be_awaited_after_the_task_finished() -> None:
    async with beam.open_node():
        task = beam.Task.async_(double, 5)
        await settle()
        assert not beam.is_alive(task.pid)
        assert drain() == []  # the reply waits in the task's slot, not in the mailbox
        assert await task.await_() == 10


async def test_task_await_default_timeout_is_5_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 60, "late")
        before = trio.current_time()
        with pytest.raises(beam.CallTimeout) as caught:
            await task.await_()
        assert trio.current_time() - before == pytest.approx(5.0)
        assert caught.value.reason == ("timeout", ("beam.Task.await_", task.pid))
        assert beam.is_alive(task.pid)  # a caught timeout leaves the task running
        beam.unlink(task.pid)
        beam.exit(task.pid, beam.KILL)
        await settle()


async def test_task_await_timeout_uncaught_owner_exits_and_takes_the_task_along(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()

        async def owner() -> None:
            task = beam.Task.async_(sleep_then, 60, "late")
            beam.send(me, ("task", task.pid))
            await task.await_(timeout=1)

        _, ref = beam.spawn_monitor(owner)
        _, task_pid = await assert_receive()
        task_ref = beam.monitor(task_pid)
        reason = await down_reason(ref)
        assert reason == ("timeout", ("beam.Task.await_", task_pid))
        assert await down_reason(task_ref) == reason  # the linked task exits with the owner


async def test_task_late_result_after_a_caught_timeout_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 2, "late")
        with pytest.raises(beam.CallTimeout):
            await task.await_(timeout=1)
        ref = beam.monitor(task.pid)
        assert await down_reason(ref) == "normal"  # the task finished and replied at t=2
        await settle()
        assert drain() == []
        with pytest.raises(RuntimeError, match="already awaited"):
            await task.await_()


# -- crashes ----------------------------------------------------------------------------------


async def test_task_crash_owner_exits_with_the_reason() -> None:
    async with beam.open_node():
        me = beam.self()

        async def owner() -> None:
            task = beam.Task.async_(crash, "task failed")
            beam.send(me, ("task", task.pid))
            await task.await_()
            beam.send(me, "await returned")  # never reached

        _, ref = beam.spawn_monitor(owner)
        await assert_receive()
        reason = await down_reason(ref)
        # The link kills the owner with the task's own reason.
        assert isinstance(reason, ZeroDivisionError)
        assert str(reason) == "task failed"
        await refute_receive(lambda m: m == "await returned")


async def test_task_crash_trapping_owner_gets_process_exit_and_an_exit_message() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        task = beam.Task.async_(crash, "task failed")
        with pytest.raises(beam.ProcessExit) as caught:
            await task.await_()
        reason, where = caught.value.reason
        assert isinstance(reason, ZeroDivisionError)
        assert where == ("beam.Task.await_", task.pid)
        exit_message = await assert_receive(beam.Exit)
        assert exit_message.pid == task.pid
        assert exit_message.reason is reason
        await settle()
        assert not any(isinstance(m, beam.Down) for m in drain())


async def test_task_exit_reason_reaches_the_trapping_owner() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        task = beam.Task.async_(exit_with, "gave up")
        with pytest.raises(beam.ProcessExit) as caught:
            await task.await_()
        assert caught.value.reason == ("gave up", ("beam.Task.await_", task.pid))
        assert await assert_receive(beam.Exit) == beam.Exit(task.pid, "gave up")


async def test_task_crash_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            task = beam.Task.async_(crash, "visible in the log")
            with pytest.raises(beam.ProcessExit):
                await task.await_()
            await settle()
        assert "visible in the log" in caplog.text


# -- await rules ------------------------------------------------------------------------------


async def test_task_awaiting_twice_is_a_clear_runtime_error() -> None:
    async with beam.open_node():
        task = beam.Task.async_(double, 1)
        assert await task.await_() == 2
        with pytest.raises(RuntimeError, match="already awaited") as caught:
            await task.await_()
        assert str(task.pid) in str(caught.value)


async def test_task_await_from_a_non_owner_is_a_clear_runtime_error() -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 0, "for the owner")
        me = beam.self()

        async def intruder() -> None:
            try:
                await task.await_()
            except RuntimeError as exc:
                beam.send(me, ("await", str(exc)))
            try:
                await task.shutdown()
            except RuntimeError as exc:
                beam.send(me, ("shutdown", str(exc)))

        intruder_pid = beam.spawn(intruder)
        _, message = await assert_receive(lambda m: m[0] == "await")
        assert "only its owner" in message
        assert str(task.owner) in message
        assert str(intruder_pid) in message
        _, message = await assert_receive(lambda m: m[0] == "shutdown")
        assert "only its owner" in message
        # The owner can still await it: the intruder took nothing.
        assert await task.await_() == "for the owner"


async def test_task_async_outside_a_process_is_refused() -> None:
    async with beam.open_node():
        got: list[BaseException] = []

        async def plain_task() -> None:
            try:
                beam.Task.async_(double, 1)
            except beam.NotInProcess as exc:
                got.append(exc)

        trio.lowlevel.spawn_system_task(plain_task, context=non_process_context())
        await settle()
        assert len(got) == 1


# -- await_many -------------------------------------------------------------------------------


async def test_task_await_many_returns_results_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        delays = [3, 1, 2]
        tasks = [beam.Task.async_(sleep_then, d, f"t{d}") for d in delays]
        before = trio.current_time()
        assert await beam.Task.await_many(tasks) == ["t3", "t1", "t2"]
        assert trio.current_time() - before == pytest.approx(3.0)
        no_tasks: list[beam.Task[str]] = []
        assert await beam.Task.await_many(no_tasks) == []


async def test_task_await_many_timeout_is_one_overall_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        tasks = [beam.Task.async_(sleep_then, d, d) for d in (2, 4, 6)]
        before = trio.current_time()
        with pytest.raises(beam.CallTimeout) as caught:
            await beam.Task.await_many(tasks, timeout=3)
        assert trio.current_time() - before == pytest.approx(3.0)
        assert caught.value.reason == ("timeout", ("beam.Task.await_", tasks[1].pid))
        await tasks[2].shutdown(brutal=True)  # never awaited: it can still be shut down


async def test_task_await_many_default_timeout_is_5_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        tasks = [beam.Task.async_(sleep_then, 60, None)]
        before = trio.current_time()
        with pytest.raises(beam.CallTimeout):
            await beam.Task.await_many(tasks)
        assert trio.current_time() - before == pytest.approx(5.0)
        beam.unlink(tasks[0].pid)
        beam.exit(tasks[0].pid, beam.KILL)
        await settle()


async def test_task_await_many_with_a_crash_raises_process_exit() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        good: beam.Task[Any] = beam.Task.async_(double, 1)
        bad: beam.Task[Any] = beam.Task.async_(crash, "one of many")
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.Task.await_many([good, bad])
        reason, where = caught.value.reason
        assert isinstance(reason, ZeroDivisionError)
        assert where == ("beam.Task.await_", bad.pid)


# -- shutdown ---------------------------------------------------------------------------------


async def test_task_shutdown_stops_the_task_with_shutdown() -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 3600, None)
        await settle()
        ref = beam.monitor(task.pid)
        await task.shutdown()
        assert await down_reason(ref) == beam.SHUTDOWN
        assert beam.is_alive(beam.self())  # unlinked first: the owner is not touched
        await settle()
        assert drain() == []


async def test_task_shutdown_brutal_kills_even_a_trapping_task() -> None:
    async with beam.open_node():
        task = beam.Task.async_(trap_and_sleep, 3600)
        await settle()
        ref = beam.monitor(task.pid)
        await task.shutdown(brutal=True)
        assert await down_reason(ref) == beam.KILLED
        await settle()
        assert drain() == []


async def test_task_shutdown_with_a_trapping_owner_leaves_no_messages() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        tasks = [beam.Task.async_(sleep_then, 3600, None) for _ in range(3)]
        await settle()
        await tasks[0].shutdown()
        await tasks[1].shutdown(brutal=True)
        await tasks[2].shutdown()
        await settle()
        assert drain() == []  # no Exit (unlinked) and no Down (monitor removed)
        assert not any(beam.is_alive(t.pid) for t in tasks)


async def test_task_shutdown_then_await_is_a_runtime_error() -> None:
    async with beam.open_node():
        task = beam.Task.async_(sleep_then, 3600, None)
        await task.shutdown()
        with pytest.raises(RuntimeError, match="already awaited or shut down"):
            await task.await_()
        with pytest.raises(RuntimeError, match="already awaited or shut down"):
            await task.shutdown()


async def test_task_shutdown_after_the_task_finished_is_quiet() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        task = beam.Task.async_(double, 2)
        assert await assert_receive(beam.Exit) == beam.Exit(task.pid, "normal")
        await task.shutdown()
        await settle()
        assert drain() == []


# -- no Down leaks ----------------------------------------------------------------------------


async def test_task_no_down_leaks_after_a_successful_await() -> None:
    async with beam.open_node():
        for _ in range(20):
            task = beam.Task.async_(double, 3)
            assert await task.await_() == 6
        await settle()
        assert drain() == []
        info = beam.process_info(beam.self())
        assert info is not None
        assert info.monitors == ()  # every await removed its monitor


async def test_task_no_down_leaks_when_the_task_exits_after_replying() -> None:
    async def reply_then_linger(seconds: float) -> str:
        return "early"  # replying is returning; exit follows at once

    async with beam.open_node():
        beam.trap_exit(True)
        task = beam.Task.async_(reply_then_linger, 1)
        await settle()  # the task replied *and* exited before the await
        assert await task.await_() == "early"
        await settle()
        messages = drain()
        assert messages == [beam.Exit(task.pid, "normal")]  # the link's, as in Elixir
        assert not any(isinstance(m, beam.Down) for m in messages)


async def test_task_no_down_leaks_after_a_crash_seen_by_await() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        task = beam.Task.async_(crash, "x")
        with pytest.raises(beam.ProcessExit):
            await task.await_()
        await settle()
        assert all(isinstance(m, beam.Exit) for m in drain())


# -- Agent ------------------------------------------------------------------------------------


def ident(n: int) -> int:
    return n


def incr(n: int) -> int:
    return n + 1


def times_100(n: int) -> int:
    return n * 100


def plus_10(n: int) -> int:
    return n + 10


def report_and_double(n: int) -> tuple[str, int]:
    return f"was {n}", n * 2


async def test_agent_get_update_get_and_update_cast_stop() -> None:
    async with beam.open_node():
        agent = await beam.Agent.start_link(lambda: 0)
        assert await beam.Agent.get(agent, ident) == 0
        await beam.Agent.update(agent, incr)
        assert await beam.Agent.get(agent, times_100) == 100  # get does not store
        beam.Agent.cast(agent, plus_10)
        assert await beam.Agent.get_and_update(agent, report_and_double) == "was 11"
        assert await beam.Agent.get(agent, ident) == 22
        ref = beam.monitor(agent)
        await beam.Agent.stop(agent)
        assert not beam.is_alive(agent)
        assert await down_reason(ref) == "normal"


def with_theme(d: dict[str, str]) -> dict[str, str]:
    return {**d, "theme": "dark"}


def with_lang(d: dict[str, str]) -> dict[str, str]:
    return {**d, "lang": "fr"}


def sorted_items(d: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(d.items())


async def test_agent_by_name() -> None:
    async with beam.open_node():
        agent = await beam.Agent.start_link(dict, name="settings")
        assert beam.whereis("settings") == agent
        await beam.Agent.update("settings", with_theme)
        beam.Agent.cast("settings", with_lang)
        assert await beam.Agent.get("settings", sorted_items) == [
            ("lang", "fr"),
            ("theme", "dark"),
        ]
        await beam.Agent.stop("settings")
        assert beam.whereis("settings") is None
        await beam.Agent.start_link(dict, name="x")
        with pytest.raises(beam.AlreadyRegistered):
            await beam.Agent.start_link(dict, name="x")


async def test_agent_functions_run_in_the_agent_process_one_at_a_time() -> None:
    async with beam.open_node():
        agent = await beam.Agent.start_link(list)
        assert await beam.Agent.get(agent, lambda _: beam.self()) == agent
        me = beam.self()

        async def bumper(n: int) -> None:
            for _ in range(n):
                await beam.Agent.update(agent, lambda xs: [*xs, 1])
            beam.send(me, "bumped")

        for _ in range(5):
            beam.spawn(bumper, 20)
        for _ in range(5):
            await assert_receive(lambda m: m == "bumped")
        assert await beam.Agent.get(agent, len) == 100


async def test_agent_cast_is_ordered_before_a_later_get() -> None:
    async with beam.open_node():
        agent = await beam.Agent.start_link(list)

        def appender(n: int) -> Callable[[list[int]], list[int]]:
            return lambda xs: [*xs, n]

        for n in range(10):
            beam.Agent.cast(agent, appender(n))
        assert await beam.Agent.get(agent, list) == list(range(10))


async def test_agent_cast_to_a_dead_agent_is_silent() -> None:
    async with beam.open_node():
        agent = await beam.Agent.start_link(lambda: 0)
        await beam.Agent.stop(agent)
        beam.Agent.cast(agent, lambda n: n + 1)
        beam.Agent.cast("no such agent", lambda n: n + 1)
        with pytest.raises(beam.NoProc):
            await beam.Agent.get(agent, lambda n: n)


async def test_agent_stop_with_a_reason_runs_to_completion() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        agent = await beam.Agent.start_link(lambda: 0)
        await beam.Agent.stop(agent, ("shutdown", "bye"))
        assert await assert_receive(beam.Exit) == beam.Exit(agent, ("shutdown", "bye"))


async def test_agent_function_that_raises_crashes_the_agent_and_the_caller_sees_it() -> None:
    async with beam.open_node():
        beam.trap_exit(True)

        def lookup_missing(d: dict[str, int]) -> int:
            return d["missing"]

        agent = await beam.Agent.start_link(dict)
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.Agent.get(agent, lookup_missing)
        reason, where = caught.value.reason
        assert isinstance(reason, KeyError)
        assert where == ("beam.call", agent)
        exit_message = await assert_receive(beam.Exit)
        assert exit_message.pid == agent
        assert exit_message.reason is reason


async def test_agent_start_failure_is_a_start_error() -> None:
    def broken() -> int:
        raise ValueError("no initial value")

    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await beam.Agent.start_link(broken)
        assert isinstance(caught.value.reason, ValueError)
        assert beam.is_alive(beam.self())


async def test_agent_get_default_timeout_is_5_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An agent stuck behind a slow request: the get behind it times out after 5 s.
    class Stuck(beam.GenServer[Any]):
        async def init(self, arg: Any) -> beam.Ok[Any]:
            return beam.Ok(arg)

        async def handle_call(self, request: Any, from_: beam.From, state: Any) -> Any:
            await trio.sleep(3600)
            return beam.Reply(None, state)

    async with beam.open_node():
        pid = await Stuck.start(0)
        assert pid is not None
        before = trio.current_time()
        with pytest.raises(beam.CallTimeout):
            await beam.Agent.get(pid, lambda n: n)
        assert trio.current_time() - before == pytest.approx(5.0)
        with pytest.raises(beam.CallTimeout):
            await beam.Agent.update(pid, lambda n: n, timeout=1)
        assert trio.current_time() - before == pytest.approx(6.0)
