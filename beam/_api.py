"""The process primitives: spawn, send, receive, links, monitors, exits, names and timers.

Every function here acts on the current node (and, where it says so, the calling process),
exactly like the Erlang BIFs it is named after. Sync functions never block; the async ones
(``receive``) are trio checkpoints.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import trio

from ._errors import NoProcError, ProcessExit, UnknownName
from ._node import (
    Node,
    current_node,
    current_process,
    local_id,
    resolve_exit_target,
    unwatch,
    watch,
)
from ._process import NOT_EXITING, Died, Match, Process, process_var
from ._pubsub import _pubsub
from ._schedule import LongScheduleMonitor
from ._timers import TimerTimeout
from ._types import NOCONNECTION, NODE_PID, NOPROC, Down, Exit, NodeDown, Pid, Ref

__all__ = [
    "cancel_timer",
    "demonitor",
    "exit",
    "is_alive",
    "link",
    "make_ref",
    "monitor",
    "monitor_node",
    "monitor_nodes",
    "read_timer",
    "receive",
    "register",
    "registered",
    "self",
    "send",
    "send_after",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "start_timer",
    "system_monitor",
    "trap_exit",
    "unlink",
    "unregister",
    "whereis",
]

AsyncFn = Callable[..., Awaitable[Any]]


def spawn(fn: AsyncFn, *args: Any) -> Pid:
    """Start a process running ``await fn(*args)`` and return its pid at once.

    The process starts soon after (at the caller's next checkpoint). When ``fn`` returns the
    process exits ``"normal"``; if it raises, it exits with the exception and a crash report
    is logged.

    >>> async def hello(name):
    ...     print("hello", name)
    >>> async def main():
    ...     beam.spawn(hello, "world")
    """
    node = current_node("beam.spawn")
    parent = _optional_process()
    return node._spawn(fn, args, parent=parent)[0]


def spawn_link(fn: AsyncFn, *args: Any) -> Pid:
    """Like :func:`spawn`, and link the new process to the caller in the same step.

    There is no moment when the child can die unlinked.

    >>> async def main():
    ...     child = beam.spawn_link(worker)   # if worker crashes, main exits too
    """
    proc = current_process("beam.spawn_link")
    return proc.node._spawn(fn, args, parent=proc, link=True)[0]


def spawn_monitor(fn: AsyncFn, *args: Any) -> tuple[Pid, Ref]:
    """Like :func:`spawn`, and monitor the new process in the same step.

    Returns ``(pid, ref)``; the caller gets ``Down(ref, pid, reason)`` when it exits.

    >>> async def main():
    ...     pid, ref = beam.spawn_monitor(worker)
    ...     down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref)
    """
    proc = current_process("beam.spawn_monitor")
    pid, ref = proc.node._spawn(fn, args, parent=proc, monitor=True)
    assert ref is not None
    return pid, ref


def self() -> Pid:
    """The pid of the calling process.

    >>> async def main():
    ...     print(beam.self())       # e.g. <0.1.0>
    """
    return current_process("beam.self").pid


def send(dest: Pid | str | tuple[str, str], message: Any) -> None:
    """Send *message* to *dest* (a pid, a registered name, or ``(name, node)``). Never blocks.

    Sending to a pid never fails: if the process is dead the message is dropped. Sending to a
    name nobody registered raises :class:`UnknownName`. Messages from one sender to one
    receiver arrive in the order sent.

    A pid of another node, or ``(name, node)`` (a name registered on the node called
    *node*), is sent through the cluster (:mod:`beam.cluster`): never blocking, never raising
    for a node that is down or unknown (the message is lost, as in Erlang), and dropped there
    if the process is dead or the name unregistered. ``(name, beam.node())`` is a local send
    with the same rule (an unregistered name drops it). The one difference from a local
    send: the message is encoded in the sender, so a value that cannot travel raises
    :class:`beam.cluster.CodecError` here.

    >>> async def main():
    ...     beam.send(beam.self(), ("ping", 1))
    ...     assert await beam.receive() == ("ping", 1)
    """
    node = current_node("beam.send")
    if type(dest) is Pid:
        proc = node._procs.get(dest.id)
        if proc is None or dest.node is not None:
            if dest.node is not None:
                _send_remote(node, dest, message)
            return
    elif isinstance(dest, tuple):
        _send_remote(node, dest, message)
        return
    else:
        proc = node._lookup(dest)
        if proc is None:
            raise UnknownName(
                f"cannot send to {dest!r}: no process is registered under that name "
                "(check beam.whereis(name), or send to a pid)"
            )
    if node._slow_send:
        node._send_to(proc, message)
    else:
        proc.deliver(message)


def _send_remote(node: Node, dest: Pid | tuple[str, str], message: Any) -> None:
    """Route a send to another node through the node's cluster adapter (if it has one)."""
    adapter = _pubsub(node).adapter
    if type(dest) is tuple:
        if len(dest) != 2 or not isinstance(dest[0], str) or not isinstance(dest[1], str):
            raise TypeError(f"a remote name is a (name, node) pair of str, got {dest!r}")
        if dest[1] == adapter.node_name:
            proc = node._lookup(dest[0])
            if proc is None:
                return
            if node._slow_send:
                node._send_to(proc, message)
            else:
                proc.deliver(message)
            return
    send_remote = getattr(adapter, "send_remote", None)
    if send_remote is not None:
        send_remote(dest, message)


