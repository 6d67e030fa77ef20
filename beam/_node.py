"""The node: one trio nursery holding every process, and the table that names them.

A :class:`Node` owns the process table (pid number -> :class:`Process`), the registered
names, the timer service and the root nursery. The node of the running code and the current
process are found through context variables, so the public functions in ``beam`` need no
handle; called outside a node they raise :class:`NotInNode` saying how to start one.

Exit propagation happens here: when a process ends, its name is released first, then its
links get exit signals and its monitors ``Down`` messages (OTP's order, so a restarted process
can take the same name at once).
"""

from __future__ import annotations

import copy
import gc
import itertools
import logging
import os
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import outcome
import trio
from trio.lowlevel import current_task, reschedule

from ._crash import log_crash
from ._errors import (
    AlreadyRegistered,
    NoProc,
    NotInNode,
    NotInProcess,
    ProcessExit,
    UnknownName,
)
from ._interrupt import cancel_task, struck_status
from ._process import NOT_EXITING, Died, Process, Reaped, process_var
from ._schedule import LongScheduleMonitor
from ._signals import exit_signal_effect
from ._timers import TimerService
from ._types import NOPROC, NORMAL, SHUTDOWN, Down, Exit, Pid, Ref, is_normal_exit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from ._dist import Distribution

__all__ = ["Node", "current_node", "current_process", "open_node", "run", "set_cluster_joiner"]

T = TypeVar("T")

logger = logging.getLogger("beam")

_node_var: ContextVar[Node] = ContextVar("beam.node")

#: The environment variables read when ``open_node``/``run`` get no ``name``/``cluster``.
NODE_ENV = "BEAM_NODE"
CLUSTER_ENV = "BEAM_CLUSTER"


class ClusterJoiner(Protocol):
    """Gives a starting node its name and, with a Redis URL, joins it to that cluster.

    Called by :func:`open_node` in the node's first process, before the body runs; returns
    what to await when the body ends (leave the cluster), or ``None``.
    """

    async def __call__(
        self, name: str, cluster: str | None
    ) -> Callable[[], Awaitable[None]] | None: ...


# The joiner beam.cluster installs when imported (the cluster code sits above this module).
_joiner: list[ClusterJoiner] = []


def set_cluster_joiner(joiner: ClusterJoiner) -> None:
    """Install what :func:`open_node` calls for its ``name=``/``cluster=`` options.

    beam.cluster installs its own on import; tests may install a fake.

    >>> set_cluster_joiner(my_joiner)
    """
    _joiner[:] = [joiner]


def _node_options(name: str | None, cluster: str | None) -> tuple[str | None, str | None]:
    """The node's name and cluster URL, from the arguments or else the environment, checked."""
    name_from = "name="
    if name is None:
        name, name_from = os.environ.get(NODE_ENV) or None, NODE_ENV
    cluster_from = "cluster="
    if cluster is None:
        cluster, cluster_from = os.environ.get(CLUSTER_ENV) or None, CLUSTER_ENV
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"a node name must be a non-empty str, got {name_from} {name!r}")
    if cluster:
        scheme, _, rest = str(cluster).partition("://")
        if not isinstance(cluster, str) or not rest or scheme not in ("redis", "rediss"):
            raise ValueError(
                f"the cluster URL {cluster!r} (from {cluster_from}) is not a Redis URL: use "
                "redis://[:password@]host:port/db, or rediss://... for TLS"
            )
        if name is None:
            raise ValueError(
                f"a node joining the cluster at {cluster!r} needs a name unique in the "
                f"cluster: pass name=... or set {NODE_ENV}"
            )
    return name, cluster or None


_NO_NODE = (
    "{what} must be called inside a running node: wrap your program in beam.run(main) "
    "or `async with beam.open_node():`"
)


def current_node(what: str = "beam.current_node") -> Node:
    """The node of the running code; :class:`NotInNode` (naming *what*) outside one.

    >>> async def main():
    ...     print(beam.current_node())
    """
    try:
        return _node_var.get()
    except LookupError:
        raise NotInNode(_NO_NODE.format(what=what)) from None


