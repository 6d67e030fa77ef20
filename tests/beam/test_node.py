"""The node: its lifecycle, clear errors when the runtime is misused, ``copy_messages``, the
long-schedule monitor (``system_monitor``) and crash reports.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import trio
import trio.testing

import beam

from .conftest import (
    down_reason,
    drain,
    exit_on,
    exit_with,
    idle,
    non_process_context,
    settle,
    waiter,
)

# -- errors outside a node / outside a process -------------------------------------------------


def test_send_outside_node_raises_not_in_node() -> None:
    with pytest.raises(beam.NotInNode, match=r"beam\.send .*beam\.run\(main\).*open_node"):
        beam.send(beam.Pid(1), "hello")


def test_spawn_outside_node_raises_not_in_node() -> None:
    with pytest.raises(beam.NotInNode, match=r"beam\.spawn .*beam\.run\(main\).*open_node"):
        beam.spawn(idle)


def test_receive_outside_node_raises_not_in_node() -> None:
    with pytest.raises(beam.NotInNode, match=r"beam\.receive .*beam\.run\(main\).*open_node"):
        _ = beam.receive()


async def test_not_in_node_inside_trio_without_node() -> None:
    for call in (
        lambda: beam.self(),
        lambda: beam.send(beam.Pid(1), "x"),
        lambda: beam.whereis("x"),
        lambda: beam.send_after(beam.Pid(1), "x", 1),
        lambda: beam.process_info(beam.Pid(1)),
    ):
        with pytest.raises(beam.NotInNode, match="open_node"):
            call()
    with pytest.raises(beam.NotInNode, match=r"beam\.receive"):
        await beam.receive(timeout=0)


async def test_receive_in_non_process_task_raises_not_in_process() -> None:
    async with beam.open_node():
        errors: list[BaseException] = []

        async def task() -> None:
            try:
                await beam.receive(timeout=0)
            except BaseException as exc:
                errors.append(exc)

        trio.lowlevel.spawn_system_task(task, context=non_process_context())
        await settle()
        assert len(errors) == 1
        assert isinstance(errors[0], beam.NotInProcess)
        message = str(errors[0])
        assert "beam.receive" in message
        assert "beam.spawn" in message


async def test_bad_receive_pattern_raises_type_error_naming_value() -> None:
    async with beam.open_node():
        beam.send(beam.self(), "x")
        with pytest.raises(TypeError, match="receive pattern 42 "):
            await beam.receive(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"receive pattern \('ok', 1\) .*predicate"):
            await beam.receive(("ok", 1))  # type: ignore[arg-type]
        assert drain() == ["x"]


async def test_receive_pattern_that_raises_fails_the_receiver() -> None:
    async with beam.open_node():
        beam.send(beam.self(), "x")

        def broken(message: Any) -> bool:
            return message < 1 / 0

        with pytest.raises(ZeroDivisionError):
            await beam.receive(broken)
        assert drain() == ["x"]


async def test_receive_pattern_that_raises_on_arrival_fails_the_receiver() -> None:
    async with beam.open_node():
        me = beam.self()

        def picky(message: Any) -> bool:
            if message == "poison":
                raise ValueError("cannot judge poison")
            return message == "wanted"

        async def receiver() -> None:
            try:
                await beam.receive(picky)
            except ValueError as exc:
                beam.send(me, ("raised", str(exc), await beam.receive(timeout=0)))

        pid = beam.spawn(receiver)
        await settle()
        beam.send(pid, "poison")  # tested on arrival: the error is the receiver's, not ours
        assert await beam.receive() == ("raised", "cannot judge poison", "poison")


async def test_spawn_non_async_function_crashes_with_type_error() -> None:
    async with beam.open_node():

        def not_async() -> int:
            return 1

        _, ref = beam.spawn_monitor(not_async)  # type: ignore[arg-type]
        reason = await down_reason(ref)
        assert isinstance(reason, TypeError)
        assert "async def" in str(reason)
        assert "not_async" in str(reason)


async def test_spawn_non_callable_raises_type_error() -> None:
    async with beam.open_node():
        with pytest.raises(TypeError, match="'not a function'"):
            beam.spawn("not a function")  # type: ignore[arg-type]


async def test_send_to_unregistered_name_error_names_it() -> None:
    async with beam.open_node():
        with pytest.raises(beam.UnknownName) as caught:
            beam.send("no_such_service", "hi")
        assert "'no_such_service'" in str(caught.value)
        assert isinstance(caught.value, LookupError)


async def test_two_tasks_of_one_process_cannot_receive_at_once() -> None:
    async with beam.open_node():
        errors: list[BaseException] = []

        async def second_receiver() -> None:
            try:
                await beam.receive()
            except RuntimeError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            # Tasks started by a process inherit it: this one *is* the test process.
            nursery.start_soon(waiter)
            await settle()
            nursery.start_soon(second_receiver)
            await settle()
            assert len(errors) == 1
            assert "only one task" in str(errors[0])
            nursery.cancel_scope.cancel()


# -- node lifecycle ----------------------------------------------------------------------------


async def test_open_node_body_is_a_process() -> None:
    async with beam.open_node() as node:
        assert isinstance(node, beam.Node)
        me = beam.self()
        assert beam.is_alive(me)
        assert info_status(me) == "running"
        assert beam.processes() == [me]
        beam.send(me, "to myself")
        assert await beam.receive() == "to myself"


def info_status(pid: beam.Pid) -> str:
    snapshot = beam.process_info(pid)
    assert snapshot is not None
    return snapshot.status


async def test_open_node_stops_remaining_processes_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="beam")
    cleaned_up: list[str] = []

    async def stubborn() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned_up.append("stubborn")

    async def receiving() -> None:
        try:
            await beam.receive()
        finally:
            cleaned_up.append("receiving")

    async with beam.open_node():
        beam.spawn(stubborn)
        beam.spawn(receiving)
        await settle()
    assert sorted(cleaned_up) == ["receiving", "stubborn"]
    assert [r for r in caplog.records if r.name == "beam.crash"] == []
    with pytest.raises(beam.NotInNode):
        beam.self()


async def test_open_node_spawn_while_closing_raises() -> None:
    errors: list[BaseException] = []

    async def spawner_at_shutdown() -> None:
        try:
            await trio.sleep_forever()
        finally:
            try:
                beam.spawn(idle)
            except RuntimeError as exc:
                errors.append(exc)

    async with beam.open_node():
        beam.spawn(spawner_at_shutdown)
        await settle()
    assert len(errors) == 1
    assert "shutting down" in str(errors[0])


async def test_open_node_raises_process_exit_when_body_is_killed() -> None:
    """A linked crash kills the body's process: ``async with`` raises ``ProcessExit``."""

    async def program() -> None:
        async with beam.open_node():
            beam.spawn_link(exit_with, "boom")
            await trio.sleep_forever()

    with pytest.raises(beam.ProcessExit) as caught:
        await program()
    assert caught.value.reason == "boom"


