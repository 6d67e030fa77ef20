"""The long-schedule monitor: who held the event loop, for how long, and where.

trio schedules cooperatively: a process that runs a long computation without awaiting stops
every other process. This instrument times each task step and, when one lasts longer than a
threshold, logs a warning naming the process (or trio task), the duration and the stack where
the step ended, and optionally sends a :class:`LongSchedule` message to a receiver process, as
``erlang:system_monitor(Pid, [{long_schedule, T}])`` does.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import trio

from ._process import process_var

if TYPE_CHECKING:
    from ._node import Node
    from ._types import Pid

__all__ = ["LongSchedule", "LongScheduleMonitor"]

logger = logging.getLogger("beam.long_schedule")


@dataclass(frozen=True, slots=True)
class LongSchedule:
    """Sent to the system monitor's receiver: ``pid`` held the loop for ``duration`` seconds.

    ``pid`` is ``None`` when the task was not a process; ``task`` is the trio task's name;
    ``stack`` is the formatted stack where the step ended.
    """

    pid: Pid | None
    task: str
    duration: float
    stack: str


class LongScheduleMonitor(trio.abc.Instrument):
    """A trio instrument reporting task steps longer than *threshold* seconds."""

    def __init__(self, node: Node, threshold: float, receiver: Pid | None = None) -> None:
        if threshold <= 0:
            raise ValueError(f"long_schedule threshold must be > 0 seconds, got {threshold!r}")
        self.node = node
        self.threshold = threshold
        self.receiver = receiver
        self.count = 0
        # Installed from inside a running step, the first end-of-step must not measure from
        # the clock's epoch.
        self._started = perf_counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        duration = perf_counter() - self._started
        if duration > self.threshold:
            self.count += 1
            self._report(task, duration)

    def _report(self, task: trio.lowlevel.Task, duration: float) -> None:
        proc = task.context.get(process_var, None)
        pid = None if proc is None else proc.pid
        frames: Any = task.iter_await_frames()
        stack = "".join(traceback.StackSummary.extract(frames).format())
        who = f"process {pid}" if pid is not None else f"task {task.name!r}"
        logger.warning(
            "%s held the event loop for %.1f ms (threshold %.1f ms); it yielded at:\n%s",
            who,
            duration * 1000,
            self.threshold * 1000,
            stack,
        )
        if self.receiver is not None:
            target = self.node._procs.get(self.receiver.id)
            if target is not None:
                self.node._send_to(target, LongSchedule(pid, task.name, duration, stack))
