"""How an exit signal reaches a process wherever it awaits, without a cancel scope per process.

A trio cancel scope around each process would do it, but costs about 0.8 KB per process (the
scope, its ``CancelStatus`` and that status's two sets), a quarter of an idle process, and
almost no process is ever killed. So each node keeps one *struck* status: a cancelled
``CancelStatus`` attached to nothing, made at the first exit signal. A signal puts what the
process's task is doing under it:

* the task awaits directly under the node's nursery (the usual case: idle in ``receive``):
  the task is moved into the struck status;
* the task is inside scopes of its own (``move_on_after``, a nursery, ``trio.sleep``): the
  outermost of them is re-parented under the struck status.

Either way the process is then exactly where a cancelled scope around its body would have
put it: ``Cancelled`` at its next checkpoint, wherever it awaits (our ``receive``, a socket,
a lock, a thread), not inside shielded scopes, again at every checkpoint while it unwinds,
its trio tasks cancelled with it, and an operation that completed before the signal kept.

One status serves every struck task of the node (it is never closed, and being attached to
no parent it never holds up the nursery): an exit signal costs one move between two sets,
not a new scope and status each time, which matters on the restart path of supervisors
(kill, restart, kill...). A task leaves it when it finishes, as from any status.

This touches trio's private ``Task._cancel_status``, ``Task._activate_cancel_status``,
``CancelStatus`` (its constructor, ``parent`` and ``_parent``) and ``CancelScope._cancel_status``;
tests/beam/test_interrupt.py pins them.
"""

from __future__ import annotations

from typing import Any

import trio
from trio._core._run import CancelStatus
from trio.lowlevel import Task

__all__ = ["cancel_task", "struck_status"]


def struck_status(reason: str) -> Any:
    """A cancelled ``CancelStatus`` with no parent, for :func:`cancel_task` (one per node).

    Must be called inside ``trio.run`` (cancelling a scope consults the run's deadlines).

    >>> struck = struck_status("exit signal")  # doctest: +SKIP
    """
    scope = trio.CancelScope()
    status = CancelStatus(scope=scope, parent=None)
    scope._cancel_status = status
    scope.cancel(reason)
    return status


def cancel_task(task: Task, root: Any, struck: Any) -> None:
    """Cancel what *task* is doing, as a cancelled scope directly under *root* would.

    *root* is the ``CancelStatus`` of the nursery the task runs in; *struck* the node's
    status from :func:`struck_status`.

    >>> cancel_task(proc.task, node._nursery._cancel_status, node._struck)  # doctest: +SKIP
    """
    current = task._cancel_status
    if current is root:
        task._activate_cancel_status(struck)
        return
    top: Any = current
    while top is not None and top._parent is not root:
        top = top._parent
    if top is None:
        raise RuntimeError(f"{task!r} does not run under its node's nursery")
    top.parent = struck
