"""Node-side steps of the multi-node link, monitor and call tests (run with the ``run`` command
of :mod:`tests.support.nodes`).

Every process these steps start reports what happens to it as events: ``signal`` (an
``Exit`` or ``Down`` it received, or a ``NodeUp``/``NodeDown``) and ``died`` (how a watched
process ended, seen by a local monitor).
"""

from __future__ import annotations

import contextlib
from typing import Any

import beam
from tests.support.nodes import emit

_PID_QUESTION = "pid?"


async def _target() -> None:
    """Answer ``(sender, "pid?")`` with ``("pid", own pid)``; exit as told by ``("exit", r)``."""
    while True:
        message = await beam.receive()
        if type(message) is tuple and message[1:] == (_PID_QUESTION,):
            beam.send(message[0], ("pid", beam.self()))
        elif type(message) is tuple and message[:1] == ("exit",):
            reason = message[1]
            if reason == "crash":
                raise RuntimeError("crashed on purpose")
            raise beam.ProcessExit(reason)


async def _observe(name: str, pid: beam.Pid) -> None:
    ref = beam.monitor(pid)
    down = await beam.receive(lambda m: type(m) is beam.Down and m.ref == ref)
    emit({"event": "died", "name": name, "reason": _text(down.reason)})


def _text(reason: Any) -> str:
    return reason if isinstance(reason, str) else repr(reason)


def _start(name: str, fn: Any, *args: Any) -> beam.Pid:
    pid = beam.spawn(fn, *args)
    beam.register(name, pid)
    beam.spawn(_observe, name, pid)
    return pid


async def target(name: str) -> str:
    """Start a target process registered as *name*; answer its pid's repr."""
    return repr(_start(name, _target))


async def stop(name: str, reason: str) -> None:
    """Make the local target *name* exit with *reason* (``"crash"`` raises an exception)."""
    beam.send(name, ("exit", reason))


async def kill(name: str) -> None:
    """Kill the local process *name* (untrappable)."""
    pid = beam.whereis(name)
    assert pid is not None
    beam.exit(pid, "kill")


async def _ask_pid(name: str, node: str) -> beam.Pid:
    beam.send((name, node), (beam.self(), _PID_QUESTION))
    _, pid = await beam.receive(lambda m: type(m) is tuple and m[:1] == ("pid",), timeout=5)
    assert type(pid) is beam.Pid
    return pid


async def _watcher(name: str, kind: str, dest: Any, trap: bool, started: beam.Pid) -> None:
    beam.trap_exit(trap)
    if kind == "link":
        beam.link(dest)
    elif kind == "monitor":
        beam.monitor(dest)
    elif kind == "monitor_node":
        beam.monitor_node(dest)
    elif kind == "monitor_nodes":
        beam.monitor_nodes(True)
    if kind in ("link", "monitor"):
        # The target's answer comes after the link or monitor arrived there (signals and
        # messages between two nodes keep their order): the test may act on it now.
        beam.send(dest, (beam.self(), _PID_QUESTION))
        with contextlib.suppress(beam.ReceiveTimeout):
            await beam.receive(lambda m: type(m) is tuple and m[:1] == ("pid",), timeout=1)
    beam.send(started, ("watching", name))
    while True:
        message = await beam.receive()
        if type(message) is tuple and message[:1] == ("exit",):
            raise beam.ProcessExit(message[1])
        if type(message) in (beam.Exit, beam.Down):
            emit(
                {
                    "event": "signal",
                    "watcher": name,
                    "type": type(message).__name__,
                    "reason": _text(message.reason),
                    "from": repr(message.pid),
                }
            )
        elif type(message) in (beam.NodeUp, beam.NodeDown):
            emit(
                {
                    "event": "signal",
                    "watcher": name,
                    "type": type(message).__name__,
                    "node": message.node,
                }
            )


async def watch(
    name: str, kind: str, target: str = "", node: str = "", trap: bool = False, by: str = "pid"
) -> str:
    """Start a process *name* that links to / monitors the process *target* on *node* (by
    ``pid``, or by ``name`` for a monitor), or monitors the node *node* (``monitor_node``),
    or every node (``monitor_nodes``); it reports each signal it gets."""
    dest: Any = node
    if kind in ("link", "monitor"):
        dest = (target, node) if by == "name" else await _ask_pid(target, node)
    _start(name, _watcher, name, kind, dest, trap, beam.self())
    await beam.receive(lambda m: m == ("watching", name), timeout=5)
    return repr(dest)


async def stop_watcher(name: str, reason: str) -> None:
    """Make the watcher *name* exit with *reason*."""
    beam.send(name, ("exit", reason))


async def signal(target: str, node: str, reason: str) -> None:
    """Send the exit signal *reason* to the process *target* on *node* (from a process)."""
    pid = await _ask_pid(target, node)
    beam.exit(pid, reason)


class Counter(beam.GenServer[int]):
    """A server to call across nodes: ``"get"``, ``"whoami"``, ``("add", n)``, ``"crash"``,
    ``"hang"`` (never answers)."""

    async def init(self, arg: Any) -> beam.Ok[int]:
        return beam.Ok(0)

    async def handle_call(self, request: Any, from_: beam.From, state: int) -> Any:
        if request == "get":
            return beam.Reply(state, state)
        if request == "whoami":
            return beam.Reply(beam.self(), state)
        if type(request) is tuple and request[0] == "add":
            return beam.Reply(state + request[1], state + request[1])
        if request == "crash":
            raise RuntimeError("the counter crashed")
        if request == "hang":
            return beam.NoReply(state)
        raise ValueError(f"unknown request {request!r}")

    async def handle_cast(self, request: Any, state: int) -> beam.NoReply[int]:
        return beam.NoReply(state + request)


async def counter(name: str) -> str:
    """Start a :class:`Counter` registered as *name* (not linked to the command loop)."""
    pid = await Counter.start(name=name)
    assert pid is not None
    beam.spawn(_observe, name, pid)
    return repr(pid)


async def call(name: str, node: str, request: Any, timeout: float = 5.0) -> dict[str, Any]:
    """Call ``(name, node)`` with *request* (a list becomes a tuple); answer what happened."""
    if isinstance(request, list):
        request = tuple(request)
    try:
        value = await beam.call((name, node), request, timeout=timeout)
    except beam.CallTimeout:
        return {"timeout": True}
    except beam.ProcessExit as error:
        return {"exit": _text(error.reason[0]), "where": repr(error.reason[1])}
    return {"value": value if isinstance(value, int) else repr(value)}


async def call_in_background(name: str, node: str, request: str, timeout: float) -> None:
    """Start a process that calls ``(name, node)`` and reports the outcome as ``called``."""

    async def caller() -> None:
        outcome = await call(name, node, request, timeout)
        emit({"event": "called", **outcome})

    beam.spawn(caller)


async def cast(name: str, node: str, amount: int) -> None:
    """Cast *amount* to the counter ``(name, node)``."""
    beam.cast((name, node), amount)


async def nodes() -> list[str]:
    """This node's view of the cluster."""
    return beam.nodes()
