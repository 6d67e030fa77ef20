"""Supervisor behaviours pinned against what Erlang/OTP prints (issue 18).

The escripts in ``tests/beam/otp/`` show OTP 25's output: ``init_exit.erl`` (a child's
``exit(boom)`` in init), ``auto_shutdown.erl`` (significant children),
``simple_one_for_one.erl`` (which we refuse, naming DynamicSupervisor, as Elixir does).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import beam
from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    InvalidSpec,
    Supervisor,
    TaskSupervisor,
    child_spec,
    worker,
)


async def exits_on_order() -> None:
    """A child that exits with whatever reason it is sent."""
    reason = await beam.receive()
    raise beam.ProcessExit(reason)


def significant(name: str, restart: Any = "transient") -> ChildSpec:
    return worker(exits_on_order, id=name, restart=restart, significant=True)


async def children(sup: beam.Pid) -> dict[Any, beam.Pid]:
    """The running children by id."""
    return {c.id: c.pid for c in await Supervisor.which_children(sup) if c.pid is not None}


async def down_reason(ref: beam.Ref) -> Any:
    down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref)
    return down.reason


class ExitsInInit(beam.GenServer[None]):
    async def init(self, reason: Any) -> beam.Ok[None]:
        raise beam.ProcessExit(reason)


async def test_exit_in_a_child_init_fails_the_supervisor_with_the_bare_reason() -> None:
    # OTP: {error, {shutdown, {failed_to_start_child, c, boom}}}
    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await Supervisor.start_link([child_spec(ExitsInInit, "boom", id="c")])
        assert caught.value.reason == ("shutdown", ("failed_to_start_child", "c", "boom"))


async def test_start_child_whose_init_exits_raises_start_error_with_the_bare_reason() -> None:
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link()
        with pytest.raises(beam.StartError) as caught:
            await DynamicSupervisor.start_child(pool, child_spec(ExitsInInit, "boom"))
        assert caught.value.reason == "boom"


# -- simple_one_for_one: refused, naming DynamicSupervisor ---------------------------------------


async def test_simple_one_for_one_is_refused_with_an_error_naming_dynamic_supervisor() -> None:
    async with beam.open_node():
        with pytest.raises(InvalidSpec, match="DynamicSupervisor"):
            await Supervisor.start_link([], strategy="simple_one_for_one")  # type: ignore[arg-type]
        with pytest.raises(InvalidSpec, match="DynamicSupervisor"):
            Supervisor.child_spec([], strategy="simple_one_for_one")  # type: ignore[arg-type]


# -- significant children and auto_shutdown (auto_shutdown.erl) ----------------------------------


async def test_auto_shutdown_any_significant_stops_the_supervisor_when_one_exits() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        sup = await Supervisor.start_link(
            [significant("a"), significant("b"), worker(exits_on_order, id="c")],
            auto_shutdown="any_significant",
        )
        kids = await children(sup)
        beam.send(kids["a"], beam.NORMAL)
        exit_message = await beam.receive(beam.Exit)
        assert exit_message == beam.Exit(sup, beam.SHUTDOWN)
        assert not any(beam.is_alive(pid) for pid in kids.values())


@pytest.mark.parametrize("restart", ["transient", "temporary"])
async def test_auto_shutdown_all_significant_stops_once_every_significant_child_exited(
    restart: str,
) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        sup = await Supervisor.start_link(
            [significant("a", restart), significant("b", restart), worker(exits_on_order, id="c")],
            auto_shutdown="all_significant",
        )
        kids = await children(sup)
        ref = beam.monitor(kids["a"])
        beam.send(kids["a"], beam.NORMAL)
        await down_reason(ref)
        assert beam.is_alive(sup)  # b still runs
        beam.send(kids["b"], beam.NORMAL)
        assert await beam.receive(beam.Exit) == beam.Exit(sup, beam.SHUTDOWN)


async def test_a_crashed_transient_significant_child_is_restarted_not_a_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [significant("a"), worker(exits_on_order, id="c")], auto_shutdown="any_significant"
        )
        old = (await children(sup))["a"]
        assert old is not None
        ref = beam.monitor(old)
        beam.send(old, "crash")
        await down_reason(ref)
        await trio.testing.wait_all_tasks_blocked()
        new = (await children(sup))["a"]
        assert new is not None
        assert new != old
        assert beam.is_alive(sup)


async def test_terminate_child_of_significant_children_does_not_shut_the_supervisor_down() -> None:
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [significant("a"), significant("b")], auto_shutdown="all_significant"
        )
        await Supervisor.terminate_child(sup, "a")
        await Supervisor.terminate_child(sup, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert beam.is_alive(sup)


async def test_significant_children_are_refused_under_auto_shutdown_never() -> None:
    async with beam.open_node():
        with pytest.raises(InvalidSpec, match="auto_shutdown"):
            await Supervisor.start_link([significant("a")])
        sup = await Supervisor.start_link([])
        with pytest.raises(InvalidSpec, match="auto_shutdown"):
            await Supervisor.start_child(sup, significant("a"))
        pool = await DynamicSupervisor.start_link()
        with pytest.raises(InvalidSpec, match="significant"):
            await DynamicSupervisor.start_child(pool, significant("a"))


def test_a_permanent_child_cannot_be_significant() -> None:
    with pytest.raises(InvalidSpec, match="permanent"):
        worker(exits_on_order, significant=True)
    with pytest.raises(InvalidSpec, match="significant"):
        ChildSpec("x", Supervisor.start_link, significant="yes")  # type: ignore[arg-type]


async def test_a_significant_child_supervisor_stops_its_parent_under_any_significant() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        inner = Supervisor.child_spec(
            [significant("leaf")],
            id="inner",
            restart="transient",
            significant=True,
            auto_shutdown="any_significant",
        )
        outer = await Supervisor.start_link([inner], auto_shutdown="any_significant")
        inner_pid = (await children(outer))["inner"]
        assert inner_pid is not None
        leaf = (await children(inner_pid))["leaf"]
        assert leaf is not None
        beam.send(leaf, beam.NORMAL)
        assert await beam.receive(beam.Exit) == beam.Exit(outer, beam.SHUTDOWN)


# -- TaskSupervisor tasks: shutdown kills after the timeout --------------------------------------


async def trap_and_sleep() -> str:
    beam.trap_exit(True)
    await trio.sleep(3600)
    return "survived"


async def test_supervised_task_shutdown_kills_a_task_that_traps_exits_after_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        tasks = await TaskSupervisor.start_link()
        task = await TaskSupervisor.async_nolink(tasks, trap_and_sleep)
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        assert await task.shutdown(timeout=2) is None
        assert trio.current_time() - started == pytest.approx(2)
        assert not beam.is_alive(task.pid)
