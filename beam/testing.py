"""Helpers for testing code built on beam: mailbox assertions and waiting for quiet.

Use them inside a node (for instance in a pytest-trio test with ``async with
beam.open_node():``), preferably with trio's ``autojump_clock`` so timeouts cost no real time::

    from beam.testing import assert_receive, refute_receive

    async def test_pong(autojump_clock):
        async with beam.open_node():
            pid = beam.spawn(ponger)
            beam.send(pid, ("ping", beam.self()))
            assert await assert_receive(lambda m: m[0] == "pong") == ("pong", pid)
            await refute_receive(timeout=1)
"""

from __future__ import annotations

from typing import Any

import trio.testing

from ._api import receive
from ._crash import bounded_repr
from ._errors import ReceiveTimeout
from ._node import current_process
from ._process import Match

__all__ = ("assert_receive", "refute_receive", "wait_idle")


async def assert_receive(match: Match = None, *, timeout: float = 0.1) -> Any:
    """Receive a message accepted by *match* within *timeout* seconds, or fail the test.

    The failure message lists what the mailbox holds instead.

    >>> async def test_it():
    ...     msg = await assert_receive(beam.Down, timeout=1)
    """
    try:
        return await receive(match, timeout=timeout)
    except ReceiveTimeout:
        raise AssertionError(
            f"no message matching {match!r} arrived within {timeout} s; {_mailbox()}"
        ) from None


async def refute_receive(match: Match = None, *, timeout: float = 0.1) -> None:
    """Fail the test if a message accepted by *match* arrives within *timeout* seconds.

    >>> async def test_it():
    ...     await refute_receive(beam.Exit, timeout=1)
    """
    try:
        message = await receive(match, timeout=timeout)
    except ReceiveTimeout:
        return
    raise AssertionError(f"unexpected message {message!r} (matching {match!r})")


async def wait_idle() -> None:
    """Wait until every task of the program is blocked: spawned processes have run.

    >>> async def test_it():
    ...     beam.spawn(worker)
    ...     await wait_idle()
    """
    await trio.testing.wait_all_tasks_blocked()


def _mailbox() -> str:
    queue = current_process("beam.testing").queue
    if not queue:
        return "the mailbox is empty"
    shown = ", ".join(bounded_repr(message) for message in list(queue)[:5])
    more = f" and {len(queue) - 5} more" if len(queue) > 5 else ""
    return f"the mailbox holds: {shown}{more}"
