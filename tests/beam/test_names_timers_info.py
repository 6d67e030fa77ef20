"""Section 1.3 of the reference: registered names, timers and introspection.

Checked against OTP where in doubt: ``send_after`` to a dead local pid returns a reference
that ``cancel_timer`` then reports as gone (``false``); ``send_after(0, ...)`` followed by a
direct send delivers the direct message first; a second ``cancel_timer`` returns ``false``.
"""

from __future__ import annotations

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
    info,
    non_process_context,
    settle,
    waiter,
)

# -- register/2, whereis/1, registered/0 -------------------------------------------------------


async def test_register_whereis_registered() -> None:
    async with beam.open_node():
        pid = beam.spawn(waiter)
        assert beam.whereis("worker") is None
        beam.register("worker", pid)
        assert beam.whereis("worker") == pid
        assert "worker" in beam.registered()
        assert info(pid).registered_name == "worker"
        beam.send("worker", "hello")  # a name is a send target
        await settle()
        assert info(pid).message_queue_len == 1


async def test_register_name_auto_unregistered_on_exit() -> None:
    async with beam.open_node():
        pid, ref = beam.spawn_monitor(exit_on, "die", "boom")
        beam.register("doomed", pid)
        beam.send("doomed", "die")
        await down_reason(ref)
        assert beam.whereis("doomed") is None
        assert "doomed" not in beam.registered()


async def test_register_fails_if_name_taken() -> None:
    async with beam.open_node():
        holder = beam.spawn(idle)
        other = beam.spawn(idle)
        beam.register("taken", holder)
        with pytest.raises(beam.AlreadyRegistered, match="'taken'") as caught:
            beam.register("taken", other)
        assert caught.value.pid == holder
        assert beam.whereis("taken") == holder
        assert info(other).registered_name is None


async def test_register_fails_if_pid_not_alive() -> None:
    async with beam.open_node():
        dead = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        with pytest.raises(beam.NoProc):
            beam.register("ghost", dead)
        assert beam.whereis("ghost") is None


async def test_register_fails_if_pid_already_has_a_name() -> None:
    async with beam.open_node():
        pid = beam.spawn(idle)
        beam.register("first", pid)
        with pytest.raises(ValueError, match="'first'"):
            beam.register("second", pid)
        assert beam.whereis("second") is None
        assert info(pid).registered_name == "first"


async def test_register_rejects_non_name() -> None:
    async with beam.open_node():
        pid = beam.spawn(idle)
        for bad in ("", 42, None):
            with pytest.raises(TypeError, match="non-empty str"):
                beam.register(bad, pid)  # type: ignore[arg-type]


async def test_unregister_frees_the_name() -> None:
    async with beam.open_node():
        a = beam.spawn(idle)
        b = beam.spawn(idle)
        beam.register("slot", a)
        assert beam.unregister("slot") is True
        assert beam.unregister("slot") is False
        assert info(a).registered_name is None
        beam.register("slot", b)
        assert beam.whereis("slot") == b
        beam.register("again", a)  # `a` has no name any more, so it may take another
        assert beam.whereis("again") == a


# -- send_after --------------------------------------------------------------------------------


