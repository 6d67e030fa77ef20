"""What Supervisor and DynamicSupervisor share: the requests they answer, the records they
report, and how a child is started and stopped from inside a supervisor process.

The public face of each supervisor is a class of static functions (``Supervisor``,
``DynamicSupervisor``) that send the requests below with :func:`call`; a failed request
comes back as :class:`Failed` and is raised in the caller, so errors are exceptions, not
tuples.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import beam

from ._errors import InvalidSpec
from ._report import report
from ._shutdown import shutdown_children, shutdown_ok
from ._spec import ChildSpec, Shutdown
from ._strategy import ChildType, Restart

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "CountChildren",
    "DeleteChild",
    "Failed",
    "GetChildSpec",
    "RestartChild",
    "StartChild",
    "StartFailed",
    "SupRef",
    "TerminateChild",
    "TryAgain",
    "WhichChildren",
    "call",
    "check_flags",
    "count_children",
    "start_one",
    "stop_one",
]

SupRef: TypeAlias = beam.Pid | str


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as :meth:`Supervisor.which_children` reports it.

    ``pid`` is ``None`` while the child is not running (stopped, ignored, or waiting to be
    restarted after a failed start). ``restarts`` counts the times the supervisor started it
    again after an exit (OTP keeps no such count; operators' pages want it).

    >>> [c.id for c in await Supervisor.which_children(sup) if c.pid is None]
    ['cache']
    """

    id: Hashable
    pid: beam.Pid | None
    type: ChildType
    restart: Restart
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """What :meth:`Supervisor.count_children` reports: specs held, children running, and
    how many specs are supervisors and workers.

    >>> await Supervisor.count_children(sup)
    ChildCounts(specs=3, active=2, supervisors=1, workers=2)
    """

    specs: int
    active: int
    supervisors: int
    workers: int


# -- requests (shared with DynamicSupervisor) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class WhichChildren:
    pass


@dataclass(frozen=True, slots=True)
class CountChildren:
    pass


@dataclass(frozen=True, slots=True)
class TerminateChild:
    child: Hashable


@dataclass(frozen=True, slots=True)
class RestartChild:
    child: Hashable


@dataclass(frozen=True, slots=True)
class DeleteChild:
    child: Hashable


@dataclass(frozen=True, slots=True)
class StartChild:
    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class GetChildSpec:
    child: Hashable


@dataclass(frozen=True, slots=True)
class TryAgain:
    """Sent to itself after a failed restart: try again once other messages were seen."""

    key: Hashable


@dataclass(frozen=True, slots=True)
class Failed:
    """A request failed; the caller raises ``error``."""

    error: Exception


async def call(sup: SupRef, request: object) -> Any:
    """Send *request* to a supervisor (no timeout, as OTP); raise what it failed with."""
    result = await beam.call(sup, request, timeout=None)
    if type(result) is Failed:
        raise result.error
    return result


class StartFailed(Exception):
    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


async def start_one(
    spec: ChildSpec, extra: tuple[Any, ...] = (), *, old_pid: beam.Pid | None = None
) -> beam.Pid | None:
    """Run *spec*'s start function in the supervisor; log and raise :class:`StartFailed`.

    The supervisor links to the new child itself as well (a no-op when the start function
    linked, as it must), so a child started without a link is still supervised.
    """
    reason: Any
    try:
        result = await spec.start(*extra, *spec.args)
    except beam.StartError as exc:
        reason = exc.reason
    except Exception as exc:
        reason = exc
    else:
        if result is None:
            report("ignored", "ignore", spec, None, level=logging.INFO)
            return None
        if type(result) is beam.Pid:
            beam.link(result)
            report("started", "ok", spec, result, level=logging.INFO)
            return result
        reason = beam.BadReturnValue(
            "a child start function", result, "a beam.Pid, or None to ignore the child"
        )
    report("start_error", reason, spec, old_pid)
    raise StartFailed(reason)


async def stop_one(spec: ChildSpec, pid: beam.Pid) -> None:
    """Shut down one child per its spec; report a ``shutdown_error`` if it went wrong."""
    how: Shutdown = spec.shutdown if spec.shutdown is not None else "infinity"
    [reason] = await shutdown_children([(pid, how)])
    if not shutdown_ok(reason, how, permanent=spec.restart == "permanent"):
        report("shutdown_error", reason, spec, pid)


def check_flags(owner: str, max_restarts: object, max_seconds: object) -> None:
    """Validate the intensity options; :class:`InvalidSpec` names the bad one."""
    if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < 0:
        raise InvalidSpec(owner, "max_restarts", max_restarts, "an int >= 0")
    if (
        not isinstance(max_seconds, int | float)
        or isinstance(max_seconds, bool)
        or not 0 < max_seconds < float("inf")
    ):
        raise InvalidSpec(owner, "max_seconds", max_seconds, "a number of seconds > 0")


def count_children(children: Iterable[tuple[ChildSpec, bool]]) -> ChildCounts:
    """Count ``(spec, running)`` pairs the way ``count_children`` reports them."""
    specs = active = supervisors = 0
    for spec, running in children:
        specs += 1
        active += running
        supervisors += spec.type == "supervisor"
    return ChildCounts(specs, active, supervisors, specs - supervisors)
