"""Creates that fly together on PostgreSQL (``domain/_pg_batch.py``): concurrent single-INSERT
units share a round trip and a commit, and each still gets what it would have got alone."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
import trio
from sqlalchemy.dialects import postgresql

import beam
import domain
from domain import PostgresRepo
from domain._pg_batch import batchable
from domain._pg_compile import compiled_for

from .app import Chat, ChatUser
from .pg_support import DSN, eventually, names, node, schema, start

__all__ = ["node", "schema"]  # fixtures, used by name

pytestmark = pytest.mark.postgres


async def _create_all(users: list[str]) -> dict[str, Any]:
    """Spawn one process per name, all registering at once: {name: record or error}."""
    me = beam.self()

    async def one(name: str) -> None:
        try:
            beam.send(me, (name, await Chat.register(name)))
        except domain.DomainError as exc:
            beam.send(me, (name, exc))

    for name in users:
        beam.spawn(one, name)
    got = [await beam.receive(lambda m: isinstance(m, tuple), timeout=10) for _ in users]
    return dict(got)


async def test_concurrent_creates_share_flights_and_each_gets_its_record(
    schema: str, node: None
) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=2)
        flown = repo.batcher.flown
        users = sorted(f"user{i}" for i in range(20))
        got = await _create_all(users)
        assert sorted(got) == users
        assert all(got[name].name == name for name in users)
        assert await names() == users
        # Two connections took twenty creates: they flew together (two starters, the rest
        # queued while those flew).
        assert repo.batcher.flown - flown < len(users)
        assert repo.stats().in_use == 0


async def test_a_failing_create_in_a_flight_fails_alone(schema: str, node: None) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        await Chat.register("alice")
        errors = repo.stats().errors
        users = ["bob", "alice", "carol", "dave", "bob"]
        me = beam.self()

        async def one(i: int, name: str) -> None:
            try:
                beam.send(me, (i, await Chat.register(name)))
            except domain.Invalid as exc:
                beam.send(me, (i, exc))

        for i, name in enumerate(users):
            beam.spawn(one, i, name)
        got = dict([await beam.receive(lambda m: isinstance(m, tuple), timeout=10) for _ in users])
        # Each as alone: the second "alice" is taken, and one "bob" (whichever ran second).
        assert isinstance(got[1], domain.Invalid)
        assert got[1].errors == {"name": ["has already been taken"]}
        bobs = [got[0], got[4]]
        assert sum(isinstance(bob, domain.Invalid) for bob in bobs) == 1
        assert [got[i].name for i in (2, 3)] == ["carol", "dave"]
        assert await names() == ["alice", "bob", "carol", "dave"]
        assert repo.stats().errors > errors


async def test_a_create_cancelled_while_queued_writes_nothing(schema: str, node: None) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        me = beam.self()

        async def holder() -> None:
            async with Chat.transaction():
                await Chat.read(ChatUser)
                beam.send(me, "holding")
                await beam.receive(lambda m: m == "release", timeout=10)

        held = beam.spawn(holder)
        await beam.receive(lambda m: m == "holding", timeout=5)

        async def first() -> None:
            await Chat.register("first")
            beam.send(me, "first done")

        beam.spawn(first)  # waits for the connection, to lead the next flight
        await eventually(_waiting(repo, 1), "the first create waits for the connection")
        with trio.move_on_after(0.2) as scope:  # queued behind it, then given up
            await Chat.register("ghost")
        assert scope.cancelled_caught
        assert repo.stats().waiting == 1
        beam.send(held, "release")
        await beam.receive(lambda m: m == "first done", timeout=5)
        assert await names() == ["first"]
        assert repo.stats().waiting == 0


async def test_a_leader_killed_mid_flight_still_delivers_the_others(
    schema: str, node: None
) -> None:
    with trio.fail_after(30):
        repo = await start(schema, pool_size=1)
        me = beam.self()
        # A transaction of our own inserts "alice" and keeps it open: a flight that inserts
        # "alice" too waits for it on the server.
        blocker = await domain._pg_conn.TrioConnection.connect(DSN)
        table = f'"{schema}".chat_users'
        await blocker.execute(
            f"INSERT INTO {table} (id, name, is_admin, is_banned) "
            "VALUES (gen_random_uuid(), 'alice', false, false)"
        )

        async def holder() -> None:
            async with Chat.transaction():
                await Chat.read(ChatUser)
                beam.send(me, "holding")
                await beam.receive(lambda m: m == "release", timeout=10)

        async def creator(name: str) -> None:
            try:
                beam.send(me, (name, await Chat.register(name)))
            except domain.DomainError as exc:
                beam.send(me, (name, exc))

        held = beam.spawn(holder)
        await beam.receive(lambda m: m == "holding", timeout=5)
        leader = beam.spawn(creator, "alice")
        await eventually(_waiting(repo, 1), "the leader waits for the connection")
        for name in ("bob", "carol"):
            beam.spawn(creator, name)
        await eventually(_waiting(repo, 3), "the others queue behind it")
        beam.send(held, "release")  # the leader flies alice, bob and carol together

        async def blocked() -> bool:
            rows = await blocker_view(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                repo.names[0],
            )
            return bool(rows[0][0])

        await eventually(blocked, "the flight waits for the blocker's lock")
        beam.exit(leader, "kill")
        await trio.sleep(0.1)
        await blocker.rollback()  # alice is free: the flight goes on and commits
        got: dict[str, Any] = {}
        while "bob" not in got or "carol" not in got:
            name, result = await beam.receive(lambda m: isinstance(m, tuple), timeout=10)
            got[name] = result  # the leader may report too: killed, it got to its next wait
        assert got["bob"].name == "bob"
        assert got["carol"].name == "carol"
        assert await names() == ["alice", "bob", "carol"]  # the killed leader's row too
        await blocker.close()
        assert repo.stats().in_use == 0


async def test_a_flight_whose_connection_is_lost_fails_for_all_and_the_pool_recovers(
    schema: str, node: None
) -> None:
    with trio.fail_after(30):
        repo = await start(schema, pool_size=1)
        me = beam.self()
        blocker = await domain._pg_conn.TrioConnection.connect(DSN)
        await blocker.execute(
            f'INSERT INTO "{schema}".chat_users (id, name, is_admin, is_banned) '
            "VALUES (gen_random_uuid(), 'alice', false, false)"
        )

        async def creator(name: str) -> None:
            try:
                beam.send(me, (name, await Chat.register(name)))
            except domain.DomainError as exc:
                beam.send(me, (name, exc))

        async def holder() -> None:
            async with Chat.transaction():
                await Chat.read(ChatUser)
                beam.send(me, "holding")
                await beam.receive(lambda m: m == "release", timeout=10)

        held = beam.spawn(holder)
        await beam.receive(lambda m: m == "holding", timeout=5)
        beam.spawn(creator, "alice")
        await eventually(_waiting(repo, 1), "the leader waits for the connection")
        beam.spawn(creator, "bob")
        await eventually(_waiting(repo, 2), "bob queues behind it")
        beam.send(held, "release")

        async def blocked() -> bool:
            rows = await blocker_view(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                repo.names[0],
            )
            return bool(rows[0][0])

        await eventually(blocked, "the flight waits for the blocker's lock")
        await blocker_view(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            repo.names[0],
        )
        got = dict([await beam.receive(lambda m: isinstance(m, tuple), timeout=10) for _ in "ab"])
        assert isinstance(got["alice"], domain.ConnectionLost)
        assert isinstance(got["bob"], domain.ConnectionLost)
        await blocker.rollback()
        await blocker.close()
        await Chat.register("carol")  # a fresh connection
        assert await names() == ["carol"]
        assert repo.stats().replaced == 1


async def test_a_lone_create_cancelled_mid_flight_is_cancelled_on_the_server(
    schema: str, node: None
) -> None:
    with trio.fail_after(30):
        repo = await start(schema, pool_size=1)
        blocker = await domain._pg_conn.TrioConnection.connect(DSN)
        await blocker.execute(
            f'INSERT INTO "{schema}".chat_users (id, name, is_admin, is_banned) '
            "VALUES (gen_random_uuid(), 'alice', false, false)"
        )
        with trio.move_on_after(0.5) as scope:  # blocked behind the blocker's "alice"
            await Chat.register("alice")
        assert scope.cancelled_caught
        waiting = await blocker_view(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND state = 'active'",
            repo.names[0],
        )
        assert waiting == [(0,)]  # cancelled on the server, not left waiting there
        await blocker.rollback()
        await blocker.close()
        await Chat.register("bob")
        assert await names() == ["bob"]
        assert repo.stats().replaced == 1


def test_only_plain_inserts_fly_together() -> None:
    table = ChatUser.__table__
    insert = sa.insert(table).returning(*table.c)
    assert batchable(compiled_for(insert, ("id", "name"))[0])
    upsert: Any = postgresql.insert(table).on_conflict_do_nothing().returning(table.c.id)
    assert not batchable(compiled_for(upsert, ("id", "name"))[0])
    assert not batchable(compiled_for(table.update().values(name="x"), ())[0])
    assert not batchable(compiled_for(sa.select(table.c.id), ())[0])


def _waiting(repo: PostgresRepo, n: int) -> Any:
    async def check() -> bool:
        return repo.stats().waiting == n

    return check


async def blocker_view(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await domain._pg_conn.TrioConnection.connect(DSN, autocommit=True)
    try:
        cur = await conn.execute(sql, args)
        return list(await cur.fetchall())
    finally:
        await conn.close()
