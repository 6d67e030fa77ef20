"""Parking the current task until it is rescheduled, in one small object instead of two frames.

``trio.lowlevel.wait_task_rescheduled`` is a coroutine awaiting a generator that yields trio's
wait trap: two frames (about 540 B) for as long as a process waits, which an idle process does
for its whole life. :func:`park` yields the same trap from a slotted iterator (about 60 B
beside the trap), so that waiting in ``receive`` costs a sixth of it. It relies on trio's trap
class ``trio._core._traps.WaitTaskRescheduled`` (pinned by tests/beam/test_interrupt.py).

>>> async def example(abort):
...     value = await park(abort)  # as `await trio.lowlevel.wait_task_rescheduled(abort)`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import outcome
from trio._core._traps import WaitTaskRescheduled
from trio.lowlevel import Abort

__all__ = ["park"]


class _Parked:
    """The awaitable :func:`park` returns: yields the trap once, then unwraps what trio sends."""

    __slots__ = ("_trap",)

    def __init__(self, abort: Callable[[Any], Abort]) -> None:
        self._trap: WaitTaskRescheduled | None = WaitTaskRescheduled(abort)

    def __await__(self) -> _Parked:
        return self

    def __iter__(self) -> _Parked:
        return self

    def __next__(self) -> WaitTaskRescheduled:
        trap = self._trap
        if trap is None:
            raise RuntimeError("a parked wait was resumed without an outcome")
        self._trap = None
        return trap

    def send(self, sent: outcome.Outcome[Any] | None) -> WaitTaskRescheduled:
        if sent is None:
            return self.__next__()
        raise StopIteration(sent.unwrap())

    def throw(self, error: BaseException, *_: object) -> WaitTaskRescheduled:
        raise error

    def close(self) -> None:
        self._trap = None


def park(abort: Callable[[Any], Abort]) -> Any:
    """Wait until the task is rescheduled; exactly ``await wait_task_rescheduled(abort)``."""
    return _Parked(abort)