def receive(match: Match = None, *, timeout: float | None = None) -> Coroutine[Any, Any, Any]:
    """Take the oldest message that *match* accepts, waiting for one if needed.

    *match* is ``None`` (any message), a type or tuple of types (``isinstance``), or a
    predicate. Messages it does not accept stay in the mailbox, in order, for later receives.
    With *timeout* (seconds) it raises :class:`ReceiveTimeout` if no matching message came in
    time; ``timeout=0`` only looks at what is already there.

    >>> async def main():
    ...     beam.send(beam.self(), "b")
    ...     beam.send(beam.self(), ("a", 1))
    ...     assert await beam.receive(tuple) == ("a", 1)     # "b" stays queued
    ...     assert await beam.receive() == "b"
    """
    # A plain function returning the coroutine: one frame less per waiting process.
    return current_process("beam.receive").receive(match, timeout)


def link(pid: Pid) -> None:
    """Link the caller and *pid*: when either exits abnormally, the other gets the signal.

    Linking twice is a no-op. If *pid* is not alive, a caller that traps exits gets
    ``Exit(pid, "noproc")``; one that does not raises :class:`NoProcError` (an error, not
    an exit: OTP's ``error:noproc``).

    >>> async def main():
    ...     beam.link(other_pid)
    """
    proc = current_process("beam.link")
    if pid == proc.pid:
        return
    node = proc.node
    if type(pid) is Pid and pid.node is not None:
        _remote_link(proc, pid)
        return
    target = node._procs.get(local_id(pid, "beam.link"))
    if target is None:
        if proc.trap_exit:
            node._send_to(proc, Exit(pid, NOPROC))
            return
        raise NoProcError(f"cannot link {proc.pid} to {pid}: it is not alive (noproc)")
    if proc.links is None:
        proc.links = set()
    if target.links is None:
        target.links = set()
    proc.links.add(pid)
    target.links.add(proc.pid)


def unlink(pid: Pid) -> None:
    """Remove the link between the caller and *pid* (if any), in both directions.

    An ``Exit`` message that already reached a trapping caller stays in its mailbox.

    >>> async def main():
    ...     beam.unlink(other_pid)
    """
    proc = current_process("beam.unlink")
    if type(pid) is Pid and pid.node is not None:
        if proc.node._dist is not None:
            proc.node._dist.unlink(proc, pid)
        elif proc.links:
            proc.links.discard(pid)
        return
    if proc.links:
        proc.links.discard(pid)
    target = proc.node._procs.get(local_id(pid, "beam.unlink"))
    if target is not None and target.links:
        target.links.discard(proc.pid)


