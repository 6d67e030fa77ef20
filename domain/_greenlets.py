"""Synchronous code that awaits: units of work run in greenlets of the calling trio task.

A unit of work is a plain function (it also runs on an SQLite connection's thread), yet on
PostgreSQL each statement it runs is a trio await. :func:`run_in_greenlet` runs the function
in a greenlet; :func:`wait_for` (called by the function, deep inside it) switches back to
the task with an awaitable, the task awaits it on trio, and switches the result (or the
exception, a cancellation included) back in. This is how SQLAlchemy's asyncio extension runs
its synchronous core, and those greenlets say so (``__sqlalchemy_greenlet_provider__``), so
SQLAlchemy's own ``await_`` works inside them too: ``tx.conn`` relies on it.

Greenlets are reused: a new one costs a fresh frame stack (Python maps and unmaps memory for
it), more than the rest of a small unit. An idle greenlet waits for its next function::

    result = await run_in_greenlet(unit, tx)     # in a trio task

    def unit(tx):                                # in the greenlet
        return wait_for(conn.execute(stmt))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from greenlet import getcurrent, greenlet  # type: ignore[import-untyped]

__all__ = ["run_in_greenlet", "wait_for"]

T = TypeVar("T")
A = TypeVar("A")

#: Idle greenlets kept for reuse.
MAX_IDLE = 64


class _Worker(greenlet):
    """A reusable greenlet; SQLAlchemy's ``await_`` accepts to run in it."""

    __sqlalchemy_greenlet_provider__ = True


class _Done:
    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


_idle: list[_Worker] = []


def _work(fn: Callable[[Any], Any], arg: Any) -> None:
    while True:
        try:
            done = _Done(fn(arg), None)
        except BaseException as exc:  # handed to the awaiting task, which raises it
            done = _Done(None, exc)
        del fn, arg
        fn, arg = getcurrent().parent.switch(done)


async def run_in_greenlet(fn: Callable[[A], T], arg: A) -> T:
    """``fn(arg)`` run in a greenlet of the calling task; each :func:`wait_for` inside it is
    awaited by the task: ``records = await run_in_greenlet(unit, tx)``."""
    here = getcurrent()
    worker = _idle.pop() if _idle else _Worker(_work, here)
    worker.parent = here
    worker.gr_context = here.gr_context
    step: Any = worker.switch(fn, arg)
    while type(step) is not _Done:
        try:
            result = await step
        except BaseException as exc:
            step = worker.throw(exc)
        else:
            step = worker.switch(result)
    if len(_idle) < MAX_IDLE:
        _idle.append(worker)
    if step.error is not None:
        error, step.error = step.error, None
        raise error
    value: T = step.value
    return value


def wait_for(awaitable: Awaitable[T]) -> T:
    """Await *awaitable* from the synchronous code :func:`run_in_greenlet` runs:
    ``rows = wait_for(link.execute(stmt))``."""
    current = getcurrent()
    if type(current) is not _Worker:
        if hasattr(awaitable, "close"):
            awaitable.close()
        raise RuntimeError("wait_for() outside run_in_greenlet(): no task to await it")
    value: T = current.parent.switch(awaitable)
    return value
