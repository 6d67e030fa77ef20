"""The decisions of a supervisor, as pure functions: what to restart, and when to give up.

No trio, no processes: the supervisor process asks these functions and carries out the
answer, so the rules can be read in one place and tested without a node (OTP keeps them as
small functions in ``supervisor.erl`` too: ``do_restart``, ``restart/3``, ``add_restart``).

When a child exits, :func:`exit_action` says whether it is restarted, kept (stopped), or
removed, from its restart type and whether the reason was clean
(``beam.is_normal_exit``)::

    >>> exit_action("transient", clean=True), exit_action("transient", clean=False)
    ('keep', 'restart')

If it is restarted, the restart first counts against the intensity window, and then
:func:`plan_restart` says which siblings the strategy stops (in reverse start order), which
temporary siblings are dropped, and which children start again (in start order)::

    >>> kids = [ChildView("a", "permanent", True), ChildView("b", "permanent", False),
    ...         ChildView("c", "temporary", True)]
    >>> plan_restart("one_for_all", kids, "b")
    RestartPlan(terminate=('c', 'a'), remove=('c',), restart=('a', 'b'))
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "AUTO_SHUTDOWNS",
    "CHILD_TYPES",
    "RESTART_TYPES",
    "STRATEGIES",
    "ChildView",
    "ExitAction",
    "RestartIntensity",
    "RestartPlan",
    "RestartWindow",
    "auto_shutdown_due",
    "exit_action",
    "plan_restart",
]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
AutoShutdown = Literal["never", "any_significant", "all_significant"]
Restart = Literal["permanent", "transient", "temporary"]
ChildType = Literal["worker", "supervisor"]
ExitAction = Literal["restart", "keep", "remove"]

STRATEGIES: Final[tuple[Strategy, ...]] = ("one_for_one", "one_for_all", "rest_for_one")
AUTO_SHUTDOWNS: Final[tuple[AutoShutdown, ...]] = ("never", "any_significant", "all_significant")
RESTART_TYPES: Final[tuple[Restart, ...]] = ("permanent", "transient", "temporary")
CHILD_TYPES: Final[tuple[ChildType, ...]] = ("worker", "supervisor")


def exit_action(restart: Restart, *, clean: bool) -> ExitAction:
    """What happens to a child that exited on its own.

    ``permanent`` children are always restarted. ``transient`` ones only after an abnormal
    exit; after a clean one (``normal``, ``shutdown``, ``("shutdown", x)``) their spec is
    kept, stopped, for ``restart_child``. ``temporary`` children are never restarted and
    their spec is removed.

    >>> exit_action("permanent", clean=True), exit_action("temporary", clean=False)
    ('restart', 'remove')
    """
    if restart == "permanent":
        return "restart"
    if restart == "temporary":
        return "remove"
    return "keep" if clean else "restart"


def auto_shutdown_due(auto_shutdown: AutoShutdown, *, significant_left: int) -> bool:
    """Whether a supervisor stops itself after a significant child exited on its own and
    was not restarted; *significant_left* counts the significant children still running.

    ``"any_significant"``: at once; ``"all_significant"``: once none is left;
    ``"never"``: never (and no child may be significant then). A child stopped with
    ``terminate_child`` does not count, as in OTP.

    >>> auto_shutdown_due("all_significant", significant_left=1)
    False
    >>> auto_shutdown_due("any_significant", significant_left=1)
    True
    """
    if auto_shutdown == "any_significant":
        return True
    return auto_shutdown == "all_significant" and significant_left == 0


@dataclass(frozen=True, slots=True)
class ChildView:
    """What the strategy needs to know of one child: its id, restart type, and whether it
    runs. A sequence of them is the supervisor's child list in start order.

    >>> ChildView("db", "permanent", running=True)
    ChildView(id='db', restart='permanent', running=True)
    """

    id: Hashable
    restart: Restart
    running: bool


@dataclass(frozen=True, slots=True)
class RestartPlan:
    """What to do after a child died and is to be restarted.

    ``terminate``: running siblings to shut down, in this order (reverse start order).
    ``remove``: temporary children among them, dropped once shut down (never restarted).
    ``restart``: children to start, in this order (start order); the dead one included.

    >>> plan_restart("one_for_one", [ChildView("a", "permanent", False)], "a").restart
    ('a',)
    """

    terminate: tuple[Hashable, ...]
    remove: tuple[Hashable, ...]
    restart: tuple[Hashable, ...]


def plan_restart(strategy: Strategy, children: Sequence[ChildView], dead: Hashable) -> RestartPlan:
    """Plan the restart of child *dead* (which is not running) under *strategy*.

    ``one_for_one`` restarts *dead* only. ``one_for_all`` affects every child and
    ``rest_for_one`` the children from *dead* on, in start order: the running ones are
    shut down in reverse order, then all of them except temporary children start again in
    order, including stopped ones (as OTP does: a child stopped with ``terminate_child``
    starts again too).

    >>> kids = [ChildView(n, "permanent", n != "b") for n in "abc"]
    >>> plan_restart("rest_for_one", kids, "b")
    RestartPlan(terminate=('c',), remove=(), restart=('b', 'c'))
    """
    ids = [child.id for child in children]
    try:
        position = ids.index(dead)
    except ValueError:
        raise ValueError(f"child {dead!r} is not in the child list {ids!r}") from None
    if strategy == "one_for_one":
        return RestartPlan((), (), (dead,))
    if strategy == "one_for_all":
        affected = list(children)
    elif strategy == "rest_for_one":
        affected = list(children[position:])
    else:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    terminate = tuple(c.id for c in reversed(affected) if c.running and c.id != dead)
    remove = tuple(c.id for c in affected if c.restart == "temporary" and c.id != dead)
    restart = tuple(c.id for c in affected if c.restart != "temporary" or c.id == dead)
    return RestartPlan(terminate, remove, restart)


@dataclass(frozen=True, slots=True)
class RestartIntensity:
    """The restart-intensity window: at most ``max_restarts`` restarts in ``max_seconds``.

    ``restarts`` holds the times of the recent restarts (newest last), at most
    ``max_restarts + 1`` of them: older ones cannot change the verdict, and keeping them
    would make each restart cost as much as the window is long. :meth:`add_restart`
    returns the window with one more restart at *now*, dropping those older than
    ``max_seconds``; once it holds more than ``max_restarts`` entries it is
    :attr:`exceeded` and the supervisor gives up. Times come from the caller (the
    supervisor passes ``trio.current_time()``, so a ``MockClock`` drives it).

    >>> window = RestartIntensity(max_restarts=1, max_seconds=5)
    >>> window = window.add_restart(0.0)
    >>> window.exceeded, window.add_restart(4.0).exceeded, window.add_restart(6.0).exceeded
    (False, True, False)
    """

    max_restarts: int
    max_seconds: float
    restarts: tuple[float, ...] = ()

    def add_restart(self, now: float) -> RestartIntensity:
        """This window with one more restart at *now*."""
        period = self.max_seconds
        restarts = self.restarts
        if not restarts or now - restarts[-1] > period:  # none left in the window: the usual
            return RestartIntensity(self.max_restarts, period, (now,))
        # Times are ascending: find the first one still inside the window by bisection, and
        # keep no more than max_restarts of them (older ones cannot change the verdict).
        first = bisect.bisect_left(restarts, now - period)
        while first < len(restarts) and now - restarts[first] > period:  # float rounding
            first += 1
        while first > 0 and now - restarts[first - 1] <= period:
            first -= 1
        first = max(first, len(restarts) - self.max_restarts)
        return RestartIntensity(self.max_restarts, period, (*restarts[first:], now))

    @property
    def exceeded(self) -> bool:
        """True when the window holds more restarts than ``max_restarts``."""
        return len(self.restarts) > self.max_restarts


class RestartWindow:
    """The restart-intensity window as the supervisor process keeps it: mutable, so a restart
    allocates nothing. Same rule and verdicts as :class:`RestartIntensity` (the tests check
    the two against each other); *now* must not go backwards (trio's clock does not).

    >>> window = RestartWindow(max_restarts=1, max_seconds=5)
    >>> window.add(0.0), window.add(4.0), window.add(10.0)
    (False, True, False)
    """

    __slots__ = ("_times", "max_restarts", "max_seconds")

    def __init__(self, max_restarts: int, max_seconds: float) -> None:
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._times: deque[float] = deque()

    def add(self, now: float) -> bool:
        """Count one restart at *now*; true if the window now holds more than allowed."""
        times = self._times
        period = self.max_seconds
        while times and now - times[0] > period:
            times.popleft()
        times.append(now)
        if len(times) > self.max_restarts + 1:  # older ones cannot change the verdict
            times.popleft()
        return len(times) > self.max_restarts

    @property
    def restarts(self) -> tuple[float, ...]:
        """The times kept, oldest first (as :attr:`RestartIntensity.restarts`)."""
        return tuple(self._times)