def _remote_link(proc: Process, pid: Pid) -> None:
    dist = proc.node._dist
    if dist is not None:
        dist.link(proc, pid)
    else:  # this node is in no cluster: the other node cannot be reached
        proc.node._exit_signal(proc, pid, NOCONNECTION, linked=True)


def remote_monitor(proc: Process, ref: Ref, dest: Pid | tuple[str, str]) -> None:
    """Make *proc* monitor *dest* on another node under *ref* (``Down`` with
    ``"noconnection"`` at once if this node is in no cluster)."""
    if type(dest) is tuple and (
        len(dest) != 2 or not isinstance(dest[0], str) or not isinstance(dest[1], str)
    ):
        raise TypeError(f"a remote name is a (name, node) pair of str, got {dest!r}")
    node = proc.node
    if type(dest) is tuple and dest[1] == _pubsub(node).adapter.node_name:
        target = node._lookup(dest[0])
        if target is None:
            node._send_to(proc, Down(ref, dest, NOPROC))
        else:
            watch(proc, ref, target)
        return
    if node._dist is None:
        if not proc.deliver_reply(ref, Died(NOCONNECTION)):
            node._send_to(proc, Down(ref, dest, NOCONNECTION))
        return
    node._dist.monitor(proc, ref, dest)


def monitor_node(node: str, flag: bool = True) -> None:
    """Have the caller get ``NodeDown(node)`` when the node called *node* goes down.

    As Erlang's ``monitor_node/2``: if the node is not up (or this node is in no cluster),
    ``NodeDown(node)`` arrives at once; each call adds one more notification;
    ``flag=False`` removes one. A node is down when its heartbeats stop for the cluster's
    ``timeout`` (5 s by default), when it leaves, or when it restarts (a new incarnation).

    >>> async def main():
    ...     beam.monitor_node("chat2")
    ...     down = await beam.receive(beam.NodeDown)
    """
    proc = current_process("beam.monitor_node")
    if not isinstance(node, str) or not node:
        raise TypeError(f"monitor_node expects a node name (a non-empty str), got {node!r}")
    dist = proc.node._dist
    if dist is not None:
        dist.monitor_node(proc, node, flag)
    elif flag and node != _pubsub(proc.node).adapter.node_name:
        proc.node._send_to(proc, NodeDown(node))


def monitor_nodes(flag: bool) -> None:
    """Subscribe the caller to ``NodeUp(node)`` and ``NodeDown(node)`` for every node of
    the cluster that comes up or goes down (Erlang's ``net_kernel:monitor_nodes/1``).

    ``flag=False`` unsubscribes. A restarted node (same name, new incarnation) gives
    ``NodeDown`` then ``NodeUp``. On a node in no cluster nothing ever arrives.

    >>> async def main():
    ...     beam.monitor_nodes(True)
    ...     event = await beam.receive((beam.NodeUp, beam.NodeDown))
    """
    proc = current_process("beam.monitor_nodes")
    dist = proc.node._dist
    if dist is not None:
        dist.monitor_nodes(proc, bool(flag))


def monitor(dest: Pid | str | tuple[str, str]) -> Ref:
    """Monitor *dest* (a pid, a registered name, or ``(name, node)``); returns the ref.

    When the process exits the caller receives ``Down(ref, pid, reason)``. If it does not
    exist, ``Down(ref, dest, "noproc")`` arrives at once. Each call makes a new, independent
    monitor. A process of another node is monitored the same way; if its node goes down (or
    is not up), the reason is ``"noconnection"``.

    >>> async def main():
    ...     ref = beam.monitor(pid)
    ...     down = await beam.receive(beam.Down)
    """
    proc = current_process("beam.monitor")
    node = proc.node
    ref = node._make_ref()
    if isinstance(dest, tuple) or (type(dest) is Pid and dest.node is not None):
        remote_monitor(proc, ref, dest)
        return ref
    target = node._lookup(dest)
    if target is None:
        node._send_to(proc, Down(ref, dest, NOPROC))
    else:
        watch(proc, ref, target)
    return ref


