"""DynamicSupervisor: children added at run time, stopped all at once.

A DynamicSupervisor starts empty and is always one_for_one; its children are known by pid,
not id, and it stops them all at once when it shuts down (send every exit signal, then
collect the ``Down`` messages), so a pool of 100k connections stops in one pass::

    pool = await DynamicSupervisor.start_link(max_children=1000, name="sessions")
    pid = await DynamicSupervisor.start_child("sessions", child_spec(Session, user_id))

Children are restarted one_for_one by their restart type, within the restart intensity
(``max_restarts`` in ``max_seconds``), exactly as under a :class:`Supervisor`.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import trio

import beam

from ._common import (
    ChildCounts,
    ChildInfo,
    CountChildren,
    Failed,
    StartChild,
    StartFailed,
    SupRef,
    TerminateChild,
    TryAgain,
    WhichChildren,
    call,
    check_flags,
    count_children,
    start_one,
)
from ._errors import ChildNotFound, InvalidSpec, MaxChildren
from ._report import report, supervisor_label
from ._shutdown import shutdown_children, shutdown_ok
from ._spec import Bound, ChildLike, ChildSpec, Shutdown, bind, spawn_linked, validate_child_specs
from ._strategy import Restart, RestartWindow, exit_action

__all__ = ["DynamicSupervisor"]


@dataclass(frozen=True, slots=True)
class _Args:
    max_children: int | None
    max_restarts: int
    max_seconds: float
    extra_arguments: tuple[Any, ...]


class _State:
    __slots__ = (
        "__weakref__",
        "args",
        "busy",
        "children",
        "fresh",
        "intensity",
        "keys",
        "restarting",
    )

    def __init__(self, args: _Args) -> None:
        self.args = args
        self.intensity = RestartWindow(args.max_restarts, args.max_seconds)
        self.children: dict[beam.Pid, ChildSpec] = {}
        self.restarting: dict[int, ChildSpec] = {}
        self.keys = itertools.count()
        #: True while a callback runs (or for good, once terminating): no inline starts.
        self.busy = False
        #: True after an inline start, until the supervisor let those children run once.
        self.fresh = False

    async def settle(self) -> None:
        """Before taking a request, let the children started inline take their first step,
        as those it starts itself have by the time it answers the next caller."""
        if self.fresh:
            self.fresh = False
            await trio.lowlevel.checkpoint()


#: The state of each running DynamicSupervisor, by node and pid, for the inline start of
#: plain workers (see :func:`_start_inline`). Weak: a supervisor's state goes with it.
_states: weakref.WeakKeyDictionary[beam.Node, weakref.WeakValueDictionary[beam.Pid, _State]] = (
    weakref.WeakKeyDictionary()
)


class _DynamicServer(beam.GenServer[_State]):
    async def init(self, args: _Args) -> beam.Ok[_State]:
        beam.trap_exit(True)
        state = _State(args)
        node = beam.current_node()
        table = _states.get(node)
        if table is None:
            table = _states[node] = weakref.WeakValueDictionary()
        table[beam.self()] = state
        return beam.Ok(state)

    async def terminate(self, reason: Any, state: _State) -> None:
        state.busy = True
        await state.settle()
        state.restarting.clear()
        children = list(state.children.items())
        state.children.clear()
        targets = [(pid, _how(spec)) for pid, spec in children]
        reasons = await shutdown_children(targets)
        for (pid, spec), (_, how), why in zip(children, targets, reasons, strict=True):
            if not shutdown_ok(why, how, permanent=spec.restart == "permanent"):
                report("shutdown_error", why, spec, pid)

    async def handle_call(
        self, request: Any, from_: beam.From, state: _State
    ) -> beam.Reply[_State]:
        state.busy = True
        try:
            await state.settle()
            return await self._answer(request, state)
        finally:
            state.busy = False

    async def _answer(self, request: Any, state: _State) -> beam.Reply[_State]:
        kind = type(request)
        result: Any
        if kind is StartChild:
            limit = state.args.max_children
            if request.spec.significant:
                result = Failed(
                    InvalidSpec(
                        f"DynamicSupervisor {supervisor_label()}",
                        "significant",
                        True,
                        "False (a DynamicSupervisor has no auto_shutdown, as in Elixir)",
                    )
                )
            elif limit is not None and len(state.children) + len(state.restarting) >= limit:
                result = Failed(MaxChildren(supervisor_label(), limit))
            else:
                try:
                    result = await start_one(request.spec, state.args.extra_arguments)
                except StartFailed as failed:
                    result = Failed(beam.StartError(failed.reason))
                else:
                    if result is not None:
                        state.children[result] = request.spec
        elif kind is TerminateChild:
            spec = state.children.pop(request.child, None)
            if spec is None:
                result = Failed(ChildNotFound(supervisor_label(), request.child))
            else:
                how = _how(spec)
                [why] = await shutdown_children([(request.child, how)])
                if not shutdown_ok(why, how, permanent=spec.restart == "permanent"):
                    report("shutdown_error", why, spec, request.child)
                result = None
        elif kind is WhichChildren:
            result = [
                ChildInfo(spec.id, pid, spec.type, spec.restart)
                for pid, spec in state.children.items()
            ] + [
                ChildInfo(spec.id, None, spec.type, spec.restart)
                for spec in state.restarting.values()
            ]
        elif kind is CountChildren:
            result = count_children(
                [(spec, True) for spec in state.children.values()]
                + [(spec, False) for spec in state.restarting.values()]
            )
        else:
            result = Failed(
                TypeError(
                    f"dynamic supervisor {supervisor_label()} does not support "
                    f"{type(request).__name__} (children are known by pid, not id)"
                )
            )
        return beam.Reply(result, state)

    async def handle_info(
        self, message: Any, state: _State
    ) -> beam.NoReply[_State] | beam.Stop[_State]:
        state.busy = True
        try:
            await state.settle()
            return await self._info(message, state)
        finally:
            state.busy = False

    async def _info(self, message: Any, state: _State) -> beam.NoReply[_State] | beam.Stop[_State]:
        if type(message) is beam.Exit:
            spec = state.children.pop(message.pid, None)
            if spec is None:
                return beam.NoReply(state)
            reason = message.reason
            clean = beam.is_normal_exit(reason)
            if not clean:
                report("child_terminated", reason, spec, message.pid)
            if exit_action(spec.restart, clean=clean) != "restart":
                return beam.NoReply(state)
            return await self._restart(spec, message.pid, state)
        if type(message) is TryAgain and isinstance(message.key, int):
            spec = state.restarting.pop(message.key, None)
            if spec is None:
                return beam.NoReply(state)
            return await self._restart(spec, None, state)
        return await super().handle_info(message, state)

    async def _restart(
        self, spec: ChildSpec, old_pid: beam.Pid | None, state: _State
    ) -> beam.NoReply[_State] | beam.Stop[_State]:
        if state.intensity.add(trio.current_time()):
            report("shutdown", "reached_max_restart_intensity", spec, old_pid)
            return beam.Stop(beam.SHUTDOWN, state)
        try:
            pid = await start_one(spec, state.args.extra_arguments, old_pid=old_pid)
        except StartFailed:
            key = next(state.keys)
            state.restarting[key] = spec
            beam.send(beam.self(), TryAgain(key))
            return beam.NoReply(state)
        if pid is not None:
            state.children[pid] = spec
        return beam.NoReply(state)


def _start_inline(sup: SupRef, spec: ChildSpec) -> beam.Pid | None:
    """Start a plain worker (:func:`worker`'s spec) under a local supervisor that is idle,
    in the caller; ``None`` when the request must go to the supervisor instead.

    The supervisor would run exactly these steps on its side (spawn the worker linked to
    itself, count it); when it is blocked between requests with an empty mailbox and no
    callback in progress, nothing can tell the two apart, and the caller saves the round
    trip (two scheduler passes, several times the spawn itself). Raises
    :class:`MaxChildren` when full, as the supervisor would.
    """
    start = spec.start
    if type(start) is not Bound or start.fn is not spawn_linked or start.keywords:
        return None
    if spec.significant or not beam.lowlevel.in_node():
        return None
    pid = beam.whereis(sup) if isinstance(sup, str) else sup
    if pid is None or pid.node is not None:
        return None
    table = _states.get(beam.current_node())
    state = None if table is None else table.get(pid)
    if state is None or state.busy or not beam.lowlevel.idle_in_receive(pid):
        return None
    limit = state.args.max_children
    if limit is not None and len(state.children) + len(state.restarting) >= limit:
        raise MaxChildren(supervisor_label(pid), limit)
    child = beam.lowlevel.spawn_linked_to(
        pid, start.args[0], *start.args[1:], *state.args.extra_arguments, *spec.args
    )
    state.children[child] = spec
    state.fresh = True
    report("started", "ok", spec, child, level=logging.INFO, supervisor=pid)
    return child


def _how(spec: ChildSpec) -> Shutdown:
    return spec.shutdown if spec.shutdown is not None else "infinity"


class DynamicSupervisor:
    """Start dynamic supervisors and children under them; functions take the supervisor's
    pid or registered name."""

    @staticmethod
    async def start_link(
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        extra_arguments: tuple[Any, ...] = (),
        name: str | None = None,
    ) -> beam.Pid:
        """Start an empty dynamic supervisor linked to the caller.

        *max_children* (default: no limit) bounds the children, counting those waiting to
        be restarted. *extra_arguments* are passed to every start function before the
        spec's own arguments. Restart intensity works as for :class:`Supervisor`.

        >>> pool = await DynamicSupervisor.start_link(max_children=100, name="pool")
        """
        _check(max_children, max_restarts, max_seconds, extra_arguments)
        args = _Args(max_children, max_restarts, float(max_seconds), extra_arguments)
        pid = await _DynamicServer.start_link(args, name=name, timeout=None)
        if pid is None:  # pragma: no cover - init never ignores
            raise beam.StartError("ignore")
        return pid

    @staticmethod
    def child_spec(
        *,
        id: Hashable = "DynamicSupervisor",  # noqa: A002 - OTP's field name
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        extra_arguments: tuple[Any, ...] = (),
        name: str | None = None,
        restart: Restart = "permanent",
        shutdown: Shutdown = "infinity",
    ) -> ChildSpec:
        """The spec of a dynamic supervisor as the child of another supervisor.

        >>> tree = [DynamicSupervisor.child_spec(id="pool", name="pool")]
        """
        _check(max_children, max_restarts, max_seconds, extra_arguments)
        start = bind(
            DynamicSupervisor.start_link,
            max_children=max_children,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            extra_arguments=extra_arguments,
            name=name,
        )
        return ChildSpec(id, start, (), restart, shutdown, "supervisor")

    @staticmethod
    async def start_child(sup: SupRef, child: ChildLike) -> beam.Pid | None:
        """Start *child* under *sup*; its pid, or ``None`` if its start ignored it.

        Raises :class:`MaxChildren` when full, :class:`beam.StartError` if it fails.

        >>> pid = await DynamicSupervisor.start_child(pool, child_spec(Session, "ann"))
        """
        spec = child if type(child) is ChildSpec else validate_child_specs([child])[0]
        pid = _start_inline(sup, spec)
        if pid is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            return pid
        result: beam.Pid | None = await call(sup, StartChild(spec))
        return result

    @staticmethod
    async def terminate_child(sup: SupRef, pid: beam.Pid) -> None:
        """Stop child *pid* per its shutdown and forget it. Raises :class:`ChildNotFound`.

        >>> await DynamicSupervisor.terminate_child(pool, pid)
        """
        await call(sup, TerminateChild(pid))

    @staticmethod
    async def which_children(sup: SupRef) -> list[ChildInfo]:
        """The children, oldest first (``pid`` is ``None`` while waiting to restart).

        >>> pids = [c.pid for c in await DynamicSupervisor.which_children(pool)]
        """
        result: list[ChildInfo] = await call(sup, WhichChildren())
        return result

    @staticmethod
    async def count_children(sup: SupRef) -> ChildCounts:
        """Counts of specs, running children, supervisors and workers.

        >>> (await DynamicSupervisor.count_children(pool)).active
        """
        result: ChildCounts = await call(sup, CountChildren())
        return result

    @staticmethod
    async def stop(sup: SupRef, reason: Any = beam.NORMAL) -> None:
        """Stop *sup* and, concurrently, all its children.

        >>> await DynamicSupervisor.stop(pool)
        """
        await beam.GenServer.stop(sup, reason, timeout=None)


def _check(max_children: object, max_restarts: object, max_seconds: object, extra: object) -> None:
    if max_children is not None and (
        not isinstance(max_children, int) or isinstance(max_children, bool) or max_children < 0
    ):
        raise InvalidSpec("DynamicSupervisor", "max_children", max_children, "None or an int >= 0")
    if not isinstance(extra, tuple):
        raise InvalidSpec("DynamicSupervisor", "extra_arguments", extra, "a tuple")
    check_flags("DynamicSupervisor", max_restarts, max_seconds)
