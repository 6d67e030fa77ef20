"""Children for the supervisor tests: processes that record their life in a shared list.

Test children write ``(event, name)`` tuples to an ``Events`` list the test holds: "start"
when they start, "stop" when an exit signal ends them, "crash" when told to exit. A plain
list shared in one test is fine: it is never sent as a message.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
import trio.testing

import beam
from supervisors import ChildSpec, child_spec, worker

Events = list[tuple[str, str]]


async def member(events: Events, name: str) -> None:
    """Record "start", then follow orders: ``("exit", reason)`` exits with *reason*
    (an exception instance is raised); an exit signal records "stop"."""
    events.append(("start", name))
    try:
        while True:
            message = await beam.receive()
            if isinstance(message, tuple) and message[0] == "exit":
                events.append(("crash", name))
                reason = message[1]
                if isinstance(reason, BaseException):
                    raise reason
                raise beam.ProcessExit(reason)
    except trio.Cancelled:
        events.append(("stop", name))
        raise


class Member(beam.GenServer[Any]):
    """A GenServer twin of :func:`member`: "start" is recorded in ``init`` (so starts are
    ordered: ``start_link`` returns after it); it traps exits so a shutdown from its
    supervisor records "stop" in ``terminate``."""

    crashing = False

    async def init(self, arg: tuple[Events, str]) -> beam.Ok[Any]:
        beam.trap_exit(True)
        events, name = arg
        events.append(("start", name))
        return beam.Ok(arg)

    async def handle_call(self, request: Any, from_: beam.From, state: Any) -> beam.Reply[Any]:
        return beam.Reply(request, state)

    async def handle_info(self, message: Any, state: Any) -> beam.NoReply[Any] | beam.Stop[Any]:
        events, name = state
        if isinstance(message, tuple) and message[0] == "exit":
            events.append(("crash", name))
            self.crashing = True
            if isinstance(message[1], BaseException):
                raise message[1]
            return beam.Stop(message[1], state)
        return beam.NoReply(state)

    async def terminate(self, reason: Any, state: Any) -> None:
        if not self.crashing:
            events, name = state
            events.append(("stop", name))


def member_spec(events: Events, name: str, **options: Any) -> ChildSpec:
    """The spec of a :class:`Member` with id *name*."""
    return child_spec(Member, (events, name), id=name, **options)


def worker_spec(events: Events, name: str, **options: Any) -> ChildSpec:
    """The spec of a plain :func:`member` process with id *name*."""
    return worker(member, events, name, id=name, **options)


async def settle() -> None:
    """Let every process run until all are blocked (a crash handled, a restart done)."""
    await trio.testing.wait_all_tasks_blocked()


async def stubborn_loop(events: Events) -> None:
    """A plain process that traps exits and never exits on a signal but ``"kill"``."""
    beam.trap_exit(True)
    events.append(("start", "stubborn"))
    while True:
        message = await beam.receive()
        events.append(("ignored", repr(message)))


class Tidy(beam.GenServer[Any]):
    """Traps exits so its ``terminate`` runs when its supervisor shuts it down."""

    async def init(self, arg: tuple[Events, str]) -> beam.Ok[Any]:
        beam.trap_exit(True)
        events, name = arg
        events.append(("start", name))
        return beam.Ok(arg)

    async def handle_call(self, request: Any, from_: beam.From, state: Any) -> beam.Reply[Any]:
        return beam.Reply(request, state)

    async def terminate(self, reason: Any, state: Any) -> None:
        events, name = state
        events.append(("terminate", f"{name}:{reason}"))


class SlowTerminate(beam.GenServer[Any]):
    """Traps exits; its ``terminate`` takes *seconds* (so "shutdown" is slow to work)."""

    async def init(self, arg: tuple[Events, float]) -> beam.Ok[Any]:
        beam.trap_exit(True)
        events, _ = arg
        events.append(("start", "slow"))
        return beam.Ok(arg)

    async def terminate(self, reason: Any, state: Any) -> None:
        events, seconds = state
        events.append(("terminating", repr(reason)))
        await trio.sleep(seconds)
        events.append(("terminated", repr(reason)))


def reports(records: list[logging.LogRecord], level: int = logging.ERROR) -> list[dict[str, Any]]:
    """The structured supervisor reports (``record.supervisor_report``) at *level* or above."""
    return [
        r.__dict__["supervisor_report"]
        for r in records
        if r.name == "supervisors" and r.levelno >= level and "supervisor_report" in r.__dict__
    ]
