"""Fault injection: crash or kill processes on purpose, seeded and logged, for tests.

A :class:`FaultInjector` draws every choice from random streams derived from one seed and
records every injection (time, target, reason) in ``injector.log`` and on the
``"supervisors.chaos"`` logger, so a failing run replays from its seed::

    chaos = FaultInjector(seed=1234)
    chaos.crash(beam.whereis("counter"))                  # one crash, now
    pid = await chaos.random_target(Subtree("shop"))      # a random worker of the tree
    cancel = chaos.every(0.1, Subtree("shop"))            # a crash every 100 ms
    chaos.per_message(0.01, "counter")                    # 1% chance per message received
    ...
    chaos.stop()                                          # (or cancel() just that one)

An injected crash is an exit signal whose reason is an :class:`InjectedCrash` exception,
so everything that watches the target sees what a real crash shows: links get
``Exit(pid, InjectedCrash(...))``, monitors ``Down``, a supervisor logs
``child_terminated`` and restarts it, and a process waiting in ``beam.call`` to the target
raises ``ProcessExit((InjectedCrash(...), ...))`` exactly as for any crash. A process that
traps exits receives the signal as a message, as in Erlang; use ``kill`` for those.

Determinism: each schedule and each ``per_message`` hook draws from its own random stream
(derived from the seed and the order they were created in), and one scheduler process
fires all ``every`` schedules in order of due time, then creation, so their choices do not
depend on how trio orders tasks. Under ``trio.testing.MockClock`` a run therefore replays
exactly, as long as the program under test is deterministic itself: note that trio orders
tasks that wake at the *same* instant at random, so a test should not time its own
activity to coincide exactly with injection ticks. Under a real clock the streams of
choices are the same, but what each tick finds may differ.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import trio

import beam
from beam import lowlevel

from ._supervisor import Supervisor

__all__ = ["FaultInjector", "InjectedCrash", "Injection", "Subtree"]

logger = logging.getLogger("supervisors.chaos")

Action = Literal["crash", "kill"]


class InjectedCrash(Exception):
    """The exit reason of a process crashed by a :class:`FaultInjector`.

    It carries the injector's ``seed`` and the injection's ``seq`` number, so a crash seen
    in a log or a test failure points back to the run and the injection that caused it.

    >>> InjectedCrash(7, 3, beam.Pid(42))
    InjectedCrash(seed=7, seq=3, target=<0.42.0>)
    """

    def __init__(self, seed: int, seq: int, target: beam.Pid) -> None:
        super().__init__(seed, seq, target)  # the args rebuild it (copy_messages, pickle)
        self.seed = seed
        self.seq = seq
        self.target = target

    def __str__(self) -> str:
        return f"injected crash #{self.seq} into {self.target} (seed {self.seed})"

    def __repr__(self) -> str:
        return f"InjectedCrash(seed={self.seed}, seq={self.seq}, target={self.target})"


@dataclass(frozen=True, slots=True)
class Injection:
    """One injection, as recorded in ``FaultInjector.log``.

    ``time`` is ``trio.current_time()``; ``target`` names the process (its registered
    name, or its path of child ids in the tree, else its pid); ``reason`` is the repr of
    the exit reason; ``trigger`` is ``"direct"``, ``"every"`` or ``"per_message"``.

    >>> record = chaos.crash(beam.whereis("counter"))
    >>> record.seq, record.action, record.target
    (1, 'crash', 'counter')
    """

    seq: int
    time: float
    action: Action
    pid: beam.Pid
    target: str
    reason: str
    trigger: str


@dataclass(frozen=True, slots=True)
class Subtree:
    """A target: the processes of the supervision tree under *root* (pid or name), found
    with ``which_children`` (child supervisors are descended). Supervisors themselves are
    candidates only with *include_supervisors*.

    >>> chaos.every(0.05, Subtree("shop", include_supervisors=True), action="kill")
    """

    root: beam.Pid | str
    include_supervisors: bool = False


#: What a schedule aims at: a pid, a registered name, a :class:`Subtree`, or a predicate
#: on ``beam.ProcessInfo`` (any live process for which it returns true).
Target: TypeAlias = beam.Pid | str | Subtree | Callable[[beam.ProcessInfo], bool]


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


class _Schedule:
    """One ``every`` schedule: its own random stream and next due time."""

    __slots__ = ("action", "done", "due", "index", "interval", "limit", "random", "target")

    def __init__(
        self,
        index: int,
        interval: float,
        target: Target,
        action: Action,
        limit: int | None,
        seed: int,
    ) -> None:
        self.index = index
        self.interval = interval
        self.target = target
        self.action = action
        self.limit = limit
        self.random = random.Random(f"{seed}:every:{index}")
        self.due = 0.0
        self.done = 0


class FaultInjector:
    """Seeded, logged fault injection. See the module docs for the whole picture.

    *seed* fixes every random choice; ``log`` lists the :class:`Injection` records in
    order; ``random`` is the stream that direct calls (:meth:`random_target`) draw from.
    Schedules never pick the process that started them, nor the injector's scheduler.

    >>> chaos = FaultInjector(seed=42)
    >>> chaos.kill(beam.whereis("cache"))
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.random = random.Random(f"{seed}:direct")
        self.log: list[Injection] = []
        self._seq = 0
        self._streams = 0
        self._schedules: list[_Schedule] = []
        self._scheduler: beam.Pid | None = None
        self._removers: list[Callable[[], None]] = []
        self._protected: set[beam.Pid] = set()
        self._in_hook = False

    def __repr__(self) -> str:
        return f"<FaultInjector seed={self.seed} injections={len(self.log)}>"

    # -- single injections -----------------------------------------------------------------

    def crash(self, pid: beam.Pid, *, target: str | None = None) -> Injection:
        """Crash *pid* now: exit signal with reason :class:`InjectedCrash`.

        *target* is how the log names it (default: its registered name, else its pid).

        >>> chaos.crash(beam.whereis("counter"))
        """
        return self._inject("crash", pid, target, "direct")

    def kill(self, pid: beam.Pid, *, target: str | None = None) -> Injection:
        """Kill *pid* now (``"kill"``: untrappable; watchers see ``"killed"``).

        >>> chaos.kill(beam.whereis("counter"))
        """
        return self._inject("kill", pid, target, "direct")

    def _inject(self, action: Action, pid: beam.Pid, target: str | None, trigger: str) -> Injection:
        self._seq += 1
        reason: Any = beam.KILL if action == "kill" else InjectedCrash(self.seed, self._seq, pid)
        if target is None:
            info = beam.process_info(pid)
            target = info.registered_name if info and info.registered_name else str(pid)
        record = Injection(
            self._seq, trio.current_time(), action, pid, target, repr(reason), trigger
        )
        self.log.append(record)
        logger.warning(
            "chaos: %s %s (%s) at t=%.6f: %s [seed %d, #%d, %s]",
            action,
            target,
            pid,
            record.time,
            record.reason,
            self.seed,
            self._seq,
            trigger,
        )
        # Signalling ourselves raises ProcessExit at once; the process dies either way.
        with contextlib.suppress(beam.ProcessExit):
            beam.exit(pid, reason)
        return record

    # -- choosing targets ------------------------------------------------------------------

    async def tree(self, subtree: Subtree) -> list[tuple[str, beam.Pid]]:
        """The candidate processes of *subtree* as ``(path, pid)``, in tree order.

        ``path`` joins the child ids from the root, e.g. ``"shop/pool/worker"``; a
        supervisor's children are listed before those of its child supervisors.

        >>> [path for path, _ in await chaos.tree(Subtree("shop"))]
        """
        root = subtree.root
        found: list[tuple[str, beam.Pid]] = []
        level: list[tuple[str, beam.Pid | str]] = [(str(root), root)]
        while level:
            below: list[tuple[str, beam.Pid | str]] = []
            for path, sup in level:
                try:
                    children = await Supervisor.which_children(sup)
                except beam.ProcessExit:  # gone meanwhile
                    continue
                for child in children:
                    if child.pid is None:
                        continue
                    child_path = f"{path}/{child.id}"
                    if child.type == "supervisor":
                        below.append((child_path, child.pid))
                        if subtree.include_supervisors:
                            found.append((child_path, child.pid))
                    else:
                        found.append((child_path, child.pid))
            level = below
        return found

    async def random_target(self, target: Target) -> beam.Pid | None:
        """One process chosen at random among *target*'s candidates, or ``None``.

        >>> pid = await chaos.random_target(Subtree("shop"))
        """
        picked = await self._pick(target, self.random)
        return None if picked is None else picked[1]

    def matching(self, predicate: Callable[[beam.ProcessInfo], bool]) -> list[beam.Pid]:
        """The live processes (oldest first) whose ``beam.ProcessInfo`` satisfies
        *predicate*, leaving out the caller and the injector's scheduler.

        >>> chaos.matching(lambda info: info.registered_name == "counter")
        """
        spared = self._spared()
        found = []
        for pid in beam.processes():
            if pid in spared:
                continue
            info = beam.process_info(pid)
            if info is not None and predicate(info):
                found.append(pid)
        return found

    async def _pick(self, target: Target, rng: random.Random) -> tuple[str, beam.Pid] | None:
        candidates: list[tuple[str, beam.Pid]]
        if isinstance(target, beam.Pid):
            candidates = [(str(target), target)] if beam.is_alive(target) else []
        elif isinstance(target, str):
            pid = beam.whereis(target)
            candidates = [] if pid is None else [(target, pid)]
        elif isinstance(target, Subtree):
            spared = self._spared()
            candidates = [c for c in await self.tree(target) if c[1] not in spared]
        elif callable(target):
            candidates = [(str(pid), pid) for pid in self.matching(target)]
        else:
            raise TypeError(
                f"a fault-injection target is a pid, a name, a Subtree or a predicate on "
                f"beam.ProcessInfo; got {target!r}"
            )
        if not candidates:
            return None
        return candidates[rng.randrange(len(candidates))]

    def _spared(self) -> set[beam.Pid]:
        spared = set(self._protected)
        if self._scheduler is not None:
            spared.add(self._scheduler)
        with contextlib.suppress(beam.NotInProcess):
            spared.add(beam.self())
        return spared

    # -- schedules -------------------------------------------------------------------------

    def every(
        self,
        interval: float,
        target: Target,
        *,
        action: Action = "crash",
        limit: int | None = None,
    ) -> Callable[[], None]:
        """Every *interval* seconds, crash (or kill) one random process of *target*.

        The first tick is *interval* seconds from now. A tick that finds no candidate
        injects nothing. The schedule ends after *limit* injections, when the returned
        function is called, or at :meth:`stop`. All schedules of an injector run in one
        scheduler process, linked to the caller of the first ``every``.

        >>> cancel = chaos.every(0.1, Subtree("shop"), limit=20)
        """
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        _check_action(action)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be None or >= 0, got {limit!r}")
        self._protected.add(beam.self())
        self._streams += 1
        schedule = _Schedule(self._streams, interval, target, action, limit, self.seed)
        schedule.due = trio.current_time() + interval
        self._schedules.append(schedule)
        if self._scheduler is None or not beam.is_alive(self._scheduler):
            self._scheduler = beam.spawn_link(self._run_schedules)
        else:
            beam.send(self._scheduler, _Wake())

        def cancel() -> None:
            if schedule in self._schedules:
                self._schedules.remove(schedule)
                self._wake()

        return cancel

    def _wake(self) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(beam.NotInNode):  # after the node: nothing left to wake
                beam.send(self._scheduler, _Wake())

    async def _run_schedules(self) -> None:
        while self._schedules:
            due = min(schedule.due for schedule in self._schedules)
            try:
                await beam.receive(_Wake, timeout=max(due - trio.current_time(), 0.0))
                continue  # schedules changed: look again
            except beam.ReceiveTimeout:
                pass
            now = trio.current_time()
            for schedule in sorted(self._schedules, key=lambda s: (s.due, s.index)):
                if schedule.due > now or schedule not in self._schedules:
                    continue
                schedule.due += schedule.interval
                picked = await self._pick(schedule.target, schedule.random)
                if picked is not None:
                    self._inject(schedule.action, picked[1], picked[0], "every")
                    schedule.done += 1
                if schedule.limit is not None and schedule.done >= schedule.limit:
                    self._schedules.remove(schedule)
        self._scheduler = None

    def per_message(
        self,
        probability: float,
        target: beam.Pid | str | Callable[[beam.ProcessInfo], bool],
        *,
        action: Action = "crash",
    ) -> Callable[[], None]:
        """After each message delivered to a *target* process, inject with *probability*.

        *target* is a pid, a registered name (resolved at each delivery) or a predicate on
        ``beam.ProcessInfo``. Uses the node's send hook (so the process dies right after
        that message reached it); returns a function that removes the hook (:meth:`stop`
        removes it too).

        >>> chaos.per_message(0.05, "counter")
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {probability!r}")
        _check_action(action)
        if not isinstance(target, beam.Pid | str) and not callable(target):
            raise TypeError(
                f"per_message needs a pid, a name or a predicate on beam.ProcessInfo, got "
                f"{target!r} (for a Subtree use every())"
            )
        spared = self._spared()
        self._streams += 1
        rng = random.Random(f"{self.seed}:per_message:{self._streams}")

        def hook(pid: beam.Pid, message: Any) -> None:
            if self._in_hook or pid in spared or pid == self._scheduler:
                return
            if isinstance(target, beam.Pid):
                if pid != target:
                    return
            elif isinstance(target, str):
                if beam.whereis(target) != pid:
                    return
            else:
                info = beam.process_info(pid)
                if info is None or not target(info):
                    return
            if rng.random() >= probability:
                return
            self._in_hook = True
            try:
                self._inject(action, pid, None, "per_message")
            finally:
                self._in_hook = False

        remove = lowlevel.add_send_hook(hook)
        self._removers.append(remove)
        return remove

    def stop(self) -> None:
        """End every schedule and remove every send hook this injector started.

        >>> chaos.stop()
        """
        for remove in self._removers:
            remove()
        self._removers.clear()
        self._schedules.clear()
        self._wake()


def _check_action(action: object) -> None:
    if action not in ("crash", "kill"):
        raise ValueError(f"action must be 'crash' or 'kill', got {action!r}")
