"""GenServer (section 1.4), Task and Agent (1.5) and thread actors (section 3)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pykka
import pytest
import trio

import beam
from beam.testing import assert_receive, refute_receive

from .conftest import drain, settle


class Echo(beam.GenServer[Any]):
    """Replies with its request; a few requests change its behaviour."""

    async def init(self, arg: Any) -> beam.Ok[Any] | beam.Stop[Any] | beam.Ignore:
        match arg:
            case "ignore":
                return beam.Ignore()
            case ("stop", reason):
                return beam.Stop(reason)
            case "raise":
                raise RuntimeError("init failed")
            case ("continue", to):
                return beam.Ok([], continue_=beam.Continue(to))
        return beam.Ok(arg)

    async def handle_call(self, request: Any, from_: beam.From, state: Any) -> Any:
        match request:
            case ("sleep", seconds):
                await trio.sleep(seconds)
                return beam.Reply("slept", state)
            case "state":
                return beam.Reply(state, state)
            case "defer":
                beam.spawn(_reply_later, from_)
                return beam.NoReply(state)
            case "stop":
                return beam.Stop.replying("normal", "bye", state)
            case "bad":
                return "not a result"
            case "crash":
                raise ValueError("handle_call crashed")
            case ("set", value):
                return beam.Reply("ok", value)
        return beam.Reply(request, state)

    async def handle_cast(self, request: Any, state: Any) -> beam.NoReply[Any]:
        return beam.NoReply(request)

    async def handle_continue(self, arg: Any, state: Any) -> beam.NoReply[Any]:
        beam.send(arg, ("continued", list(state)))
        return beam.NoReply([*state, "continued"])

    async def terminate(self, reason: Any, state: Any) -> None:
        if isinstance(state, dict) and "report_to" in state:
            beam.send(state["report_to"], ("terminated", reason))


async def _reply_later(from_: beam.From) -> None:
    beam.reply(from_, "deferred")


async def started(arg: Any = None, **options: Any) -> beam.Pid:
    pid = await Echo.start_link(arg, **options)
    assert pid is not None
    return pid


# -- call -------------------------------------------------------------------------------------


async def test_call_default_timeout_is_5s_and_caller_exits(autojump_clock: Any) -> None:
    async with beam.open_node():
        pid = await started()
        before = trio.current_time()
        with pytest.raises(beam.CallTimeout) as caught:
            await beam.call(pid, ("sleep", 60))
        assert trio.current_time() - before == pytest.approx(5.0)
        assert caught.value.reason[0] == "timeout"


async def test_late_reply_after_timeout_never_reaches_the_mailbox(autojump_clock: Any) -> None:
    async with beam.open_node():
        pid = await started()
        with pytest.raises(beam.CallTimeout):
            await beam.call(pid, ("sleep", 2), timeout=1)
        await trio.sleep(5)  # the server replies at t=2, to a closed alias
        assert drain() == []
        assert await beam.call(pid, "ping") == "ping"


async def test_call_server_dies_mid_call_caller_gets_its_reason() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = await started()
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.call(pid, "crash")
        reason, where = caught.value.reason
        assert isinstance(reason, ValueError)
        assert where == ("beam.call", pid)


async def test_call_unknown_name_raises_noproc() -> None:
    async with beam.open_node():
        with pytest.raises(beam.NoProc):
            await beam.call("nobody", "hi")


async def test_call_self_exits_calling_self() -> None:
    async with beam.open_node():
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.call(beam.self(), "hi")
        assert caught.value.reason[0] == "calling_self"


async def test_cast_always_returns_none() -> None:
    async with beam.open_node():
        beam.cast("nobody", "x")  # never fails, even for a name nobody holds
        pid = await started()
        beam.cast(pid, "new state")
        assert await beam.call(pid, "state") == "new state"


async def test_reply_deferred_from_another_process() -> None:
    async with beam.open_node():
        pid = await started()
        assert await beam.call(pid, "defer") == "deferred"


async def test_stop_replying_replies_before_stopping() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = await started()
        assert await beam.call(pid, "stop") == "bye"
        assert await assert_receive(beam.Exit) == beam.Exit(pid, "normal")


# -- handle_info, timeouts, continue ----------------------------------------------------------


class Watcher(beam.GenServer[list[Any]]):
    async def init(self, report_to: beam.Pid) -> beam.Ok[list[Any]]:
        self.report_to = report_to
        return beam.Ok([], timeout=1.0)

    async def handle_call(self, request: Any, from_: beam.From, seen: list[Any]) -> Any:
        return beam.Reply(seen, seen, timeout=1.0)

    async def handle_info(self, message: Any, seen: list[Any]) -> beam.NoReply[list[Any]]:
        beam.send(self.report_to, ("info", message))
        return beam.NoReply([*seen, message])


async def test_handle_info_gets_other_messages_and_callback_timeout(autojump_clock: Any) -> None:
    async with beam.open_node():
        pid = await Watcher.start_link(beam.self())
        assert pid is not None
        assert await assert_receive(timeout=2) == ("info", beam.TIMEOUT)
        beam.send(pid, "hello")
        assert await assert_receive(timeout=0.5) == ("info", "hello")
        beam.send_after(pid, "tick", 0.1)
        assert await assert_receive(timeout=0.5) == ("info", "tick")


async def test_callback_timeout_not_fired_when_a_message_comes_first(autojump_clock: Any) -> None:
    async with beam.open_node():
        pid = await Watcher.start_link(beam.self())
        assert pid is not None
        for _ in range(5):
            await trio.sleep(0.5)
            await beam.call(pid, "peek")  # each reply re-arms a 1 s timeout
        await refute_receive(timeout=0.9)


async def test_default_handle_info_logs_and_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        pid = await started()
        with caplog.at_level(logging.WARNING, logger="beam.gen_server"):
            beam.send(pid, "stray")
            await settle()
        assert "stray" in caplog.text
        assert await beam.call(pid, "ping") == "ping"


async def test_handle_continue_runs_before_any_further_message() -> None:
    async with beam.open_node():
        pid = await started(("continue", beam.self()))
        beam.cast(pid, ["after"])  # queued before continue had a chance to run
        assert await assert_receive() == ("continued", [])
        assert await beam.call(pid, "state") == ["after"]


# -- init results -----------------------------------------------------------------------------


async def test_init_ignore_returns_none_and_exits_normal() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        assert await Echo.start_link("ignore") is None
        await refute_receive(lambda m: isinstance(m, beam.Exit) and m.reason != "normal")


async def test_init_stop_raises_start_error_without_terminate() -> None:
    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await Echo.start_link(("stop", "no database"))
        assert caught.value.reason == "no database"
        assert beam.is_alive(beam.self())


async def test_init_failure_raises_releases_name_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        with caplog.at_level(logging.ERROR, logger="beam.crash"), pytest.raises(beam.StartError):
            await Echo.start_link("raise", name="svc")
        assert "init failed" in caplog.text
        assert beam.whereis("svc") is None
        pid = await started(name="svc")  # the name is free at once
        assert beam.whereis("svc") == pid
        with pytest.raises(beam.AlreadyRegistered):
            await Echo.start_link(None, name="svc")


# -- terminate and stop -----------------------------------------------------------------------


async def test_terminate_on_bad_return_value_names_callback_and_value() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = await started({"report_to": beam.self()})
        with pytest.raises(beam.ProcessExit):
            await beam.call(pid, "bad")
        _, reason = await assert_receive(lambda m: isinstance(m, tuple))
        assert isinstance(reason, beam.BadReturnValue)
        assert "handle_call" in str(reason)
        assert "not a result" in str(reason)


async def test_terminate_when_trapping_and_parent_exits() -> None:
    async with beam.open_node():
        me = beam.self()

        class Trapping(Echo):
            async def init(self, arg: Any) -> beam.Ok[Any]:
                beam.trap_exit(True)
                return beam.Ok({"report_to": me})

        async def parent() -> None:
            await Trapping.start_link()
            await beam.receive()

        parent_pid = beam.spawn(parent)
        await settle()
        beam.exit(parent_pid, "shutdown")
        assert await assert_receive() == ("terminated", "shutdown")


async def test_terminate_not_called_on_kill() -> None:
    async with beam.open_node():
        pid = await Echo.start({"report_to": beam.self()})
        assert pid is not None
        beam.exit(pid, "kill")
        await settle()
        assert not beam.is_alive(pid)
        await refute_receive()


async def test_stop_runs_terminate_and_waits() -> None:
    async with beam.open_node():
        pid = await Echo.start({"report_to": beam.self()})
        assert pid is not None
        await beam.GenServer.stop(pid, ("shutdown", "maintenance"))
        assert not beam.is_alive(pid)
        assert drain() == [("terminated", ("shutdown", "maintenance"))]


class Secretive(beam.GenServer[dict[str, str]]):
    async def init(self, arg: None) -> beam.Ok[dict[str, str]]:
        return beam.Ok({"user": "alice", "password": "hunter2"})

    async def handle_call(self, request: Any, from_: beam.From, state: Any) -> Any:
        raise KeyError(request)

    def format_status(self, state: dict[str, str]) -> Any:
        return {**state, "password": "***"}


async def test_crash_report_has_last_message_and_formatted_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = await Secretive.start_link()
        assert pid is not None
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            with pytest.raises(beam.ProcessExit):
                await beam.call(pid, "which-key")
            await settle()
        assert "which-key" in caplog.text  # the last message
        assert "***" in caplog.text
        assert "hunter2" not in caplog.text


# -- Task and Agent ---------------------------------------------------------------------------


async def double(x: int) -> int:
    return 2 * x


async def boom() -> None:
    raise ZeroDivisionError("task failed")


async def slow(seconds: float) -> str:
    await trio.sleep(seconds)
    return "done"


async def test_task_async_await_and_no_down_leaks() -> None:
    async with beam.open_node():
        task = beam.Task.async_(double, 21)
        assert await task.await_() == 42
        await settle()
        assert not any(isinstance(m, beam.Down) for m in drain())
        with pytest.raises(RuntimeError, match="already awaited"):
            await task.await_()


async def test_task_await_many_and_timeout(autojump_clock: Any) -> None:
    async with beam.open_node():
        tasks = [beam.Task.async_(double, n) for n in range(5)]
        assert await beam.Task.await_many(tasks) == [0, 2, 4, 6, 8]
        task = beam.Task.async_(slow, 10)
        with pytest.raises(beam.CallTimeout):
            await task.await_(timeout=1)


async def test_task_crash_reaches_trapping_owner() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        task = beam.Task.async_(boom)
        with pytest.raises(beam.ProcessExit) as caught:
            await task.await_()
        assert isinstance(caught.value.reason[0], ZeroDivisionError)
        exit_message = await assert_receive(beam.Exit)
        assert exit_message.pid == task.pid


async def test_task_only_owner_awaits_and_shutdown(autojump_clock: Any) -> None:
    async with beam.open_node():
        task = beam.Task.async_(slow, 10)
        me = beam.self()

        async def intruder() -> None:
            try:
                await task.await_()
            except RuntimeError as exc:
                beam.send(me, str(exc))

        beam.spawn(intruder)
        assert "only its owner" in await assert_receive(str)
        await task.shutdown(brutal=True)
        await settle()
        assert not beam.is_alive(task.pid)


async def test_agent_get_update_get_and_update_cast_stop() -> None:
    async with beam.open_node():
        agent = await beam.Agent.start_link(lambda: 0, name="counter")
        await beam.Agent.update("counter", lambda n: n + 1)
        beam.Agent.cast(agent, lambda n: n * 10)
        assert await beam.Agent.get_and_update(agent, lambda n: (n, n + 1)) == 10
        assert await beam.Agent.get(agent, lambda n: n) == 11
        await beam.Agent.stop(agent)
        assert not beam.is_alive(agent)


# -- thread actors ----------------------------------------------------------------------------


class Store(beam.ThreadActor):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        if fail:
            raise OSError("cannot open the store")
        self.items: dict[str, int] = {}
        self.thread_ids: set[int] = set()

    def put(self, key: str, value: int) -> None:
        self.thread_ids.add(threading.get_ident())
        self.items[key] = value

    def get(self, key: str) -> int:
        self.thread_ids.add(threading.get_ident())
        return self.items[key]

    def threads(self) -> int:
        return len(self.thread_ids)

    def block(self, seconds: float) -> str:
        time.sleep(seconds)
        return "unblocked"


def _stores() -> list[Any]:
    return pykka.ActorRegistry.get_by_class(Store)


async def test_thread_actor_ask_runs_on_one_pinned_thread() -> None:
    async with beam.open_node():
        store = await Store.start_link()
        for n in range(20):
            await beam.ask(store, "put", f"k{n}", n)
        assert await beam.ask(store, "get", "k7") == 7
        assert await beam.ask(store, "threads") == 1
        await beam.GenServer.stop(store)


async def test_thread_actor_does_not_block_loop_or_hold_worker_thread() -> None:
    async with beam.open_node():
        store = await Store.start_link()
        ticks = 0
        borrowed: list[int] = []

        async def ticker() -> None:
            nonlocal ticks
            limiter = trio.to_thread.current_default_thread_limiter()
            while True:
                await trio.sleep(0.01)
                ticks += 1
                borrowed.append(limiter.statistics().borrowed_tokens)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            assert await beam.ask(store, "block", 0.2) == "unblocked"
            nursery.cancel_scope.cancel()
        assert ticks >= 5
        assert set(borrowed) == {0}
        await beam.GenServer.stop(store)


async def test_thread_actor_failure_raises_in_caller_and_owner_exits() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        store = await Store.start_link()
        with pytest.raises(KeyError):
            await beam.ask(store, "get", "missing")
        exit_message = await assert_receive(beam.Exit, timeout=5)
        assert exit_message.pid == store
        assert isinstance(exit_message.reason, KeyError)


async def test_thread_actor_killed_owner_stops_actor() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        store = await Store.start_link()
        assert len(_stores()) == 1
        (actor,) = _stores()
        beam.exit(store, "kill")
        for _ in range(200):  # the actor thread stops soon after (bounded real wait)
            if not actor.is_alive():
                break
            await trio.sleep(0.01)
        assert not actor.is_alive()


async def test_thread_actor_ask_timeout_and_late_result_dropped() -> None:
    async with beam.open_node():
        store = await Store.start_link()
        with pytest.raises(beam.CallTimeout):
            await beam.ask(store, "block", 0.3, timeout=0.05)
        assert await beam.ask(store, "block", 0) == "unblocked"
        assert drain() == []
        await beam.GenServer.stop(store)


async def test_thread_actor_constructor_failure_is_start_error() -> None:
    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await Store.start_link(fail=True)
        assert isinstance(caught.value.reason, OSError)


# -- beam.testing -----------------------------------------------------------------------------


async def test_assert_receive_failure_lists_the_mailbox(autojump_clock: Any) -> None:
    async with beam.open_node():
        beam.send(beam.self(), "unrelated")
        with pytest.raises(AssertionError, match="unrelated"):
            await assert_receive(int, timeout=1)
        with pytest.raises(AssertionError, match="unexpected message"):
            await refute_receive(str, timeout=1)