async def test_open_node_body_exception_propagates() -> None:

    async def program() -> None:
        async with beam.open_node():
            raise KeyError("k")

    with pytest.raises(KeyError, match="k"):
        await program()


async def test_open_node_body_exit_signals_its_links() -> None:
    """The body is a process: when it ends its links get ``normal`` (trappers see it)."""
    got: list[Any] = []

    async def trapper(parent: beam.Pid) -> None:
        beam.trap_exit(True)
        beam.link(parent)
        got.append(await beam.receive())

    async with beam.open_node():
        me = beam.self()
        beam.spawn(trapper, me)
        await settle()
    await trio.testing.wait_all_tasks_blocked()
    assert got == [beam.Exit(me, beam.NORMAL)]


def test_run_returns_main_result_and_passes_args() -> None:
    async def main(a: int, b: int) -> tuple[int, bool]:
        worker = beam.spawn(waiter)
        return a + b, beam.is_alive(worker)

    assert beam.run(main, 2, 3) == (5, True)


def test_run_propagates_exception_from_main() -> None:
    async def main() -> None:
        raise KeyError("from main")

    with pytest.raises(KeyError, match="from main"):
        beam.run(main)


def test_run_uses_the_given_clock() -> None:
    async def main() -> float:
        start = trio.current_time()
        beam.send_after(beam.self(), "tick", 3600)
        await beam.receive()
        return trio.current_time() - start

    clock = trio.testing.MockClock(autojump_threshold=0)
    assert beam.run(main, clock=clock) == pytest.approx(3600)


async def test_nodes_are_independent() -> None:
    async with beam.open_node():
        outer = beam.self()
        beam.register("outer", outer)
        async with beam.open_node():
            assert beam.whereis("outer") is None
            assert beam.processes() == [beam.self()]
        assert beam.whereis("outer") == outer


# -- copy_messages -----------------------------------------------------------------------------


