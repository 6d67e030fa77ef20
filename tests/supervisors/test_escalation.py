"""Restart intensity and escalation through nested supervisors."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import beam
from supervisors import Supervisor

from .helpers import Events, member_spec, reports, settle


async def child_pid(sup: beam.Pid | str, child_id: str) -> beam.Pid:
    for child in await Supervisor.which_children(sup):
        if child.id == child_id and child.pid is not None:
            return child.pid
    raise AssertionError(f"{child_id} is not running under {sup}")


def contexts(caplog: pytest.LogCaptureFixture) -> list[tuple[str, object]]:
    return [(r["context"], r["reason"]) for r in reports(caplog.records)]


async def test_intensity_exceeded_shuts_down_and_escalates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: Events = []
    async with beam.open_node():
        beam.trap_exit(True)
        sup = await Supervisor.start_link(
            [member_spec(events, n) for n in "abc"], max_restarts=2, max_seconds=5
        )
        for _ in range(3):
            beam.send(await child_pid(sup, "b"), ("exit", "boom"))
            await settle()
        assert await beam.receive(beam.Exit, timeout=0) == beam.Exit(sup, "shutdown")
        assert events[-3:] == [("crash", "b"), ("stop", "c"), ("stop", "a")]
        assert beam.processes() == [beam.self()]
    assert contexts(caplog)[-1] == ("shutdown", "reached_max_restart_intensity")
    assert [c for c, _ in contexts(caplog)] == ["child_terminated"] * 3 + ["shutdown"]


async def test_restarts_spread_over_time_stay_within_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with beam.open_node():
        beam.trap_exit(True)
        sup = await Supervisor.start_link([member_spec(events, "a")], max_restarts=1)
        for _ in range(10):
            beam.send(await child_pid(sup, "a"), ("exit", "boom"))
            await trio.sleep(5.5)  # each restart leaves the 5 s window before the next
        assert beam.is_alive(sup)
        beam.send(await child_pid(sup, "a"), ("exit", "boom"))
        await trio.sleep(4.9)
        beam.send(await child_pid(sup, "a"), ("exit", "boom"))
        assert await beam.receive(beam.Exit) == beam.Exit(sup, "shutdown")


async def test_escalation_through_three_levels(caplog: pytest.LogCaptureFixture) -> None:
    events: Events = []
    async with beam.open_node():
        beam.trap_exit(True)
        leaf = Supervisor.child_spec(
            [member_spec(events, "bad"), member_spec(events, "leaf-peer")],
            id="leaf",
            name="leaf",
            max_restarts=1,
        )
        mid = Supervisor.child_spec(
            [leaf, member_spec(events, "mid-peer")], id="mid", name="mid", max_restarts=1
        )
        top = await Supervisor.start_link(
            [member_spec(events, "top-peer"), mid], max_restarts=0, name="top"
        )
        # Each crash round: the leaf gives up at its 2nd restart; the mid gives up at the
        # leaf's 2nd failure; the top, allowed no restart, gives up at once.
        for _ in range(4):
            beam.send(await child_pid("leaf", "bad"), ("exit", "boom"))
            await settle()
        assert await beam.receive(beam.Exit, timeout=0) == beam.Exit(top, "shutdown")
        assert events[-4:] == [
            ("crash", "bad"),
            ("stop", "leaf-peer"),
            ("stop", "mid-peer"),
            ("stop", "top-peer"),
        ]
        assert beam.processes() == [beam.self()]
    given_up = [
        r["supervisor"]
        for r in reports(caplog.records)
        if r["reason"] == "reached_max_restart_intensity"
    ]
    assert [label.split(" ")[-1] for label in given_up] == ["(leaf)", "(leaf)", "(mid)", "(top)"]


async def test_temporary_never_restarted_under_one_for_all() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [
                member_spec(events, "a"),
                member_spec(events, "t", restart="temporary"),
                member_spec(events, "c"),
            ],
            strategy="one_for_all",
            max_restarts=10,
        )
        events.clear()
        beam.send(await child_pid(sup, "a"), ("exit", "boom"))
        await settle()
        assert events == [
            ("crash", "a"),
            ("stop", "c"),
            ("stop", "t"),
            ("start", "a"),
            ("start", "c"),
        ]
        assert [c.id for c in await Supervisor.which_children(sup)] == ["a", "c"]
        beam.send(await child_pid(sup, "c"), ("exit", "boom"))
        await settle()
        assert ("start", "t") not in events


async def test_a_temporary_child_crashing_does_not_disturb_one_for_all_siblings() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [member_spec(events, "a"), member_spec(events, "t", restart="temporary")],
            strategy="one_for_all",
        )
        events.clear()
        beam.send(await child_pid(sup, "t"), ("exit", "boom"))
        await settle()
        assert events == [("crash", "t")]  # OTP 25 does the same: no sibling is touched


@pytest.mark.parametrize(("restart", "restarted"), [("permanent", True), ("transient", False)])
async def test_a_child_supervisor_that_gave_up_is_restarted_only_if_permanent(
    restart: str, restarted: bool
) -> None:
    events: Events = []
    async with beam.open_node():
        inner = Supervisor.child_spec(
            [member_spec(events, "x")],
            id="inner",
            name="inner",
            max_restarts=0,
            restart=restart,  # type: ignore[arg-type]
        )
        outer = await Supervisor.start_link([inner])
        first = beam.whereis("inner")
        beam.send(await child_pid("inner", "x"), ("exit", "boom"))
        await settle()
        # it exits "shutdown": a clean reason, so a transient child supervisor stays down
        [child] = await Supervisor.which_children(outer)
        assert (child.pid is not None) == restarted
        assert (beam.whereis("inner") not in (None, first)) == restarted
