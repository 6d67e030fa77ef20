"""Task: run one function in its own process and await its result, Elixir-style.

``Task.async_`` links the task to the caller *and* ties it to a reply slot, so ``await_``
gets the result without touching the mailbox; if the task crashes first the caller learns
the reason (and, being linked, exits with it unless it traps exits)::

    task = beam.Task.async_(fetch_page, url)
    ...                                   # do other work meanwhile
    page = await task.await_(timeout=10)

The trailing underscores avoid Python's ``async``/``await`` keywords.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._call import DEFAULT_TIMEOUT, end_request, reply
from ._errors import CallTimeout, NoProc, ProcessExit
from ._node import Node, current_process, watch
from ._process import TIMED_OUT, Died
from ._types import KILL, NOPROC, SHUTDOWN, From, Pid, Ref

__all__ = ["Task"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Task(Generic[T]):
    """A handle on a running task: its ``pid``, the reply ``ref`` and the ``owner``.

    It is a plain value; only the owner (the process that started it) may await it.
    """

    pid: Pid
    ref: Ref
    owner: Pid

    @staticmethod
    def async_(fn: Callable[..., Awaitable[T]], *args: Any) -> Task[T]:
        """Start ``await fn(*args)`` in a new process linked to the caller.

        >>> async def main():
        ...     task = beam.Task.async_(compute, 21)
        ...     assert await task.await_() == 42
        """
        owner = current_process("beam.Task.async_")
        node = owner.node
        ref = node._make_ref()
        owner.open_reply(ref)
        pid, _ = node._spawn(_run, (fn, args, From(owner.pid, ref)), parent=owner, link=True)
        watch(owner, ref, node._procs[pid.id])
        return Task(pid, ref, owner.pid)

    async def await_(self, timeout: float | None = DEFAULT_TIMEOUT) -> T:
        """The task's result, waiting up to *timeout* seconds (5 by default).

        Raises :class:`CallTimeout` on timeout and :class:`ProcessExit` with the task's
        reason if it crashed. A task can be awaited once. After a timeout (caught) the task
        keeps running, still linked; its late result is dropped, and :meth:`shutdown` stops
        it.

        >>> async def main():
        ...     result = await beam.Task.async_(compute, 21).await_(timeout=1)
        """
        owner = self._owner("await_")
        try:
            value = await owner.wait_reply(self.ref, timeout)
        except BaseException:
            self._release(owner)
            raise
        if value is TIMED_OUT:
            # The slot stays open holding TIMED_OUT: a late result is absorbed there, and
            # shutdown() still knows the task is this owner's to stop.
            raise CallTimeout(("timeout", ("beam.Task.await_", self.pid)))
        self._release(owner)
        if type(value) is Died:
            if value.reason == NOPROC:
                raise NoProc(("noproc", ("beam.Task.await_", self.pid)))
            raise ProcessExit((value.reason, ("beam.Task.await_", self.pid)))
        result: T = value
        return result

    async def shutdown(
        self, timeout: float | None = DEFAULT_TIMEOUT, *, brutal: bool = False
    ) -> T | None:
        """Stop the task and wait until it is gone; its result if it finished first, else
        ``None``.

        As Elixir's ``Task.shutdown/2``: unlink, send ``"shutdown"``, and if the task is
        still alive after *timeout* seconds (it traps exits, or is busy), kill it; with
        ``brutal=True`` kill it at once. ``timeout=None`` waits as long as it takes. Works
        on a task whose :meth:`await_` timed out; after a result was awaited, or after a
        shutdown, it raises :class:`RuntimeError`.

        >>> async def main():
        ...     await beam.Task.async_(slow_job).shutdown()
        """
        owner = self._owner("shutdown", after_timeout=True)
        node = owner.node
        target = node._procs.get(self.pid.id)
        if target is not None:
            if owner.links:
                owner.links.discard(self.pid)
            if target.links:
                target.links.discard(owner.pid)
            gone = node._make_ref()  # a monitor of our own: the task's slot may be filled
            owner.open_reply(gone)
            watch(owner, gone, target)
            node._exit_signal(target, owner.pid, KILL if brutal else SHUTDOWN, linked=False)
            timer = None
            if not brutal and timeout is not None:
                timer = node._make_ref()
                node._timers.start(timer, timeout, _kill_if_alive, (node, owner.pid, self.pid))
            try:
                await owner.wait_reply(gone, None)
            finally:
                if timer is not None:
                    node._timers.discard(timer)
                end_request(node, owner, gone)
        # The task is gone, so its slot is filled: its result, Died, or TIMED_OUT.
        value = owner.replies[self.ref.id]
        self._release(owner)
        if value is TIMED_OUT or type(value) is Died:
            return None
        result: T = value
        return result

    @staticmethod
    async def await_many(tasks: list[Task[T]], timeout: float | None = DEFAULT_TIMEOUT) -> list[T]:
        """Await every task in *tasks*, in order, within one overall *timeout*.

        >>> async def main():
        ...     tasks = [beam.Task.async_(compute, n) for n in range(3)]
        ...     results = await beam.Task.await_many(tasks)
        """
        import trio

        deadline = None if timeout is None else trio.current_time() + timeout
        results = []
        for task in tasks:
            left = None if deadline is None else max(deadline - trio.current_time(), 0.0)
            results.append(await task.await_(left))
        return results

    def _owner(self, what: str, *, after_timeout: bool = False) -> Any:
        proc = current_process(f"beam.Task.{what}")
        if proc.pid != self.owner:
            raise RuntimeError(
                f"task {self.pid} belongs to {self.owner}; only its owner may {what} it "
                f"(called from {proc.pid})"
            )
        replies = proc.replies
        if (
            replies is None
            or self.ref.id not in replies
            or (not after_timeout and replies[self.ref.id] is TIMED_OUT)
        ):
            raise RuntimeError(f"task {self.pid} was already awaited or shut down")
        return proc

    def _release(self, owner: Any) -> None:
        end_request(owner.node, owner, self.ref)


def _kill_if_alive(timer: Ref, payload: tuple[Node, Pid, Pid]) -> None:
    """Timer action of :meth:`Task.shutdown`: the task outlived its shutdown time."""
    node, owner_pid, task_pid = payload
    target = node._procs.get(task_pid.id)
    if target is not None:
        node._exit_signal(target, owner_pid, KILL, linked=False)


async def _run(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], owner: From) -> None:
    reply(owner, await fn(*args))
