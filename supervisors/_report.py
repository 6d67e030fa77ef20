"""Supervisor reports: OTP's ``SUPERVISOR REPORT``, through :mod:`logging`.

Reports go to the logger ``"supervisors"``. Errors (``start_error``, ``child_terminated``
with an abnormal reason, ``shutdown_error``, and ``shutdown`` when the restart intensity
is exceeded) are logged at ERROR, progress (a child started) at INFO. Each names the
supervisor, the context, the reason and the offender; the same fields are attached to the
record as ``record.supervisor_report`` (a dict) for handlers that want them::

    supervisor <0.7.0> (shop): child_terminated
      reason: ValueError('boom')
      offender: id='counter', pid=<0.9.0>, start=Counter.start_link(0, name='counter'),
                restart='permanent', shutdown=5.0, type='worker'
"""

from __future__ import annotations

import logging
from typing import Any

import beam

from ._spec import ChildSpec, describe_start

__all__ = ["logger", "report", "shown_id", "supervisor_label"]

logger = logging.getLogger("supervisors")


def supervisor_label(pid: beam.Pid | None = None) -> str:
    """The supervisor *pid* (by default the caller) as reports show it: pid, and
    registered name if any."""
    if pid is None:
        pid = beam.self()
    info = beam.process_info(pid)
    name = None if info is None else info.registered_name
    return f"{pid} ({name})" if name else str(pid)


def shown_id(spec: ChildSpec | None) -> str:
    """The child's id as reports show it."""
    return "?" if spec is None else beam.bounded_repr(spec.id)


def report(
    context: str,
    reason: Any,
    spec: ChildSpec | None,
    pid: beam.Pid | None,
    *,
    level: int = logging.ERROR,
    supervisor: beam.Pid | None = None,
) -> None:
    """Log one supervisor report about *spec*'s child (*pid*) in *context*, as the
    *supervisor* (by default the caller) reports it."""
    if not logger.isEnabledFor(level):
        return
    label = supervisor_label(supervisor)
    offender: dict[str, Any] = {"pid": pid}
    if spec is not None:
        offender.update(
            id=spec.id,
            start=describe_start(spec),
            restart=spec.restart,
            shutdown=spec.shutdown,
            type=spec.type,
        )
    shown = ", ".join(
        f"{key}={value}" if key == "start" else f"{key}={beam.bounded_repr(value)}"
        for key, value in offender.items()
    )
    if context in ("started", "ignored"):  # progress: one line
        what = f"as {pid}" if context == "started" else "(its start returned None)"
        start = offender.get("start", "?")
        message = f"supervisor {label}: {context} child {shown_id(spec)} {what}: {start}"
    else:
        message = (
            f"supervisor {label}: {context}\n"
            f"  reason: {beam.bounded_repr(reason)}\n"
            f"  offender: {shown}"
        )
    fields = {"supervisor": label, "context": context, "reason": reason, **offender}
    logger.log(level, message, extra={"supervisor_report": fields})
