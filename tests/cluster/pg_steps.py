"""Node-side steps of tests/cluster/test_pg.py, run in a node program by the ``run`` command
of tests/support/nodes.py (``node.call("run", fn="tests.cluster.pg_steps:join", args=...)``).

Processes are named across the JSON boundary by their pid number on their own node, and
members are reported as ``[node name, pid number]`` pairs, so every node reports the same
member the same way. Groups are strings.
"""

from __future__ import annotations

from typing import Any

import trio

import beam
from beam import pg

from ..support.nodes import emit


def _name(pid: beam.Pid) -> list[Any]:
    return [beam.node() if pid.node is None else pid.node.name, pid.id]


def _names(pids: list[beam.Pid] | tuple[beam.Pid, ...]) -> list[list[Any]]:
    return sorted(_name(pid) for pid in pids)


async def _member() -> None:
    await trio.sleep_forever()


async def spawn(count: int = 1) -> list[int]:
    """Start *count* idle processes; their pid numbers."""
    return [beam.spawn(_member).id for _ in range(count)]


async def join(group: str, ids: list[int], scope: str = pg.DEFAULT_SCOPE) -> None:
    """The processes numbered *ids* join *group* (a list joins in one call)."""
    await pg.join(group, [beam.Pid(i) for i in ids], scope=scope)


async def leave(group: str, ids: list[int], scope: str = pg.DEFAULT_SCOPE) -> bool:
    """The processes numbered *ids* leave *group*; whether any did."""
    return await pg.leave(group, [beam.Pid(i) for i in ids], scope=scope)


async def kill(ids: list[int]) -> None:
    """Kill the processes numbered *ids*."""
    for i in ids:
        beam.exit(beam.Pid(i), "kill")


def _view(scope: str) -> dict[str, Any]:
    groups = pg.which_groups(scope=scope)
    return {
        "members": {g: _names(pg.members(g, scope=scope)) for g in sorted(groups)},
        "local": {
            g: _names(local) for g in sorted(groups) if (local := pg.local_members(g, scope=scope))
        },
    }


async def view(scope: str = pg.DEFAULT_SCOPE) -> dict[str, Any]:
    """This node's view: ``{"members": {group: sorted members}, "local": {...}}``."""
    return _view(scope)


async def wait_members(
    expected: dict[str, list[list[Any]]], within: float, scope: str = pg.DEFAULT_SCOPE
) -> float:
    """Poll until this node's members of every group are *expected* (sorted pairs; groups
    not listed have none); the seconds it took. Raises with the last view after *within*."""
    start = trio.current_time()
    want = {g: sorted(pairs) for g, pairs in expected.items() if pairs}
    with trio.move_on_after(within):
        while True:
            if _view(scope)["members"] == want:
                return trio.current_time() - start
            await trio.sleep(0.01)
    raise AssertionError(f"after {within} s, node {beam.node()} sees {_view(scope)}, not {want}")


async def _reporter(commander: beam.Pid, group: str) -> None:
    ref, now = await pg.monitor(group)
    beam.send(commander, ("monitoring", group, _names(now)))
    while True:
        change = await beam.receive(pg.GroupChanged)
        assert change.ref == ref
        emit(
            {
                "event": "pg",
                "group": change.group,
                "action": change.action,
                "pids": _names(change.pids),
            }
        )


async def monitor(group: str) -> list[list[Any]]:
    """Start a process that monitors *group* and reports each change as a ``pg`` event
    (group, action, pids); the members when it started."""
    beam.spawn(_reporter, beam.self(), group)
    message = await beam.receive(
        lambda m: type(m) is tuple and m[:2] == ("monitoring", group), timeout=5
    )
    members: list[list[Any]] = message[2]
    return members


async def start_scope(scope: str) -> None:
    """Start the scope *scope* on this node."""
    await pg.start(scope)
