"""Domain.transaction on both backends: one transaction for several calls, savepoints when
nested, each action in a savepoint of its own, notifications only after the outer commit."""

from __future__ import annotations

import pytest
import trio

import beam
import domain
from domain import Invalid

from ..support.backends import Backend
from .app import Chat, ChatUser


async def start(backend: Backend) -> None:
    await Chat.start_link(backend.url, schema=backend.schema)
    await Chat.create_tables()


async def names() -> list[str]:
    return sorted(u.name for u in await Chat.read(ChatUser))


class Boom(Exception):
    pass


async def test_a_block_commits_together_and_notifies_after_the_commit(backend: Backend) -> None:
    with trio.fail_after(30):
        async with beam.open_node():
            await start(backend)
            alice = await Chat.register("alice")
            room = await Chat.open_room("lobby")
            beam.subscribe(f"room:{room.id}")
            async with Chat.transaction():
                sent = await Chat.send_message(content="hi", room_id=room.id, actor=alice)
                await Chat.register("bob")
                # Inside the block its own writes are visible ...
                assert await names() == ["alice", "bob"]
                assert [m.id for m in await Chat.list_messages(actor=alice)] == [sent.id]
                # ... and nothing is broadcast before the commit.
                with pytest.raises(beam.ReceiveTimeout):
                    await beam.receive(timeout=0.2)
            event, data = await beam.receive(timeout=2)
            assert (event, data.id) == ("new_message", sent.id)
            assert await names() == ["alice", "bob"]


async def test_a_block_that_raises_rolls_everything_back(backend: Backend) -> None:
    with trio.fail_after(30):
        async with beam.open_node():
            await start(backend)
            alice = await Chat.register("alice")
            room = await Chat.open_room("lobby")
            beam.subscribe(f"room:{room.id}")

            async def block() -> None:
                async with Chat.transaction():
                    await Chat.send_message(content="hi", room_id=room.id, actor=alice)
                    await Chat.register("bob")
                    raise Boom

            with pytest.raises(Boom):
                await block()
            assert await names() == ["alice"]
            assert await Chat.list_messages(actor=alice) == []
            with pytest.raises(beam.ReceiveTimeout):
                await beam.receive(timeout=0.2)


async def test_nested_blocks_are_savepoints(backend: Backend) -> None:
    with trio.fail_after(30):
        async with beam.open_node():
            await start(backend)
            alice = await Chat.register("alice")
            room = await Chat.open_room("lobby")
            beam.subscribe(f"room:{room.id}")

            async def inner() -> None:
                async with Chat.transaction():
                    await Chat.register("carol")
                    await Chat.send_message(content="dropped", room_id=room.id, actor=alice)
                    raise Boom

            async with Chat.transaction():
                await Chat.register("bob")
                with pytest.raises(Boom):
                    await inner()
                async with Chat.transaction():
                    kept = await Chat.send_message(content="kept", room_id=room.id, actor=alice)
                assert await names() == ["alice", "bob"]
            assert await names() == ["alice", "bob"]
            assert [m.content for m in await Chat.list_messages(actor=alice)] == ["kept"]
            event, data = await beam.receive(timeout=2)
            assert (event, data.id) == ("new_message", kept.id)
            with pytest.raises(beam.ReceiveTimeout):
                await beam.receive(timeout=0.2)


async def test_an_action_that_fails_in_the_database_is_rolled_back_alone(
    backend: Backend,
) -> None:
    with trio.fail_after(30):
        async with beam.open_node():
            await start(backend)
            await Chat.register("alice")
            async with Chat.transaction():
                await Chat.register("bob")
                with pytest.raises(Invalid) as taken:  # a unique violation, in the database
                    await Chat.register("alice")
                assert taken.value.errors == {"name": ["has already been taken"]}
                await Chat.register("carol")  # the transaction goes on
            assert await names() == ["alice", "bob", "carol"]


async def test_another_process_does_not_see_the_block_before_its_commit(
    backend: Backend,
) -> None:
    with trio.fail_after(30):
        async with beam.open_node():
            await start(backend)
            me = beam.self()

            async def reader() -> None:
                beam.send(me, ("seen", await names()))

            async with Chat.transaction():
                await Chat.register("bob")
                beam.spawn(reader)
                _, seen = await beam.receive(lambda m: m[0] == "seen", timeout=5)
                assert seen == []
            beam.spawn(reader)
            _, seen = await beam.receive(lambda m: m[0] == "seen", timeout=5)
            assert seen == ["bob"]


async def test_a_process_spawned_inside_a_block_runs_outside_it(backend: Backend) -> None:
    with trio.fail_after(30):
        async with beam.open_node():
            await start(backend)
            me = beam.self()

            async def writer() -> None:
                await Chat.register("dave")  # its own transaction, committed at once
                beam.send(me, "written")

            async def block() -> None:
                async with Chat.transaction():
                    await Chat.register("bob")
                    beam.spawn(writer)  # on SQLite it waits for the writer this block holds
                    await trio.sleep(0.3)
                    raise Boom

            with pytest.raises(Boom):
                await block()
            await beam.receive(lambda m: m == "written", timeout=10)
            assert await names() == ["dave"]


async def test_raw_units_join_the_block(backend: Backend) -> None:
    table = ChatUser.__table__
    with trio.fail_after(30):
        async with beam.open_node():
            await start(backend)
            repo = Chat.repo()
            alice = await Chat.register("alice")
            async with Chat.transaction():
                await repo.run(
                    lambda tx: tx.execute(
                        table.update().where(table.c.id == alice.id).values(is_admin=True)
                    )
                )
                rows, _ = await repo.run(
                    lambda tx: tx.conn.execute(table.select().where(table.c.is_admin)).all(),
                    read_only=True,
                )
                assert [r.name for r in rows] == ["alice"]
            assert (await Chat.get(ChatUser, alice.id)).is_admin is True
            assert isinstance(repo.stats(), domain.PoolStats)
