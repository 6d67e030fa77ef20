"""Exceptions of the runtime.

:class:`ProcessExit` is how a process exits with a chosen reason, and how the runtime makes a
caller exit (a call that timed out, a call to a process that died). The others are errors in
how the runtime was used, each naming the value at fault and the fix.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyRegistered",
    "BadReturnValue",
    "CallTimeout",
    "NoProc",
    "NoProcError",
    "NotInNode",
    "NotInProcess",
    "ProcessExit",
    "ReceiveTimeout",
    "StartError",
    "UnknownName",
]


class ProcessExit(Exception):
    """Raise it to end the current process with *reason*; the runtime raises it too.

    A process that lets ``ProcessExit(reason)`` escape exits with ``reason`` (not with the
    exception), exactly like ``exit(Reason)`` in Erlang. ``"normal"``, ``"shutdown"`` and
    ``("shutdown", x)`` write no crash report.

    >>> async def worker():
    ...     raise ProcessExit("shutdown")
    """

    def __init__(self, reason: Any, *, reported: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        #: True when a crash report was already written (behaviours write richer ones).
        self.reported = reported


class CallTimeout(ProcessExit):
    """A call got no reply in time. Left uncaught, the caller exits, as in OTP.

    The reason is ``("timeout", (dest, request))``. A reply that arrives later is dropped.
    """


class NoProc(ProcessExit):
    """The process a call was addressed to does not exist (or died meanwhile).

    The reason is ``("noproc", detail)``. (:func:`beam.link` to a dead pid raises
    :class:`NoProcError` instead: in OTP that is an error, not an exit.)
    """


class NoProcError(LookupError):
    """:func:`beam.link` to a process that is not alive, from a caller that does not trap
    exits: OTP's ``error:noproc``.

    An error, not an exit (it is no :class:`ProcessExit`): left uncaught, the process crashes
    with it and a crash report is written, as ``link/1`` raising ``noproc`` does in Erlang.
    ``reason`` is ``"noproc"``.

    >>> async def main():
    ...     try:
    ...         beam.link(dead_pid)
    ...     except beam.NoProcError:
    ...         ...
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = "noproc"


class ReceiveTimeout(TimeoutError):
    """:func:`beam.receive` found no matching message before its timeout."""


class NotInNode(RuntimeError):
    """A runtime function was called outside a running node."""


class NotInProcess(RuntimeError):
    """A function that needs a current process (``receive``, ``self``) ran outside one."""


class UnknownName(LookupError):
    """A message was sent to a name no process has registered."""


class AlreadyRegistered(ValueError):
    """A name is taken by a live process; ``pid`` is the holder."""

    def __init__(self, message: str, pid: Any) -> None:
        super().__init__(message)
        self.pid = pid


class StartError(Exception):
    """A process started with ``start_link`` failed in ``init``; ``reason`` says why."""

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class BadReturnValue(TypeError):
    """A behaviour callback returned a value outside its contract."""

    def __init__(self, callback: str, value: Any, expected: str) -> None:
        super().__init__(f"{callback} returned {value!r:.200}; expected {expected}")
        self.callback = callback
        self.value = value