async def test_send_after_delivers_after_delay(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        start = trio.current_time()
        ref = beam.send_after(beam.self(), "tick", 2.5)
        assert isinstance(ref, beam.Ref)
        assert await beam.receive() == "tick"
        assert trio.current_time() - start == pytest.approx(2.5)


async def test_send_after_in_deadline_order(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        me = beam.self()
        beam.send_after(me, "c", 3)
        beam.send_after(me, "a", 1)
        beam.send_after(me, "b", 2)
        beam.send_after(me, "b2", 2)  # same deadline: the order they were set
        assert [await beam.receive() for _ in range(4)] == ["a", "b", "b2", "c"]


async def test_send_after_cancelled_when_target_exits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid, ref = beam.spawn_monitor(exit_on, "die", "boom")
        timer = beam.send_after(pid, "too late", 5)
        assert beam.read_timer(timer) == pytest.approx(5)
        beam.send(pid, "die")
        await down_reason(ref)
        assert beam.read_timer(timer) is None
        assert beam.cancel_timer(timer) is None


async def test_send_after_to_dead_pid_is_cancelled_at_once() -> None:
    async with beam.open_node():
        dead = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        timer = beam.send_after(dead, "never", 1)
        assert isinstance(timer, beam.Ref)
        assert beam.cancel_timer(timer) is None


async def test_send_after_to_name_resolved_at_delivery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        first, ref = beam.spawn_monitor(exit_on, "die", "boom")
        beam.register("target", first)
        start = trio.current_time()
        beam.send_after("target", "tick", 5)
        beam.send(first, "die")  # the holder dies: a timer aimed at a *name* stays armed
        await down_reason(ref)

        async def second() -> None:
            beam.register("target", beam.self())
            beam.send(me, ("second got", await beam.receive()))

        beam.spawn(second)
        assert await beam.receive() == ("second got", "tick")
        assert trio.current_time() - start == pytest.approx(5)


async def test_send_after_to_unregistered_name_is_dropped_silently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        timer = beam.send_after("nobody_yet", "lost", 1)  # no error now...
        await trio.sleep(2)  # ...nor when it fires with nobody holding the name
        assert beam.read_timer(timer) is None
        assert drain() == []


async def test_send_after_zero_is_not_synchronous(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        start = trio.current_time()
        beam.send_after(me, "zero", 0)
        assert drain() == []
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(timeout=0)
        assert await beam.receive() == "zero"
        assert trio.current_time() == start


async def test_send_after_negative_delay_is_like_zero(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        beam.send_after(beam.self(), "now-ish", -3)
        assert drain() == []
        assert await beam.receive() == "now-ish"


async def test_send_after_bad_destination_raises_type_error() -> None:
    async with beam.open_node():
        with pytest.raises(TypeError, match="1234"):
            beam.send_after(1234, "x", 1)  # type: ignore[arg-type]


# -- cancel_timer ------------------------------------------------------------------------------


async def test_cancel_timer_returns_remaining_or_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        timer = beam.send_after(me, "tick", 10)
        await trio.sleep(4)
        assert beam.cancel_timer(timer) == pytest.approx(6)
        assert beam.cancel_timer(timer) is None  # already cancelled
        await trio.sleep(10)
        assert drain() == []  # a cancelled timer never fires
        fired = beam.send_after(me, "tock", 1)
        await trio.sleep(2)
        assert beam.cancel_timer(fired) is None  # already fired
        assert beam.cancel_timer(beam.make_ref()) is None  # bogus
        assert drain() == ["tock"]


async def test_cancel_timer_none_does_not_tell_if_message_was_received(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        queued = beam.send_after(me, "queued", 1)
        taken = beam.send_after(me, "taken", 1)
        await trio.sleep(1)
        assert await beam.receive(lambda m: m == "taken") == "taken"
        # Both say None: one message is still in the mailbox, the other was consumed.
        assert beam.cancel_timer(queued) is None
        assert beam.cancel_timer(taken) is None
        assert drain() == ["queued"]


async def test_read_timer_counts_down(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        timer = beam.send_after(beam.self(), "tick", 3)
        assert beam.read_timer(timer) == pytest.approx(3)
        await trio.sleep(1)
        assert beam.read_timer(timer) == pytest.approx(2)
        await trio.sleep(2.5)  # past the deadline (at the deadline itself it is a race)
        assert beam.read_timer(timer) is None


# -- process_info ------------------------------------------------------------------------------


async def test_process_info_fields() -> None:
    async with beam.open_node():
        me = beam.self()
        watcher_ref: list[beam.Ref] = []

        async def worker() -> None:
            beam.trap_exit(True)
            watcher_ref.append(beam.monitor(me))
            await beam.receive(lambda m: m == "never")

        pid = beam.spawn_link(worker)
        my_ref = beam.monitor(pid)
        beam.register("worker", pid)
        beam.send(pid, "one")
        beam.send(pid, "two")
        await settle()
        snapshot = info(pid)
        assert snapshot.pid == pid
        assert snapshot.status == "waiting"
        assert snapshot.registered_name == "worker"
        assert snapshot.message_queue_len == 2
        assert snapshot.messages_handled == 0
        assert snapshot.links == (me,)
        assert snapshot.monitors == ((watcher_ref[0], me),)
        assert snapshot.monitored_by == (me,)
        assert snapshot.trap_exit is True
        assert snapshot.parent == me
        assert snapshot.initial_call.endswith("worker")
        assert snapshot.current is not None
        assert "worker" in snapshot.current  # where it is awaiting, in the user's code
        mine = info(me)
        assert mine.status == "running"
        assert mine.monitors == ((my_ref, pid),)
        assert mine.parent is None


async def test_process_info_counts_handled_messages() -> None:
    async with beam.open_node():
        me = beam.self()
        for i in range(3):
            beam.send(me, i)
        await beam.receive()
        await beam.receive()
        assert info(me).messages_handled == 2
        assert info(me).message_queue_len == 1


async def test_process_info_status_suspended_and_exiting() -> None:
    async with beam.open_node():
        sleeper = beam.spawn(idle)
        await settle()
        assert info(sleeper).status == "suspended"  # awaiting something that is not receive
        beam.exit(sleeper, "boom")
        assert info(sleeper).status == "exiting"  # struck, not yet unwound
        await settle()
        assert beam.process_info(sleeper) is None


async def test_process_info_dead_is_none() -> None:
    async with beam.open_node():
        pid = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        assert beam.process_info(pid) is None
        assert beam.process_info(beam.Pid(10**9)) is None


async def test_process_info_follows_signal_order() -> None:
    """A message sent before asking is already counted: the query is ordered after it."""
    async with beam.open_node():
        pid = beam.spawn(waiter)
        await settle()
        beam.send(pid, "x")
        assert info(pid).message_queue_len == 1
        beam.link(pid)
        assert info(pid).links == (beam.self(),)


async def test_processes_lists_live_pids_oldest_first() -> None:
    async with beam.open_node():
        me = beam.self()
        alive = [beam.spawn(idle) for _ in range(3)]
        dead = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        pids = beam.processes()
        assert pids == sorted(pids)
        assert me in pids
        assert all(pid in pids for pid in alive)
        assert dead not in pids


# -- Elixir Registry ---------------------------------------------------------------------------


async def test_registry_unique_key_maps_to_one_process() -> None:
    async with beam.open_node():
        me = beam.self()
        rooms = beam.Registry("unique", name="rooms")
        rooms.register("room:1", {"title": "Lobby"})
        assert rooms.whereis("room:1") == me
        assert rooms.lookup("room:1") == [(me, {"title": "Lobby"})]
        assert rooms.whereis("room:2") is None
        assert rooms.lookup("room:2") == []

        async def intruder() -> None:
            try:
                rooms.register("room:1")
            except beam.AlreadyRegistered as exc:
                beam.send(me, ("already registered", exc.pid))

        beam.spawn(intruder)
        assert await beam.receive() == ("already registered", me)
        with pytest.raises(beam.AlreadyRegistered):
            rooms.register("room:1")  # the holder itself cannot take a unique key twice


async def test_registry_duplicate_keys_allow_many_and_repeats() -> None:
    async with beam.open_node():
        me = beam.self()
        listeners = beam.Registry("duplicate")
        listeners.register("prices", "first")
        listeners.register("prices", "again")  # the same process, the same key: allowed

        async def listener() -> None:
            listeners.register("prices", "other")
            await trio.sleep_forever()

        other = beam.spawn(listener)
        await settle()
        assert sorted(listeners.lookup("prices"), key=repr) == sorted(
            [(me, "first"), (me, "again"), (other, "other")], key=repr
        )
        assert listeners.count() == 3
        assert listeners.keys(me) == ["prices", "prices"]


async def test_registry_only_the_caller_registers_itself() -> None:
    async with beam.open_node():
        registry = beam.Registry("unique")
        child = beam.spawn(idle)
        registry.register("key")
        assert registry.whereis("key") == beam.self() != child
        with pytest.raises(beam.NotInProcess):
            await _register_outside_a_process(registry)


async def _register_outside_a_process(registry: beam.Registry) -> None:
    errors: list[BaseException] = []

    async def task() -> None:
        try:
            registry.register("from a non-process")
        except BaseException as exc:
            errors.append(exc)

    trio.lowlevel.spawn_system_task(task, context=non_process_context())
    await settle()
    raise errors[0]


async def test_registry_entries_removed_when_process_dies() -> None:
    async with beam.open_node():
        registry = beam.Registry("duplicate")

        async def member() -> None:
            registry.register("topic", 1)
            registry.register("other", 2)
            await exit_on("die", "boom")

        pid, ref = beam.spawn_monitor(member)
        await settle()
        assert registry.keys(pid) == ["topic", "other"]
        registry.register("topic", 3)  # a second process, and a second value of the first
        assert registry.count_key("topic") == 2
        assert registry.count_key("nobody") == 0
        beam.send(pid, "die")
        await down_reason(ref)
        assert registry.lookup("topic") == [(beam.self(), 3)]
        assert registry.count_key("topic") == 1
        assert registry.keys(pid) == []
        registry.unregister("topic")
        assert registry.count() == 0
        assert registry.count_key("topic") == 0


async def test_registry_entries_removed_before_links_fire() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        registry = beam.Registry("unique")

        async def holder() -> None:
            registry.register("service")
            await exit_on("die", "boom")

        pid = beam.spawn_link(holder)
        await settle()
        beam.send(pid, "die")
        assert await beam.receive(beam.Exit) == beam.Exit(pid, "boom")
        registry.register("service")  # free already: the parent takes over at once
        assert registry.whereis("service") == beam.self()


async def test_registry_unregister_and_dispatch_in_caller() -> None:
    async with beam.open_node():
        me = beam.self()
        registry = beam.Registry("duplicate")

        async def member(tag: str) -> None:
            registry.register("topic", tag)
            beam.send(me, ("got", tag, await beam.receive()))

        for tag in ("a", "b"):
            beam.spawn(member, tag)
        await settle()
        callers: list[beam.Pid] = []

        def fan_out(entries: list[tuple[beam.Pid, object]]) -> None:
            callers.append(beam.self())  # dispatch runs the callback in the caller
            for pid, value in entries:
                beam.send(pid, ("tick", value))

        registry.dispatch("topic", fan_out)
        registry.dispatch("nobody", fan_out)  # no entries: not called
        assert callers == [me]
        got = sorted([await beam.receive(), await beam.receive()])
        assert got == [("got", "a", ("tick", "a")), ("got", "b", ("tick", "b"))]
        registry.register("mine")
        registry.unregister("mine")
        assert registry.lookup("mine") == []
        assert registry.keys(me) == []


async def test_registry_named_lookup() -> None:
    async with beam.open_node():
        rooms = beam.Registry("unique", name="rooms")
        assert beam.Registry.named("rooms") is rooms
        with pytest.raises(beam.AlreadyRegistered, match="rooms"):
            beam.Registry("unique", name="rooms")
        with pytest.raises(LookupError, match="no Registry named 'nope'"):
            beam.Registry.named("nope")
        with pytest.raises(ValueError, match="'unique' or 'duplicate'"):
            beam.Registry("sideways")  # type: ignore[arg-type]


async def test_process_info_initial_call_of_a_gen_server_is_its_class() -> None:
    class Idle(beam.GenServer[None]):
        async def init(self, arg: None) -> beam.Ok[None]:
            return beam.Ok(None)

    async with beam.open_node():
        pid = await Idle.start_link()
        assert pid is not None
        info = beam.process_info(pid)
        assert info is not None
        assert info.initial_call.endswith("Idle")


async def test_registry_values_keep_their_shape_however_many_a_process_registers() -> None:
    async with beam.open_node():
        registry = beam.Registry("duplicate")
        me = beam.self()
        registry.register("k", [1, 2])  # a value that is a list stays one value
        assert registry.lookup("k") == [(me, [1, 2])]
        registry.register("k", None)
        registry.register("k", [3])
        assert registry.lookup("k") == [(me, [1, 2]), (me, None), (me, [3])]
        assert (registry.count_key("k"), registry.count()) == (1, 3)
        registry.register("none", None)
        registry.unregister("none")  # a lone None is removed like any value
        assert registry.lookup("none") == []
        assert registry.keys(me) == ["k", "k", "k"]