def demonitor(ref: Ref, *, flush: bool = False, info: bool = False) -> bool:
    """Turn off the monitor *ref*; returns ``True``, as Erlang's ``demonitor/1`` does.

    With ``flush=True`` a ``Down`` for *ref* already in the mailbox is removed too, so the
    caller never sees it. With ``info=True`` (Erlang's ``[info]`` option) the result says
    whether the monitor was still active: false if it had already fired (or was turned off
    before, or was never a monitor of the caller).

    >>> async def main():
    ...     ref = beam.monitor(pid)
    ...     beam.demonitor(ref, flush=True)
    ...     assert beam.demonitor(ref, info=True) is False    # already off
    """
    proc = current_process("beam.demonitor")
    active = unwatch(proc.node, proc, ref)
    if flush and proc.queue:
        for index, message in enumerate(proc.queue):
            if type(message) is Down and message.ref == ref:
                del proc.queue[index]
                break
    return active if info else True


def exit(dest: Pid | str, reason: Any) -> None:  # noqa: A001 - Erlang's name for it
    """Send an exit signal with *reason* to *dest*; the caller keeps running.

    The target dies with *reason* unless it traps exits (then it gets ``Exit(sender,
    reason)``). ``"normal"`` is ignored by a non-trapping target; ``"kill"`` cannot be
    trapped and the target dies as ``"killed"``. Signalling yourself with a reason that
    kills raises :class:`ProcessExit` at once.

    >>> async def main():
    ...     beam.exit(pid, "shutdown")
    ...     beam.exit(stuck_pid, "kill")
    """
    node = current_node("beam.exit")
    if type(dest) is Pid and dest.node is not None:
        if node._dist is not None:
            caller = _optional_process()
            node._dist.exit(NODE_PID if caller is None else caller.pid, dest, reason)
        return
    target = resolve_exit_target(node, dest)
    if target is None:
        return
    sender = _optional_process()
    # A signal from code that is not a process (a plain trio task) comes from the node itself.
    sender_pid = NODE_PID if sender is None else sender.pid
    node._exit_signal(target, sender_pid, reason, linked=False)
    if sender is target and target.pending_exit is not NOT_EXITING:
        raise ProcessExit(target.pending_exit)


def trap_exit(flag: bool) -> bool:
    """Set whether exit signals become ``Exit`` messages for the caller; return the old flag.

    ``"kill"`` sent with :func:`exit` is never trapped.

    >>> async def main():
    ...     beam.trap_exit(True)
    ...     child = beam.spawn_link(worker)
    ...     msg = await beam.receive(beam.Exit)   # instead of dying with the child
    """
    proc = current_process("beam.trap_exit")
    old = proc.trap_exit
    proc.trap_exit = bool(flag)
    return old


def is_alive(pid: Pid) -> bool:
    """True while the process *pid* has not finished exiting.

    >>> async def main():
    ...     assert beam.is_alive(beam.self())
    """
    return local_id(pid, "beam.is_alive") in current_node("beam.is_alive")._procs


def register(name: str, pid: Pid) -> None:
    """Register *name* for *pid*; sends to the name then reach it. Released when it exits.

    Raises :class:`AlreadyRegistered` if a live process holds the name, :class:`NoProc` if
    *pid* is not alive, :class:`ValueError` if *pid* already has a name.

    >>> async def main():
    ...     beam.register("logger", beam.spawn(logger_loop))
    ...     beam.send("logger", "started")
    """
    current_node("beam.register")._register(name, pid)


def unregister(name: str) -> bool:
    """Remove the registered *name*; false if no process held it.

    >>> async def main():
    ...     beam.unregister("logger")
    """
    return current_node("beam.unregister")._unregister(name)


def whereis(name: str) -> Pid | None:
    """The pid registered as *name*, or ``None``.

    >>> async def main():
    ...     pid = beam.whereis("logger")
    """
    return current_node("beam.whereis")._whereis(name)


def registered() -> list[str]:
    """All names registered on the node.

    >>> async def main():
    ...     print(beam.registered())
    """
    return list(current_node("beam.registered")._names)


