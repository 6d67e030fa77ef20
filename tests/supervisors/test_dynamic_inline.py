"""DynamicSupervisor.start_child of a plain worker while the supervisor is idle runs in the
caller (no round trip); nothing else may tell it from a start done by the supervisor."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

import beam
from supervisors import DynamicSupervisor, MaxChildren, worker


async def idle() -> None:
    await beam.receive()


async def report_parent(to: beam.Pid, tag: str) -> None:
    info = beam.process_info(beam.self())
    assert info is not None
    beam.send(to, (tag, info.parent, info.links))
    await beam.receive()


async def test_an_inline_start_is_the_supervisors_child_linked_to_it() -> None:
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link(extra_arguments=(beam.self(),))
        pid = await DynamicSupervisor.start_child(pool, worker(report_parent, "hi"))
        assert pid is not None
        tag, parent, links = await beam.receive(tuple)
        assert (tag, parent, links) == ("hi", pool, (pool,))
        assert [c.pid for c in await DynamicSupervisor.which_children(pool)] == [pid]
        assert (await DynamicSupervisor.count_children(pool)).active == 1


async def test_an_inline_started_permanent_child_is_restarted_when_it_crashes() -> None:
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link()
        pid = await DynamicSupervisor.start_child(pool, worker(idle))
        assert pid is not None
        beam.exit(pid, "boom")
        await trio.testing.wait_all_tasks_blocked()
        [child] = await DynamicSupervisor.which_children(pool)
        assert child.pid is not None
        assert child.pid != pid


async def test_inline_starts_respect_max_children() -> None:
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link(max_children=2)
        spec = worker(idle, restart="temporary")
        await DynamicSupervisor.start_child(pool, spec)
        await DynamicSupervisor.start_child(pool, spec)
        with pytest.raises(MaxChildren):
            await DynamicSupervisor.start_child(pool, spec)


async def test_an_inline_start_reports_as_the_supervisor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link(name="pool")
        with caplog.at_level(logging.INFO, logger="supervisors"):
            pid = await DynamicSupervisor.start_child("pool", worker(idle))
        assert f"supervisor {pool} (pool): started child 'idle' as {pid}" in caplog.text


async def test_a_stopped_supervisor_takes_its_inline_started_children_with_it() -> None:
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link()
        pids = [await DynamicSupervisor.start_child(pool, worker(idle)) for _ in range(3)]
        await DynamicSupervisor.stop(pool)
        assert not any(beam.is_alive(pid) for pid in pids if pid is not None)


def handled(pid: beam.Pid) -> int:
    info = beam.process_info(pid)
    assert info is not None
    return info.messages_handled


async def test_starting_a_worker_under_an_idle_supervisor_takes_no_round_trip() -> None:
    async with beam.open_node():
        pool = await DynamicSupervisor.start_link()
        before = handled(pool)
        for _ in range(10):
            await DynamicSupervisor.start_child(pool, worker(idle, restart="temporary"))
        assert handled(pool) == before  # the supervisor took no request
        # A GenServer child still goes through the supervisor (its start runs user code).
        from supervisors import child_spec

        class Server(beam.GenServer[None]):
            async def init(self, arg: None) -> beam.Ok[None]:
                return beam.Ok(None)

        await DynamicSupervisor.start_child(pool, child_spec(Server, restart="temporary"))
        assert handled(pool) == before + 1
