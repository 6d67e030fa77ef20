"""Node-side steps of tests/cluster/test_global.py, run by the ``run`` command of
tests/support/nodes.py (``"tests.cluster.global_steps:<function>"``).

Processes are named by a *label* the test picks; a pid is reported as ``[node, number]`` so
the test can compare what different nodes say. Each labelled process reports the messages
it gets as ``got`` events and its exit as a ``down`` event (``repr`` of the reason).
"""

from __future__ import annotations

import time
from typing import Any

import trio

import beam

from ..support.nodes import emit

#: This node's labelled processes.
_procs: dict[str, beam.Pid] = {}


def _where(pid: beam.Pid | None) -> list[Any] | None:
    """A pid as ``[node name, number]`` (``None`` stays ``None``)."""
    if pid is None:
        return None
    return [beam.node() if pid.node is None else pid.node.name, pid.id]


async def _owner(label: str) -> None:
    while True:
        message = await beam.receive()
        if type(message) is tuple and message[:1] == ("whoami",):
            beam.send(message[1], ("iam", beam.self()))
            continue
        emit({"event": "got", "label": label, "msg": repr(message)})


async def _watch(label: str, pid: beam.Pid) -> None:
    ref = beam.monitor(pid)
    down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref)
    emit({"event": "down", "label": label, "reason": repr(down.reason)})


async def spawn(label: str) -> list[Any] | None:
    """Start a labelled process (reporting its messages and its exit, registered locally
    under its label); its pid."""
    pid = beam.spawn(_owner, label)
    beam.register(label, pid)
    beam.spawn(_watch, label, pid)
    _procs[label] = pid
    return _where(pid)


async def register(label: str, name: str, resolve: str = "kill") -> bool:
    """``register_global(name, <the labelled process>)``."""
    return await beam.register_global(name, _procs[label], resolve=resolve)  # type: ignore[arg-type]


async def register_remote(name: str, label: str, where: str) -> bool:
    """``register_global(name, pid)`` for the process labelled *label* on node *where*."""
    beam.send((label, where), ("whoami", beam.self()))
    _, pid = await beam.receive(lambda m: type(m) is tuple and m[:1] == ("iam",), timeout=5)
    return await beam.register_global(name, pid)


async def unregister(name: str) -> None:
    """``unregister_global(name)``."""
    await beam.unregister_global(name)


async def whereis(name: str) -> list[Any] | None:
    """``whereis_global(name)`` on this node, as ``[node, number]``."""
    return _where(beam.whereis_global(name))


async def registered() -> list[str]:
    """``registered_global()`` on this node."""
    return beam.registered_global()


async def send(name: str, msg: str) -> list[Any] | None:
    """``send_global(name, msg)``; the pid it went to."""
    return _where(beam.send_global(name, msg))


async def kill(label: str) -> None:
    """Kill the labelled process."""
    beam.exit(_procs[label], "kill")


async def race(name: str, count: int, at: float) -> list[list[Any] | None]:
    """At wall-clock time *at*, *count* new processes register *name* at once; the pids of
    those that got it (all registrations done before this returns)."""
    me = beam.self()

    async def contender() -> None:
        await trio.sleep(max(0.0, at - time.time()))
        won = await beam.register_global(name, beam.self())
        beam.send(me, ("raced", beam.self(), won))
        await beam.receive(lambda _m: False)

    pids = [beam.spawn(contender) for _ in range(count)]
    results = [await beam.receive(_raced, timeout=10) for _ in pids]
    return [_where(pid) for _, pid, won in results if won]


def _raced(message: Any) -> bool:
    return type(message) is tuple and message[:1] == ("raced",)


async def kill_server() -> None:
    """Kill this node's global name server and wait until it is gone."""
    server = beam.whereis("beam.global")
    assert server is not None
    ref = beam.monitor(server)
    beam.exit(server, "kill")
    await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref, timeout=5)