def make_ref() -> Ref:
    """A new reference, unique within the node (to tag requests and replies).

    >>> async def main():
    ...     ref = beam.make_ref()
    """
    return current_node("beam.make_ref")._make_ref()


def send_after(dest: Pid | str, message: Any, delay: float) -> Ref:
    """Send *message* to *dest* after *delay* seconds; returns the timer's reference.

    The message is never sent synchronously, even with ``delay=0``. A timer aimed at a pid is
    cancelled when that process exits; one aimed at a name resolves the name when it fires and
    is dropped silently if nobody holds it then.

    >>> async def main():
    ...     beam.send_after(beam.self(), "tick", 1.0)
    ...     assert await beam.receive() == "tick"
    """
    node = current_node("beam.send_after")
    return _set_timer(node, dest, message, delay, "beam.send_after", tagged=False)


def start_timer(dest: Pid | str, message: Any, delay: float) -> Ref:
    """Like :func:`send_after`, but *dest* gets ``TimerTimeout(ref, message)``.

    Erlang's ``erlang:start_timer/3``: the message carries the timer's reference, so a
    process with several timers knows which one fired (and can ignore a stale one).
    :func:`read_timer` and :func:`cancel_timer` work on it as on any timer.

    >>> async def main():
    ...     ref = beam.start_timer(beam.self(), "tick", 1.0)
    ...     assert await beam.receive() == beam.TimerTimeout(ref, "tick")
    """
    node = current_node("beam.start_timer")
    return _set_timer(node, dest, message, delay, "beam.start_timer", tagged=True)


def _set_timer(
    node: Node, dest: Pid | str, message: Any, delay: float, what: str, *, tagged: bool
) -> Ref:
    if not isinstance(dest, (Pid, str)):
        raise TypeError(f"{what} needs a beam.Pid or a registered name, got {dest!r}")
    if type(dest) is Pid:
        local_id(dest, what)
    if node._copy_messages:  # copy when the timer is set, as a send would
        message = copy.deepcopy(message)
    ref = node._make_ref()
    if tagged:
        message = TimerTimeout(ref, message)
    node._timers.start(ref, delay, node._deliver_timer, (dest, message))
    if type(dest) is Pid:
        target = node._procs.get(dest.id)
        if target is None:
            node._timers.cancel(ref)
        else:
            if target.timers is None:
                target.timers = set()
            target.timers.add(ref.id)
    return ref


def cancel_timer(ref: Ref) -> float | None:
    """Cancel timer *ref* (of :func:`send_after` or :func:`start_timer`); the seconds it had
    left, or ``None`` if it had fired or was gone.

    ``None`` does not tell whether the message has been received yet.

    >>> async def main():
    ...     ref = beam.send_after(beam.self(), "tick", 5.0)
    ...     assert beam.cancel_timer(ref) is not None
    """
    return current_node("beam.cancel_timer")._timers.cancel(ref)


def read_timer(ref: Ref) -> float | None:
    """Seconds left on timer *ref*, or ``None`` if it is not pending.

    >>> async def main():
    ...     ref = beam.send_after(beam.self(), "tick", 5.0)
    ...     print(beam.read_timer(ref))
    """
    return current_node("beam.read_timer")._timers.remaining(ref)


def system_monitor(*, long_schedule: float | None, receiver: Pid | None = None) -> None:
    """Set (or with ``long_schedule=None`` clear) the node's long-schedule monitor.

    Every task step longer than *long_schedule* seconds is logged with the culprit's pid and
    stack; with *receiver*, a :class:`LongSchedule` message is also sent there. A new setting
    replaces the old one, as in Erlang.

    >>> async def main():
    ...     beam.system_monitor(long_schedule=0.05, receiver=beam.self())
    """
    node = current_node("beam.system_monitor")
    if node._long_schedule is not None:
        trio.lowlevel.remove_instrument(node._long_schedule)
        node._long_schedule = None
    if long_schedule is not None:
        node._long_schedule = LongScheduleMonitor(node, long_schedule, receiver)
        trio.lowlevel.add_instrument(node._long_schedule)


def _optional_process() -> Process | None:
    return process_var.get(None)
