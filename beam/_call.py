"""Request and reply: the machinery under ``call``, ``reply``, tasks and thread actors.

A call opens a reply slot tagged with a fresh reference, monitors the callee *with that same
reference* (so the callee's death fills the slot instead of the mailbox), sends the request
and waits on the slot. On return the monitor is removed and the slot closed, so a reply that
arrives after a timeout is dropped, as OTP's process aliases drop it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

from ._api import remote_monitor, send
from ._errors import CallTimeout, NoProc, ProcessExit
from ._node import Node, current_node, current_process, unwatch, watch
from ._process import TIMED_OUT, Died, Process
from ._types import From, Pid, Ref

__all__ = ["CallRequest", "CastRequest", "call", "cast", "reply"]

#: The default time a call waits for its reply, in seconds (OTP's 5000 ms).
DEFAULT_TIMEOUT = 5.0


class CallRequest(NamedTuple):
    """The message a ``call`` puts in the callee's mailbox: answer ``from_`` about ``request``."""

    from_: From
    request: Any


class CastRequest(NamedTuple):
    """The message a ``cast`` puts in the callee's mailbox."""

    request: Any


def end_request(node: Node, proc: Process, ref: Ref) -> None:
    """Turn off the monitor tagged *ref* and close its reply slot."""
    unwatch(node, proc, ref)
    proc.close_reply(ref)


async def request(
    dest: Pid | str | tuple[str, str],
    build: Callable[[From, Any], Any],
    arg: Any,
    timeout: float | None,
    what: str,
) -> Any:
    """Send ``build(from_, arg)`` to *dest* and wait for the reply; the core of ``call``.

    Raises :class:`CallTimeout`, :class:`NoProc`, or :class:`ProcessExit` with the callee's
    reason if it exits first (all of which make the caller exit if left uncaught).
    """
    proc = current_process(what)
    node = proc.node
    if timeout is not None and not timeout >= 0:  # also rejects NaN
        raise ValueError(f"timeout must be >= 0 seconds or None (infinity), got {timeout!r}")
    if isinstance(dest, tuple) or (type(dest) is Pid and dest.node is not None):
        # Another node: the same steps, with a remote monitor and a send through the cluster.
        ref = node._make_ref()
        proc.open_reply(ref)
        remote_monitor(proc, ref, dest)
        send(dest, build(From(proc.pid, ref), arg))
    else:
        target = node._lookup(dest)
        if target is None:
            raise NoProc(("noproc", (what, dest)))
        if target is proc:
            raise ProcessExit(("calling_self", (what, dest)))
        ref = node._make_ref()
        proc.open_reply(ref)
        watch(proc, ref, target)
        node._send_to(target, build(From(proc.pid, ref), arg))
    try:
        value = await proc.wait_reply(ref, timeout)
    finally:
        end_request(node, proc, ref)
    if value is TIMED_OUT:
        raise CallTimeout(("timeout", (what, dest)))
    if type(value) is Died:
        reason = value.reason
        if reason == "noproc":
            raise NoProc(("noproc", (what, dest)))
        raise ProcessExit((reason, (what, dest)))
    return value


def call(
    dest: Pid | str | tuple[str, str], request_: Any, *, timeout: float | None = DEFAULT_TIMEOUT
) -> Coroutine[Any, Any, Any]:
    """Send *request_* to the server *dest* and wait for its reply (5 s by default).

    If no reply comes in time the caller raises :class:`CallTimeout` (left uncaught, it
    exits, as in OTP) and a late reply is dropped. If the server is not alive it raises
    :class:`NoProc`; if the server exits during the call, :class:`ProcessExit` with
    ``(server_reason, ("beam.call", dest))``. ``timeout=None`` waits forever.

    *dest* may be a server on another node (its pid, or ``(name, node)``): the request and
    the reply are encoded (see :mod:`beam.cluster`), and if that node goes down during the
    call (or is not up), the caller exits with ``("noconnection", ("beam.call", dest))``
    at once instead of waiting for the timeout.

    >>> async def main():
    ...     count = await beam.call(counter, "get")
    """
    # A plain function returning the coroutine: one frame less on every call.
    return request(dest, CallRequest, request_, timeout, "beam.call")


def cast(dest: Pid | str | tuple[str, str], request_: Any) -> None:
    """Send *request_* to the server *dest* without waiting. Never fails, even for a name
    nobody holds.

    >>> async def main():
    ...     beam.cast(counter, ("add", 1))
    """
    node = current_node("beam.cast")
    if isinstance(dest, tuple) or (type(dest) is Pid and dest.node is not None):
        send(dest, CastRequest(request_))
        return
    proc = node._lookup(dest)
    if proc is not None:
        node._send_to(proc, CastRequest(request_))


def reply(from_: From, value: Any) -> None:
    """Answer the call identified by *from_* (as given to ``handle_call``) with *value*.

    Any process may reply, at any time (a deferred reply); a reply to a caller that gave up
    or died is dropped.

    >>> async def handle_call(self, request, from_, state):
    ...     beam.reply(from_, "working on it")
    ...     return beam.NoReply(state)
    """
    node = current_node("beam.reply")
    if from_.pid.node is not None:
        if node._dist is not None:
            node._dist.reply(from_.pid, from_.ref, value)
        return
    caller = node._procs.get(from_.pid.id)
    if caller is not None:
        if node._copy_messages:
            value = copy.deepcopy(value)
        caller.deliver_reply(from_.ref, value)
