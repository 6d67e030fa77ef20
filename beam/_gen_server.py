"""GenServer: the generic server loop, with your callbacks supplying only the specifics.

Subclass :class:`GenServer` and write async callbacks; the library owns the receive loop,
replies, timeouts, ``handle_continue``, termination and crash reports::

    class Counter(beam.GenServer[int]):
        async def init(self, start: int) -> beam.Ok[int]:
            return beam.Ok(start)

        async def handle_call(self, request, from_, count):
            return beam.Reply(count, count)

        async def handle_cast(self, request, count):
            return beam.NoReply(count + request)

    pid = await Counter.start_link(0, name="counter")
    beam.cast("counter", 5)
    assert await beam.call("counter", "get") == 5

The state is passed to and returned from every callback (as in OTP), so ``terminate`` and
crash reports always see the last good state. Callbacks return the frozen result types below;
anything else stops the server with :class:`BadReturnValue` naming the value. A result with
``hibernate=True`` compacts the process and its state before it waits for the next message
(OTP's ``hibernate``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from ._api import unlink
from ._call import CallRequest, CastRequest, end_request, reply, request
from ._crash import log_crash
from ._errors import AlreadyRegistered, BadReturnValue, ProcessExit, ReceiveTimeout, StartError
from ._hibernate import hibernate
from ._node import current_process, watch
from ._process import NOT_EXITING, TIMED_OUT, Died, Process, process_var
from ._types import KILL, NORMAL, Exit, From, Pid, is_normal_exit

__all__ = [
    "TIMEOUT",
    "Continue",
    "GenServer",
    "Ignore",
    "NoReply",
    "Ok",
    "Reply",
    "Stop",
]

S = TypeVar("S")
logger = logging.getLogger("beam.gen_server")

#: The message ``handle_info`` gets when a callback's ``timeout`` passed with no message.
TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Continue:
    """Run ``handle_continue(arg, state)`` before taking any further message."""

    arg: Any


@dataclass(frozen=True, slots=True)
class Ok(Generic[S]):
    """``init`` succeeded: start with *state*; optionally ``continue_``, a ``timeout``, or
    ``hibernate=True`` (compact the process before waiting: see :mod:`beam._hibernate`)."""

    state: S
    continue_: Continue | None = None
    timeout: float | None = None
    hibernate: bool = False


@dataclass(frozen=True, slots=True)
class Reply(Generic[S]):
    """Answer the call with *reply* and go on with *state*."""

    reply: Any
    state: S
    continue_: Continue | None = None
    timeout: float | None = None
    hibernate: bool = False


@dataclass(frozen=True, slots=True)
class NoReply(Generic[S]):
    """Go on with *state* (from ``handle_call``: reply later with :func:`beam.reply`)."""

    state: S
    continue_: Continue | None = None
    timeout: float | None = None
    hibernate: bool = False


@dataclass(frozen=True, slots=True)
class Stop(Generic[S]):
    """Stop the server with *reason* after ``terminate(reason, state)``.

    From ``handle_call``, *reply* (if given) is sent to the caller once ``terminate`` has
    run, as OTP does. From ``init``, ``Stop(reason)`` makes ``start_link`` raise
    :class:`StartError`.
    """

    reason: Any
    state: S | None = None
    reply: Any = None
    has_reply: bool = False

    @staticmethod
    def replying(reason: Any, reply: Any, state: S) -> Stop[S]:
        """Stop with *reason* and answer the call with *reply* (after ``terminate``)."""
        return Stop(reason, state, reply, True)


@dataclass(frozen=True, slots=True)
class Ignore:
    """``init`` declines to start: the process exits ``"normal"``, ``start_link`` returns
    ``None``."""


@dataclass(frozen=True, slots=True)
class _StopRequest:
    from_: From
    reason: Any


_UNSET: Any = object()
_STARTED = ("ok", None)


class GenServer(Generic[S]):
    """Base class of servers; override the callbacks you need.

    Required: ``init``. Optional, with defaults: ``handle_call`` and ``handle_cast`` (raise:
    an unexpected request crashes the server), ``handle_info`` (logs and ignores),
    ``handle_continue`` (raises), ``terminate`` (does nothing), ``format_status`` (the state
    as is). A new instance of the class serves each started process.
    """

    async def init(self, arg: Any) -> Ok[S] | Stop[S] | Ignore:
        """Build the first state from the ``start_link`` argument."""
        raise NotImplementedError(f"{type(self).__qualname__} must define `async def init`")

    async def handle_call(
        self, request: Any, from_: From, state: S
    ) -> Reply[S] | NoReply[S] | Stop[S]:
        """Answer a :func:`beam.call`."""
        raise NotImplementedError(
            f"{type(self).__qualname__} got call {request!r:.100} but defines no handle_call"
        )

    async def handle_cast(self, request: Any, state: S) -> NoReply[S] | Stop[S]:
        """Handle a :func:`beam.cast`."""
        raise NotImplementedError(
            f"{type(self).__qualname__} got cast {request!r:.100} but defines no handle_cast"
        )

    async def handle_info(self, message: Any, state: S) -> NoReply[S] | Stop[S]:
        """Handle any other message (``Down``, ``Exit`` when trapping, timers, ``TIMEOUT``)."""
        logger.warning(
            "%s %s received an unexpected message and has no handle_info: %r",
            type(self).__qualname__,
            current_process().pid,
            message,
        )
        return NoReply(state)

    async def handle_continue(self, arg: Any, state: S) -> NoReply[S] | Stop[S]:
        """Continue work asked for with ``continue_=Continue(arg)``."""
        raise NotImplementedError(
            f"{type(self).__qualname__} returned Continue({arg!r:.100}) but defines no "
            "handle_continue"
        )

    async def terminate(self, reason: Any, state: S) -> None:
        """Clean up before the server exits with *reason* (not called when killed)."""

    def format_status(self, state: S) -> Any:
        """What crash reports show of *state*; override to hide secrets."""
        return state

    # -- starting and stopping ------------------------------------------------------------

    @classmethod
    async def start_link(
        cls, arg: Any = None, *, name: str | None = None, timeout: float | None = None
    ) -> Pid | None:
        """Start a server linked to the caller; return its pid once ``init`` has returned.

        With *name* the server is registered before ``init`` runs. If ``init`` raises or
        returns ``Stop(reason)``, the name is released and this raises :class:`StartError`
        (the caller is not killed by the failed start). ``Ignore()`` returns ``None``.

        >>> async def main():
        ...     pid = await Counter.start_link(0, name="counter")
        """
        return await _start(cls, arg, name, timeout, link=True)

    @classmethod
    async def start(
        cls, arg: Any = None, *, name: str | None = None, timeout: float | None = None
    ) -> Pid | None:
        """Like :meth:`start_link` without the link.

        >>> async def main():
        ...     pid = await Counter.start(0)
        """
        return await _start(cls, arg, name, timeout, link=False)

    @staticmethod
    async def stop(
        server: Pid | str, reason: Any = NORMAL, *, timeout: float | None = None
    ) -> None:
        """Stop *server* with *reason*, waiting until ``terminate`` ran and it exited.

        >>> async def main():
        ...     await beam.GenServer.stop("counter")
        """
        await request(server, _StopRequest, reason, timeout, "beam.GenServer.stop")


async def _start(
    cls: type[GenServer[Any]], arg: Any, name: str | None, timeout: float | None, *, link: bool
) -> Pid | None:
    caller = process_var.get(None)
    if caller is None:
        caller = current_process(f"{cls.__qualname__}.start_link")
    node = caller.node
    if name is not None:
        holder = node._whereis(name)
        if holder is not None:
            raise AlreadyRegistered(
                f"cannot start {cls.__qualname__} as {name!r}: {holder} already holds that name",
                holder,
            )
    ref = node._make_ref()
    caller.open_reply(ref)
    pid, _ = node._spawn(
        _serve, (cls, arg, name, From(caller.pid, ref)), parent=caller, link=link, initial_call=cls
    )
    target = node._procs[pid.id]
    watch(caller, ref, target)  # tagged with the slot's ref: a death during init fills it
    try:
        result = await caller.wait_reply(ref, timeout)
        if result is TIMED_OUT:
            # As proc_lib: unlink first, so the killed server's exit cannot reach the caller.
            if caller.links:
                caller.links.discard(pid)
            if target.links:
                target.links.discard(caller.pid)
            node._exit_signal(target, caller.pid, KILL, linked=False)
            raise StartError("timeout")
    finally:
        end_request(node, caller, ref)
    if type(result) is Died:
        raise StartError(result.reason)
    status, value = result
    if status == "ok":
        return pid
    if status == "ignore":
        return None
    if isinstance(value, AlreadyRegistered):  # lost a race for the name: an error, not a crash
        raise value
    raise StartError(value)


async def _serve(cls: type[GenServer[Any]], arg: Any, name: str | None, starter: From) -> None:
    proc = current_process()
    node = proc.node
    if name is not None:
        try:
            node._register(name, proc.pid)
        except AlreadyRegistered as exc:
            _fail_start(proc, None, starter, exc)
            return  # exit normal, as OTP's {error, {already_started, Pid}}
    server = cls()
    try:
        result = await server.init(arg)
        if not isinstance(result, (Ok, Stop, Ignore)):
            raise BadReturnValue(
                "init", result, "beam.Ok(state), beam.Stop(reason) or beam.Ignore()"
            )
    except Exception as exc:
        # As exit(Reason) in OTP's init: a ProcessExit's reason is the reason, not the
        # exception (the starter's StartError, monitors and links all see it).
        reason: Any = exc.reason if isinstance(exc, ProcessExit) else exc
        _fail_start(proc, name, starter, reason)
        if not is_normal_exit(reason):
            log_crash(proc.pid, name, cls, reason, kind="GenServer")
        raise ProcessExit(reason, reported=True) from exc
    if isinstance(result, Ignore):
        # OTP: start_link returns ignore and the process exits normal *while linked*, so a
        # caller that traps exits gets Exit(pid, "normal").
        if name is not None:
            node._unregister(name)
        reply(starter, ("ignore", None))
        return
    if isinstance(result, Stop):
        _fail_start(proc, name, starter, result.reason)
        if not is_normal_exit(result.reason):
            log_crash(proc.pid, name, cls, result.reason, kind="GenServer")
        raise ProcessExit(result.reason, reported=True)
    starting = node._procs.get(starter.pid.id)  # the starter is local: answer its slot
    if starting is not None:
        starting.deliver_reply(starter.ref, _STARTED)
    await _loop(server, proc.parent, result)


def _fail_start(proc: Process, name: str | None, starter: From, reason: Any) -> None:
    """Release the name and the link to the starter before saying the start failed."""
    if name is not None:
        proc.node._unregister(name)
    unlink(starter.pid)
    if reason is not None:
        reply(starter, ("error", reason))


async def _loop(server: GenServer[Any], parent: Pid | None, first: Ok[Any]) -> None:
    proc = process_var.get()
    node = proc.node
    procs = node._procs
    state = first.state
    if first.hibernate:
        state = hibernate(proc, state)
    pending_continue = first.continue_
    timeout = first.timeout
    message: Any = _UNSET
    result: Any
    try:
        while True:
            if pending_continue is not None:
                result = await server.handle_continue(pending_continue.arg, state)
                state, pending_continue, timeout = _next(result, "handle_continue", state)
                continue
            if timeout is None:
                # Only the runtime's frames are on the stack while this waits (no scope of
                # its own either): an exit signal may tear the process down at once.
                proc.idle_in_loop = True
                message = await proc.receive(None, None)
                proc.idle_in_loop = False
            else:
                try:
                    message = await proc.receive(None, timeout)
                except ReceiveTimeout:
                    message = TIMEOUT
            kind = type(message)
            if kind is CallRequest:
                from_ = message.from_
                result = await server.handle_call(message.request, from_, state)
                kind = type(result)
                if kind is Reply:  # the hot path: answer straight into the caller's slot
                    if from_.pid.node is not None:  # a caller on another node
                        reply(from_, result.reply)
                    elif (caller := procs.get(from_.pid.id)) is not None:
                        value = result.reply
                        if node._copy_messages:
                            value = copy.deepcopy(value)
                        caller.deliver_reply(from_.ref, value)
                    state = result.state
                    if result.hibernate:
                        state = hibernate(proc, state)
                    pending_continue = result.continue_
                    timeout = result.timeout
                    continue
                if kind is Stop and result.has_reply:
                    # OTP replies only once terminate has run (see _terminate).
                    raise _Stopping(
                        result.reason,
                        result.state if result.state is not None else state,
                        (from_, result.reply),
                    )
                state, pending_continue, timeout = _next(result, "handle_call", state)
            elif kind is CastRequest:
                result = await server.handle_cast(message.request, state)
                state, pending_continue, timeout = _next(result, "handle_cast", state)
            elif kind is _StopRequest:
                await _stop_on_request(server, proc, message, state)
            elif kind is Exit and message.pid == parent and proc.trap_exit:
                raise _Stopping(message.reason, state)
            else:
                result = await server.handle_info(message, state)
                state, pending_continue, timeout = _next(result, "handle_info", state)
    except _Stopping as stopping:
        await _terminate(server, proc, stopping.reason, stopping.state, message, stopping.reply)
    except ProcessExit as exc:
        # An exit signal that struck this process (exit(self(), ...)), or a stop that already
        # ran terminate, ends it at once; a ProcessExit raised by a callback (OTP's
        # exit(Reason) in a callback, or a nested call's exit) runs terminate(reason, state).
        if exc.reported or proc.pending_exit is not NOT_EXITING:
            raise
        await _terminate(server, proc, exc.reason, state, message)
    except Exception as exc:
        await _terminate(server, proc, exc, state, message)


async def _stop_on_request(
    server: GenServer[Any], proc: Process, request: _StopRequest, state: Any
) -> NoReturn:
    """``GenServer.stop``: terminate once, report an abnormal reason, answer, exit."""
    reason = request.reason
    try:
        await server.terminate(reason, state)
    except ProcessExit as exc:  # the caller sees the server die with it (no reply)
        reason = exc.reason
    except Exception as exc:
        reason = exc
    if not is_normal_exit(reason):
        log_crash(
            proc.pid,
            proc.name,
            type(server),
            reason,
            kind="GenServer",
            extra={"last_message": request, "state": _status(server, state)},
        )
    if reason is request.reason:
        reply(request.from_, None)
    raise ProcessExit(reason, reported=True)


def _status(server: GenServer[Any], state: Any) -> Any:
    try:
        return server.format_status(state)
    except Exception as exc:
        return f"<format_status failed: {exc!r}>"


class _Stopping(Exception):
    def __init__(self, reason: Any, state: Any, reply: tuple[From, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state
        self.reply = reply


def _next(result: Any, callback: str, state: Any) -> tuple[Any, Continue | None, float | None]:
    kind = type(result)
    if kind is NoReply or (kind is Reply and callback == "handle_call"):
        if result.hibernate:
            return hibernate(current_process(), result.state), result.continue_, result.timeout
        return result.state, result.continue_, result.timeout
    if kind is Stop:
        raise _Stopping(result.reason, result.state if result.state is not None else state)
    expected = (
        "beam.Reply(reply, state), beam.NoReply(state) or beam.Stop(reason, state)"
        if callback == "handle_call"
        else "beam.NoReply(state) or beam.Stop(reason, state)"
    )
    raise BadReturnValue(callback, result, expected)


async def _terminate(
    server: GenServer[Any],
    proc: Process,
    reason: Any,
    state: Any,
    last_message: Any,
    answer: tuple[From, Any] | None = None,
) -> None:
    """Run ``terminate``, then send the reply of ``Stop.replying`` (if any), then exit.

    As OTP's gen_server: the reply goes out after ``terminate`` (even if it raised), so a
    caller that got it can rely on the cleanup having run.
    """
    try:
        await server.terminate(reason, state)
    except ProcessExit as exc:
        reason = exc.reason
    except Exception as exc:
        reason = exc
    if answer is not None:
        reply(*answer)
    if not is_normal_exit(reason):
        status = _status(server, state)
        log_crash(
            proc.pid,
            proc.name,
            type(server),
            reason,
            kind="GenServer",
            extra={
                "last_message": None if last_message is _UNSET else last_message,
                "state": status,
            },
        )
    raise ProcessExit(reason, reported=True)
