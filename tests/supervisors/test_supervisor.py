"""Supervisor: start order, strategies, restart types, the child API and its reports."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

import pytest
import trio

import beam
from supervisors import (
    AlreadyPresent,
    AlreadyStarted,
    ChildCounts,
    ChildInfo,
    ChildNotFound,
    ChildRunning,
    ChildSpec,
    Supervisor,
    child_spec,
    worker,
)
from supervisors._common import call as supervisors_call

from .helpers import Events, Tidy, member, member_spec, reports, settle


async def pids(sup: beam.Pid | str) -> dict[Hashable, beam.Pid | None]:
    return {c.id: c.pid for c in await Supervisor.which_children(sup)}


def crash(pid: beam.Pid | None, reason: Any = "boom") -> None:
    assert pid is not None
    beam.send(pid, ("exit", reason))


class Slow(beam.GenServer[None]):
    async def init(self, arg: tuple[Events, str]) -> beam.Ok[None]:
        events, name = arg
        events.append(("init", name))
        await trio.sleep(1)
        events.append(("ready", name))
        return beam.Ok(None)


async def test_children_start_in_order_each_start_returning_before_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with beam.open_node():
        await Supervisor.start_link(
            [child_spec(Slow, (events, "a"), id="a"), child_spec(Slow, (events, "b"), id="b")]
        )
        assert events == [("init", "a"), ("ready", "a"), ("init", "b"), ("ready", "b")]
        assert trio.current_time() == 2


async def test_stop_terminates_children_in_reverse_order() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [child_spec(Tidy, (events, n), id=n) for n in "abc"], name="tidy"
        )
        await Supervisor.stop(sup)
        assert events[3:] == [
            ("terminate", "c:shutdown"),
            ("terminate", "b:shutdown"),
            ("terminate", "a:shutdown"),
        ]
        assert not beam.is_alive(sup)
        assert beam.whereis("tidy") is None


async def test_one_for_one_restarts_only_the_dead_child() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, n) for n in "abc"])
        before = await pids(sup)
        events.clear()
        crash(before["b"])
        await settle()
        after = await pids(sup)
        assert events == [("crash", "b"), ("start", "b")]
        assert after["a"] == before["a"]
        assert after["c"] == before["c"]
        assert after["b"] not in (None, before["b"])


async def test_one_for_all_restarts_all_in_order() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [member_spec(events, n) for n in "abcd"], strategy="one_for_all"
        )
        before = await pids(sup)
        events.clear()
        crash(before["b"], ValueError("boom"))
        await settle()
        assert events == [
            ("crash", "b"),
            ("stop", "d"),
            ("stop", "c"),
            ("stop", "a"),
            ("start", "a"),
            ("start", "b"),
            ("start", "c"),
            ("start", "d"),
        ]
        after = await pids(sup)
        assert all(after[n] not in (None, before[n]) for n in "abcd")


async def test_which_children_counts_restarts() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [member_spec(events, n) for n in "abc"], strategy="rest_for_one", max_restarts=10
        )
        for _ in range(2):
            crash((await pids(sup))["b"], ValueError("boom"))
            await settle()
        crash((await pids(sup))["c"], ValueError("boom"))
        await settle()
        counts = {c.id: c.restarts for c in await Supervisor.which_children(sup)}
        assert counts == {"a": 0, "b": 2, "c": 3}  # c restarted with b twice, then alone


async def test_rest_for_one_restarts_later_siblings() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [member_spec(events, n) for n in "abcd"], strategy="rest_for_one"
        )
        before = await pids(sup)
        events.clear()
        crash(before["b"])
        await settle()
        assert events == [
            ("crash", "b"),
            ("stop", "d"),
            ("stop", "c"),
            ("start", "b"),
            ("start", "c"),
            ("start", "d"),
        ]
        assert (await pids(sup))["a"] == before["a"]


@pytest.mark.parametrize(
    ("reason", "restarted"),
    [
        ("normal", False),
        ("shutdown", False),
        (("shutdown", "bye"), False),
        ("boom", True),
        (ValueError("x"), True),
        ("kill", True),
    ],
)
async def test_transient_is_restarted_only_after_an_abnormal_exit(
    reason: Any, restarted: bool
) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, "t", restart="transient")])
        crash((await pids(sup))["t"], reason)
        await settle()
        children = await Supervisor.which_children(sup)
        assert [c.id for c in children] == ["t"]  # the spec is kept either way
        assert (children[0].pid is not None) == restarted


async def test_temporary_child_is_never_restarted_and_is_forgotten() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [member_spec(events, "a"), member_spec(events, "t", restart="temporary")]
        )
        crash((await pids(sup))["t"], ValueError("boom"))
        await settle()
        assert list(await pids(sup)) == ["a"]
        assert events[-1] == ("crash", "t")


async def test_permanent_child_exiting_normally_is_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, "p")])
        crash((await pids(sup))["p"], "normal")
        await settle()
        assert events == [("start", "p"), ("crash", "p"), ("start", "p")]
    [record] = [r for r in caplog.records if "child_terminated" in r.getMessage()]
    assert record.levelno == logging.WARNING


async def test_which_children_and_count_children() -> None:
    events: Events = []
    async with beam.open_node():
        inner = Supervisor.child_spec([member_spec(events, "x")], id="inner")
        sup = await Supervisor.start_link([member_spec(events, "a"), inner])
        children = await Supervisor.which_children(sup)
        assert [(c.id, c.type, c.restart) for c in children] == [
            ("a", "worker", "permanent"),
            ("inner", "supervisor", "permanent"),
        ]
        assert all(isinstance(c, ChildInfo) and c.pid is not None for c in children)
        assert await Supervisor.count_children(sup) == ChildCounts(2, 2, 1, 1)
        await Supervisor.terminate_child(sup, "a")
        assert await Supervisor.count_children(sup) == ChildCounts(2, 1, 1, 1)


async def test_terminate_restart_and_delete_child() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, "a"), member_spec(events, "b")])
        old = (await pids(sup))["a"]
        with pytest.raises(ChildRunning, match=r"'a' of supervisor .* is running"):
            await Supervisor.restart_child(sup, "a")
        with pytest.raises(ChildRunning):
            await Supervisor.delete_child(sup, "a")
        await Supervisor.terminate_child(sup, "a")
        assert events[-1] == ("stop", "a")
        assert (await pids(sup))["a"] is None
        await Supervisor.terminate_child(sup, "a")  # stopping a stopped child is fine (OTP)
        new = await Supervisor.restart_child(sup, "a")
        assert new is not None
        assert new != old
        assert (await pids(sup))["a"] == new
        await Supervisor.terminate_child(sup, "a")
        await Supervisor.delete_child(sup, "a")
        assert list(await pids(sup)) == ["b"]
        for operation in (
            Supervisor.terminate_child,
            Supervisor.restart_child,
            Supervisor.delete_child,
            Supervisor.get_childspec,
        ):
            with pytest.raises(ChildNotFound, match="has no child 'a'"):
                await operation(sup, "a")


async def test_terminating_a_temporary_child_forgets_it() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, "t", restart="temporary")])
        await Supervisor.terminate_child(sup, "t")
        assert await Supervisor.which_children(sup) == []


async def test_start_child_appends_and_reports_conflicts() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, "a")])
        pid = await Supervisor.start_child(sup, member_spec(events, "b"))
        assert list(await pids(sup)) == ["a", "b"]
        assert (await pids(sup))["b"] == pid
        with pytest.raises(AlreadyStarted) as caught:
            await Supervisor.start_child(sup, member_spec(events, "b"))
        assert caught.value.pid == pid
        await Supervisor.terminate_child(sup, "b")
        with pytest.raises(AlreadyPresent):
            await Supervisor.start_child(sup, member_spec(events, "b"))
        assert (await Supervisor.get_childspec(sup, "b")).id == "b"


async def failing_start(reason: Any) -> beam.Pid:
    raise beam.StartError(reason)


async def test_start_child_failure_raises_start_error_and_keeps_no_spec() -> None:
    async with beam.open_node():
        sup = await Supervisor.start_link([])
        with pytest.raises(beam.StartError) as caught:
            await Supervisor.start_child(sup, ChildSpec("bad", failing_start, ("nope",)))
        assert caught.value.reason == "nope"
        assert await Supervisor.which_children(sup) == []


async def test_start_error_undoes_started_children_in_reverse_and_fails_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: Events = []
    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await Supervisor.start_link(
                [
                    child_spec(Tidy, (events, "a"), id="a"),
                    child_spec(Tidy, (events, "b"), id="b"),
                    ChildSpec("bad", failing_start, ("nope",)),
                    child_spec(Tidy, (events, "never"), id="never"),
                ],
                name="doomed",
            )
        assert caught.value.reason == ("shutdown", ("failed_to_start_child", "bad", "nope"))
        assert events == [
            ("start", "a"),
            ("start", "b"),
            ("terminate", "b:shutdown"),
            ("terminate", "a:shutdown"),
        ]
        assert beam.whereis("doomed") is None
    [report] = [r for r in caplog.records if "start_error" in r.getMessage()]
    assert report.levelno == logging.ERROR
    [fields] = reports([report])
    assert (fields["context"], fields["reason"], fields["id"]) == ("start_error", "nope", "bad")
    assert "failing_start('nope')" in report.getMessage()


async def ignore_start() -> None:
    return None


async def test_ignored_child_is_kept_stopped_unless_temporary() -> None:
    async with beam.open_node():
        sup = await Supervisor.start_link(
            [ChildSpec("ig", ignore_start), ChildSpec("tmp", ignore_start, restart="temporary")]
        )
        assert await pids(sup) == {"ig": None}


async def test_restarted_child_takes_its_registered_name_again() -> None:
    class Named(beam.GenServer[int]):
        async def init(self, arg: int) -> beam.Ok[int]:
            return beam.Ok(arg)

        async def handle_call(self, request: Any, from_: beam.From, n: int) -> beam.Reply[int]:
            if request == "crash":
                raise RuntimeError("asked to")
            return beam.Reply(n, n + 1)

    async with beam.open_node():
        await Supervisor.start_link([child_spec(Named, 10, name="named")])
        first = beam.whereis("named")
        assert await beam.call("named", "next") == 10
        with pytest.raises(beam.ProcessExit):
            await beam.call("named", "crash")
        await settle()
        assert beam.whereis("named") not in (None, first)
        assert await beam.call("named", "next") == 10  # a fresh state from init


async def unlinked_start(events: Events) -> beam.Pid:
    return beam.spawn(member, events, "loner")  # forgot to link: the supervisor links


async def test_a_start_function_that_forgot_to_link_is_still_supervised() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([ChildSpec("loner", unlinked_start, (events,))])
        crash((await pids(sup))["loner"])
        await settle()
        assert events == [("start", "loner"), ("crash", "loner"), ("start", "loner")]


async def test_exit_from_the_parent_shuts_the_tree_down() -> None:
    events: Events = []

    async def parent(ready: trio.Event) -> None:
        await Supervisor.start_link([child_spec(Tidy, (events, n), id=n) for n in "ab"])
        ready.set()
        await beam.receive()

    async with beam.open_node():
        ready = trio.Event()
        owner = beam.spawn(parent, ready)
        await ready.wait()
        beam.exit(owner, "boom")
        await settle()
        # the supervisor exits with its parent's reason; its children get "shutdown"
        assert events[2:] == [("terminate", "b:shutdown"), ("terminate", "a:shutdown")]


async def test_reports_name_supervisor_context_reason_and_offender(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, "a")], name="reporting")
        crash((await pids(sup))["a"], ValueError("bad thing"))
        await settle()
    [record] = [r for r in caplog.records if r.name == "supervisors" and r.levelno >= 40]
    message = record.getMessage()
    assert message.startswith(f"supervisor {sup} (reporting): child_terminated")
    assert "reason: ValueError('bad thing')" in message
    assert "id='a'" in message
    assert "start=Member.start_link(([" in message
    assert "restart='permanent', shutdown=5.0, type='worker'" in message


async def test_failed_restart_is_retried_and_counts_toward_intensity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []
    events: Events = []

    async def flaky() -> beam.Pid:
        attempts.append(1)
        if len(attempts) > 1:
            raise beam.StartError("flaky")
        return beam.spawn_link(member, events, "f")

    async with beam.open_node():
        beam.trap_exit(True)
        sup = await Supervisor.start_link(
            [worker(member, events, "ok", id="ok"), ChildSpec("f", flaky)], max_restarts=3
        )
        crash((await pids(sup))["f"])
        exit_ = await beam.receive(beam.Exit)
        assert exit_ == beam.Exit(sup, "shutdown")
    # one start, then 3 failed restart attempts (OTP 25 prints the same: 3 start_errors)
    assert len(attempts) == 4
    contexts = [r["context"] for r in reports(caplog.records)]
    assert contexts == ["child_terminated", "start_error", "start_error", "start_error", "shutdown"]
    assert events[-1] == ("stop", "ok")


async def test_an_unknown_request_is_an_error_for_the_caller_not_a_crash() -> None:
    async with beam.open_node():
        sup = await Supervisor.start_link([])
        with pytest.raises(TypeError, match="unknown request 'hello'"):
            await supervisors_call(sup, "hello")
        assert beam.is_alive(sup)
