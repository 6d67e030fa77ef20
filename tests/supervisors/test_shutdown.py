"""Shutting children down: "shutdown", wait, then kill; brutal_kill; infinity; terminate."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

import beam
from supervisors import Supervisor, child_spec, worker

from .helpers import Events, SlowTerminate, Tidy, reports, stubborn_loop


def shutdown_errors(caplog: pytest.LogCaptureFixture) -> list[object]:
    return [r["reason"] for r in reports(caplog.records) if r["context"] == "shutdown_error"]


async def test_child_ignoring_shutdown_is_killed_after_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [worker(stubborn_loop, events, id="stubborn", shutdown=2.5)]
        )
        [child] = await Supervisor.which_children(sup)
        assert child.pid is not None
        watch = beam.monitor(child.pid)
        started = trio.current_time()
        await Supervisor.terminate_child(sup, "stubborn")
        assert trio.current_time() - started == pytest.approx(2.5)
        down = await beam.receive(beam.Down, timeout=0)
        assert (down.ref, down.reason) == (watch, "killed")
        assert events == [("start", "stubborn"), ("ignored", f"Exit(pid={sup}, reason='shutdown')")]
    assert shutdown_errors(caplog) == ["killed"]  # as OTP reports it


async def test_slow_terminate_is_cut_short_by_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([child_spec(SlowTerminate, (events, 60.0), shutdown=1)])
        await Supervisor.stop(sup)
        assert trio.current_time() == pytest.approx(1.0)
        assert events == [("start", "slow"), ("terminating", "'shutdown'")]


async def test_shutdown_infinity_waits(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [child_spec(SlowTerminate, (events, 3600.0), shutdown="infinity")]
        )
        await Supervisor.stop(sup)
        assert trio.current_time() == pytest.approx(3600.0)
        assert events[-1] == ("terminated", "'shutdown'")
    assert shutdown_errors(caplog) == []


async def test_trapping_child_runs_terminate(caplog: pytest.LogCaptureFixture) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([child_spec(Tidy, (events, "tidy"))])
        await Supervisor.terminate_child(sup, "Tidy")
        assert events == [("start", "tidy"), ("terminate", "tidy:shutdown")]
    assert shutdown_errors(caplog) == []


async def test_brutal_kill_kills_at_once_without_terminate(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [child_spec(Tidy, (events, "tidy"), shutdown="brutal_kill")]
        )
        await Supervisor.stop(sup)
        assert trio.current_time() == 0
        assert events == [("start", "tidy")]
    assert shutdown_errors(caplog) == []


async def test_non_trapping_child_dies_at_once_on_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        sup = await Supervisor.start_link([worker(trio.sleep_forever, id="sleeper", shutdown=30)])
        [child] = await Supervisor.which_children(sup)
        assert child.pid is not None
        watch = beam.monitor(child.pid)
        await Supervisor.terminate_child(sup, "sleeper")
        assert trio.current_time() == 0
        assert await beam.receive(beam.Down) == beam.Down(watch, child.pid, "shutdown")


async def test_shutdown_error_for_a_child_that_exits_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Contrary(beam.GenServer[None]):
        async def init(self, arg: None) -> beam.Ok[None]:
            beam.trap_exit(True)
            return beam.Ok(None)

        async def terminate(self, reason: object, state: None) -> None:
            raise RuntimeError("cannot stop cleanly")

    async with beam.open_node():
        sup = await Supervisor.start_link([child_spec(Contrary, id="Contrary")])
        await Supervisor.terminate_child(sup, "Contrary")
    [reason] = shutdown_errors(caplog)
    assert isinstance(reason, RuntimeError)
    [record] = [r for r in caplog.records if r.name == "supervisors" and r.levelno >= 40]
    assert "shutdown_error" in record.getMessage()
    assert record.levelno == logging.ERROR
    assert "id='Contrary'" in record.getMessage()
