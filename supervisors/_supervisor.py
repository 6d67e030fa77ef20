"""Supervisor: a process that starts children, watches them, and restarts them as told.

It is a ``beam.GenServer`` that traps exits (OTP's ``supervisor`` is a ``gen_server``
too). Children start in list order, each start returning before the next begins; they stop
in reverse order. When a child exits, its restart type and the strategy decide what
happens; restarts count against the intensity window, and a supervisor that exceeds it
stops all its children and exits with ``"shutdown"``, so its own supervisor sees the
failure (escalation)::

    sup = await Supervisor.start_link(
        [child_spec(Repo, "db.sqlite", name="repo"), child_spec(Cache, name="cache")],
        strategy="rest_for_one",              # a Repo crash restarts the Cache too
        max_restarts=3, max_seconds=5,        # Elixir's defaults; Erlang's are 1 in 5
        name="data",
    )
    print(await Supervisor.which_children("data"))

Strategies: ``"one_for_one"`` restarts the dead child only; ``"one_for_all"`` stops the
others (reverse order) and starts them all again; ``"rest_for_one"`` does that for the
children started after the dead one. Temporary children are never restarted, not even when
the strategy stops them.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

import beam

from ._common import (
    ChildCounts,
    ChildInfo,
    CountChildren,
    DeleteChild,
    Failed,
    GetChildSpec,
    RestartChild,
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
    stop_one,
)
from ._errors import AlreadyPresent, AlreadyStarted, ChildNotFound, ChildRunning, InvalidSpec
from ._report import report, supervisor_label
from ._spec import ChildLike, ChildSpec, Shutdown, bind, validate_child_specs
from ._strategy import (
    AUTO_SHUTDOWNS,
    STRATEGIES,
    AutoShutdown,
    ChildView,
    Restart,
    RestartWindow,
    Strategy,
    auto_shutdown_due,
    exit_action,
    plan_restart,
)

__all__ = ["Supervisor"]


# -- the server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Args:
    specs: tuple[ChildSpec, ...]
    strategy: Strategy
    max_restarts: int
    max_seconds: float
    auto_shutdown: AutoShutdown = "never"


class _Child:
    __slots__ = ("pid", "restarting", "restarts", "spec")

    def __init__(self, spec: ChildSpec, pid: beam.Pid | None) -> None:
        self.spec = spec
        self.pid = pid
        self.restarting = False
        self.restarts = 0


class _State:
    """The supervisor's children in start order, indexed by id and pid (process-local)."""

    __slots__ = ("auto_shutdown", "by_id", "by_pid", "children", "intensity", "strategy")

    def __init__(
        self, strategy: Strategy, intensity: RestartWindow, auto_shutdown: AutoShutdown
    ) -> None:
        self.strategy = strategy
        self.intensity = intensity
        self.auto_shutdown = auto_shutdown
        self.children: list[_Child] = []
        self.by_id: dict[Hashable, _Child] = {}
        self.by_pid: dict[beam.Pid, _Child] = {}

    def add(self, spec: ChildSpec, pid: beam.Pid | None) -> None:
        child = _Child(spec, pid)
        self.children.append(child)
        self.by_id[spec.id] = child
        if pid is not None:
            self.by_pid[pid] = child

    def remove(self, child: _Child) -> None:
        self.children.remove(child)
        del self.by_id[child.spec.id]
        if child.pid is not None:
            self.by_pid.pop(child.pid, None)

    def set_pid(self, child: _Child, pid: beam.Pid | None) -> None:
        if child.pid is not None:
            self.by_pid.pop(child.pid, None)
        child.pid = pid
        child.restarting = False
        if pid is not None:
            self.by_pid[pid] = child

    def views(self) -> list[ChildView]:
        return [ChildView(c.spec.id, c.spec.restart, c.pid is not None) for c in self.children]