async def test_copy_messages_isolates_receiver_mutations() -> None:
    async with beam.open_node(copy_messages=True):
        me = beam.self()
        original = {"items": [1, 2]}

        async def mutator() -> None:
            message = await beam.receive()
            message["items"].append(3)
            beam.send(me, message)

        pid = beam.spawn(mutator)
        beam.send(pid, original)
        echoed = await beam.receive()
        assert echoed == {"items": [1, 2, 3]}
        assert original == {"items": [1, 2]}
        assert echoed is not original


async def test_copy_messages_applies_to_timers_and_names() -> None:
    async with beam.open_node(copy_messages=True):
        beam.register("me", beam.self())
        payload = [1]
        beam.send("me", payload)
        beam.send_after(beam.self(), payload, 0)
        first = await beam.receive()
        second = await beam.receive()
        assert first == second == payload
        assert first is not payload
        assert second is not payload


async def test_copy_messages_timer_message_copied_when_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``send_after`` sends the message as it was when the timer was set (OTP copies it)."""
    async with beam.open_node(copy_messages=True):
        payload = [1]
        beam.send_after(beam.self(), payload, 1)
        payload.append(2)  # the sender keeps using its object
        assert await beam.receive() == [1]


async def test_copy_messages_applies_to_call_replies() -> None:
    async with beam.open_node(copy_messages=True):
        state = {"items": [1, 2]}

        async def server() -> None:
            while True:
                request = await beam.receive()
                beam.reply(request.from_, state)

        pid = beam.spawn(server)
        answer = await beam.call(pid, "get")
        assert answer == {"items": [1, 2]}
        answer["items"].append(3)
        assert state == {"items": [1, 2]}  # the server's state was not shared


async def test_without_copy_messages_message_is_same_object() -> None:
    async with beam.open_node():
        me = beam.self()
        original = {"items": [1, 2]}

        async def mutator() -> None:
            message = await beam.receive()
            message["items"].append(3)
            beam.send(me, "mutated")

        pid = beam.spawn(mutator)
        beam.send(pid, original)
        assert await beam.receive() == "mutated"
        assert original == {"items": [1, 2, 3]}  # shared: the receiver changed it


# -- long schedule (system_monitor) ------------------------------------------------------------


async def blocker() -> None:
    """Hold the event loop: the behaviour under test (no timing is asserted)."""
    await beam.receive(lambda m: m == "block")
    time.sleep(0.01)  # noqa: ASYNC251 - blocking on purpose
    await trio.sleep_forever()


def _is_long_schedule_of(pid: beam.Pid) -> Any:
    return lambda m: isinstance(m, beam.LongSchedule) and m.pid == pid


async def test_system_monitor_long_schedule_reports_blocking_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="beam.long_schedule")
    async with beam.open_node():
        beam.system_monitor(long_schedule=0.001, receiver=beam.self())
        pid = beam.spawn(blocker)
        await settle()
        beam.send(pid, "block")
        report = await beam.receive(_is_long_schedule_of(pid))
        assert report.duration > 0.001
        assert isinstance(report.task, str)
        assert "blocker" in report.stack
        beam.system_monitor(long_schedule=None)
    assert any(str(pid) in r.getMessage() for r in caplog.records)


async def test_system_monitor_none_clears_the_setting() -> None:
    async with beam.open_node():
        beam.system_monitor(long_schedule=0.001, receiver=beam.self())
        beam.system_monitor(long_schedule=None)
        pid = beam.spawn(blocker)
        await settle()
        beam.send(pid, "block")
        await settle()
        assert [m for m in drain() if isinstance(m, beam.LongSchedule)] == []


async def test_system_monitor_setting_replaces_the_old_one() -> None:
    async with beam.open_node():
        me = beam.self()
        other = beam.spawn(waiter)
        beam.system_monitor(long_schedule=0.001, receiver=other)
        beam.system_monitor(long_schedule=0.001, receiver=me)  # replaces, does not add
        pid = beam.spawn(blocker)
        await settle()
        beam.send(pid, "block")
        await beam.receive(_is_long_schedule_of(pid))
        snapshot = beam.process_info(other)
        assert snapshot is not None
        assert snapshot.message_queue_len == 0
        beam.system_monitor(long_schedule=None)


async def test_system_monitor_cleared_when_receiver_dies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As ``erlang:system_monitor/2``: the setting goes away with its receiver process."""
    caplog.set_level(logging.WARNING, logger="beam.long_schedule")
    async with beam.open_node():
        receiver, ref = beam.spawn_monitor(exit_on, "die", beam.NORMAL)
        beam.system_monitor(long_schedule=0.001, receiver=receiver)
        beam.send(receiver, "die")
        await down_reason(ref)
        caplog.clear()
        pid = beam.spawn(blocker)
        await settle()
        beam.send(pid, "block")
        await settle()
        reports = [r for r in caplog.records if str(pid) in r.getMessage()]
        beam.system_monitor(long_schedule=None)
    assert reports == []


