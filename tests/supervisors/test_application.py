"""Application: start a named tree, stop it cleanly, and the node's fate by type."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

import beam
from supervisors import Application, ChildSpec, InvalidSpec, Supervisor, child_spec, worker

from .helpers import Events, Member, Tidy, settle


def tidy_app(events: Events, **options: Any) -> Application:
    return Application(
        "shop", [child_spec(Tidy, (events, n), id=n, name=n) for n in "abc"], **options
    )


async def test_application_stop_reverse_order() -> None:
    events: Events = []
    app = tidy_app(events)
    async with beam.open_node():
        sup = await app.start()
        assert beam.whereis("shop") == sup
        assert [c.id for c in await Supervisor.which_children("shop")] == ["a", "b", "c"]
        await app.stop()
        assert events == [
            ("start", "a"),
            ("start", "b"),
            ("start", "c"),
            ("terminate", "c:shutdown"),
            ("terminate", "b:shutdown"),
            ("terminate", "a:shutdown"),
        ]
        assert beam.whereis("shop") is None
        assert beam.processes() == [beam.self()]
        await app.stop()  # stopping again does nothing
        await app.start()  # and it can start again
        assert beam.whereis("a") is not None


async def test_application_start_failure_and_double_start() -> None:
    async def failing() -> beam.Pid:
        raise beam.StartError("no database")

    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await Application("broken", [ChildSpec("db", failing)]).start()
        assert caught.value.reason == ("shutdown", ("failed_to_start_child", "db", "no database"))
        app = tidy_app([])
        await app.start()
        with pytest.raises(RuntimeError, match="'shop' is already running"):
            await app.start()


def test_application_options_are_checked_eagerly() -> None:
    with pytest.raises(InvalidSpec, match="type='forever'"):
        Application("x", [], type="forever")  # type: ignore[arg-type]
    with pytest.raises(InvalidSpec, match="name=''"):
        Application("", [])
    with pytest.raises(InvalidSpec, match="max_restarts"):
        Application("x", [], max_restarts=-1)


async def crash_member() -> None:
    """Crash the 'member' child: its supervisor (max_restarts=0) gives up."""
    pid = beam.whereis("member")
    assert pid is not None
    beam.send(pid, ("exit", "boom"))
    await settle()


async def run_starter(app: Application, ready: trio.Event) -> None:
    await app.start()
    ready.set()
    await trio.sleep_forever()


async def starter_fate(app: Application, stop: Any) -> tuple[Any, bool]:
    """Start *app* from a helper process, make its tree exit, and report how the starter
    ended (its Down reason, or None if it lives) and whether the master is gone."""
    ready = trio.Event()
    _starter, watch = beam.spawn_monitor(run_starter, app, ready)
    await ready.wait()
    await stop()
    await settle()
    try:
        down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == watch, timeout=0)
    except beam.ReceiveTimeout:
        return None, beam.whereis(app.name) is None
    return down.reason, beam.whereis(app.name) is None


def member_app(app_type: str) -> Application:
    return Application(
        "shop",
        [child_spec(Member, ([], "m"), name="member")],
        max_restarts=0,
        type=app_type,  # type: ignore[arg-type]
    )


async def stop_normally() -> None:
    await Supervisor.stop("shop")  # the top supervisor exits "normal"


@pytest.mark.parametrize(
    ("app_type", "stop", "fate"),
    [
        ("temporary", crash_member, None),
        ("temporary", stop_normally, None),
        ("transient", stop_normally, None),
        ("transient", crash_member, ("application_terminated", "shop", "shutdown")),
        ("permanent", stop_normally, ("application_terminated", "shop", "normal")),
        ("permanent", crash_member, ("application_terminated", "shop", "shutdown")),
    ],
)
async def test_application_type_decides_the_node_fate(
    app_type: str, stop: Any, fate: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="supervisors")
    async with beam.open_node():
        reason, tree_gone = await starter_fate(member_app(app_type), stop)
        assert reason == fate
        assert tree_gone
    exited = [r for r in caplog.records if r.getMessage().startswith("application shop exited")]
    assert len(exited) == 1
    assert exited[0].levelno == (logging.INFO if fate is None else logging.ERROR)
    assert f"(type {app_type})" in exited[0].getMessage()


def test_application_run_returns_what_main_returns() -> None:
    events: Events = []

    async def main() -> int:
        assert beam.whereis("shop") is not None
        return await beam.call("a", 41) + 1

    assert tidy_app(events).run(main) == 42
    assert events[-3:] == [
        ("terminate", "c:shutdown"),
        ("terminate", "b:shutdown"),
        ("terminate", "a:shutdown"),
    ]


def test_a_permanent_application_that_dies_stops_run() -> None:
    async def main() -> None:
        await crash_member()
        await trio.sleep_forever()

    with pytest.raises(beam.ProcessExit) as caught:
        member_app("permanent").run(main)
    assert caught.value.reason == ("application_terminated", "shop", "shutdown")


def test_run_without_main_lasts_as_long_as_a_temporary_tree() -> None:
    async def saboteur() -> None:
        await settle()  # the tree is up and run() waits on it
        await crash_member()

    app = Application(
        "shop",
        [
            child_spec(Member, ([], "m"), name="member"),
            worker(saboteur, restart="temporary"),
        ],
        max_restarts=0,
    )
    assert app.run() is None
