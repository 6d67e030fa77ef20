"""Shared helpers for the ``beam`` runtime tests.

Every test opens its own node with ``async with beam.open_node():`` so that the test's own
task is the node's first process (it can receive, link, monitor and be killed). A fixture
cannot do that: pytest-trio runs fixtures in tasks of their own.

Nothing here sleeps on the wall clock: ``settle()`` lets every spawned process run until all
tasks are blocked, and timed tests use pytest-trio's ``autojump_clock``.
"""

from __future__ import annotations

import contextvars
from typing import Any

import trio
import trio.testing

import beam


async def settle() -> None:
    """Let every process run until all of them (and the timer service) are blocked."""
    await trio.testing.wait_all_tasks_blocked()


def info(pid: beam.Pid) -> beam.ProcessInfo:
    """``beam.process_info(pid)`` for a process the test knows is alive."""
    snapshot = beam.process_info(pid)
    assert snapshot is not None, f"{pid} is not alive"
    return snapshot


def drain() -> list[Any]:
    """The messages queued in the caller's mailbox, oldest first, without consuming them."""
    # process_info has no ``messages`` item; read the queue of the calling process only.
    from beam._node import current_process

    queue = current_process("drain").queue
    return list(queue) if queue else []


async def receive_all() -> list[Any]:
    """Take every message already in the caller's mailbox (never blocks)."""
    messages = []
    while True:
        try:
            messages.append(await beam.receive(timeout=0))
        except beam.ReceiveTimeout:
            return messages


async def idle() -> None:
    """A process body that waits forever without touching its mailbox."""
    await trio.sleep_forever()


async def waiter() -> None:
    """A process body blocked in a receive that accepts nothing."""
    await beam.receive(lambda _message: False)


async def forwarder(to: beam.Pid, trap: bool = False) -> None:
    """Forward every message received, as ``(self, message)``, to *to*; trap exits if asked."""
    beam.trap_exit(trap)
    me = beam.self()
    while True:
        message = await beam.receive()
        beam.send(to, (me, message))


async def exit_with(reason: Any) -> None:
    """A process body that exits at once with *reason* (an exception is raised as such)."""
    if isinstance(reason, BaseException):
        raise reason
    raise beam.ProcessExit(reason)


async def exit_on(message: Any, reason: Any) -> None:
    """Wait for *message*, then exit with *reason*."""
    await beam.receive(lambda m: m == message)
    await exit_with(reason)


async def down_reason(ref: beam.Ref) -> Any:
    """Wait for the ``Down`` of monitor *ref* and return its reason."""
    down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref)
    assert isinstance(down, beam.Down)
    return down.reason


def non_process_context() -> contextvars.Context:
    """The current node's context without a current process.

    A trio task run in it belongs to the node but is no process, as a runtime service task
    or a callback from a thread would be. (Tasks a process starts with a nursery inherit the
    process, so this is the way to get one.)
    """
    context = contextvars.Context()
    for var, value in contextvars.copy_context().items():
        if var.name != "beam.process":
            context.run(var.set, value)
    return context
