"""Crash reports: what is logged when a process dies abnormally.

A report names the process (pid, registered name, initial call), the exit reason, the
traceback when the reason is an exception, and, for behaviours, the last message and the
state (after ``format_status``). Every value is printed through a bounded repr, so a huge
mailbox message or state cannot flood the log. Clean exits (``"normal"``, ``"shutdown"``,
``("shutdown", x)``) are never reported.

Reports go to the ``logging`` logger ``"beam.crash"`` at ERROR level; the structured fields are
attached to the log record as ``record.beam_report`` (a dict) for handlers that want them.
"""

from __future__ import annotations

import logging
import reprlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._types import Pid

__all__ = ["bounded_repr", "log_crash"]

logger = logging.getLogger("beam.crash")

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 20
_repr.maxlevel = 4


def bounded_repr(value: Any) -> str:
    """``repr`` cut to a size fit for a log line.

    >>> len(bounded_repr("x" * 10_000)) < 300
    True
    """
    try:
        return _repr.repr(value)
    except Exception as exc:  # a broken __repr__ must not break the report
        return f"<unprintable {type(value).__name__}: {exc!r}>"


def _describe_call(initial_call: object) -> str:
    module = getattr(initial_call, "__module__", None)
    qualname = getattr(initial_call, "__qualname__", None)
    if qualname is None:
        return bounded_repr(initial_call)
    return f"{module}.{qualname}" if module else str(qualname)


def log_crash(
    pid: Pid,
    name: str | None,
    initial_call: object,
    reason: Any,
    *,
    kind: str = "process",
    extra: dict[str, Any] | None = None,
) -> None:
    """Log the crash report of process *pid* that exited with *reason*."""
    report: dict[str, Any] = {
        "pid": pid,
        "name": name,
        "initial_call": _describe_call(initial_call),
        "reason": reason,
    }
    if extra:
        report.update(extra)
    lines = [
        f"{kind} {pid}{f' ({name})' if name else ''} terminating",
        f"  initial call: {report['initial_call']}",
    ]
    for key, value in (extra or {}).items():
        lines.append(f"  {key.replace('_', ' ')}: {bounded_repr(value)}")
    lines.append(f"  reason: {bounded_repr(reason)}")
    exc_info = reason if isinstance(reason, BaseException) else None
    logger.error("\n".join(lines), exc_info=exc_info, extra={"beam_report": report})
