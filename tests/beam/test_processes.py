"""Section 1.1 of the reference: processes, messages and receive.

One test (at least) per row of the table: spawn, spawn_link, spawn_monitor, pid identity,
mailbox order, the per-sender ordering guarantee, send to a dead pid / unknown name,
selective receive, the save queue, ``receive ... after``, the ref-tagged receive (reply
slots) and process aliases (late replies dropped).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import beam
from beam._node import current_process
from beam._process import TIMED_OUT

from .conftest import down_reason, drain, exit_with, idle, info, receive_all, settle, waiter

# -- spawn/1..4 ------------------------------------------------------------------------------


async def test_spawn_returns_pid_and_runs_body_with_args() -> None:
    async with beam.open_node():
        me = beam.self()

        async def body(a: int, b: str) -> None:
            beam.send(me, ("ran", beam.self(), a, b))

        pid = beam.spawn(body, 1, "two")
        assert isinstance(pid, beam.Pid)
        assert pid != me
        assert await beam.receive() == ("ran", pid, 1, "two")


async def test_spawn_returning_is_exit_reason_normal() -> None:
    async with beam.open_node():

        async def body() -> str:
            return "ignored return value"

        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        assert await down_reason(ref) == beam.NORMAL
        assert not beam.is_alive(pid)


async def test_spawn_starts_the_child_at_the_next_checkpoint() -> None:
    async with beam.open_node():
        me = beam.self()

        async def body() -> None:
            beam.send(me, "started")

        beam.spawn(body)
        assert drain() == []  # nothing ran yet: spawn returned at once
        assert await beam.receive() == "started"


# -- spawn_link --------------------------------------------------------------------------------


async def test_spawn_link_is_atomic() -> None:
    """A child that dies in its very first step still takes its (non-trapping) parent down."""
    async with beam.open_node():
        me = beam.self()

        async def parent() -> None:
            beam.spawn_link(exit_with, "boom")
            beam.send(me, "linked")
            await trio.sleep_forever()

        parent_pid, ref = beam.spawn_monitor(parent)
        assert await beam.receive(lambda m: m == "linked") == "linked"
        assert await down_reason(ref) == "boom"
        assert not beam.is_alive(parent_pid)


async def test_spawn_link_link_exists_before_child_runs() -> None:
    async with beam.open_node():
        me = beam.self()
        child = beam.spawn_link(idle)
        # The child has not run a single step, yet both sides hold the link.
        assert info(child).links == (me,)
        assert child in info(me).links


async def test_spawn_link_trapping_parent_gets_exit_from_instant_crash() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        child = beam.spawn_link(exit_with, "boom")
        assert await beam.receive() == beam.Exit(child, "boom")


# -- spawn_monitor -----------------------------------------------------------------------------


async def test_spawn_monitor_is_atomic() -> None:
    async with beam.open_node():
        pid, ref = beam.spawn_monitor(exit_with, ("bad", 1))
        assert isinstance(ref, beam.Ref)
        assert info(beam.self()).monitors == ((ref, pid),)
        assert info(pid).monitored_by == (beam.self(),)
        assert await beam.receive() == beam.Down(ref, pid, ("bad", 1))


# -- pid identity ------------------------------------------------------------------------------


async def test_pid_identity_is_unique_and_never_reused() -> None:
    async with beam.open_node():
        first = [beam.spawn(exit_with, beam.NORMAL) for _ in range(20)]
        await settle()
        assert not any(beam.is_alive(pid) for pid in first)
        second = [beam.spawn(idle) for _ in range(20)]
        ids = [pid.id for pid in [beam.self(), *first, *second]]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        # Pids are plain values: equal by number, hashable, printed like Erlang's.
        assert beam.Pid(first[0].id) == first[0]
        assert hash(beam.Pid(first[0].id)) == hash(first[0])
        assert repr(beam.Pid(42)) == "<0.42.0>"
        with pytest.raises(AttributeError):
            first[0].id = 3


# -- mailbox order -----------------------------------------------------------------------------


async def test_mailbox_order_is_arrival_order() -> None:
    async with beam.open_node():
        me = beam.self()
        for i in range(10):
            beam.send(me, i)
        assert info(me).message_queue_len == 10
        assert [await beam.receive() for _ in range(10)] == list(range(10))


async def test_mailbox_appends_to_the_end_while_receiver_waits() -> None:
    async with beam.open_node():
        me = beam.self()

        async def receiver() -> None:
            await beam.receive(lambda m: m == "go")
            beam.send(me, await receive_all())

        pid = beam.spawn(receiver)
        beam.send(pid, 1)
        await settle()  # the receiver scanned [1] and now waits
        beam.send(pid, 2)
        beam.send(pid, "go")
        beam.send(pid, 3)
        assert await beam.receive() == [1, 2, 3]


# -- ordering guarantee --------------------------------------------------------------------------


async def test_ordering_guarantee_per_sender_fifo() -> None:
    async with beam.open_node():
        me = beam.self()

        async def sender(tag: str) -> None:
            for i in range(20):
                beam.send(me, (tag, i))
                if i % 3 == 0:
                    await trio.lowlevel.checkpoint()

        for tag in "abc":
            beam.spawn(sender, tag)
        await settle()
        messages = await receive_all()
        assert len(messages) == 60
        for tag in "abc":
            assert [i for t, i in messages if t == tag] == list(range(20))


async def test_ordering_guarantee_holds_across_signal_kinds() -> None:
    """Messages a process sent before it exited arrive before its Exit and its Down."""
    async with beam.open_node():
        me = beam.self()
        beam.trap_exit(True)

        async def body() -> None:
            beam.send(me, "first")
            beam.send(me, "second")
            raise beam.ProcessExit("done")

        pid = beam.spawn_link(body)
        ref = beam.monitor(pid)
        await settle()
        assert await receive_all() == [
            "first",
            "second",
            beam.Exit(pid, "done"),
            beam.Down(ref, pid, "done"),
        ]


async def test_ordering_guarantee_message_then_exit_signal() -> None:
    """A message sent before ``exit/2`` by the same sender is seen before the Exit."""
    async with beam.open_node():
        me = beam.self()

        async def trapper() -> None:
            beam.trap_exit(True)
            await beam.receive(lambda m: m == "go")
            beam.send(me, [await beam.receive(), await beam.receive()])

        pid = beam.spawn(trapper)
        await settle()
        beam.send(pid, "hello")
        beam.exit(pid, "bye")
        beam.send(pid, "go")
        assert await beam.receive() == ["hello", beam.Exit(me, "bye")]


# -- send to a dead pid / an unknown name ------------------------------------------------------


async def test_send_to_dead_pid_is_dropped() -> None:
    async with beam.open_node():
        pid = beam.spawn(exit_with, beam.NORMAL)
        await settle()
        assert not beam.is_alive(pid)
        beam.send(pid, "into the void")  # never raises
        beam.send(beam.Pid(10**9), "to a pid that never existed")
        assert drain() == []


async def test_send_to_unknown_name_raises() -> None:
    async with beam.open_node():
        with pytest.raises(beam.UnknownName, match="'nobody'"):
            beam.send("nobody", "hello")


async def test_send_to_name_of_exited_process_raises() -> None:
    async with beam.open_node():
        pid = beam.spawn(waiter)
        beam.register("short_lived", pid)
        beam.send("short_lived", "ok while alive")
        beam.exit(pid, "kill")
        await settle()
        with pytest.raises(beam.UnknownName, match="short_lived"):
            beam.send("short_lived", "too late")


# -- selective receive -------------------------------------------------------------------------


async def test_selective_receive_keeps_unmatched_in_order() -> None:
    async with beam.open_node():
        me = beam.self()
        for message in ["a", 1, "b", 2, "c", 3]:
            beam.send(me, message)
        assert await beam.receive(int) == 1
        assert await beam.receive(lambda m: m == 3) == 3
        assert drain() == ["a", "b", 2, "c"]
        assert await beam.receive(str) == "a"
        assert drain() == ["b", 2, "c"]


async def test_selective_receive_oldest_message_first_against_all_clauses() -> None:
    """Each message is tried against every clause; the oldest message that matches wins."""
    async with beam.open_node():
        me = beam.self()
        for message in ["x", 2.5, 7, b"y"]:
            beam.send(me, message)
        # The float is older than the int: it wins although int is the "first clause".
        assert await beam.receive((int, float)) == 2.5
        assert await beam.receive((bytes, int)) == 7
        assert drain() == ["x", b"y"]


async def test_selective_receive_blocks_until_match() -> None:
    async with beam.open_node():
        me = beam.self()

        async def receiver() -> None:
            message = await beam.receive(lambda m: m == "wanted")
            beam.send(me, ("got", message, await receive_all()))

        pid = beam.spawn(receiver)
        beam.send(pid, "noise-1")
        beam.send(pid, "noise-2")
        await settle()
        assert info(pid).status == "waiting"
        assert info(pid).message_queue_len == 2
        beam.send(pid, "wanted")
        assert await beam.receive() == ("got", "wanted", ["noise-1", "noise-2"])


async def test_selective_receive_cancelled_receive_loses_no_message() -> None:
    """A receive that raises Cancelled did not happen (trio's rule): the message stays."""
    async with beam.open_node():
        me = beam.self()
        beam.send(me, "precious")
        with trio.CancelScope() as scope:
            scope.cancel()
            await beam.receive()
        assert scope.cancelled_caught
        assert drain() == ["precious"]


# -- save queue --------------------------------------------------------------------------------


async def test_save_queue_only_new_arrivals_tested() -> None:
    async with beam.open_node():
        me = beam.self()
        tested: list[Any] = []

        def wanted(message: Any) -> bool:
            tested.append(message)
            return message == "hit"

        async def receiver() -> None:
            message = await beam.receive(wanted)
            beam.send(me, ("got", message))

        pid = beam.spawn(receiver)
        for i in range(3):
            beam.send(pid, i)
        await settle()
        assert tested == [0, 1, 2]  # the initial scan
        beam.send(pid, 3)
        beam.send(pid, 4)
        await settle()
        assert tested == [0, 1, 2, 3, 4]  # only the new arrivals, each once
        beam.send(pid, "hit")
        assert await beam.receive() == ("got", "hit")
        assert tested == [0, 1, 2, 3, 4, "hit"]


async def test_save_queue_new_receive_starts_from_oldest() -> None:
    async with beam.open_node():
        me = beam.self()

        async def receiver() -> None:
            await beam.receive(lambda m: m == "hit")
            # Saved messages are back in their original order, oldest first.
            beam.send(me, await beam.receive(int))
            beam.send(me, await receive_all())

        pid = beam.spawn(receiver)
        beam.send(pid, "old")
        beam.send(pid, 1)
        await settle()
        beam.send(pid, 2)
        beam.send(pid, "hit")
        assert await beam.receive() == 1
        assert await beam.receive() == ["old", 2]


# -- receive ... after -------------------------------------------------------------------------


async def test_receive_after_timeout_not_reset_by_nonmatching(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()

        async def pester() -> None:
            for _ in range(4):
                await trio.sleep(3)
                beam.send(me, "noise")

        beam.spawn(pester)
        start = trio.current_time()
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(lambda m: m == "wanted", timeout=5)
        # The deadline was fixed at entry: the noise at t=3 did not push it to t=8.
        assert trio.current_time() - start == pytest.approx(5)
        assert drain() == ["noise"]


async def test_receive_after_returns_match_before_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()

        async def later() -> None:
            await trio.sleep(2)
            beam.send(me, "noise")
            beam.send(me, "wanted")

        beam.spawn(later)
        start = trio.current_time()
        assert await beam.receive(lambda m: m == "wanted", timeout=5) == "wanted"
        assert trio.current_time() - start == pytest.approx(2)
        assert drain() == ["noise"]


async def test_receive_timeout_zero_polls(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        me = beam.self()
        start = trio.current_time()
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(timeout=0)
        beam.send(me, "a")
        beam.send(me, 1)
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(float, timeout=0)
        assert await beam.receive(int, timeout=0) == 1
        assert trio.current_time() == start  # it never blocked
        assert drain() == ["a"]


async def test_receive_after_with_no_clauses_sleeps_and_consumes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        beam.send(me, "kept")
        start = trio.current_time()
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(lambda _m: False, timeout=1.5)
        assert trio.current_time() - start == pytest.approx(1.5)
        assert drain() == ["kept"]


# -- ref-tagged receive (reply slots) ------------------------------------------------------------


async def test_ref_tagged_receive_finds_reply_without_scanning_the_mailbox() -> None:
    async with beam.open_node():
        me = beam.self()
        proc = current_process()
        for i in range(1000):
            beam.send(me, ("noise", i))
        handled = info(me).messages_handled
        ref = beam.make_ref()
        proc.open_reply(ref)

        async def server() -> None:
            # What a server's reply does: fill the caller's slot, not its mailbox.
            assert proc.deliver_reply(ref, ("pong", ref))

        beam.spawn(server)
        assert await proc.wait_reply(ref, None) == ("pong", ref)
        proc.close_reply(ref)
        # The reply bypassed the mailbox: the 1000 queued messages were not touched.
        assert info(me).messages_handled == handled
        assert drain() == [("noise", i) for i in range(1000)]


async def test_ref_tagged_receive_waits_for_reply_in_its_slot() -> None:
    async with beam.open_node():
        me = beam.self()
        slots: dict[str, Any] = {}

        async def caller() -> None:
            proc = current_process()
            ref = beam.make_ref()
            proc.open_reply(ref)
            slots["proc"], slots["ref"] = proc, ref
            value = await proc.wait_reply(ref, None)
            proc.close_reply(ref)
            beam.send(me, ("reply", value, await receive_all()))

        pid = beam.spawn(caller)
        beam.send(pid, "noise")
        await settle()
        assert info(pid).status == "waiting"
        beam.send(pid, "more noise")  # a plain message does not end a wait for a reply
        await settle()
        assert info(pid).status == "waiting"
        assert slots["proc"].deliver_reply(slots["ref"], "pong")
        assert await beam.receive() == ("reply", "pong", ["noise", "more noise"])


async def test_ref_tagged_receive_reply_already_there_is_returned_at_once() -> None:
    async with beam.open_node():
        proc = current_process()
        ref = beam.make_ref()
        proc.open_reply(ref)
        assert proc.deliver_reply(ref, "early")
        assert await proc.wait_reply(ref, 0) == "early"
        proc.close_reply(ref)
        assert drain() == []


async def test_ref_tagged_receive_slot_keeps_first_value() -> None:
    async with beam.open_node():
        proc = current_process()
        ref = beam.make_ref()
        proc.open_reply(ref)
        assert proc.deliver_reply(ref, "first")
        assert proc.deliver_reply(ref, "second")  # absorbed: never queued
        assert await proc.wait_reply(ref, None) == "first"
        proc.close_reply(ref)
        assert drain() == []


async def test_ref_tagged_receive_without_open_slot_is_an_error() -> None:
    async with beam.open_node():
        proc = current_process()
        with pytest.raises(RuntimeError, match="no reply slot"):
            await proc.wait_reply(beam.make_ref(), None)


# -- process aliases (late replies) ------------------------------------------------------------


async def test_late_reply_dropped_after_alias_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        proc = current_process()
        ref = beam.make_ref()
        proc.open_reply(ref)

        async def slow_server() -> None:
            await trio.sleep(10)
            beam.send(me, "server done")
            delivered.append(proc.deliver_reply(ref, "late reply"))

        me = beam.self()
        delivered: list[bool] = []
        beam.spawn(slow_server)
        assert await proc.wait_reply(ref, 1) is TIMED_OUT
        proc.close_reply(ref)  # the alias is deactivated
        assert await beam.receive() == "server done"
        await settle()
        assert delivered == [False]
        assert drain() == []
