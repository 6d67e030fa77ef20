"""Section 1.4 of the reference: gen_server, one test (or a few) per row of the table.

Checked against OTP 25 (``erl``) where in doubt:

* ``gen_server:call(self(), x)`` exits ``{calling_self, {gen_server, call, [Pid, x]}}``;
  ``gen_server:call(nobody, x)`` exits ``{noproc, {gen_server, call, [nobody, x]}}``;
  ``gen_server:cast(nobody, x)`` returns ``ok``.
* ``init`` returning ``{ok, S, 0}`` with an empty mailbox gets ``handle_info(timeout, S)``.
* ``gen_server:start_link`` with ``{timeout, 100}`` and an ``init`` that sleeps returns
  ``{error, timeout}``; the caller stays alive and (even when trapping exits) gets no
  ``'EXIT'`` message, because ``proc_lib`` unlinks before it kills the child.
* ``gen_server:stop(Pid, because, infinity)`` runs ``terminate(because, S)`` and logs
  "Generic server ... terminating ... Reason for termination == because".
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

import beam
from beam.testing import assert_receive, refute_receive

from .conftest import down_reason, drain, idle, settle

# -- a server whose behaviour the test chooses through its requests ---------------------------


class Server(beam.GenServer[Any]):
    """State is a dict; ``state["to"]`` (a pid) gets a report of every terminate/handle_info.

    Requests are small tuples or strings, so each test reads as a script of what happens.
    """

    async def init(self, arg: Any) -> Any:
        match arg:
            case ("ignore",):
                return beam.Ignore()
            case ("stop", reason):
                return beam.Stop(reason)
            case ("raise", to):
                beam.send(to, ("init ran", beam.self()))
                raise RuntimeError("init failed")
            case ("bad init",):
                return "not an init result"
            case ("slow init", seconds):
                await trio.sleep(seconds)
                return beam.Ok({})
            case ("trap", to):
                beam.trap_exit(True)
                return beam.Ok({"to": to, "log": []})
            case ("timeout", to, seconds):
                return beam.Ok({"to": to, "log": []}, timeout=seconds)
            case ("continue", to, gate):
                return beam.Ok({"to": to, "log": []}, continue_=beam.Continue(gate))
        return beam.Ok({"to": arg, "log": []})

    async def handle_call(self, request: Any, from_: beam.From, state: Any) -> Any:
        match request:
            case "ping":
                return beam.Reply("pong", state)
            case "state":
                return beam.Reply(state, state)
            case ("sleep", seconds):
                await trio.sleep(seconds)
                return beam.Reply("slept", state)
            case ("sleep then reply", seconds, to):
                await trio.sleep(seconds)
                beam.send(to, "server replies now")
                return beam.Reply("late", state)
            case ("defer to", helper):
                beam.send(helper, ("answer this", from_))
                return beam.NoReply(state)
            case ("reply with timeout", seconds):
                return beam.Reply("armed", state, timeout=seconds)
            case ("stop replying", reason):
                return beam.Stop.replying(reason, "goodbye", state)
            case ("stop", reason):
                return beam.Stop(reason, state)
            case "bad":
                return ("reply", "oops")
            case "raise":
                raise ValueError("handle_call crashed")
            case ("exit", reason):
                raise beam.ProcessExit(reason)
        return beam.Reply(("echo", request), state)

    async def handle_cast(self, request: Any, state: Any) -> Any:
        match request:
            case ("log", item):
                return beam.NoReply({**state, "log": [*state["log"], item]})
            case ("stop", reason):
                return beam.Stop(reason)  # no state: terminate sees the last one
            case "bad":
                return beam.Reply("a reply from a cast", state)
            case "raise":
                raise LookupError("handle_cast crashed")
        return beam.NoReply(state)

    async def handle_info(self, message: Any, state: Any) -> Any:
        if message == "bad info":
            return None
        beam.send(state["to"], ("info", message))
        return beam.NoReply({**state, "log": [*state["log"], message]})

    async def handle_continue(self, arg: Any, state: Any) -> Any:
        # ``arg`` is a trio.Event the test sets; the continue finishes only then.
        beam.send(state["to"], ("continue started", list(state["log"])))
        await arg.wait()
        return beam.NoReply({**state, "log": [*state["log"], "continued"]})

    async def terminate(self, reason: Any, state: Any) -> None:
        if isinstance(state, dict) and isinstance(state.get("to"), beam.Pid):
            beam.send(state["to"], ("terminate", reason, list(state["log"])))


class Plain(beam.GenServer[Any]):
    """A server with no handle_info (the default one logs and ignores)."""

    async def init(self, arg: Any) -> beam.Ok[Any]:
        return beam.Ok(arg)

    async def handle_call(self, request: Any, from_: beam.From, state: Any) -> Any:
        return beam.Reply((request, state), state)


async def start(arg: Any = None, **options: Any) -> beam.Pid:
    """Start a :class:`Server` without a link (the test's own fate stays independent)."""
    pid = await Server.start(arg, **options)
    assert pid is not None
    return pid


async def start_link(arg: Any = None, **options: Any) -> beam.Pid:
    pid = await Server.start_link(arg, **options)
    assert pid is not None
    return pid


def terminated(message: Any) -> bool:
    return isinstance(message, tuple) and message[0] == "terminate"


# -- call/2,3 ---------------------------------------------------------------------------------


async def test_call_default_timeout_is_5_seconds(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        before = trio.current_time()
        with pytest.raises(beam.CallTimeout) as caught:
            await beam.call(pid, ("sleep", 60))
        assert trio.current_time() - before == pytest.approx(5.0)
        assert caught.value.reason == ("timeout", ("beam.call", pid))
        assert isinstance(caught.value, beam.ProcessExit)  # left uncaught, the caller exits


async def test_call_timeout_uncaught_makes_the_caller_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        server = await start(beam.self())

        async def caller() -> None:
            await beam.call(server, ("sleep", 60))

        _, ref = beam.spawn_monitor(caller)
        reason = await down_reason(ref)
        assert reason == ("timeout", ("beam.call", server))
        assert beam.is_alive(server)  # the server is not touched by the caller's timeout


async def test_call_late_reply_is_dropped(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        with pytest.raises(beam.CallTimeout):
            await beam.call(pid, ("sleep then reply", 2, beam.self()), timeout=1)
        # The server really does reply, at t=2, to the alias the caller closed at t=1.
        assert await assert_receive(timeout=5) == "server replies now"
        await settle()
        assert drain() == []
        await trio.sleep(10)
        assert drain() == []
        assert await beam.call(pid, "ping") == "pong"  # and the next call is not confused


async def test_call_timeout_none_waits_forever(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        assert await beam.call(pid, ("sleep", 3600), timeout=None) == "slept"


async def test_call_rejects_a_negative_timeout() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        with pytest.raises(ValueError, match="timeout"):
            await beam.call(pid, "ping", timeout=-1)


async def test_call_server_dies_mid_call_caller_gets_its_reason() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.call(pid, ("exit", "database gone"))
        assert caught.value.reason == ("database gone", ("beam.call", pid))
        assert not isinstance(caught.value, beam.CallTimeout | beam.NoProc)


async def test_call_server_killed_mid_call_caller_gets_killed_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await start(beam.self())

        async def killer() -> None:
            await trio.sleep(1)
            beam.exit(pid, beam.KILL)

        beam.spawn(killer)
        before = trio.current_time()
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.call(pid, ("sleep", 60))
        assert caught.value.reason == (beam.KILLED, ("beam.call", pid))
        assert trio.current_time() - before == pytest.approx(1.0)  # not the 5 s timeout


async def test_call_server_crash_uncaught_caller_exits_with_server_reason() -> None:
    async with beam.open_node():
        server = await start(beam.self())

        async def caller() -> None:
            await beam.call(server, "raise")

        _, ref = beam.spawn_monitor(caller)
        reason = await down_reason(ref)
        error, where = reason
        assert isinstance(error, ValueError)
        assert str(error) == "handle_call crashed"
        assert where == ("beam.call", server)


async def test_call_leaves_no_down_in_the_mailbox() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        assert await beam.call(pid, "ping") == "pong"
        await beam.GenServer.stop(pid)
        await settle()
        assert not any(isinstance(m, beam.Down) for m in drain())


async def test_call_unknown_name_raises_noproc() -> None:
    async with beam.open_node():
        with pytest.raises(beam.NoProc) as caught:
            await beam.call("nobody", "hi")
        assert caught.value.reason == ("noproc", ("beam.call", "nobody"))


async def test_call_dead_pid_raises_noproc() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        await beam.GenServer.stop(pid)
        with pytest.raises(beam.NoProc) as caught:
            await beam.call(pid, "ping")
        assert caught.value.reason == ("noproc", ("beam.call", pid))


async def test_call_self_exits_calling_self() -> None:
    async with beam.open_node():
        me = beam.self()
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.call(me, "hi")
        assert caught.value.reason == ("calling_self", ("beam.call", me))
        beam.register("me", me)
        with pytest.raises(beam.ProcessExit) as by_name:
            await beam.call("me", "hi")
        assert by_name.value.reason == ("calling_self", ("beam.call", "me"))


# -- cast/2 -----------------------------------------------------------------------------------


async def test_cast_always_returns_none() -> None:
    async with beam.open_node():
        assert beam.cast("nobody", "x") is None  # type: ignore[func-returns-value]
        pid = await start(beam.self())
        assert beam.cast(pid, ("log", "a")) is None  # type: ignore[func-returns-value]
        assert (await beam.call(pid, "state"))["log"] == ["a"]
        await beam.GenServer.stop(pid)
        # A dead pid: the cast is dropped, no error.
        assert beam.cast(pid, ("log", "b")) is None  # type: ignore[func-returns-value]
        await settle()
        assert [m for m in drain() if not terminated(m)] == []


async def test_cast_is_processed_in_order_with_calls() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        for n in range(5):
            beam.cast(pid, ("log", n))
        assert (await beam.call(pid, "state"))["log"] == [0, 1, 2, 3, 4]


# -- handle_info/2 ----------------------------------------------------------------------------


async def test_handle_info_gets_plain_messages_and_timer_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        beam.send(pid, "hello")
        assert await assert_receive() == ("info", "hello")
        beam.send_after(pid, "tick", 2)
        before = trio.current_time()
        assert await assert_receive(timeout=3) == ("info", "tick")
        assert trio.current_time() - before == pytest.approx(2.0)


async def test_handle_info_gets_down_of_its_monitors() -> None:
    async with beam.open_node():
        watched = beam.spawn(idle)

        class Watcher(Server):
            async def init(self, arg: Any) -> Any:
                beam.send(arg, ("monitoring", beam.monitor(watched)))
                return beam.Ok({"to": arg, "log": []})

        server = await Watcher.start(beam.self())
        _, ref = await assert_receive()
        beam.exit(watched, "gone")
        assert await assert_receive() == ("info", beam.Down(ref, watched, "gone"))
        assert server is not None
        assert beam.is_alive(server)


async def test_handle_info_gets_exit_from_a_non_parent_link_when_trapping() -> None:
    async with beam.open_node():
        linked = beam.spawn(idle)

        class Linker(Server):
            async def init(self, arg: Any) -> Any:
                beam.trap_exit(True)
                beam.link(linked)
                return beam.Ok({"to": arg, "log": []})

        trapper = await Linker.start(beam.self())
        assert trapper is not None
        beam.exit(linked, "boom")
        assert await assert_receive() == ("info", beam.Exit(linked, "boom"))
        assert beam.is_alive(trapper)
        await refute_receive(terminated)


async def test_handle_info_exit_signal_from_a_stranger_is_a_message_when_trapping() -> None:
    async with beam.open_node():
        server = await start(("trap", beam.self()))

        async def stranger() -> None:
            beam.exit(server, "go away")

        stranger_pid = beam.spawn(stranger)
        assert await assert_receive() == ("info", beam.Exit(stranger_pid, "go away"))
        assert beam.is_alive(server)
        await refute_receive(terminated)


async def test_default_handle_info_logs_a_warning_and_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        pid = await Plain.start("s")
        assert pid is not None
        with caplog.at_level(logging.WARNING, logger="beam.gen_server"):
            beam.send(pid, ("stray", 42))
            await settle()
        (record,) = [r for r in caplog.records if r.name == "beam.gen_server"]
        assert record.levelno == logging.WARNING
        assert "('stray', 42)" in record.getMessage()
        assert str(pid) in record.getMessage()
        assert await beam.call(pid, "ping") == ("ping", "s")
        assert beam.is_alive(pid)


# -- reply/2 ----------------------------------------------------------------------------------


async def test_reply_deferred_from_another_process() -> None:
    async with beam.open_node():
        pid = await start(beam.self())

        async def helper() -> None:
            _, from_ = await beam.receive()
            beam.reply(from_, ("answered by", beam.self()))

        helper_pid = beam.spawn(helper)
        assert await beam.call(pid, ("defer to", helper_pid)) == ("answered by", helper_pid)
        assert await beam.call(pid, "ping") == "pong"  # the server was free meanwhile


async def test_reply_deferred_server_keeps_serving_meanwhile(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        me = beam.self()

        async def helper() -> None:
            _, from_ = await beam.receive()
            beam.send(me, ("helper holds", from_))
            await trio.sleep(3)
            beam.reply(from_, "finally")

        helper_pid = beam.spawn(helper)

        async def caller() -> None:
            beam.send(me, ("caller got", await beam.call(pid, ("defer to", helper_pid))))

        beam.spawn(caller)
        await assert_receive(lambda m: m[0] == "helper holds", timeout=1)
        assert await beam.call(pid, "ping") == "pong"
        assert await assert_receive(timeout=5) == ("caller got", "finally")


async def test_reply_after_the_caller_gave_up_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await start(beam.self())

        async def slow_helper() -> None:
            _, from_ = await beam.receive()
            await trio.sleep(10)
            beam.reply(from_, "too late")

        helper_pid = beam.spawn(slow_helper)
        with pytest.raises(beam.CallTimeout):
            await beam.call(pid, ("defer to", helper_pid), timeout=1)
        await trio.sleep(20)
        assert drain() == []


# -- callback timeout ---------------------------------------------------------------------------


async def test_callback_timeout_from_init_sends_timeout_to_handle_info(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        before = trio.current_time()
        await start(("timeout", beam.self(), 2))
        assert await assert_receive(timeout=5) == ("info", beam.TIMEOUT)
        assert trio.current_time() - before == pytest.approx(2.0)
        assert beam.TIMEOUT == "timeout"
        await refute_receive(timeout=10)  # fired once; NoReply without timeout disarms it


async def test_callback_timeout_from_reply_fires_after_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        assert await beam.call(pid, ("reply with timeout", 3)) == "armed"
        before = trio.current_time()
        assert await assert_receive(timeout=5) == ("info", beam.TIMEOUT)
        assert trio.current_time() - before == pytest.approx(3.0)


async def test_callback_timeout_zero_fires_when_the_mailbox_is_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        assert await beam.call(pid, ("reply with timeout", 0)) == "armed"
        assert await assert_receive() == ("info", beam.TIMEOUT)


async def test_callback_timeout_not_fired_if_a_message_arrives_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        assert await beam.call(pid, ("reply with timeout", 3)) == "armed"
        await trio.sleep(1)
        beam.send(pid, "just in time")
        assert await assert_receive() == ("info", "just in time")
        await refute_receive(timeout=10)  # handle_info returned no timeout: nothing fires


async def test_callback_timeout_zero_with_a_queued_message_handles_the_message_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():

        class Arming(Server):
            async def handle_cast(self, request: Any, state: Any) -> Any:
                if request == "arm 0 after queueing":
                    beam.send(beam.self(), "queued meanwhile")
                    return beam.NoReply(state, timeout=0)
                return await super().handle_cast(request, state)

        server = await Arming.start(beam.self())
        assert server is not None
        beam.cast(server, "arm 0 after queueing")
        assert await assert_receive() == ("info", "queued meanwhile")
        await refute_receive(timeout=5)  # Erlang: a waiting message cancels the timeout


# -- handle_continue/2 --------------------------------------------------------------------------


async def test_handle_continue_runs_before_any_further_message() -> None:
    async with beam.open_node():
        gate = trio.Event()
        pid = await start(("continue", beam.self(), gate))
        # start_link has returned although handle_continue is still blocked on the gate.
        assert await assert_receive() == ("continue started", [])
        beam.cast(pid, ("log", "cast"))
        beam.send(pid, "info")
        await settle()
        assert drain() == []  # nothing handled while the continue is running
        gate.set()
        state = await beam.call(pid, "state")
        assert state["log"] == ["continued", "cast", "info"]
        assert await assert_receive() == ("info", "info")


async def test_handle_continue_start_link_returns_before_it_completes() -> None:
    async with beam.open_node():
        gate = trio.Event()
        pid = await start_link(("continue", beam.self(), gate))
        assert beam.is_alive(pid)
        assert not gate.is_set()
        assert await assert_receive() == ("continue started", [])
        gate.set()
        assert (await beam.call(pid, "state"))["log"] == ["continued"]


async def test_handle_continue_from_a_call_reply() -> None:
    class Chain(Server):
        async def handle_call(self, request: Any, from_: beam.From, state: Any) -> Any:
            if request == "go":
                return beam.Reply("went", state, continue_=beam.Continue("step 1"))
            return await super().handle_call(request, from_, state)

        async def handle_continue(self, arg: Any, state: Any) -> Any:
            log = [*state["log"], arg]
            if arg == "step 1":
                return beam.NoReply({**state, "log": log}, continue_=beam.Continue("step 2"))
            return beam.NoReply({**state, "log": log})

    async with beam.open_node():
        pid = await Chain.start(beam.self())
        assert pid is not None
        beam.cast(pid, ("log", "before"))
        assert await beam.call(pid, "go") == "went"
        beam.cast(pid, ("log", "after"))
        assert (await beam.call(pid, "state"))["log"] == ["before", "step 1", "step 2", "after"]


# -- init/1 results -------------------------------------------------------------------------------


async def test_init_ok_start_link_returns_the_pid_and_links() -> None:
    async with beam.open_node():
        pid = await start_link(beam.self())
        info = beam.process_info(pid)
        assert info is not None
        assert beam.self() in info.links


async def test_init_ignore_start_link_returns_none_and_process_exits_normal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        before = beam.current_node().statistics().spawned
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            assert await Server.start_link(("ignore",), name="ignored") is None
            await settle()
        assert beam.current_node().statistics().spawned == before + 1
        assert beam.whereis("ignored") is None
        # OTP 25 also sends {'EXIT', Pid, normal}; a normal one is all that may arrive.
        await refute_receive(lambda m: isinstance(m, beam.Exit) and m.reason != "normal")
        assert caplog.records == []
        assert beam.current_node().statistics().processes == 1  # only the test process


async def test_init_stop_raises_start_error_without_terminate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class NoTerminate(Server):
        async def terminate(self, reason: Any, state: Any) -> None:
            raise AssertionError("terminate must not run after init returned Stop")

    async with beam.open_node():
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            with pytest.raises(beam.StartError) as caught:
                await NoTerminate.start_link(("stop", "no database"), name="db")
            await settle()
        assert caught.value.reason == "no database"
        assert beam.whereis("db") is None
        assert beam.is_alive(beam.self())  # the caller is not killed
        assert "no database" in caplog.text
        assert "terminate must not run" not in caplog.text


async def test_init_bad_return_value_is_a_start_error() -> None:
    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await Server.start_link(("bad init",))
        error = caught.value.reason
        assert isinstance(error, beam.BadReturnValue)
        assert error.callback == "init"
        assert error.value == "not an init result"


async def test_init_raising_start_error_logged_name_released_caller_alive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            with pytest.raises(beam.StartError) as caught:
                await Server.start_link(("raise", beam.self()), name="svc")
            await settle()
        (ran, server_pid) = await assert_receive()
        assert ran == "init ran"
        assert isinstance(caught.value.reason, RuntimeError)
        assert str(caught.value.reason) == "init failed"
        reports = [r for r in caplog.records if r.name == "beam.crash"]
        assert len(reports) == 1
        assert reports[0].beam_report["pid"] == server_pid  # type: ignore[attr-defined]
        assert "init failed" in caplog.text
        assert beam.whereis("svc") is None
        assert not beam.is_alive(server_pid)
        # The caller (not trapping) was not killed, and the name can be taken at once.
        pid = await start_link(beam.self(), name="svc")
        assert beam.whereis("svc") == pid
        await refute_receive(beam.Exit)


async def test_init_raising_caller_survives_even_when_not_trapping() -> None:
    async with beam.open_node():
        me = beam.self()

        async def starter() -> None:
            try:
                await Server.start_link(("raise", me))
            except beam.StartError as exc:
                beam.send(me, ("start error", exc.reason))
            await beam.receive()  # stay alive until told otherwise

        starter_pid, ref = beam.spawn_monitor(starter)
        await assert_receive(lambda m: m[0] == "init ran")
        _, reason = await assert_receive(lambda m: m[0] == "start error")
        assert isinstance(reason, RuntimeError)
        await settle()
        assert beam.is_alive(starter_pid)
        beam.send(starter_pid, "done")
        assert await down_reason(ref) == "normal"


async def test_init_timeout_start_error_and_caller_not_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # OTP: {error, timeout}; proc_lib unlinks before killing the child, so the caller lives.
    async with beam.open_node():
        me = beam.self()

        async def starter() -> None:
            try:
                await Server.start_link(("slow init", 10), name="slow", timeout=1)
            except beam.StartError as exc:
                beam.send(me, ("start error", exc.reason))
            await beam.receive()

        starter_pid, ref = beam.spawn_monitor(starter)
        assert await assert_receive(timeout=2) == ("start error", "timeout")
        await trio.sleep(1)
        await settle()
        assert beam.whereis("slow") is None
        assert beam.is_alive(starter_pid), f"starter died: {drain()}"
        beam.send(starter_pid, "done")
        assert await down_reason(ref) == "normal"


async def test_init_timeout_trapping_caller_gets_no_exit_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        with pytest.raises(beam.StartError) as caught:
            await Server.start_link(("slow init", 10), timeout=1)
        assert caught.value.reason == "timeout"
        await refute_receive(timeout=1)


# -- terminate/2 ------------------------------------------------------------------------------


async def test_terminate_called_on_stop_from_a_callback() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        beam.cast(pid, ("log", "x"))
        beam.cast(pid, ("stop", ("shutdown", "done")))
        assert await assert_receive() == ("terminate", ("shutdown", "done"), ["x"])
        await settle()
        assert not beam.is_alive(pid)


async def test_terminate_called_on_stop_from_handle_call_and_caller_gets_exit() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.call(pid, ("stop", "enough"))
        assert caught.value.reason == ("enough", ("beam.call", pid))
        assert await assert_receive() == ("terminate", "enough", [])


async def test_terminate_called_on_a_raising_callback(caplog: pytest.LogCaptureFixture) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        beam.monitor(pid)
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            beam.cast(pid, "raise")
            tag, reason, _ = await assert_receive()
            await settle()
        assert tag == "terminate"
        assert isinstance(reason, LookupError)
        down = await assert_receive(beam.Down)
        assert down.reason is reason  # the process exits with the exception itself
        assert "handle_cast crashed" in caplog.text


@pytest.mark.parametrize(
    ("how", "callback", "value"),
    [
        ("call", "handle_call", ("reply", "oops")),
        ("cast", "handle_cast", beam.Reply("a reply from a cast", None)),
        ("info", "handle_info", None),
    ],
)
async def test_terminate_called_on_bad_return_value(how: str, callback: str, value: Any) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        if how == "call":
            with pytest.raises(beam.ProcessExit) as caught:
                await beam.call(pid, "bad")
            call_reason, where = caught.value.reason
            assert isinstance(call_reason, beam.BadReturnValue)
            assert where == ("beam.call", pid)
        elif how == "cast":
            beam.cast(pid, "bad")
        else:
            beam.send(pid, "bad info")
        _, reason, _ = await assert_receive(terminated)
        assert isinstance(reason, beam.BadReturnValue)
        assert isinstance(reason, TypeError)
        assert reason.callback == callback
        if how == "cast":
            assert isinstance(reason.value, beam.Reply)
            assert reason.value.reply == "a reply from a cast"
        else:
            assert reason.value == value
        assert callback in str(reason)
        assert repr(reason.value)[:20] in str(reason)


async def test_terminate_called_when_trapping_and_the_parent_sends_an_exit_signal() -> None:
    async with beam.open_node():
        beam.trap_exit(True)  # the server's "shutdown" exit would kill a linked test
        pid = await start_link(("trap", beam.self()))
        beam.exit(pid, "shutdown")  # the test process is the parent
        assert await assert_receive() == ("terminate", "shutdown", [])
        assert await assert_receive() == beam.Exit(pid, "shutdown")
        assert not beam.is_alive(pid)


async def test_terminate_called_when_trapping_and_the_parent_dies() -> None:
    async with beam.open_node():
        me = beam.self()

        async def parent() -> None:
            server = await start_link(("trap", me))
            beam.send(me, ("server", server))
            await beam.receive()

        parent_pid = beam.spawn(parent)
        _, server = await assert_receive()
        beam.exit(parent_pid, "parent crashed")
        assert await assert_receive() == ("terminate", "parent crashed", [])
        await settle()
        assert not beam.is_alive(server)


async def test_terminate_runs_after_messages_queued_before_the_exit_signal() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = await start_link(("trap", beam.self()))
        for n in range(3):
            beam.cast(pid, ("log", n))
        beam.exit(pid, "shutdown")
        assert await assert_receive() == ("terminate", "shutdown", [0, 1, 2])


async def test_terminate_not_called_for_a_non_trapping_server_hit_by_parent_exit() -> None:
    async with beam.open_node():
        pid = await start_link(beam.self())
        ref = beam.monitor(pid)
        beam.unlink(pid)  # keep the test process out of the signal's way
        beam.exit(pid, "shutdown")
        assert await down_reason(ref) == "shutdown"
        await refute_receive(terminated)


async def test_terminate_not_called_on_kill() -> None:
    async with beam.open_node():
        pid = await start(("trap", beam.self()))
        ref = beam.monitor(pid)
        beam.exit(pid, beam.KILL)
        assert await down_reason(ref) == beam.KILLED
        await refute_receive(terminated)


async def test_terminate_that_raises_changes_the_exit_reason() -> None:
    class BadTerminate(Server):
        async def terminate(self, reason: Any, state: Any) -> None:
            beam.send(state["to"], ("terminate", reason, []))
            raise OSError("cleanup failed")

    async with beam.open_node():
        pid = await BadTerminate.start(beam.self())
        assert pid is not None
        ref = beam.monitor(pid)
        beam.cast(pid, ("stop", "normal"))
        assert await assert_receive(terminated) == ("terminate", "normal", [])
        reason = await down_reason(ref)
        assert isinstance(reason, OSError)
        await refute_receive(terminated)  # terminate ran once


# -- stop/3 ---------------------------------------------------------------------------------------


async def test_stop_runs_terminate_and_waits() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        ref = beam.monitor(pid)
        beam.cast(pid, ("log", "queued first"))
        await beam.GenServer.stop(pid)
        assert not beam.is_alive(pid)  # already gone when stop returns
        assert drain()[0] == ("terminate", "normal", ["queued first"])
        assert await down_reason(ref) == "normal"


async def test_stop_with_a_reason_and_by_name() -> None:
    async with beam.open_node():
        pid = await start(beam.self(), name="svc")
        ref = beam.monitor(pid)
        await beam.GenServer.stop("svc", ("shutdown", "maintenance"))
        assert await assert_receive(terminated) == (
            "terminate",
            ("shutdown", "maintenance"),
            [],
        )
        assert await down_reason(ref) == ("shutdown", "maintenance")
        assert beam.whereis("svc") is None


async def test_stop_waits_for_a_slow_terminate(autojump_clock: trio.testing.MockClock) -> None:
    class SlowTerminate(Server):
        async def terminate(self, reason: Any, state: Any) -> None:
            await trio.sleep(30)  # longer than any call timeout: stop waits forever by default

    async with beam.open_node():
        pid = await SlowTerminate.start(beam.self())
        assert pid is not None
        before = trio.current_time()
        await beam.GenServer.stop(pid)
        assert trio.current_time() - before == pytest.approx(30.0)
        assert not beam.is_alive(pid)


async def test_stop_unknown_server_raises_noproc() -> None:
    async with beam.open_node():
        with pytest.raises(beam.NoProc):
            await beam.GenServer.stop("nobody")


async def test_stop_with_abnormal_reason_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # OTP: gen_server:stop(Pid, because, infinity) logs "Generic server ... terminating",
    # "Reason for termination == because" (checked with erl, OTP 25).
    async with beam.open_node():
        pid = await start(beam.self())
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            await beam.GenServer.stop(pid, "because")
        assert await assert_receive(terminated) == ("terminate", "because", [])
        reports = [r for r in caplog.records if r.name == "beam.crash"]
        assert len(reports) == 1, "an abnormal stop reason must write a crash report"
        assert reports[0].beam_report["reason"] == "because"  # type: ignore[attr-defined]


async def test_stop_with_normal_reason_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            await beam.GenServer.stop(pid)
            await beam.GenServer.stop(await start(beam.self()), "shutdown")
        assert [r for r in caplog.records if r.name == "beam.crash"] == []


async def test_stop_when_terminate_raises_runs_terminate_once() -> None:
    class BadTerminate(Server):
        async def terminate(self, reason: Any, state: Any) -> None:
            beam.send(state["to"], ("terminate", reason, []))
            raise OSError("cleanup failed")

    async with beam.open_node():
        pid = await BadTerminate.start(beam.self())
        assert pid is not None
        with pytest.raises(beam.ProcessExit) as caught:
            await beam.GenServer.stop(pid)
        reason, where = caught.value.reason
        assert isinstance(reason, OSError)
        assert where == ("beam.GenServer.stop", pid)
        await settle()
        calls = [m for m in drain() if terminated(m)]
        assert calls == [("terminate", "normal", [])], f"terminate ran {len(calls)} times"


# -- format_status and crash reports --------------------------------------------------------------


class Vault(beam.GenServer[dict[str, str]]):
    async def init(self, arg: None) -> beam.Ok[dict[str, str]]:
        return beam.Ok({"user": "alice", "password": "hunter2"})

    async def handle_call(self, request: Any, from_: beam.From, state: Any) -> Any:
        if request == "rotate":
            return beam.Reply("ok", {**state, "password": "correct horse"})
        raise KeyError(request)

    def format_status(self, state: dict[str, str]) -> Any:
        return {**state, "password": "<redacted>"}


async def test_format_status_is_used_in_crash_reports(caplog: pytest.LogCaptureFixture) -> None:
    async with beam.open_node():
        pid = await Vault.start(name="vault")
        assert pid is not None
        assert await beam.call(pid, "rotate") == "ok"
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            with pytest.raises(beam.ProcessExit):
                await beam.call(pid, "the-unknown-key")
            await settle()
        (record,) = [r for r in caplog.records if r.name == "beam.crash"]
        report = record.beam_report  # type: ignore[attr-defined]
        assert report["pid"] == pid
        assert report["name"] == "vault"
        assert report["state"] == {"user": "alice", "password": "<redacted>"}
        assert "the-unknown-key" in repr(report["last_message"])
        assert isinstance(report["reason"], KeyError)
        text = caplog.text
        assert "the-unknown-key" in text
        assert "<redacted>" in text
        assert "alice" in text
        assert "hunter2" not in text
        assert "correct horse" not in text


async def test_format_status_failure_does_not_break_the_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenStatus(Vault):
        def format_status(self, state: dict[str, str]) -> Any:
            raise RuntimeError("format_status broke")

    async with beam.open_node():
        pid = await BrokenStatus.start()
        assert pid is not None
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            with pytest.raises(beam.ProcessExit):
                await beam.call(pid, "x")
            await settle()
        assert "format_status failed" in caplog.text
        assert "hunter2" not in caplog.text


async def test_no_crash_report_for_normal_or_shutdown_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with beam.open_node():
        with caplog.at_level(logging.ERROR, logger="beam.crash"):
            for reason in ("normal", "shutdown", ("shutdown", "x")):
                pid = await start(beam.self())
                beam.cast(pid, ("stop", reason))
                assert await assert_receive(terminated) == ("terminate", reason, [])
            await settle()
        assert [r for r in caplog.records if r.name == "beam.crash"] == []


# -- Stop.replying --------------------------------------------------------------------------------


async def test_stop_replying_replies_before_stopping() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        pid = await start_link(beam.self())
        assert await beam.call(pid, ("stop replying", "normal")) == "goodbye"
        # The reply came first; then terminate, then the exit.
        assert await assert_receive() == ("terminate", "normal", [])
        assert await assert_receive() == beam.Exit(pid, "normal")


async def test_stop_replying_with_an_abnormal_reason_still_answers() -> None:
    async with beam.open_node():
        pid = await start(beam.self())
        ref = beam.monitor(pid)
        assert await beam.call(pid, ("stop replying", "tired")) == "goodbye"
        assert await down_reason(ref) == "tired"


def test_stop_replying_builds_a_stop_with_a_reply() -> None:
    stop = beam.Stop.replying("normal", "bye", {"n": 1})
    assert stop == beam.Stop("normal", {"n": 1}, "bye", True)
    assert beam.Stop("normal").has_reply is False


# -- names ----------------------------------------------------------------------------------------


async def test_name_is_registered_at_start() -> None:
    async with beam.open_node():
        pid = await start(beam.self(), name="svc")
        assert beam.whereis("svc") == pid
        assert await beam.call("svc", "ping") == "pong"
        beam.cast("svc", ("log", 1))
        assert (await beam.call("svc", "state"))["log"] == [1]


async def test_name_is_registered_before_init_runs() -> None:
    class SelfAware(Server):
        async def init(self, arg: Any) -> Any:
            beam.send(arg, ("whereis in init", beam.whereis("aware") == beam.self()))
            return beam.Ok({"to": arg, "log": []})

    async with beam.open_node():
        await SelfAware.start(beam.self(), name="aware")
        assert await assert_receive() == ("whereis in init", True)


async def test_name_taken_raises_already_registered() -> None:
    async with beam.open_node():
        holder = beam.spawn(idle)
        beam.register("taken", holder)
        before = beam.current_node().statistics().spawned
        with pytest.raises(beam.AlreadyRegistered) as caught:
            await Server.start_link(beam.self(), name="taken")
        assert caught.value.pid == holder
        assert beam.current_node().statistics().spawned == before  # nothing was started
        assert beam.whereis("taken") == holder


async def test_name_released_when_the_server_exits() -> None:
    async with beam.open_node():
        pid = await start(beam.self(), name="svc")
        await beam.GenServer.stop(pid)
        assert beam.whereis("svc") is None
        again = await start(beam.self(), name="svc")
        assert again != pid
        assert beam.whereis("svc") == again


async def test_name_race_two_concurrent_starts_loser_gets_an_error_not_killed() -> None:
    # OTP: the loser's start_link returns {error, {already_started, Pid}}; the loser lives.
    async with beam.open_node():
        me = beam.self()

        async def starter(tag: str) -> None:
            try:
                pid = await Server.start_link(me, name="contested")
                beam.send(me, (tag, "started", pid))
            except (beam.AlreadyRegistered, beam.StartError) as exc:
                beam.send(me, (tag, "error", exc))
            await beam.receive()  # stay alive until told otherwise

        beam.spawn_monitor(starter, "a")
        beam.spawn_monitor(starter, "b")
        first = await assert_receive(lambda m: isinstance(m, tuple) and m[0] in "ab")
        await settle()
        rest = [m for m in drain() if isinstance(m, tuple) and m[0] in ("a", "b")]
        downs = [m for m in drain() if isinstance(m, beam.Down)]
        assert downs == [], f"a starter was killed: {downs}"
        outcomes = {m[0]: m[1:] for m in [first, *rest]}
        assert sorted(o[0] for o in outcomes.values()) == ["error", "started"]
        winner = next(o[1] for o in outcomes.values() if o[0] == "started")
        assert beam.whereis("contested") == winner
