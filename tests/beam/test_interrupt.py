"""An exit signal reaches a process wherever it awaits, without a cancel scope per process.

The runtime makes a cancelled scope around what the process awaits when the signal arrives
(beam/_interrupt.py):
these tests kill processes blocked in our own receive and in foreign awaits (sleep, a socket,
an event, a lock, a memory channel, a nursery, a thread), busy at checkpoints, unwinding
through a ``finally`` that awaits, and inside a shielded scope; and they pin the private trio
names the mechanism relies on, so a trio upgrade that moves them fails here first.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import trio
import trio.lowlevel

import beam

from .conftest import down_reason, settle


async def killed_while(body: Any, reason: Any = "boom") -> tuple[Any, beam.Pid]:
    """Spawn *body*, let it block, send it an exit signal; return the Down reason."""
    pid = beam.spawn(body)
    ref = beam.monitor(pid)
    await settle()
    assert beam.is_alive(pid)
    beam.exit(pid, reason)
    return await down_reason(ref), pid


@pytest.mark.parametrize("reason", ["boom", "kill", ("shutdown", 1)])
async def test_exit_signal_kills_a_process_in_receive(reason: Any) -> None:
    async def body() -> None:
        await beam.receive()

    async with beam.open_node():
        got, pid = await killed_while(body, reason)
        assert got == ("killed" if reason == "kill" else reason)
        assert not beam.is_alive(pid)


async def test_exit_signal_kills_a_process_waiting_for_a_reply() -> None:
    async def body() -> None:
        server = beam.spawn(trio.sleep_forever)
        await beam.call(server, "never answered", timeout=None)

    async with beam.open_node():
        assert (await killed_while(body))[0] == "boom"


async def test_exit_signal_kills_a_process_in_trio_sleep() -> None:
    async def body() -> None:
        await trio.sleep(3600)

    async with beam.open_node():
        assert (await killed_while(body))[0] == "boom"


async def test_exit_signal_kills_a_process_waiting_on_a_socket() -> None:
    a, b = socket.socketpair()
    try:

        async def body() -> None:
            sock = trio.socket.from_stdlib_socket(a)
            await sock.recv(10)

        async with beam.open_node():
            assert (await killed_while(body))[0] == "boom"
            # The socket's wait was unregistered: the other end can still write.
            b.send(b"x")
    finally:
        a.close()
        b.close()


async def test_exit_signal_kills_processes_on_an_event_a_lock_and_a_channel() -> None:
    event = trio.Event()
    lock = trio.Lock()
    send, receive = trio.open_memory_channel[int](0)

    async def on_event() -> None:
        await event.wait()

    async def on_lock() -> None:
        async with lock:
            pass

    async def on_channel() -> None:
        await receive.receive()

    async with beam.open_node():
        await lock.acquire()
        for body in (on_event, on_lock, on_channel):
            assert (await killed_while(body))[0] == "boom"
        lock.release()
        # The aborted waits left the primitives usable.
        async with lock:
            pass
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive.receive)
            await send.send(1)


async def test_exit_signal_kills_a_process_and_cancels_its_trio_tasks() -> None:
    children_cancelled: list[str] = []

    async def child() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            children_cancelled.append("child")
            raise

    async def body() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            nursery.start_soon(child)

    async with beam.open_node():
        assert (await killed_while(body))[0] == "boom"
        assert children_cancelled == ["child", "child"]


async def test_exit_signal_kills_a_process_busy_at_checkpoints() -> None:
    async def body() -> None:
        while True:
            await trio.lowlevel.checkpoint()

    async with beam.open_node():
        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        await trio.lowlevel.checkpoint()
        beam.exit(pid, "boom")
        assert await down_reason(ref) == "boom"


async def test_a_process_killing_itself_from_one_of_its_trio_tasks_dies() -> None:
    async def body() -> None:
        me = beam.self()

        async def helper() -> None:
            beam.exit(me, "from a helper")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(helper)
            await trio.sleep_forever()

    async with beam.open_node():
        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        assert await down_reason(ref) == "from a helper"


async def test_a_kill_stays_like_a_cancelled_scope_for_awaits_in_finally() -> None:
    reached: list[str] = []

    async def body() -> None:
        try:
            await beam.receive()
        finally:
            reached.append("finally")
            await trio.sleep(3600)  # struck again, as a cancelled scope would
            reached.append("never")

    async with beam.open_node():
        assert (await killed_while(body))[0] == "boom"
        assert reached == ["finally"]


async def test_a_shielded_cleanup_finishes_before_the_kill_lands() -> None:
    steps: list[str] = []
    go_on = trio.Event()

    async def body() -> None:
        try:
            await beam.receive()
        finally:
            with trio.CancelScope(shield=True):
                await go_on.wait()
                steps.append("cleaned up")
            await trio.sleep(3600)
            steps.append("never")

    async with beam.open_node():
        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        await settle()
        beam.exit(pid, "boom")
        await settle()
        assert beam.is_alive(pid)
        assert steps == []
        go_on.set()
        assert await down_reason(ref) == "boom"
        assert steps == ["cleaned up"]


async def test_an_operation_completed_before_the_kill_is_kept() -> None:
    """The reply was already delivered when the signal came: the process sees it, then dies."""
    got: list[Any] = []

    async def body() -> None:
        got.append(await beam.receive())
        await beam.receive()

    async with beam.open_node():
        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        await settle()
        beam.send(pid, "before the signal")
        beam.exit(pid, "boom")
        assert await down_reason(ref) == "boom"
        assert got == ["before the signal"]


async def test_a_kill_during_a_thread_lands_when_the_thread_returns() -> None:
    release = threading.Event()
    after: list[str] = []

    async def body() -> None:
        await trio.to_thread.run_sync(release.wait)  # cannot be abandoned: the abort refuses
        after.append("returned")
        await trio.sleep(3600)

    async with beam.open_node():
        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        await settle()
        beam.exit(pid, "boom")
        await trio.sleep(0.01)
        assert beam.is_alive(pid)
        release.set()
        assert await down_reason(ref) == "boom"


async def test_a_process_killed_before_it_ran_never_runs() -> None:
    ran: list[str] = []

    async def body() -> None:
        ran.append("ran")

    async with beam.open_node():
        pid = beam.spawn(body)
        ref = beam.monitor(pid)
        beam.exit(pid, "boom")
        assert await down_reason(ref) == "boom"
        assert ran == []


async def test_links_still_propagate_a_kill_to_a_sleeping_process() -> None:
    async def sleeper(parent: beam.Pid) -> None:
        beam.link(parent)
        await trio.sleep(3600)

    async def middle() -> None:
        beam.spawn(sleeper, beam.self())
        await trio.sleep(3600)

    async with beam.open_node():
        mid = beam.spawn(middle)
        await settle()
        (child,) = beam.process_info(mid).links  # type: ignore[union-attr]
        ref = beam.monitor(child)
        beam.exit(mid, "boom")
        assert await down_reason(ref) == "boom"


async def test_struck_processes_share_one_status_and_leave_it_when_they_exit() -> None:
    """Every exit signal of a node uses its one cancelled status (no scope per signal); a
    struck task leaves it as it finishes, so nothing accumulates and the node closes."""

    async def in_receive() -> None:
        await beam.receive()

    async def in_nursery() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()

    async with beam.open_node() as node:
        for round_ in range(3):
            pids = [beam.spawn(in_receive), beam.spawn(in_nursery), beam.spawn(in_receive)]
            refs = [beam.monitor(pid) for pid in pids]
            await settle()
            for pid in pids:
                beam.exit(pid, "kill")
            struck = node._struck
            assert struck is not None
            assert struck.parent is None
            assert len(struck._tasks) == 2
            assert len(struck._children) == 1
            assert [await down_reason(ref) for ref in refs] == ["killed"] * 3
            await settle()
            assert node._struck is struck, f"round {round_} made a new status"
            assert not struck._tasks
            assert not struck._children


def test_the_private_trio_names_the_runtime_relies_on() -> None:
    """beam/_interrupt.py and beam/_park.py use these trio internals (trio 0.30 - 0.35)."""
    from trio._core._run import CancelStatus
    from trio._core._traps import WaitTaskRescheduled

    assert WaitTaskRescheduled(lambda _: trio.lowlevel.Abort.SUCCEEDED).abort_func is not None

    async def main() -> None:
        task = trio.lowlevel.current_task()
        assert callable(task._activate_cancel_status)
        async with trio.open_nursery() as nursery:
            root = nursery._cancel_status
            scope = trio.CancelScope()
            status = CancelStatus(scope=scope, parent=root)
            assert status._parent is root
            assert status in root._children
            assert scope._cancel_status is None
            status.parent = None
            assert status not in root._children
            assert status.effectively_cancelled is False
            scope._cancel_status = status
            scope.cancel("pinned")
            assert status.effectively_cancelled is True  # and stays so without a parent
            assert task._cancel_status is root.parent or task._cancel_status is not None

    trio.run(main)
