"""beam.pg on one node: joins and leaves, counted duplicate joins, cleanup when a member
exits, group monitors, named scopes, and the errors that name the bad value and the fix.

Every test opens its own node (no cluster): the default scope starts at the first join.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import trio

import beam
from beam import _pg, pg

from .conftest import idle, non_process_context, receive_all, settle


@dataclass(frozen=True)
class Room:
    number: int


beam.cluster.register(Room, "tests.beam.test_pg_local.Room")


@dataclass(frozen=True)
class Unregistered:
    name: str


async def test_join_members_local_members_and_which_groups() -> None:
    async with beam.open_node():
        a, b, c = beam.spawn(idle), beam.spawn(idle), beam.spawn(idle)
        assert pg.members("g") == []
        assert pg.which_groups() == []
        await pg.join("g", a)
        await pg.join("g", [b, c])
        await pg.join(("room", 1), c)
        # Newest join first; a list joins in its own order ahead of the earlier members.
        assert pg.members("g") == [b, c, a]
        assert pg.local_members("g") == [b, c, a]
        assert pg.members(("room", 1)) == [c]
        assert pg.which_groups() == ["g", ("room", 1)]
        assert await pg.leave("g", b)
        assert pg.members("g") == [c, a]


async def test_a_process_is_a_member_once_per_join() -> None:
    async with beam.open_node():
        a = beam.spawn(idle)
        await pg.join("g", a)
        await pg.join("g", [a, a])
        assert pg.members("g") == [a, a, a]
        assert await pg.leave("g", [a, a])
        assert pg.members("g") == [a]
        assert await pg.leave("g", a)
        assert pg.members("g") == []
        assert pg.which_groups() == []
        assert not await pg.leave("g", a)  # OTP's not_joined


async def test_leave_of_several_leaves_those_that_were_members() -> None:
    async with beam.open_node():
        a, b = beam.spawn(idle), beam.spawn(idle)
        await pg.join("g", a)
        ref, now = await pg.monitor("g")
        assert now == [a]
        assert await pg.leave("g", [b, a])  # b never joined
        assert not await pg.leave("g", [a, b])
        await pg.join("other", b)
        assert not await pg.leave("g", b)  # a member of another group only
        await settle()
        assert await receive_all() == [pg.GroupChanged(ref, "leave", "g", (a,))]


async def test_an_exiting_member_leaves_every_group_it_joined() -> None:
    async with beam.open_node():
        a, b = beam.spawn(idle), beam.spawn(idle)
        await pg.join("g", [a, b])
        await pg.join("g", a)
        await pg.join("h", a)
        ref, _ = await pg.monitor_scope()
        beam.exit(a, "kill")
        await settle()
        assert pg.members("g") == [b]
        assert pg.members("h") == []
        assert pg.which_groups() == ["g"]
        # One leave per join, as OTP.
        assert await receive_all() == [
            pg.GroupChanged(ref, "leave", "g", (a,)),
            pg.GroupChanged(ref, "leave", "g", (a,)),
            pg.GroupChanged(ref, "leave", "h", (a,)),
        ]
        # The exit went through the scope's monitor: joining again works as new.
        await pg.join("g", b)
        assert pg.members("g") == [b, b]


async def test_a_dead_process_joins_and_is_removed_at_once() -> None:
    async with beam.open_node():
        dead = beam.spawn(idle)
        beam.exit(dead, "kill")
        await settle()
        await pg.join("g", dead)
        await settle()
        assert pg.members("g") == []


async def test_monitor_sends_joins_and_leaves_until_demonitor() -> None:
    async with beam.open_node():
        a, b = beam.spawn(idle), beam.spawn(idle)
        await pg.join("g", a)
        ref, now = await pg.monitor("g")
        assert now == [a]
        await pg.join("g", [b, a])
        await pg.join("elsewhere", b)  # another group: not sent
        await pg.leave("g", a)
        beam.exit(b, "kill")
        await settle()
        assert await receive_all() == [
            pg.GroupChanged(ref, "join", "g", (b, a)),
            pg.GroupChanged(ref, "leave", "g", (a,)),
            pg.GroupChanged(ref, "leave", "g", (b,)),
        ]
        c = beam.spawn(idle)
        await pg.join("g", c)  # queued in our mailbox ...
        assert await pg.demonitor(ref)  # ... and flushed by demonitor
        await pg.join("g", c)
        await settle()
        assert await receive_all() == []
        assert not await pg.demonitor(ref)


async def test_monitor_scope_reports_every_group() -> None:
    async with beam.open_node():
        a, b = beam.spawn(idle), beam.spawn(idle)
        await pg.join("g", [a, b])
        ref, groups = await pg.monitor_scope()
        assert groups == {"g": [a, b]}
        await pg.join(Room(7), a)
        await pg.leave("g", b)
        await settle()
        assert await receive_all() == [
            pg.GroupChanged(ref, "join", Room(7), (a,)),
            pg.GroupChanged(ref, "leave", "g", (b,)),
        ]
        assert await pg.demonitor(ref)
        assert not await pg.demonitor(ref)


async def test_a_monitor_ends_with_its_process() -> None:
    async def watcher(parent: beam.Pid, scope: bool) -> None:
        if scope:
            ref, _ = await pg.monitor_scope()
        else:
            ref, _ = await pg.monitor("g")
        beam.send(parent, ref)

    async with beam.open_node():
        for scope in (False, True):
            beam.spawn_monitor(watcher, beam.self(), scope)
            ref = await beam.receive(beam.Ref)
            await beam.receive(beam.Down)
            await settle()
            assert not await pg.demonitor(ref)  # the scope dropped it when the watcher exited
        await pg.join("g", beam.spawn(idle))  # nothing is sent to the dead watchers


async def test_named_scopes_are_independent() -> None:
    async with beam.open_node():
        a = beam.spawn(idle)
        with pytest.raises(LookupError, match=r"await beam\.pg\.start\('jobs'\)"):
            await pg.join("g", a, scope="jobs")
        assert pg.members("g", scope="jobs") == []  # a scope that does not run: no members
        jobs = await pg.start("jobs")
        assert await pg.start("jobs") == jobs  # already running: the same server
        assert beam.whereis("jobs") == jobs
        await pg.join("g", a, scope="jobs")
        assert pg.members("g", scope="jobs") == [a]
        assert pg.members("g") == []
        assert pg.which_groups(scope="jobs") == ["g"]
        default = await pg.start()
        assert beam.whereis("pg") == default  # the default scope's server


async def test_a_killed_scope_forgets_and_the_default_one_restarts_on_use() -> None:
    async with beam.open_node():
        a = beam.spawn(idle)
        await pg.join("g", a)
        server = beam.whereis(pg.DEFAULT_SCOPE)
        assert server is not None
        beam.exit(server, "kill")
        await settle()
        assert pg.members("g") == []  # as OTP: local membership is not kept
        await pg.join("h", a)
        assert beam.whereis(pg.DEFAULT_SCOPE) not in (None, server)
        assert pg.members("h") == [a]
        assert pg.members("g") == []


async def test_a_scope_name_held_by_another_process_is_refused() -> None:
    async with beam.open_node():
        beam.register("busy", beam.spawn(idle))
        with pytest.raises(beam.AlreadyRegistered, match="'busy'"):
            await pg.start("busy")


@pytest.mark.parametrize(
    ("group", "pids", "error", "text"),
    [
        (
            "g",
            "not a pid",
            TypeError,
            r"expected a beam\.Pid or a list of them, got str 'not a pid'",
        ),
        ("g", [7], TypeError, r"expected beam\.Pid values, got int 7"),
        (["a", "list"], None, TypeError, r"a group must be hashable, got list \['a', 'list'\]"),
        (
            Unregistered("x"),
            None,
            beam.cluster.CodecError,
            r"Unregistered.*beam\.cluster\.register",
        ),
        (
            "g",
            beam.Pid(5, beam.NodeId("far", 1)),
            ValueError,
            r"<\d+\.5\.0> is a process of node 'far'",
        ),
    ],
)
async def test_bad_arguments_are_refused_naming_the_value(
    group: Any, pids: Any, error: type[Exception], text: str
) -> None:
    async with beam.open_node():
        bad_group = pids is None
        if bad_group:
            pids = beam.self()
        with pytest.raises(error, match=text):
            await pg.join(group, pids)
        with pytest.raises(error, match=text):
            await pg.leave(group, pids)
        if bad_group:
            with pytest.raises(error, match=text):
                await pg.monitor(group)
        if error is TypeError and bad_group:  # reads refuse what cannot be a key, too
            for read in (pg.members, pg.local_members):
                with pytest.raises(TypeError, match=text):
                    read(group)
                await pg.start()
                with pytest.raises(TypeError, match=text):
                    read(group)


async def test_bad_scopes_and_refs_are_refused() -> None:
    async with beam.open_node():
        with pytest.raises(TypeError, match="scope is named by a str, got 3"):
            await pg.join("g", beam.self(), scope=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="non-empty str, got ''"):
            await pg.start("")
        with pytest.raises(TypeError, match=r"the beam\.Ref that monitor returned, got 'r'"):
            await pg.demonitor("r")  # type: ignore[arg-type]


async def test_join_needs_a_process() -> None:
    async with beam.open_node():
        pid = beam.spawn(idle)
        failures: list[BaseException] = []

        async def not_a_process() -> None:
            try:
                await pg.join("g", pid)
            except beam.NotInProcess as error:
                failures.append(error)

        trio.lowlevel.spawn_system_task(not_a_process, context=non_process_context())
        await settle()
        assert len(failures) == 1
        assert "beam.pg.join must be called from a beam process" in str(failures[0])


async def test_a_malformed_message_from_a_peer_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    far = beam.NodeId("far", 1)
    peer = beam.Pid(3, far)
    malformed = [
        _pg._Join(beam.Pid(3), "g", ()),  # the peer is a pid of this node
        _pg._Join(peer, ["a", "list"], (beam.Pid(4, far),)),  # an unhashable group
        _pg._Join(peer, "g", (beam.Pid(4),)),  # a member that is not of the peer's node
        _pg._Leave(peer, (beam.Pid(4, far),), (["x"],)),
        _pg._Sync(peer, (("g",),)),  # type: ignore[arg-type]
        _pg._Sync(peer, (("g", [beam.Pid(4, far)]),)),  # type: ignore[arg-type]
    ]
    async with beam.open_node():
        server = await pg.start()
        for message in malformed:
            beam.send(server, message)
        await settle()
        assert beam.is_alive(server)
        dropped = [r for r in caplog.records if "dropped a malformed message" in r.getMessage()]
        assert len(dropped) == len(malformed)
        assert pg.which_groups() == []
