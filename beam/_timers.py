"""Timers: ``send_after`` and ``cancel_timer``, served by one task per node.

Pending timers sit in a heap ordered by deadline; the service task sleeps until the earliest
one (its cancel scope's deadline moves when an earlier timer is added), so any number of timers
costs one task, and ``trio.testing.MockClock`` drives them like any trio deadline. A cancelled
timer is dropped from the index at once and skipped when its heap entry comes up.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import trio

from ._types import Pid, Ref

__all__ = ["TimerService"]


class TimerService:
    """The timers of one node. ``deliver(ref, dest, message)`` is called when one fires."""

    def __init__(self, deliver: Callable[[Ref, Pid | str, Any], None]) -> None:
        self._deliver = deliver
        self._heap: list[tuple[float, int, Ref]] = []
        self._pending: dict[Ref, tuple[float, Pid | str, Any]] = {}
        self._sleep: trio.CancelScope | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def start(self, ref: Ref, dest: Pid | str, message: Any, delay: float) -> None:
        """Arrange for *message* to reach *dest* after *delay* seconds (never at once)."""
        deadline = trio.current_time() + max(delay, 0.0)
        self._pending[ref] = (deadline, dest, message)
        heapq.heappush(self._heap, (deadline, ref.id, ref))
        sleep = self._sleep
        if sleep is not None and deadline < sleep.deadline:
            sleep.deadline = deadline

    def cancel(self, ref: Ref) -> float | None:
        """Cancel timer *ref*; the seconds it had left, or ``None`` if it was not pending."""
        entry = self._pending.pop(ref, None)
        if entry is None:
            return None
        return max(entry[0] - trio.current_time(), 0.0)

    def remaining(self, ref: Ref) -> float | None:
        """Seconds left on timer *ref*, or ``None`` if it is not pending."""
        entry = self._pending.get(ref)
        return None if entry is None else max(entry[0] - trio.current_time(), 0.0)

    async def run(self) -> None:
        """Fire timers as they fall due, forever (runs as a task of the node)."""
        heap = self._heap
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as sleep:
                self._sleep = sleep
                await trio.sleep_forever()
            self._sleep = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, ref = heapq.heappop(heap)
                entry = self._pending.pop(ref, None)
                if entry is not None:
                    self._deliver(ref, entry[1], entry[2])
            await trio.lowlevel.checkpoint()
