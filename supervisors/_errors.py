"""Exceptions of the supervisors package.

Each names the value at fault and what to do instead. Operations on a running supervisor
(``terminate_child``, ``start_child``...) raise these in the *caller*, as OTP's functions
return ``{error, not_found}``, ``{error, running}``... A child that fails to start raises
:class:`beam.StartError` with the reason, as ``GenServer.start_link`` does.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import beam

__all__ = [
    "AlreadyPresent",
    "AlreadyStarted",
    "ChildNotFound",
    "ChildRunning",
    "InvalidSpec",
    "MaxChildren",
]


class InvalidSpec(ValueError):
    """A child spec or a supervisor option is invalid; names the field, value and allowed set.

    >>> try:
    ...     ChildSpec(id="db", start=Repo.start_link, restart="forever")
    ... except InvalidSpec as exc:
    ...     print(exc.field, exc.value)
    restart forever
    """

    def __init__(self, owner: str, field: str, value: Any, allowed: str) -> None:
        super().__init__(
            f"{owner}: {field}={beam.bounded_repr(value)} is not valid; {field} must be {allowed}"
        )
        self.owner = owner
        self.field = field
        self.value = value
        self.allowed = allowed


class ChildNotFound(LookupError):
    """No child with this id (or pid, for a DynamicSupervisor) is known to the supervisor.

    >>> await Supervisor.terminate_child(sup, "nope")     # raises ChildNotFound
    """

    def __init__(self, supervisor: Any, child: Hashable) -> None:
        super().__init__(
            f"supervisor {supervisor} has no child {child!r}; see Supervisor.which_children"
        )
        self.child = child


class ChildRunning(RuntimeError):
    """The child is running, so it cannot be restarted or deleted; terminate it first.

    >>> await Supervisor.delete_child(sup, "db")   # raises ChildRunning while db runs
    """

    def __init__(self, supervisor: Any, child: Hashable, pid: beam.Pid) -> None:
        super().__init__(
            f"child {child!r} of supervisor {supervisor} is running as {pid}; call "
            "Supervisor.terminate_child first"
        )
        self.child = child
        self.pid = pid


class AlreadyStarted(RuntimeError):
    """``start_child`` with an id that a running child already has (``pid`` is that child).

    >>> await Supervisor.start_child(sup, spec)    # raises AlreadyStarted if spec.id runs
    """

    def __init__(self, supervisor: Any, child: Hashable, pid: beam.Pid) -> None:
        super().__init__(
            f"supervisor {supervisor} already runs a child {child!r} as {pid}; ids are "
            "unique within a supervisor"
        )
        self.child = child
        self.pid = pid


class AlreadyPresent(RuntimeError):
    """``start_child`` with the id of a stopped child the supervisor still holds.

    Restart it with ``restart_child`` or remove it with ``delete_child`` first.
    """

    def __init__(self, supervisor: Any, child: Hashable) -> None:
        super().__init__(
            f"supervisor {supervisor} already holds a (stopped) child {child!r}; use "
            "Supervisor.restart_child, or Supervisor.delete_child before adding it again"
        )
        self.child = child


class MaxChildren(RuntimeError):
    """A DynamicSupervisor already has ``max_children`` children.

    >>> await DynamicSupervisor.start_child(pool, spec)   # raises MaxChildren when full
    """

    def __init__(self, supervisor: Any, limit: int) -> None:
        super().__init__(
            f"dynamic supervisor {supervisor} already has max_children={limit} children; "
            "wait for some to exit or raise the limit"
        )
        self.limit = limit
