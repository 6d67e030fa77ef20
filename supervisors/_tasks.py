"""TaskSupervisor: supervised tasks, and ``async_nolink`` for work whose crash must not
take the caller down.

A TaskSupervisor is a DynamicSupervisor of tasks. ``async_nolink`` runs a function under it,
*monitored* but not linked by the caller, so a crash reaches the caller as a ``Down`` (or as
an exception from ``await_``) instead of killing it::

    tasks = await TaskSupervisor.start_link(name="tasks")
    task = await TaskSupervisor.async_nolink("tasks", fetch, url)
    page = await task.await_(timeout=10)          # raises beam.ProcessExit if fetch crashed
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import beam

from ._common import StartChild, SupRef, call
from ._dynamic import DynamicSupervisor
from ._spec import ChildSpec, Shutdown, worker
from ._strategy import Restart

__all__ = ["SupervisedTask", "TaskReply", "TaskSupervisor"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TaskReply:
    """The message a task started with :meth:`TaskSupervisor.async_nolink` sends its owner
    when it finishes: ``ref`` is the task's ``ref`` (also its monitor), ``value`` the result.

    A GenServer that starts tasks gets it in ``handle_info`` (a crash arrives there as
    ``beam.Down(ref, pid, reason)``).

    >>> async def handle_info(self, message, state):
    ...     if isinstance(message, TaskReply):
    ...         beam.demonitor(message.ref, flush=True)    # no Down "normal" to follow
    ...         return beam.NoReply(record(state, message.value))
    """

    ref: beam.Ref
    value: Any


@dataclass(frozen=True, slots=True)
class _Go:
    ref: beam.Ref


@dataclass(frozen=True, slots=True)
class SupervisedTask(Generic[T]):
    """A task running under a TaskSupervisor, monitored (not linked) by its ``owner``.

    ``ref`` is the owner's monitor of the task and tags its :class:`TaskReply`.

    >>> task = await TaskSupervisor.async_nolink("tasks", compute, 21)
    >>> await task.await_(timeout=1)
    42
    """

    pid: beam.Pid
    ref: beam.Ref
    owner: beam.Pid

    async def await_(self, timeout: float | None = 5.0) -> T:
        """The task's result, waiting up to *timeout* seconds.

        Raises :class:`beam.CallTimeout` on timeout (the task keeps running), and
        :class:`beam.ProcessExit` with ``(reason, ("SupervisedTask.await_", pid))`` if the
        task exited without a result. Only the owner may await, once.

        >>> result = await (await TaskSupervisor.async_nolink(tasks, compute, 21)).await_()
        """
        self._check_owner("await_")
        ref = self.ref

        def ours(message: object) -> bool:
            return isinstance(message, TaskReply | beam.Down) and message.ref == ref

        where = ("SupervisedTask.await_", self.pid)
        try:
            message = await beam.receive(ours, timeout=timeout)
        except beam.ReceiveTimeout:
            raise beam.CallTimeout(("timeout", where)) from None
        if type(message) is TaskReply:
            beam.demonitor(ref, flush=True)
            value: T = message.value
            return value
        if message.reason == beam.NOPROC:
            raise beam.NoProc((beam.NOPROC, where))
        raise beam.ProcessExit((message.reason, where))

    async def shutdown(
        self, timeout: float | None = 5.0, *, brutal: bool = False
    ) -> TaskReply | None:
        """Stop the task and wait until it is gone; its :class:`TaskReply` if it had
        finished first, else ``None``.

        As Elixir's ``Task.shutdown/2``: ``"shutdown"`` first, and ``"kill"`` if the task
        is still alive after *timeout* seconds (it traps exits, or is busy); ``"kill"`` at
        once if *brutal*. ``timeout=None`` waits as long as it takes.

        >>> await task.shutdown()
        """
        self._check_owner("shutdown")
        ref = self.ref
        beam.exit(self.pid, beam.KILL if brutal else beam.SHUTDOWN)

        def ours(message: object) -> bool:
            return isinstance(message, TaskReply | beam.Down) and message.ref == ref

        try:
            message = await beam.receive(ours, timeout=None if brutal else timeout)
        except beam.ReceiveTimeout:
            beam.exit(self.pid, beam.KILL)
            message = await beam.receive(ours)
        if type(message) is TaskReply:
            beam.demonitor(ref, flush=True)
            return message
        return None

    def _check_owner(self, what: str) -> None:
        if beam.self() != self.owner:
            raise RuntimeError(
                f"task {self.pid} belongs to {self.owner}; only its owner may {what} it"
            )


async def _start_task(
    owner: beam.Pid, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> beam.Pid:
    return beam.spawn_link(_run_task, owner, fn, args)


async def _run_task(
    owner: beam.Pid, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> None:
    # Wait for the owner's monitor ref before running, so the result is always tagged with
    # it; give up quietly if the owner dies first.
    owner_ref = beam.monitor(owner)

    def go_or_gone(message: object) -> bool:
        return type(message) is _Go or (type(message) is beam.Down and message.ref == owner_ref)

    message = await beam.receive(go_or_gone)
    if type(message) is not _Go:
        return
    beam.demonitor(owner_ref, flush=True)
    beam.send(owner, TaskReply(message.ref, await fn(*args)))


class TaskSupervisor:
    """Supervise tasks: a TaskSupervisor is a DynamicSupervisor whose children are tasks
    (``temporary``, 5 s shutdown, by default)."""

    @staticmethod
    async def start_link(
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
    ) -> beam.Pid:
        """Start a task supervisor linked to the caller.

        >>> tasks = await TaskSupervisor.start_link(name="tasks")
        """
        return await DynamicSupervisor.start_link(
            max_children=max_children,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            name=name,
        )

    @staticmethod
    def child_spec(
        *,
        id: Hashable = "TaskSupervisor",  # noqa: A002 - OTP's field name
        name: str | None = None,
    ) -> ChildSpec:
        """The spec of a task supervisor as the child of another supervisor.

        >>> tree = [TaskSupervisor.child_spec(name="tasks")]
        """
        return DynamicSupervisor.child_spec(id=id, name=name)

    @staticmethod
    async def async_nolink(
        sup: SupRef,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        shutdown: Shutdown = 5.0,
    ) -> SupervisedTask[T]:
        """Run ``await fn(*args)`` as a temporary child of *sup*, monitored by the caller.

        The caller is not linked: if the task crashes, the caller gets
        ``beam.Down(task.ref, task.pid, reason)`` (and ``await_`` raises), never an exit
        signal. On success the caller gets :class:`TaskReply` ``(task.ref, value)``.

        >>> task = await TaskSupervisor.async_nolink("tasks", fetch, "https://example.com")
        >>> page = await task.await_()
        """
        owner = beam.self()
        spec = ChildSpec("task", _start_task, (owner, fn, args), "temporary", shutdown)
        pid = await call(sup, StartChild(spec))
        ref = beam.monitor(pid)
        beam.send(pid, _Go(ref))
        return SupervisedTask(pid, ref, owner)

    @staticmethod
    async def start_child(
        sup: SupRef,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        restart: Restart = "temporary",
        shutdown: Shutdown = 5.0,
    ) -> beam.Pid:
        """Run ``await fn(*args)`` under *sup* with nobody waiting for the result.

        >>> await TaskSupervisor.start_child("tasks", send_email, "ann@example.com")
        """
        spec = worker(fn, *args, id="task", restart=restart, shutdown=shutdown)
        pid: beam.Pid = await call(sup, StartChild(spec))
        return pid

    @staticmethod
    async def children(sup: SupRef) -> list[beam.Pid]:
        """The pids of the running tasks.

        >>> len(await TaskSupervisor.children("tasks"))
        """
        infos = await DynamicSupervisor.which_children(sup)
        return [info.pid for info in infos if info.pid is not None]

    @staticmethod
    async def terminate_child(sup: SupRef, pid: beam.Pid) -> None:
        """Stop task *pid*. Raises :class:`ChildNotFound`.

        >>> await TaskSupervisor.terminate_child("tasks", pid)
        """
        await DynamicSupervisor.terminate_child(sup, pid)
