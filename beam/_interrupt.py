"""How an exit signal reaches a process wherever it awaits, without a cancel scope per process.

A trio cancel scope around each process would do it, but costs about 0.8 KB per process (the
scope, its ``CancelStatus`` and that status's two sets), a quarter of an idle process, and
almost no process is ever killed. So the scope is made when the signal arrives, and put
*around* what the process's task is doing at that moment:

* the task awaits directly under the node's nursery (the usual case: idle in ``receive``):
  it is moved into the new, cancelled scope;
* the task is inside scopes of its own (``move_on_after``, a nursery, ``trio.sleep``): the
  outermost of them is re-parented under the new scope.

Either way the process is then exactly where a cancelled scope around its body would have
put it: ``Cancelled`` at its next checkpoint, wherever it awaits (our ``receive``, a socket,
a lock, a thread), not inside shielded scopes, again at every checkpoint while it unwinds,
its trio tasks cancelled with it, and an operation that completed before the signal kept.

This touches trio's private ``Task._cancel_status``, ``Task._activate_cancel_status``,
``CancelStatus`` (its constructor, ``parent`` and ``_parent``) and ``CancelScope._cancel_status``;
tests/beam/test_interrupt.py pins them.
"""

from __future__ import annotations

from typing import Any

import trio
from trio._core._run import CancelStatus
from trio.lowlevel import Task

__all__ = ["cancel_task", "release"]


def cancel_task(task: Task, root: Any, reason: str) -> Any:
    """Cancel what *task* is doing, as a cancelled scope directly under *root* would.

    *root* is the ``CancelStatus`` of the nursery the task runs in. Returns the new status,
    which :func:`release` detaches once the task has finished.

    >>> status = cancel_task(proc.task, node._nursery._cancel_status, "killed")  # doctest: +SKIP
    """
    scope = trio.CancelScope()
    status = CancelStatus(scope=scope, parent=root)
    scope._cancel_status = status
    scope.cancel(reason)
    current = task._cancel_status
    if current is root:
        task._activate_cancel_status(status)
        return status
    top: Any = current
    while top is not None and top._parent is not root:
        top = top._parent
    if top is None:
        raise RuntimeError(f"{task!r} does not run under its node's nursery")
    top.parent = status
    return status


def release(status: Any) -> None:
    """Detach a status made by :func:`cancel_task` from the node's nursery."""
    status.parent = None
