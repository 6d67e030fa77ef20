"""Introspection: ``process_info`` and ``processes``, the observer's view of a node."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import trio
from trio.lowlevel import current_task

from ._node import current_node, local_id
from ._process import NOT_EXITING, Process
from ._types import Ref

if TYPE_CHECKING:
    from ._types import Pid

__all__ = ["ProcessInfo", "process_info", "processes"]

Status = Literal["running", "waiting", "suspended", "exiting"]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one process, as :func:`process_info` returns it.

    ``status`` is ``"running"`` (it is the caller), ``"waiting"`` (blocked in ``receive`` or
    waiting for a call's reply), ``"exiting"`` (an exit signal struck it and it is unwinding)
    or ``"suspended"`` (awaiting something else, such as a trio sleep or socket, or runnable).
    ``current`` is where it is awaiting, as ``"module.function (file:line)"``.
    """

    pid: Pid
    status: Status
    registered_name: str | None
    message_queue_len: int
    messages_handled: int
    links: tuple[Pid, ...]
    monitors: tuple[tuple[Ref, Pid], ...]
    monitored_by: tuple[Pid, ...]
    trap_exit: bool
    parent: Pid | None
    initial_call: str
    current: str | None


def processes() -> list[Pid]:
    """The pids of all live processes of the node, oldest first.

    >>> async def main():
    ...     print(len(beam.processes()))
    """
    return [proc.pid for proc in current_node("beam.processes")._procs.values()]


def process_info(pid: Pid) -> ProcessInfo | None:
    """A :class:`ProcessInfo` snapshot of *pid*, or ``None`` if it is not alive.

    >>> async def main():
    ...     info = beam.process_info(beam.self())
    ...     print(info.status, info.message_queue_len)
    """
    proc = current_node("beam.process_info")._procs.get(local_id(pid, "beam.process_info"))
    return None if proc is None else _snapshot(proc)


def _snapshot(proc: Process) -> ProcessInfo:
    return ProcessInfo(
        pid=proc.pid,
        status=_status(proc),
        registered_name=proc.name,
        message_queue_len=len(proc.queue) if proc.queue else 0,
        messages_handled=proc.handled,
        links=tuple(sorted(proc.links or ())),
        monitors=tuple((Ref(ref_id), pid) for ref_id, pid in (proc.monitors or {}).items()),
        monitored_by=tuple((proc.monitored_by or {}).values()),
        trap_exit=proc.trap_exit,
        parent=proc.parent,
        initial_call=_name_of(proc.initial_call),
        current=_current_point(proc),
    )


def _status(proc: Process) -> Status:
    if proc.pending_exit is not NOT_EXITING:
        return "exiting"
    if proc.task is not None and proc.task is current_task():
        return "running"
    if proc.waiter is not None:
        return "waiting"
    return "suspended"


def _name_of(fn: Any) -> str:
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return repr(fn)
    return f"{getattr(fn, '__module__', '?')}.{qualname}"


def _current_point(proc: Process) -> str | None:
    task = proc.task
    if task is None:
        return None
    innermost = None
    for frame, lineno in task.iter_await_frames():
        code = frame.f_code
        if code.co_filename.startswith(_RUNTIME_DIRS):
            continue
        module = frame.f_globals.get("__name__", "?")
        innermost = f"{module}.{code.co_qualname} ({code.co_filename}:{lineno})"
    return innermost


_RUNTIME_DIRS = (os.path.dirname(trio.__file__), os.path.dirname(__file__))
