"""The process record and its mailbox: delivery, selective receive and reply slots.

A process is a trio task plus one :class:`Process` record in its node's table. The mailbox is
a deque created on first use. Delivery is synchronous and O(1): if the owner is blocked in a
receive whose pattern accepts the message, the message is handed to it directly (it never
enters the queue); otherwise it is appended. A blocked receive therefore only ever tests new
arrivals, which is Erlang's save-queue semantics: messages already scanned keep their places.

Replies to calls do not go through the mailbox at all. A call opens a *reply slot* keyed by
its reference (OTP's process alias); a reply or the ``Down`` of the callee goes into that
slot, so waiting for it never scans the mailbox, and once the slot is closed (the call timed
out) a late reply is dropped before it can reach the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

import outcome
import trio
from trio.lowlevel import (
    Abort,
    Task,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    reschedule,
)

from ._errors import ReceiveTimeout
from ._park import park

if TYPE_CHECKING:
    from ._node import Node
    from ._types import Pid, Ref

__all__ = ["TIMED_OUT", "Died", "Match", "Process", "Reaped", "compile_match", "process_var"]

#: What :func:`beam.receive` accepts as a pattern: a type, a tuple of types, or a predicate.
Match = type | tuple[type, ...] | Callable[[Any], bool] | None
Predicate = Callable[[Any], bool]


class _NotExiting:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<not exiting>"


#: ``Process.pending_exit`` while no exit signal has struck the process.
NOT_EXITING: Final = _NotExiting()
_EMPTY: Final[Any] = object()

#: A receive that finds its message at once yields to the scheduler every this many times, so
#: a process draining a long mailbox cannot starve the others (Erlang's reduction budget).
RECEIVE_BUDGET: Final = 64


class _TimedOut:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<timed out>"


#: What a reply slot holds when its wait timed out.
TIMED_OUT: Final = _TimedOut()


class Reaped(BaseException):
    """Ends the task of a process that was torn down while idle in its behaviour's loop.

    Such a process has nothing of its own left to run (no callback on its stack, no scope,
    no ``finally``), so an exit signal tears it down at once in the signalling context (see
    ``Node._kill``) and this wakes its task only to finish it. Never seen by user code.
    """


class Died:
    """What a reply slot holds when the callee exited instead of replying."""

    __slots__ = ("reason",)

    def __init__(self, reason: Any) -> None:
        self.reason = reason


def compile_match(match: Match) -> Predicate | None:
    """Turn a receive pattern into a predicate (``None`` accepts everything)."""
    if match is None:
        return None
    if isinstance(match, type):
        cls = match
        return lambda message: isinstance(message, cls)
    if isinstance(match, tuple):
        classes = match
        if not all(isinstance(c, type) for c in classes):
            raise TypeError(
                f"receive pattern {match!r} is a tuple that is not all types; pass a type, a "
                "tuple of types or a predicate such as lambda m: m[0] == 'ok'"
            )
        return lambda message: isinstance(message, classes)
    if callable(match):
        return match
    raise TypeError(
        f"receive pattern {match!r} is neither a type, a tuple of types nor a predicate; "
        "for a value use a predicate: lambda m: m == value"
    )


class Process:
    """The runtime's record of one process. Internal: users only ever hold its :class:`Pid`."""

    __slots__ = (
        "budget",
        "cleanups",
        "handled",
        "idle_in_loop",
        "initial_call",
        "links",
        "match",
        "monitored_by",
        "monitors",
        "name",
        "node",
        "parent",
        "pending_exit",
        "pid",
        "queue",
        "replies",
        "scope",
        "task",
        "timers",
        "trap_exit",
        "wait_ref",
        "waiter",
    )

    def __init__(self, node: Node, pid: Pid, parent: Pid | None, initial_call: object) -> None:
        self.node = node
        self.pid = pid
        self.parent = parent
        self.initial_call = initial_call
        self.queue: deque[Any] | None = None
        self.waiter: Task | None = None
        self.match: Predicate | None = None
        self.wait_ref: int | None = None
        self.replies: dict[int, Any] | None = None
        self.links: set[Pid] | None = None
        # Monitor and timer tables are keyed by the reference's number: int hashing is far
        # cheaper than a Python-level __hash__, and calls touch these on every request.
        self.monitors: dict[int, Pid] | None = None
        self.monitored_by: dict[int, Pid] | None = None
        self.cleanups: list[Callable[[Pid], None]] | None = None
        self.timers: set[int] | None = None
        self.trap_exit = False
        self.name: str | None = None
        self.handled = 0
        #: True while a behaviour's loop (GenServer) waits for its next message with nothing of
        #: the process's own code on its stack: an exit signal may then tear it down at once.
        self.idle_in_loop = False
        self.budget = RECEIVE_BUDGET
        self.pending_exit: Any = NOT_EXITING
        #: Only the host process (open_node's task) has a cancel scope: see :mod:`._interrupt`.
        self.scope: trio.CancelScope | None = None
        self.task: Task | None = None

    # -- delivery (runs in the sender's context; never blocks, never raises) --------------

    def deliver(self, message: Any) -> None:
        """Put *message* in the mailbox, or hand it straight to a receive waiting for it."""
        waiter = self.waiter
        if waiter is not None and self.wait_ref is None:
            match = self.match
            if match is None:
                self.waiter = None
                reschedule(waiter, outcome.Value(message))
                return
            try:
                accepted = match(message)
            except Exception as exc:  # the pattern is the receiver's bug: raise it there
                self.waiter = None
                self.match = None
                self._enqueue(message)
                reschedule(waiter, outcome.Error(exc))
                return
            if accepted:
                self.waiter = None
                self.match = None
                reschedule(waiter, outcome.Value(message))
                return
        self._enqueue(message)

    def _enqueue(self, message: Any) -> None:
        queue = self.queue
        if queue is None:
            self.queue = queue = deque()
        queue.append(message)

    def open_reply(self, ref: Ref) -> None:
        """Start accepting one reply tagged *ref* (the alias a call hands out)."""
        if self.replies is None:
            self.replies = {}
        self.replies[ref.id] = _EMPTY

    def close_reply(self, ref: Ref) -> None:
        """Stop accepting a reply tagged *ref*: a late one is dropped."""
        if self.replies is not None:
            self.replies.pop(ref.id, None)

    def deliver_reply(self, ref: Ref, value: Any) -> bool:
        """Fill the reply slot *ref* if it is open; false if it is closed.

        Only the first value counts: a slot that is already filled keeps its value (so the
        ``Down`` of a callee that replied and then exited is absorbed, never queued).
        """
        replies = self.replies
        key = ref.id
        if replies is None or key not in replies:
            return False
        if replies[key] is _EMPTY:
            replies[key] = value
            waiter = self.waiter
            if waiter is not None and self.wait_ref == key:
                self.waiter = None
                self.wait_ref = None
                reschedule(waiter, outcome.Value(value))
        return True

    # -- receiving (runs in the owner's task) ---------------------------------------------

    def _abort_wait(self, raise_cancel: Any) -> Abort:
        self.waiter = None
        self.match = None
        self.wait_ref = None
        return Abort.SUCCEEDED

    def _claim_waiter(self) -> Task:
        if self.waiter is not None:
            raise RuntimeError(
                f"two tasks of process {self.pid} wait on its mailbox at once; only one task "
                "per process may receive (spawn another process instead of a trio task)"
            )
        task = current_task()
        self.waiter = task
        return task

    async def receive(self, match: Match, timeout: float | None) -> Any:
        """Take the oldest message accepted by *match*; see :func:`beam.receive`.

        Cancellation follows trio's rule: a receive that raises ``Cancelled`` took nothing.
        """
        predicate = compile_match(match)
        # The checkpoint comes first, so nothing is taken from the mailbox before it.
        self.budget -= 1
        if self.budget <= 0:
            self.budget = RECEIVE_BUDGET
            await checkpoint()
        else:
            await checkpoint_if_cancelled()
        queue = self.queue
        if queue:
            if predicate is None:
                self.handled += 1
                return queue.popleft()
            for index, message in enumerate(queue):
                if predicate(message):
                    del queue[index]
                    self.handled += 1
                    return message
        if timeout is not None and timeout <= 0:
            raise ReceiveTimeout(f"no matching message in the mailbox of {self.pid}")
        self._claim_waiter()
        self.match = predicate
        if timeout is None:
            message = await park(self._abort_wait)
        else:
            with trio.move_on_after(timeout):
                message = await park(self._abort_wait)
                self.handled += 1
                return message
            raise ReceiveTimeout(f"no matching message reached {self.pid} within {timeout} s")
        self.handled += 1
        return message

    async def wait_reply(self, ref: Ref, timeout: float | None) -> Any:
        """Wait until the open reply slot *ref* is filled and return its value.

        Returns :data:`TIMED_OUT` after *timeout* seconds. The slot stays open: the caller
        closes it (after turning off its monitor), so nothing tagged *ref* can ever reach the
        mailbox. The timeout is a node timer rather than a cancel scope: calls are frequent
        and a timer is several times cheaper to arm and disarm.
        """
        replies = self.replies
        key = ref.id
        if replies is None or key not in replies:
            raise RuntimeError(f"no reply slot {ref} is open in {self.pid}")
        value = replies[key]
        if value is not _EMPTY:
            await checkpoint_if_cancelled()
            return value
        self._claim_waiter()
        self.wait_ref = key
        if timeout is None:
            return await park(self._abort_wait)
        # The timer has its own reference: the call's is known to the callee (in From).
        timers = self.node._timers
        timer = self.node._make_ref()
        timers.start(timer, timeout, self._time_out, ref)
        try:
            return await park(self._abort_wait)
        finally:
            timers.discard(timer)

    def _time_out(self, timer: Ref, ref: Ref) -> None:
        self.deliver_reply(ref, TIMED_OUT)


#: The process whose code is running: set in each process's task (and inherited by the trio
#: tasks it starts); :func:`beam.self` reads it.
process_var: ContextVar[Process] = ContextVar("beam.process")