class _SupervisorServer(beam.GenServer[_State]):
    async def init(self, args: _Args) -> beam.Ok[_State] | beam.Stop[_State]:
        beam.trap_exit(True)
        state = _State(
            args.strategy,
            RestartWindow(args.max_restarts, args.max_seconds),
            args.auto_shutdown,
        )
        for spec in args.specs:
            try:
                pid = await start_one(spec)
            except StartFailed as failed:
                await self.terminate(beam.SHUTDOWN, state)
                return beam.Stop((beam.SHUTDOWN, ("failed_to_start_child", spec.id, failed.reason)))
            if pid is not None or spec.restart != "temporary":
                state.add(spec, pid)
        return beam.Ok(state)

    async def terminate(self, reason: Any, state: _State) -> None:
        for child in reversed(state.children):
            child.restarting = False
            if child.pid is not None:
                pid = child.pid
                state.set_pid(child, None)
                await stop_one(child.spec, pid)

    # -- calls ------------------------------------------------------------------------------

    async def handle_call(
        self, request: Any, from_: beam.From, state: _State
    ) -> beam.Reply[_State]:
        try:
            result = await self._answer(request, state)
        except (ChildNotFound, ChildRunning, AlreadyStarted, AlreadyPresent, InvalidSpec) as exc:
            result = Failed(exc)
        except StartFailed as exc:
            result = Failed(beam.StartError(exc.reason))
        return beam.Reply(result, state)

    async def _answer(self, request: Any, state: _State) -> Any:
        kind = type(request)
        if kind is WhichChildren:
            return [
                ChildInfo(c.spec.id, c.pid, c.spec.type, c.spec.restart, c.restarts)
                for c in state.children
            ]
        if kind is CountChildren:
            return count_children((c.spec, c.pid is not None) for c in state.children)
        if kind is StartChild:
            return await self._start_child(request.spec, state)
        if kind not in (TerminateChild, GetChildSpec, DeleteChild, RestartChild):
            return Failed(TypeError(f"supervisor got an unknown request {request!r:.100}"))
        child = state.by_id.get(request.child)
        if child is None:
            raise ChildNotFound(supervisor_label(), request.child)
        if kind is TerminateChild:
            child.restarting = False
            if child.pid is not None:
                pid = child.pid
                state.set_pid(child, None)
                await stop_one(child.spec, pid)
            if child.spec.restart == "temporary":
                state.remove(child)
            return None
        if kind is GetChildSpec:
            return child.spec
        if child.pid is not None:
            raise ChildRunning(supervisor_label(), child.spec.id, child.pid)
        if kind is DeleteChild:
            state.remove(child)
            return None
        new_pid = await start_one(child.spec)  # RestartChild
        state.set_pid(child, new_pid)
        return new_pid

    async def _start_child(self, spec: ChildSpec, state: _State) -> beam.Pid | None:
        if spec.significant and state.auto_shutdown == "never":
            raise InvalidSpec(
                f"Supervisor {supervisor_label()}",
                "significant",
                True,
                "False under auto_shutdown='never' (start the supervisor with "
                "auto_shutdown='any_significant' or 'all_significant')",
            )
        existing = state.by_id.get(spec.id)
        if existing is not None:
            if existing.pid is not None:
                raise AlreadyStarted(supervisor_label(), spec.id, existing.pid)
            raise AlreadyPresent(supervisor_label(), spec.id)
        pid = await start_one(spec)
        if pid is not None or spec.restart != "temporary":
            state.add(spec, pid)
        return pid

    # -- exits and restarts -----------------------------------------------------------------

    async def handle_info(
        self, message: Any, state: _State
    ) -> beam.NoReply[_State] | beam.Stop[_State]:
        if type(message) is beam.Exit:
            child = state.by_pid.get(message.pid)
            if child is None:  # a stale signal, or from a process that is not a child
                return beam.NoReply(state)
            return await self._child_exited(child, message.reason, state)
        if type(message) is TryAgain:
            child = state.by_id.get(message.key)
            if child is None or child.pid is not None or not child.restarting:
                return beam.NoReply(state)
            return await self._restart(child, None, state)
        return await super().handle_info(message, state)

    async def _child_exited(
        self, child: _Child, reason: Any, state: _State
    ) -> beam.NoReply[_State] | beam.Stop[_State]:
        pid = child.pid
        state.set_pid(child, None)
        clean = beam.is_normal_exit(reason)
        if not clean:
            report("child_terminated", reason, child.spec, pid)
        elif child.spec.restart == "permanent":
            report("child_terminated", reason, child.spec, pid, level=logging.WARNING)
        action = exit_action(child.spec.restart, clean=clean)
        if action == "restart":
            return await self._restart(child, pid, state)
        if action == "remove":
            state.remove(child)
        if child.spec.significant and auto_shutdown_due(
            state.auto_shutdown,
            significant_left=sum(
                1 for c in state.children if c.spec.significant and c.pid is not None
            ),
        ):
            return beam.Stop(beam.SHUTDOWN, state)
        return beam.NoReply(state)

    async def _restart(
        self, child: _Child, old_pid: beam.Pid | None, state: _State
    ) -> beam.NoReply[_State] | beam.Stop[_State]:
        if state.intensity.add(trio.current_time()):
            report("shutdown", "reached_max_restart_intensity", child.spec, old_pid)
            return beam.Stop(beam.SHUTDOWN, state)
        if state.strategy == "one_for_one":  # the common case, without building a plan
            try:
                new_pid = await start_one(child.spec, old_pid=old_pid)
            except StartFailed:
                child.restarting = True
                beam.send(beam.self(), TryAgain(child.spec.id))
                return beam.NoReply(state)
            state.set_pid(child, new_pid)
            child.restarts += 1
            return beam.NoReply(state)
        plan = plan_restart(state.strategy, state.views(), child.spec.id)
        for key in plan.terminate:
            sibling = state.by_id[key]
            if sibling.pid is not None:
                pid = sibling.pid
                state.set_pid(sibling, None)
                await stop_one(sibling.spec, pid)
        for key in plan.remove:
            state.remove(state.by_id[key])
        for key in plan.restart:
            target = state.by_id[key]
            if target.pid is not None:
                continue
            try:
                new_pid = await start_one(target.spec, old_pid=old_pid if target is child else None)
            except StartFailed:
                target.restarting = True
                beam.send(beam.self(), TryAgain(key))
                break
            state.set_pid(target, new_pid)
            target.restarts += 1
        return beam.NoReply(state)


