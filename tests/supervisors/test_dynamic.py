"""DynamicSupervisor and TaskSupervisor."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import beam
from supervisors import (
    ChildCounts,
    ChildNotFound,
    ChildSpec,
    DynamicSupervisor,
    MaxChildren,
    SupervisedTask,
    Supervisor,
    TaskReply,
    TaskSupervisor,
    child_spec,
    worker,
)

from .helpers import Events, SlowTerminate, member_spec, settle, stubborn_loop


async def test_dynamic_supervisor_starts_and_restarts_children() -> None:
    events: Events = []
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link(name="pool")
        assert await DynamicSupervisor.which_children(pool) == []
        a = await DynamicSupervisor.start_child("pool", member_spec(events, "a"))
        t = await DynamicSupervisor.start_child(
            "pool", member_spec(events, "t", restart="temporary")
        )
        assert a is not None
        assert t is not None
        beam.send(a, ("exit", "boom"))
        beam.send(t, ("exit", "boom"))
        await settle()
        children = await DynamicSupervisor.which_children(pool)
        assert [c.id for c in children] == ["a"]
        assert children[0].pid not in (None, a)
        assert events.count(("start", "a")) == 2
        assert events.count(("start", "t")) == 1


async def test_dynamic_supervisor_max_children() -> None:
    events: Events = []
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link(max_children=2)
        first = await DynamicSupervisor.start_child(
            pool, member_spec(events, "1", restart="temporary")
        )
        await DynamicSupervisor.start_child(pool, member_spec(events, "2"))
        with pytest.raises(MaxChildren, match="max_children=2"):
            await DynamicSupervisor.start_child(pool, member_spec(events, "3"))
        assert await DynamicSupervisor.count_children(pool) == ChildCounts(2, 2, 0, 2)
        assert first is not None
        beam.send(first, ("exit", "normal"))
        await settle()
        assert await DynamicSupervisor.start_child(pool, member_spec(events, "3")) is not None


async def test_dynamic_supervisor_shuts_children_down_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link()
        for _ in range(5):
            await DynamicSupervisor.start_child(
                pool, child_spec(SlowTerminate, (events, 2.0), shutdown="infinity")
            )
        await DynamicSupervisor.stop(pool)
        assert trio.current_time() == pytest.approx(2.0)  # not 5 x 2 s
        assert events.count(("terminated", "'shutdown'")) == 5


async def test_dynamic_shutdown_kills_each_child_after_its_own_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link()
        pids = []
        for timeout in (3.0, 1.0):
            pid = await DynamicSupervisor.start_child(
                pool, worker(stubborn_loop, events, shutdown=timeout)
            )
            assert pid is not None
            pids.append(pid)
        watches = {beam.monitor(pid): pid for pid in pids}
        await DynamicSupervisor.stop(pool)
        assert trio.current_time() == pytest.approx(3.0)
        for _ in pids:
            down = await beam.receive(beam.Down, timeout=0)
            assert down.reason == "killed"
            assert watches.pop(down.ref) == down.pid
    errors = [r for r in caplog.records if "shutdown_error" in r.getMessage()]
    assert len(errors) == 2


async def test_dynamic_terminate_child_by_pid() -> None:
    events: Events = []
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link()
        pid = await DynamicSupervisor.start_child(pool, member_spec(events, "a"))
        assert pid is not None
        await DynamicSupervisor.terminate_child(pool, pid)
        assert events[-1] == ("stop", "a")
        assert not beam.is_alive(pid)
        with pytest.raises(ChildNotFound):
            await DynamicSupervisor.terminate_child(pool, pid)
        with pytest.raises(TypeError, match="children are known by pid"):
            await Supervisor.restart_child(pool, "a")


async def test_dynamic_extra_arguments_come_first() -> None:
    seen: list[tuple[Any, ...]] = []

    async def start(*args: Any) -> beam.Pid:
        seen.append(args)
        return beam.spawn_link(trio.sleep_forever)

    async with beam.open_node():
        pool = await DynamicSupervisor.start_link(extra_arguments=("tenant-1",))
        await DynamicSupervisor.start_child(pool, ChildSpec("y", start, ("own",)))
        assert seen == [("tenant-1", "own")]
        got: list[tuple[Any, ...]] = []

        async def body(*args: Any) -> None:
            got.append(args)

        await DynamicSupervisor.start_child(pool, worker(body, "own", restart="temporary"))
        await settle()
        assert got == [("tenant-1", "own")]


async def test_dynamic_supervisor_intensity_escalates() -> None:
    events: Events = []
    async with beam.open_node():
        beam.trap_exit(True)
        pool = await DynamicSupervisor.start_link(max_restarts=1)
        pid = await DynamicSupervisor.start_child(pool, member_spec(events, "a"))
        other = await DynamicSupervisor.start_child(pool, member_spec(events, "b"))
        for _ in range(2):
            assert pid is not None
            beam.send(pid, ("exit", "boom"))
            await settle()
            children = await DynamicSupervisor.which_children(pool) if beam.is_alive(pool) else []
            pid = next((c.pid for c in children if c.id == "a"), None)
        assert await beam.receive(beam.Exit, timeout=0) == beam.Exit(pool, "shutdown")
        assert other is not None
        assert not beam.is_alive(other)


# -- tasks --------------------------------------------------------------------------------


async def add(a: int, b: int) -> int:
    return a + b


async def explode(message: str) -> None:
    raise ValueError(message)


async def test_task_supervisor_async_nolink_result() -> None:
    async with beam.open_node():
        tasks = await TaskSupervisor.start_link(name="tasks")
        task: SupervisedTask[int] = await TaskSupervisor.async_nolink("tasks", add, 20, 22)
        assert await task.await_() == 42
        await settle()
        assert await TaskSupervisor.children(tasks) == []
        assert beam.process_info(beam.self()).message_queue_len == 0  # type: ignore[union-attr]


async def test_task_supervisor_async_nolink_crash_is_down_not_exit() -> None:
    async with beam.open_node():
        tasks = await TaskSupervisor.start_link()
        assert not beam.process_info(beam.self()).trap_exit  # type: ignore[union-attr]
        task = await TaskSupervisor.async_nolink(tasks, explode, "kaboom")
        down = await beam.receive(beam.Down)  # we are alive: no exit signal reached us
        assert (down.ref, down.pid) == (task.ref, task.pid)
        assert isinstance(down.reason, ValueError)
        assert str(down.reason) == "kaboom"
        again = await TaskSupervisor.async_nolink(tasks, explode, "again")
        with pytest.raises(beam.ProcessExit) as caught:
            await again.await_()
        reason, where = caught.value.reason
        assert isinstance(reason, ValueError)
        assert where == ("SupervisedTask.await_", again.pid)
        assert beam.is_alive(tasks)  # temporary children: the supervisor is not bothered


async def test_task_await_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        tasks = await TaskSupervisor.start_link()
        task = await TaskSupervisor.async_nolink(tasks, trio.sleep, 10)
        with pytest.raises(beam.CallTimeout):
            await task.await_(timeout=1)
        assert beam.is_alive(task.pid)  # the task goes on
        assert await task.shutdown() is None
        assert not beam.is_alive(task.pid)


async def test_task_reply_and_down_reach_a_genserver_owner_in_handle_info() -> None:
    class Owner(beam.GenServer[list[Any]]):
        async def init(self, tasks: beam.Pid) -> beam.Ok[list[Any]]:
            await TaskSupervisor.async_nolink(tasks, add, 1, 2)
            await TaskSupervisor.async_nolink(tasks, explode, "no")
            return beam.Ok([])

        async def handle_call(
            self, request: Any, from_: beam.From, seen: list[Any]
        ) -> beam.Reply[list[Any]]:
            return beam.Reply(seen, seen)

        async def handle_info(self, message: Any, seen: list[Any]) -> beam.NoReply[list[Any]]:
            if isinstance(message, TaskReply):  # Elixir's idiom: drop the monitor with it
                beam.demonitor(message.ref, flush=True)
            return beam.NoReply([*seen, type(message).__name__])

    async with beam.open_node():
        tasks = await TaskSupervisor.start_link()
        owner = await Owner.start_link(tasks)
        assert owner is not None
        await settle()
        assert sorted(await beam.call(owner, "seen")) == ["Down", "TaskReply"]


async def test_task_shutdown_returns_a_reply_that_came_first() -> None:
    async with beam.open_node():
        tasks = await TaskSupervisor.start_link()
        task = await TaskSupervisor.async_nolink(tasks, add, 2, 3)
        await settle()
        assert await task.shutdown() == TaskReply(task.ref, 5)


async def test_task_supervisor_start_child_runs_unattended() -> None:
    done = trio.Event()

    async def job() -> None:
        done.set()
        await trio.sleep_forever()

    async with beam.open_node():
        tasks = await TaskSupervisor.start_link()
        pid = await TaskSupervisor.start_child(tasks, job)
        await done.wait()
        assert await TaskSupervisor.children(tasks) == [pid]
        await TaskSupervisor.terminate_child(tasks, pid)
        assert await TaskSupervisor.children(tasks) == []


async def test_only_the_owner_may_await_a_task() -> None:
    async with beam.open_node():
        tasks = await TaskSupervisor.start_link()
        task = await TaskSupervisor.async_nolink(tasks, trio.sleep_forever)
        errors: list[BaseException] = []

        async def intruder() -> None:
            try:
                await task.await_()
            except RuntimeError as exc:
                errors.append(exc)

        beam.spawn(intruder)
        await settle()
        assert "only its owner may await_ it" in str(errors[0])