async def test_system_monitor_rejects_bad_threshold() -> None:
    async with beam.open_node():
        with pytest.raises(ValueError, match="> 0"):
            beam.system_monitor(long_schedule=0, receiver=beam.self())


async def test_open_node_long_schedule_logs_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="beam.long_schedule")
    async with beam.open_node(long_schedule=0.001):
        pid = beam.spawn(blocker)
        await settle()
        beam.send(pid, "block")
        await settle()
    records = [r for r in caplog.records if r.name == "beam.long_schedule"]
    assert any(str(pid) in r.getMessage() for r in records)
    assert all(r.levelno == logging.WARNING for r in records)


# -- crash reports -----------------------------------------------------------------------------


def crash_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "beam.crash"]


async def test_crash_report_logs_one_error_with_pid_reason_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="beam.crash")

    async def crasher() -> None:
        raise ValueError("something broke")

    async with beam.open_node():
        pid, ref = beam.spawn_monitor(crasher)
        await down_reason(ref)
    records = crash_records(caplog)
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    text = caplog.text
    assert str(pid) in record.getMessage()
    assert "something broke" in record.getMessage()
    assert "crasher" in record.getMessage()  # the initial call
    assert record.exc_info is not None
    assert "Traceback" in text
    assert 'raise ValueError("something broke")' in text
    report = record.beam_report  # type: ignore[attr-defined]
    assert report["pid"] == pid
    assert isinstance(report["reason"], ValueError)


async def test_crash_report_for_abnormal_exit_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="beam.crash")
    async with beam.open_node():
        pid, ref = beam.spawn_monitor(exit_with, ("bad_state", 3))
        await down_reason(ref)
    records = crash_records(caplog)
    assert len(records) == 1
    assert str(pid) in records[0].getMessage()
    assert "bad_state" in records[0].getMessage()


async def test_crash_report_only_for_the_process_that_crashed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="beam.crash")
    async with beam.open_node():
        linked = beam.spawn(idle)

        async def crasher() -> None:
            beam.link(linked)
            raise ValueError("once")

        _, ref = beam.spawn_monitor(crasher)
        linked_ref = beam.monitor(linked)
        await down_reason(ref)
        assert isinstance(await down_reason(linked_ref), ValueError)
    assert len(crash_records(caplog)) == 1


@pytest.mark.parametrize(
    "reason", [beam.NORMAL, beam.SHUTDOWN, (beam.SHUTDOWN, "detail")], ids=repr
)
async def test_crash_report_not_written_for_clean_exits(
    caplog: pytest.LogCaptureFixture, reason: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="beam")
    async with beam.open_node():
        _, ref = beam.spawn_monitor(exit_with, reason)
        assert await down_reason(ref) == reason
    assert crash_records(caplog) == []


@pytest.mark.parametrize("reason", [beam.KILL, "boom", ValueError("by signal")], ids=repr)
async def test_crash_report_not_written_when_killed_by_signal(
    caplog: pytest.LogCaptureFixture, reason: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="beam")
    async with beam.open_node():
        pid, ref = beam.spawn_monitor(waiter)
        await settle()
        beam.exit(pid, reason)
        await down_reason(ref)
    assert crash_records(caplog) == []


async def test_node_counts_spawns_and_crashes() -> None:
    async with beam.open_node() as node:
        _, ref1 = beam.spawn_monitor(exit_with, "boom")
        _, ref2 = beam.spawn_monitor(exit_with, beam.NORMAL)
        await down_reason(ref1)
        await down_reason(ref2)
        assert node.statistics().spawned == 2
        assert node.statistics().crashes == 1


async def test_node_statistics_count_processes_crashes_and_timers() -> None:
    async def crash() -> None:
        raise ValueError("boom")

    async with beam.open_node() as node:
        before = node.statistics()
        beam.spawn_monitor(crash)
        await beam.receive(beam.Down)
        beam.send_after(beam.self(), "later", 10)
        beam.register("me", beam.self())
        after = node.statistics()
        assert after.spawned == before.spawned + 1
        assert after.crashes == before.crashes + 1
        assert after.pending_timers == before.pending_timers + 1
        assert after.registered_names == 1
        assert after.processes == before.processes
        assert after.long_schedules == 0