# -- the public face ----------------------------------------------------------------------


class Supervisor:
    """Start supervisors and manage their children; every function takes the supervisor's
    pid or registered name. Operations wait as long as needed (OTP's ``infinity``)."""

    @staticmethod
    async def start_link(
        children: Sequence[ChildLike],
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        auto_shutdown: AutoShutdown = "never",
    ) -> beam.Pid:
        """Start a supervisor linked to the caller, and its children in order.

        Returns once every child has started. If one fails to start, those already started
        are stopped in reverse order and this raises :class:`beam.StartError` with reason
        ``("shutdown", ("failed_to_start_child", id, reason))``. More than *max_restarts*
        restarts within *max_seconds* make the supervisor stop its children and exit with
        ``"shutdown"``. The defaults are Elixir's (3 in 5 s); Erlang's are 1 in 5 s.

        *auto_shutdown* (OTP's flag): with ``"any_significant"`` the supervisor stops its
        children and exits ``"shutdown"`` when a ``significant`` child exits on its own and
        is not restarted; with ``"all_significant"`` once every significant child has;
        ``"never"`` (the default) allows no significant child.

        ``strategy="simple_one_for_one"`` is refused: use :class:`DynamicSupervisor`.

        >>> sup = await Supervisor.start_link([child_spec(Counter, 0)], name="counters")
        """
        specs = validate_child_specs(children)
        _check_options(specs, strategy, max_restarts, max_seconds, auto_shutdown)
        args = _Args(specs, strategy, max_restarts, float(max_seconds), auto_shutdown)
        pid = await _SupervisorServer.start_link(args, name=name, timeout=None)
        if pid is None:  # pragma: no cover - init never ignores
            raise beam.StartError("ignore")
        return pid

    @staticmethod
    def child_spec(
        children: Sequence[ChildLike],
        *,
        id: Hashable = "Supervisor",  # noqa: A002 - OTP's field name
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        restart: Restart = "permanent",
        shutdown: Shutdown = "infinity",
        auto_shutdown: AutoShutdown = "never",
        significant: bool = False,
    ) -> ChildSpec:
        """The spec of a supervisor as the child of another (type ``"supervisor"``).

        The child list is checked now, not when the parent starts it.

        >>> tree = [Supervisor.child_spec([child_spec(Repo)], id="data"), child_spec(Web)]
        """
        specs = validate_child_specs(children)
        _check_options(specs, strategy, max_restarts, max_seconds, auto_shutdown)
        start = bind(
            Supervisor.start_link,
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            name=name,
            auto_shutdown=auto_shutdown,
        )
        return ChildSpec(id, start, (specs,), restart, shutdown, "supervisor", significant)

    @staticmethod
    async def which_children(sup: SupRef) -> list[ChildInfo]:
        """The children, in start order, with their pids (``None`` when not running).

        Works on a DynamicSupervisor too. (OTP lists them newest first.)

        >>> for child in await Supervisor.which_children(sup):
        ...     print(child.id, child.pid)
        """
        result: list[ChildInfo] = await call(sup, WhichChildren())
        return result

    @staticmethod
    async def count_children(sup: SupRef) -> ChildCounts:
        """How many child specs, running children, supervisors and workers *sup* has.

        >>> (await Supervisor.count_children(sup)).active
        3
        """
        result: ChildCounts = await call(sup, CountChildren())
        return result

    @staticmethod
    async def terminate_child(sup: SupRef, child_id: Hashable) -> None:
        """Stop child *child_id* per its shutdown; its spec stays (unless temporary) for
        :meth:`restart_child`. Raises :class:`ChildNotFound`.

        >>> await Supervisor.terminate_child(sup, "cache")
        """
        await call(sup, TerminateChild(child_id))

    @staticmethod
    async def restart_child(sup: SupRef, child_id: Hashable) -> beam.Pid | None:
        """Start the stopped child *child_id* again; its new pid (``None`` if ignored).

        Raises :class:`ChildNotFound`, :class:`ChildRunning`, or :class:`beam.StartError`.

        >>> pid = await Supervisor.restart_child(sup, "cache")
        """
        result: beam.Pid | None = await call(sup, RestartChild(child_id))
        return result

    @staticmethod
    async def delete_child(sup: SupRef, child_id: Hashable) -> None:
        """Forget the stopped child *child_id*. Raises ChildNotFound or ChildRunning.

        >>> await Supervisor.delete_child(sup, "cache")
        """
        await call(sup, DeleteChild(child_id))

    @staticmethod
    async def start_child(sup: SupRef, child: ChildLike) -> beam.Pid | None:
        """Add *child* at the end of *sup*'s children and start it; its pid.

        Raises :class:`AlreadyStarted`/:class:`AlreadyPresent` for a known id, or
        :class:`beam.StartError` (the spec is then not kept).

        >>> pid = await Supervisor.start_child(sup, child_spec(Cache, id="cache2"))
        """
        [spec] = validate_child_specs([child])
        result: beam.Pid | None = await call(sup, StartChild(spec))
        return result

    @staticmethod
    async def get_childspec(sup: SupRef, child_id: Hashable) -> ChildSpec:
        """The spec of child *child_id*. Raises :class:`ChildNotFound`.

        >>> (await Supervisor.get_childspec(sup, "cache")).restart
        'permanent'
        """
        result: ChildSpec = await call(sup, GetChildSpec(child_id))
        return result

    @staticmethod
    async def stop(sup: SupRef, reason: Any = beam.NORMAL) -> None:
        """Stop *sup*: its children stop in reverse order, then it exits with *reason*.

        >>> await Supervisor.stop(sup)
        """
        await beam.GenServer.stop(sup, reason, timeout=None)