def current_process(what: str = "this function") -> Process:
    """The record of the calling process, or a clear error if the caller is not one."""
    try:
        return process_var.get()
    except LookupError:
        current_node(what)
        raise NotInProcess(
            f"{what} must be called from a beam process; start one with beam.spawn(fn) "
            "(the body of beam.run(main) and of `async with beam.open_node()` is one too)"
        ) from None


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    """Counters of a node: live ``processes``, ``spawned`` since start, ``crashes`` reported,
    ``registered_names``, ``pending_timers``, and ``long_schedules`` seen by the long-schedule
    monitor currently installed (0 if none)."""

    processes: int
    spawned: int
    crashes: int
    registered_names: int
    pending_timers: int
    long_schedules: int


class Node:
    """A running node. Get it from :func:`open_node`; most code never needs the object.

    The public functions of ``beam`` (``spawn``, ``send``, ``receive``...) act on the current
    node; this object adds the node-wide view: :meth:`statistics` and its options.

    >>> async def main():
    ...     print(beam.current_node().statistics().processes)
    """

    def __init__(self, *, copy_messages: bool = False) -> None:
        self._copy_messages = copy_messages
        self._send_hooks: list[Callable[[Pid, Any], None]] = []
        #: True when every send must take :meth:`send_to` (copying or hooks are on).
        self._slow_send = copy_messages
        self._procs: dict[int, Process] = {}
        self._names: dict[str, Pid] = {}
        self._pid_ids = itertools.count(1)
        self._ref_ids = itertools.count(1)
        self._timers = TimerService()
        self._nursery: trio.Nursery | None = None
        #: The cancelled status that processes struck by an exit signal unwind under, made at
        #: the first signal (see :mod:`._interrupt`).
        self._struck: Any = None
        #: Processes being torn down by :meth:`_reap`, while it runs.
        self._reaping: list[tuple[Process, Any]] | None = None
        self._closing = False
        self._spawned = 0
        self._crashes = 0
        self._long_schedule: LongScheduleMonitor | None = None
        self._registries: dict[str, Any] = {}
        self._pubsub: Any = None
        #: The remote half of links and monitors, once the node joined a cluster.
        self._dist: Distribution | None = None

    def __repr__(self) -> str:
        return f"<beam.Node processes={len(self._procs)}>"

    def statistics(self) -> NodeStatistics:
        """A snapshot of the node's counters (see :class:`NodeStatistics`)."""
        monitor = self._long_schedule
        return NodeStatistics(
            processes=len(self._procs),
            spawned=self._spawned,
            crashes=self._crashes,
            registered_names=len(self._names),
            pending_timers=len(self._timers),
            long_schedules=0 if monitor is None else monitor.count,
        )

    # -- identities -------------------------------------------------------------------------

    def _make_ref(self) -> Ref:
        """A reference unique within this node."""
        return Ref(next(self._ref_ids))

    def _lookup(self, dest: Pid | str) -> Process | None:
        """The live process behind a pid or registered name, else ``None``."""
        if type(dest) is Pid:
            return self._procs.get(local_id(dest, "this call"))
        if isinstance(dest, str):
            pid = self._names.get(dest)
            return None if pid is None else self._procs.get(pid.id)
        raise TypeError(
            f"expected a beam.Pid or a registered name (str), got {type(dest).__name__} {dest!r}"
        )

    # -- spawning ---------------------------------------------------------------------------

    def _spawn(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        *,
        parent: Process | None,
        link: bool = False,
        monitor: bool = False,
        initial_call: object = None,
    ) -> tuple[Pid, Ref | None]:
        """Create a process running ``fn(*args)``; link/monitor it to *parent* atomically.

        *initial_call* is what introspection reports as started (default: *fn*); behaviours
        pass their callback class, as OTP's proc_lib reports ``Module:init/1``.
        """
        if not callable(fn):
            raise TypeError(f"spawn expects an async function, got {fn!r}")
        if self._closing or self._nursery is None:
            raise RuntimeError("this node is shutting down; it cannot spawn new processes")
        pid = Pid(next(self._pid_ids))
        proc = Process(
            self,
            pid,
            None if parent is None else parent.pid,
            fn if initial_call is None else initial_call,
        )
        self._procs[pid.id] = proc
        ref = None
        if parent is not None:
            if link:
                _add_link(parent, pid)
                _add_link(proc, parent.pid)
            if monitor:
                ref = Ref(next(self._ref_ids))
                watch(parent, ref, proc)
        self._spawned += 1
        self._nursery.start_soon(self._main, proc, fn, args, name="beam.process")
        return pid, ref

    async def _main(
        self, proc: Process, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        process_var.set(proc)
        proc.task = current_task()
        reason: Any = NORMAL
        try:
            # No cancel scope per process (0.8 KB each): an exit signal makes one around what
            # the task awaits (see _kill); a process struck before it started never starts.
            if proc.pending_exit is NOT_EXITING:
                body = fn(*args)
                if not hasattr(body, "__await__"):
                    raise TypeError(
                        f"a process body must be an async function; {fn!r} returned "
                        f"{body!r:.100} (declare it with `async def`)"
                    )
                # The body holds what it needs; the spawn arguments need not live on in
                # this frame for the whole life of the process.
                del fn, args
                await body
        except Reaped:
            return  # torn down already, by the exit signal (see _kill)
        except ProcessExit as exc:
            reason = exc.reason
            if proc.pending_exit is NOT_EXITING and not exc.reported and not is_normal_exit(reason):
                self._report(proc, reason)
        except Exception as exc:
            reason = exc
            if proc.pending_exit is NOT_EXITING:
                self._report(proc, exc)
        except BaseException as exc:
            if proc.pending_exit is NOT_EXITING or not _struck(exc):
                # The node is closing (its nursery was cancelled) or the program is interrupted.
                self._exited(
                    proc, SHUTDOWN if proc.pending_exit is NOT_EXITING else proc.pending_exit
                )
                raise
        if proc.pending_exit is not NOT_EXITING:
            reason = proc.pending_exit
        self._exited(proc, reason)
        # The task holds the process (process_var in its context): without this the two
        # are a reference cycle that only the cyclic GC frees (one per request served).
        proc.task = None

    def _report(self, proc: Process, reason: Any) -> None:
        self._crashes += 1
        log_crash(proc.pid, proc.name, proc.initial_call, reason)

    # -- exiting ----------------------------------------------------------------------------

    def _kill(self, proc: Process, reason: Any) -> None:
        """Make *proc* exit with *reason* at its next checkpoint (first reason wins)."""
        if proc.pending_exit is NOT_EXITING:
            proc.pending_exit = reason
            if proc.scope is not None:  # the host process (open_node's own task) has one
                proc.scope.cancel()
                return
            task = proc.task
            if task is None or self._nursery is None:
                return  # not started yet: _main checks before running the body
            if proc.idle_in_loop and proc.waiter is task:
                # Parked in its behaviour's loop: nothing of its own would run while it
                # unwinds, so it is torn down now (names, links, monitors: its supervisor
                # hears of it without waiting for the task) and the task only finishes.
                proc.waiter = None
                proc.idle_in_loop = False
                reschedule(task, outcome.Error(Reaped()))
                self._reap(proc, reason)
                return
            struck = self._struck
            if struck is None:
                struck = self._struck = struck_status("exit signal")
            cancel_task(task, self._nursery._cancel_status, struck)

    def _reap(self, proc: Process, reason: Any) -> None:
        """Tear *proc* down now; iteratively, as tearing one down may strike others."""
        pending = self._reaping
        if pending is not None:  # inside another teardown: the outermost call does it
            pending.append((proc, reason))
            return
        self._reaping = pending = [(proc, reason)]
        try:
            index = 0
            while index < len(pending):
                self._exited(*pending[index])
                index += 1
        finally:
            self._reaping = None

    def _exit_signal(self, target: Process, sender: Pid, reason: Any, *, linked: bool) -> None:
        """Deliver one exit signal to *target*, applying the rules of :mod:`._signals`."""
        if linked and target.trap_exit:  # the usual case (a supervisor hearing of a child)
            self._send_to(target, Exit(sender, reason))
            return
        effect = exit_signal_effect(
            reason, linked=linked, trapping=target.trap_exit, from_self=sender == target.pid
        )
        if effect.action == "trap":
            self._send_to(target, Exit(sender, reason))
        elif effect.action == "die":
            self._kill(target, effect.reason)

    def _exited(self, proc: Process, reason: Any) -> None:
        """Tear down a process that has finished: names first, then links and monitors."""
        pid = proc.pid
        procs = self._procs
        if procs.pop(pid.id, None) is None:
            return
        if proc.pending_exit is NOT_EXITING:
            proc.pending_exit = reason
        if proc.name is not None:
            self._names.pop(proc.name, None)
        if proc.cleanups:
            for cleanup in proc.cleanups:
                try:
                    cleanup(pid)
                except Exception:  # a broken hook must not stop the teardown
                    logger.exception("exit hook %r of %s failed", cleanup, pid)
        monitor = self._long_schedule
        if monitor is not None and monitor.receiver == pid:  # as erlang:system_monitor
            trio.lowlevel.remove_instrument(monitor)
            self._long_schedule = None
        if proc.timers:
            pending = self._timers
            for ref_id in proc.timers:
                pending.discard(Ref(ref_id))
        if self._closing:
            return
        dist = self._dist
        if proc.monitors:
            for ref_id, target_pid in proc.monitors.items():
                if target_pid.node is not None:
                    if dist is not None:
                        dist.monitor_ended(ref_id, target_pid)
                    continue
                target = procs.get(target_pid.id)
                if target is not None and target.monitored_by:
                    target.monitored_by.pop(ref_id, None)
        if proc.links:
            for other_pid in proc.links:
                if other_pid.node is not None:
                    if dist is not None:
                        dist.link_exited(pid, other_pid, reason)
                    continue
                other = procs.get(other_pid.id)
                if other is not None and other.links:
                    other.links.discard(pid)
                    self._exit_signal(other, pid, reason, linked=True)
        if proc.monitored_by:
            for ref_id, watcher_pid in proc.monitored_by.items():
                watcher = procs.get(watcher_pid.id)
                if watcher is None:
                    continue
                if watcher.monitors:
                    watcher.monitors.pop(ref_id, None)
                ref = Ref(ref_id)
                # A monitor whose ref tags an open reply slot (a call, a task) reports there.
                if not watcher.deliver_reply(ref, Died(reason)):
                    self._send_to(watcher, Down(ref, pid, reason))
        if dist is not None and pid.id in dist._watched:
            dist.watched_exited(pid, reason)

    # -- messages ---------------------------------------------------------------------------

    def _send_to(self, proc: Process, message: Any) -> None:
        """Deliver *message* to a live process (copying it first in copy_messages mode)."""
        if self._copy_messages:
            message = copy.deepcopy(message)
        proc.deliver(message)
        for hook in self._send_hooks:
            hook(proc.pid, message)

    def _add_send_hook(self, hook: Callable[[Pid, Any], None]) -> Callable[[], None]:
        """Call ``hook(pid, message)`` after every delivery to *pid*; returns a remover.

        For tools that watch traffic (fault injection "with probability p per message",
        tracing). Hooks run in the sender's context and must not raise or block.
        """
        self._send_hooks.append(hook)
        self._slow_send = True

        def remove() -> None:
            if hook in self._send_hooks:
                self._send_hooks.remove(hook)
            self._slow_send = self._copy_messages or bool(self._send_hooks)

        return remove

    def _deliver_timer(self, ref: Ref, payload: tuple[Pid | str, Any]) -> None:
        """Timer action of :func:`beam.send_after`: send the message if *dest* lives."""
        dest, message = payload
        proc = self._lookup(dest)
        if proc is not None:
            if proc.timers:
                proc.timers.discard(ref.id)
            self._send_to(proc, message)

    # -- names ------------------------------------------------------------------------------

    def _register(self, name: str, pid: Pid) -> None:
        """Register *name* for the live process *pid*; see :func:`beam.register`."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered name must be a non-empty str, got {name!r}")
        holder = self._names.get(name)
        if holder is not None and holder.id in self._procs:
            raise AlreadyRegistered(
                f"the name {name!r} is already registered to {holder}; unregister it first "
                "or pick another name",
                holder,
            )
        proc = self._procs.get(local_id(pid, "beam.register"))
        if proc is None:
            raise NoProc(NOPROC) from ValueError(f"cannot register {name!r}: {pid} is not alive")
        if proc.name is not None:
            raise ValueError(
                f"{pid} is already registered as {proc.name!r}; a process has at most one "
                "name (unregister the old one first)"
            )
        self._names[name] = pid
        proc.name = name

    def _unregister(self, name: str) -> bool:
        """Remove *name*; false if nobody held it."""
        pid = self._names.pop(name, None)
        if pid is None:
            return False
        proc = self._procs.get(pid.id)
        if proc is not None:
            proc.name = None
        return True

    def _whereis(self, name: str) -> Pid | None:
        """The pid registered as *name*, or ``None``."""
        pid = self._names.get(name)
        return pid if pid is not None and pid.id in self._procs else None


def local_id(pid: Pid, what: str) -> int:
    """*pid*'s number on this node; a pid of another node is refused with a clear error (its
    number would name some local process)."""
    if pid.node is not None:
        raise ValueError(
            f"{what} got {pid}, a process on node {pid.node.name!r}: it works on processes "
            "of this node only, as in Erlang (send, link, monitor, exit and call reach other "
            "nodes; to ask about a remote process, call a server on its node)"
        )
    return pid.id


def _add_link(proc: Process, other: Pid) -> None:
    if proc.links is None:
        proc.links = set()
    proc.links.add(other)


def watch(watcher: Process, ref: Ref, target: Process) -> None:
    """Make *watcher* monitor *target* under *ref* (the bookkeeping of :func:`beam.monitor`)."""
    if watcher.monitors is None:
        watcher.monitors = {}
    watcher.monitors[ref.id] = target.pid
    if target.monitored_by is None:
        target.monitored_by = {}
    target.monitored_by[ref.id] = watcher.pid


def unwatch(node: Node, watcher: Process, ref: Ref) -> bool:
    """Remove the monitor *ref* of *watcher*, both sides; false if it was not active."""
    if not watcher.monitors:
        return False
    target_pid = watcher.monitors.get(ref.id)
    if target_pid is None:
        return False
    if target_pid.node is not None:
        if node._dist is None:
            del watcher.monitors[ref.id]
            return False
        return node._dist.demonitor(watcher, ref)
    del watcher.monitors[ref.id]
    target = node._procs.get(target_pid.id)
    if target is not None and target.monitored_by:
        target.monitored_by.pop(ref.id, None)
    return True


def resolve_exit_target(node: Node, dest: Pid | str) -> Process | None:
    """The process for *dest*, raising :class:`UnknownName` for an unregistered name."""
    proc = node._lookup(dest)
    if proc is None and isinstance(dest, str):
        raise UnknownName(f"no process is registered as {dest!r}")
    return proc


@asynccontextmanager
async def open_node(
    *,
    copy_messages: bool = False,
    long_schedule: float | None = None,
    tune_gc: bool = False,
    initial_call: object = None,
    name: str | None = None,
    cluster: str | None = None,
) -> AsyncIterator[Node]:
    """Run a node inside an existing trio program, for as long as the ``async with`` lasts.

    The body of the ``async with`` runs as a process of the node (it can ``receive``, link
    and monitor). When the body ends, every remaining process is cancelled and exits with
    ``"shutdown"``. If the body's process is killed by an exit signal (a linked process
    crashed), the ``async with`` raises :class:`ProcessExit` with that reason.

    Options:
      copy_messages: deep-copy every message on send, so tests catch processes sharing
        mutable state through messages (slower; for debugging).
      long_schedule: log a warning (pid, duration, stack) whenever one step of a task holds
        the loop longer than this many seconds, as ``erlang:system_monitor`` does.
      tune_gc: after start-up, freeze the objects alive so far and raise the young-generation
        threshold (cyclic GC is over half the cost of spawning at 10^5 processes); restored
        on exit.
      initial_call: what ``process_info`` reports as the body's initial call.
      name: the node's name (``beam.node()``); default: the ``BEAM_NODE`` environment
        variable, else ``"nonode@nohost"``.
      cluster: a Redis URL (``redis://[:password@]host:port/db``, ``rediss://`` for TLS) to
        join that cluster as *name* before the body runs, as
        :func:`beam.cluster.start_pubsub` does (leaving it when the body ends); default: the
        ``BEAM_CLUSTER`` environment variable, else none: the node runs alone and needs no
        Redis. A name taken by a live node of the cluster raises
        :class:`beam.cluster.NodeNameTaken`.

    Example::

        async with beam.open_node():
            pid = beam.spawn(worker)
            beam.send(pid, "hello")

        async with beam.open_node(name="chat1", cluster="redis://127.0.0.1:6379/0"):
            beam.broadcast("room:lobby", "hello, every node")
    """
    name, cluster = _node_options(name, cluster)
    node = Node(copy_messages=copy_messages)
    token = _node_var.set(node)
    old_gc = gc.get_threshold()
    if tune_gc:
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
    if long_schedule is not None:
        node._long_schedule = LongScheduleMonitor(node, long_schedule)
        trio.lowlevel.add_instrument(node._long_schedule)
    # The body's exception is kept and raised after the nursery has closed, so callers see
    # the exception itself rather than trio's ExceptionGroup around it.
    failure: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            nursery.start_soon(node._timers.run, name="beam.timers")
            host = _adopt_current_task(node, initial_call)
            host_token = process_var.set(host)
            reason: Any = NORMAL
            leave: Callable[[], Awaitable[None]] | None = None
            try:
                assert host.scope is not None
                with host.scope:
                    try:
                        if name is not None:
                            if not _joiner:
                                raise RuntimeError("import beam.cluster to name a node")
                            leave = await _joiner[0](name, cluster)
                        yield node
                    except ProcessExit as exc:
                        reason = exc.reason
                        failure = exc
                    except BaseException as exc:
                        reason = exc if isinstance(exc, Exception) else SHUTDOWN
                        failure = exc
            finally:
                if leave is not None:
                    with trio.CancelScope(shield=True), trio.move_on_after(_LEAVE_WITHIN):
                        await leave()
                killed = host.pending_exit
                if killed is not NOT_EXITING:
                    reason = killed
                    failure = ProcessExit(killed)
                node._exited(host, reason)
                process_var.reset(host_token)
                node._closing = True
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
    finally:
        _node_var.reset(token)
        if node._long_schedule is not None:
            trio.lowlevel.remove_instrument(node._long_schedule)
        if tune_gc:
            gc.set_threshold(*old_gc)
            gc.unfreeze()


#: How long a node leaving its cluster may take at the end of open_node (seconds).
_LEAVE_WITHIN = 2.0


def _struck(exc: BaseException) -> bool:
    """Whether *exc* is how an exit signal ends a process: ``Cancelled``, alone or grouped by
    nurseries with errors."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(isinstance(e, (trio.Cancelled, Exception)) for e in _leaves(exc))
    return False


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _adopt_current_task(node: Node, initial_call: object) -> Process:
    pid = Pid(next(node._pid_ids))
    proc = Process(node, pid, None, open_node if initial_call is None else initial_call)
    proc.task = current_task()
    # The host keeps a cancel scope: its task is the caller's, whose awaits are not ours.
    proc.scope = trio.CancelScope()
    node._procs[pid.id] = proc
    return proc


def run(
    main: Callable[..., Awaitable[T]],
    *args: Any,
    copy_messages: bool = False,
    long_schedule: float | None = None,
    tune_gc: bool = True,
    clock: trio.abc.Clock | None = None,
    name: str | None = None,
    cluster: str | None = None,
) -> T:
    """Start a node, run ``await main(*args)`` as its first process, and return its result.

    When ``main`` returns, the node stops: every process still running is cancelled. An
    exception from ``main`` propagates out of ``run``. Options are those of
    :func:`open_node`; GC tuning is on by default here because ``run`` owns the program.

    >>> import beam
    >>> async def main():
    ...     return "hello from " + str(beam.self())
    >>> beam.run(main)
    'hello from <0.1.0>'
    >>> beam.run(main, name="chat1", cluster="redis://127.0.0.1:6379/0")  # doctest: +SKIP
    """
    _node_options(name, cluster)  # refuse bad options before trio starts

    async def _root() -> T:
        async with open_node(
            copy_messages=copy_messages,
            long_schedule=long_schedule,
            tune_gc=tune_gc,
            initial_call=main,
            name=name,
            cluster=cluster,
        ):
            return await main(*args)

    return trio.run(_root, clock=clock)
