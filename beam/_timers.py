"""Timers: ``send_after``, ``start_timer``, ``cancel_timer`` and call timeouts, served by one
task per node.

Pending timers sit in a heap ordered by deadline; the service task sleeps until the earliest
one (its cancel scope's deadline moves when an earlier timer is added), so any number of timers
costs one task, and ``trio.testing.MockClock`` drives them like any trio deadline. A cancelled
timer leaves the index at once; its heap entry is skipped when it comes up, and the heap is
compacted when cancelled entries outnumber live ones (calls cancel almost all their timeouts).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ._types import Ref

__all__ = ["TimerService", "TimerTimeout"]

Action = Callable[[Ref, Any], None]


@dataclass(frozen=True, slots=True)
class TimerTimeout:
    """What a timer set with :func:`beam.start_timer` delivers: Erlang's
    ``{timeout, TRef, Msg}``, with ``ref`` the timer's reference.

    >>> TimerTimeout(Ref(3), "tick").message
    'tick'
    """

    ref: Ref
    message: Any


class TimerService:
    """The timers of one node: each runs ``action(ref, payload)`` when it falls due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        # ref number -> (deadline, action, payload, ref); keyed by int for cheap hashing.
        self._pending: dict[int, tuple[float, Action, Any, Ref]] = {}
        self._sleep: trio.CancelScope | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def start(self, ref: Ref, delay: float, action: Action, payload: Any) -> None:
        """Run ``action(ref, payload)`` after *delay* seconds (never synchronously)."""
        deadline = trio.current_time() + (delay if delay > 0.0 else 0.0)
        key = ref.id
        self._pending[key] = (deadline, action, payload, ref)
        heap = self._heap
        heapq.heappush(heap, (deadline, key))
        if len(heap) > 1024 and len(heap) > 4 * len(self._pending):
            self._compact()
        sleep = self._sleep
        if sleep is not None and deadline < sleep.deadline:
            sleep.deadline = deadline

    def _compact(self) -> None:
        self._heap = [(entry[0], key) for key, entry in self._pending.items()]
        heapq.heapify(self._heap)

    def discard(self, ref: Ref) -> None:
        """Cancel timer *ref* if it is pending (the cheap form of :meth:`cancel`)."""
        self._pending.pop(ref.id, None)

    def cancel(self, ref: Ref) -> float | None:
        """Cancel timer *ref*; the seconds it had left, or ``None`` if it was not pending."""
        entry = self._pending.pop(ref.id, None)
        if entry is None:
            return None
        return max(entry[0] - trio.current_time(), 0.0)

    def remaining(self, ref: Ref) -> float | None:
        """Seconds left on timer *ref*, or ``None`` if it is not pending."""
        entry = self._pending.get(ref.id)
        return None if entry is None else max(entry[0] - trio.current_time(), 0.0)

    async def run(self) -> None:
        """Fire timers as they fall due, forever (runs as a task of the node)."""
        while True:
            heap = self._heap
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as sleep:
                self._sleep = sleep
                await trio.sleep_forever()
            self._sleep = None
            now = trio.current_time()
            heap = self._heap
            pending = self._pending
            while heap and heap[0][0] <= now:
                _, key = heapq.heappop(heap)
                entry = pending.pop(key, None)
                if entry is not None:
                    entry[1](entry[3], entry[2])
            await trio.lowlevel.checkpoint()