def _check_options(
    specs: tuple[ChildSpec, ...],
    strategy: object,
    max_restarts: object,
    max_seconds: object,
    auto_shutdown: object,
) -> None:
    if strategy == "simple_one_for_one":
        raise InvalidSpec(
            "Supervisor",
            "strategy",
            strategy,
            "'one_for_one', 'one_for_all' or 'rest_for_one'; for children of one spec "
            "started at run time (OTP's simple_one_for_one) use supervisors."
            "DynamicSupervisor, as Elixir does",
        )
    if strategy not in STRATEGIES:
        raise InvalidSpec(
            "Supervisor", "strategy", strategy, "'one_for_one', 'one_for_all' or 'rest_for_one'"
        )
    check_flags("Supervisor", max_restarts, max_seconds)
    if auto_shutdown not in AUTO_SHUTDOWNS:
        raise InvalidSpec(
            "Supervisor",
            "auto_shutdown",
            auto_shutdown,
            "'never', 'any_significant' or 'all_significant'",
        )
    if auto_shutdown == "never":
        for spec in specs:
            if spec.significant:
                raise InvalidSpec(
                    "Supervisor",
                    f"child {beam.bounded_repr(spec.id)} significant",
                    True,
                    "False under auto_shutdown='never' (or start the supervisor with "
                    "auto_shutdown='any_significant' or 'all_significant')",
                )
