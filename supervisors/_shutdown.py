"""Stopping children the OTP way: ask with ``"shutdown"``, wait, then kill.

For each child: monitor it, send the exit signal (``"kill"`` at once for ``brutal_kill``,
``"shutdown"`` otherwise), and wait for its ``Down``; a child still alive when its shutdown
time is up gets ``"kill"``. ``"infinity"`` waits as long as it takes. The supervisor stays
linked until the child is gone (so a supervisor killed meanwhile still takes its children
down), and the ``Exit`` that the link brings is consumed together with the ``Down``.

:func:`shutdown_children` stops several children at once (a DynamicSupervisor's concurrent
shutdown); a Supervisor calls it with one child at a time, in reverse start order. Every
message the collection loop takes matches, so it never rescans a growing mailbox.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import trio

import beam

from ._spec import Shutdown

__all__ = ["shutdown_children", "shutdown_ok"]


async def shutdown_children(targets: Sequence[tuple[beam.Pid, Shutdown]]) -> list[Any]:
    """Stop every ``(pid, shutdown)`` in *targets* concurrently; return their exit reasons.

    The signals go out in the order given; the reasons come back in the same order.
    """
    by_ref: dict[beam.Ref, int] = {}
    by_pid: dict[beam.Pid, int] = {}
    deadlines: list[tuple[float, int]] = []
    now = trio.current_time()
    for index, (pid, how) in enumerate(targets):
        by_ref[beam.monitor(pid)] = index
        by_pid[pid] = index
        if how == "brutal_kill":
            beam.exit(pid, beam.KILL)
        else:
            beam.exit(pid, beam.SHUTDOWN)
            if how != "infinity":
                deadlines.append((now + float(how), index))
    heapq.heapify(deadlines)
    reasons: list[Any] = [None] * len(targets)
    linked_reason: dict[int, Any] = {}
    done = [False] * len(targets)

    def ours(message: object) -> bool:
        if type(message) is beam.Down:
            return message.ref in by_ref
        return type(message) is beam.Exit and message.pid in by_pid

    pending = len(targets)
    while pending:
        while deadlines and done[deadlines[0][1]]:
            heapq.heappop(deadlines)
        timeout = None
        if deadlines:
            timeout = max(deadlines[0][0] - trio.current_time(), 0.0)
        try:
            message = await beam.receive(ours, timeout=timeout)
        except beam.ReceiveTimeout:
            now = trio.current_time()
            while deadlines and deadlines[0][0] <= now:
                _, index = heapq.heappop(deadlines)
                if not done[index]:
                    beam.exit(targets[index][0], beam.KILL)
            continue
        if type(message) is beam.Exit:
            linked_reason[by_pid[message.pid]] = message.reason
            continue
        index = by_ref.pop(message.ref)
        # A child that died before we monitored it shows "noproc" in its Down; the Exit of
        # its link, if one came, has the real reason.
        reasons[index] = linked_reason.pop(index, message.reason)
        done[index] = True
        pending -= 1
    for pid, _ in targets:
        beam.unlink(pid)
    return reasons


def shutdown_ok(reason: Any, how: Shutdown, *, permanent: bool) -> bool:
    """Whether a child stopped the way its shutdown asked (else: a ``shutdown_error``).

    ``brutal_kill`` expects ``"killed"``, the others ``"shutdown"``; a child that is not
    permanent may also have exited cleanly on its own. A child killed after its timeout ran
    out is a shutdown error (``"killed"``), as OTP reports it.

    >>> shutdown_ok("killed", 5.0, permanent=True), shutdown_ok("killed", "brutal_kill",
    ...                                                          permanent=True)
    (False, True)
    """
    expected = beam.KILLED if how == "brutal_kill" else beam.SHUTDOWN
    if reason == expected:
        return True
    return not permanent and beam.is_normal_exit(reason)
