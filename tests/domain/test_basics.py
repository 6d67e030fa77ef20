"""Resources, actions, lifecycle, errors, policies, notifiers, reads and faults."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
import trio

import beam
import domain
from domain import Forbidden, Invalid, NotFound, ResourceDefinitionError

from ..support.backends import Backend
from .app import Chat, ChatUser, Message, Notice, Room


def note(order: list[str], step: str) -> None:
    order.append(step)


async def start(backend: Backend, pool_size: int | None = None) -> None:
    await Chat.start_link(backend.url, schema=backend.schema, pool_size=pool_size)
    await Chat.create_tables()


async def test_create_read_update_destroy(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        assert isinstance(alice.id, uuid.UUID)
        assert alice.is_admin is False
        room = await Chat.open_room("lobby")
        msg = await Chat.send_message(content="  hi  ", room_id=room.id, actor=alice)
        assert msg.content == "hi"
        assert msg.author_id == alice.id
        assert msg.inserted_at.tzinfo is not None
        edited = await Chat.edit_message(msg, content="hello", actor=alice)
        assert edited.content == "hello"
        got = await Chat.get(Message, msg.id, actor=alice, load=("author", "shout"))
        assert got.author.name == "alice"
        assert got.shout == "hello!"
        loads = ("message_count", "has_messages", "messages")
        rooms = await Chat.read(Room, actor=alice, load=loads)
        assert (await Chat.read(Room, load=("message_count",)))[0].message_count == 0
        assert rooms[0].message_count == 1
        assert rooms[0].has_messages is True
        assert [m.id for m in rooms[0].messages] == [msg.id]
        await Chat.delete_message(edited, actor=alice)
        with pytest.raises(NotFound):
            await Chat.get(Message, msg.id, actor=alice)


async def test_invalid_errors_per_field_and_identities(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        with pytest.raises(Invalid) as info:
            await Chat.register("A!", is_admin="maybe", bogus=1)
        assert set(info.value.errors) == {"name", "is_admin", "bogus"}
        assert "is not accepted" in info.value.errors["bogus"][0]
        await Chat.register("bob")
        with pytest.raises(Invalid) as dup:
            await Chat.register("bob")
        assert dup.value.errors == {"name": ["has already been taken"]}


async def test_policies_forbid_and_filter(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        bob = await Chat.register("bob")
        room = await Chat.open_room("lobby")
        msg = await Chat.send_message(content="hi", room_id=room.id, actor=alice)
        with pytest.raises(Forbidden):
            await Chat.send_message(content="hi", room_id=room.id, actor=None)
        with pytest.raises(Forbidden):
            await Chat.edit_message(msg, content="mine now", actor=bob)
        assert (await Chat.get(Message, msg.id, actor=alice)).content == "hi"
        assert await Chat.can_edit_message(msg, actor=alice, content="x") is True  # type: ignore[attr-defined]
        assert await Chat.edit_message.can(msg, actor=bob, content="x") is False
        assert await Chat.list_messages(actor=None) == []  # no policy applies: filtered to none


async def test_notifications_only_after_commit(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        room = await Chat.open_room("lobby")
        beam.subscribe(f"room:{room.id}")
        msg = await Chat.send_message(content="hi", room_id=room.id, actor=alice)
        event, data = await beam.receive(timeout=2)
        assert event == "new_message"
        assert data.id == msg.id
        with pytest.raises(Invalid):
            await Chat.send_message(content="<b>", room_id=room.id, actor=alice)
        with pytest.raises(Invalid):  # fails in the transaction (foreign key): rolled back
            await Chat.send_message(content="x", room_id=uuid.uuid4(), actor=alice)
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(timeout=0.2)


async def test_counters_and_mark_as_read(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        beam.subscribe(f"user:{alice.id}")
        n1 = await Chat.notify(user_id=alice.id, title="one")
        assert await beam.receive(timeout=2) == (
            "counter_updated",
            {"counter": "unread_notices", "value": 1},
        )
        await Chat.notify(user_id=alice.id, title="two")
        assert (await beam.receive(timeout=2))[1]["value"] == 2
        await Chat.mark_as_read(n1, actor=alice)
        assert (await beam.receive(timeout=2))[1]["value"] == 1
        done = await Chat.bulk_update(Notice, "mark_as_read", actor=alice)
        assert len(done) == 2
        assert (await beam.receive(timeout=2))[1]["value"] == 0
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(timeout=0.2)


async def test_keyset_pages_and_bulk(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        names = [f"user_{i:02d}" for i in range(7)]
        await Chat.bulk_create(ChatUser, "create", [{"name": n} for n in names])
        seen: list[str] = []
        after = None
        while True:
            page = await Chat.page(ChatUser, limit=3, after=after, sort=("-name",))
            seen.extend(u.name for u in page.results)
            after = page.after
            if not page.more:
                break
        assert seen == sorted(names, reverse=True)
        some = await Chat.read(ChatUser, sort=("name",), limit=2, offset=1)
        assert [u.name for u in some] == names[1:3]
        gone = await Chat.bulk_destroy(ChatUser, filter=ChatUser.__table__.c.name.in_(names[:3]))
        assert len(gone) == 3
        assert len(await Chat.read(ChatUser)) == 4


async def test_lifecycle_order_and_nested_notifications(backend: Backend) -> None:
    order: list[str] = []

    class Audit(domain.Resource):
        __tablename__ = f"audit_{backend.name}"
        id: uuid.UUID = domain.uuid_primary_key()
        note: str = domain.attribute()
        actions = (
            domain.create(
                "create",
                domain.validate(lambda cs: note(order, "validate")),
                domain.change(lambda cs: order.append("change")),
                accept=("note",),
                before_transaction=[lambda cs: order.append("before_transaction")],
                before_action=[lambda tx, cs: order.append("before_action")],
                after_action=[lambda tx, cs, rec: order.append("after_action")],
                after_transaction=[lambda cs, res: order.append("after_transaction")],
            ),
        )
        notifiers = (domain.pubsub("audit"),)

    class AuditDomain(domain.Domain):
        resources = (Audit,)

    async with beam.open_node():
        await AuditDomain.start_link(backend.url, schema=backend.schema)
        await AuditDomain.create_tables()
        beam.subscribe("audit")
        await AuditDomain.create(Audit, input={"note": "x"})
        assert order == [
            "validate",
            "change",
            "before_transaction",
            "before_action",
            "after_action",
            "after_transaction",
        ]
        assert (await beam.receive(timeout=2))[0] == "create"


async def test_kill_connection_mid_transaction(backend: Backend) -> None:
    """The connection running a unit is killed while the unit's hook is still at work: the
    caller gets ConnectionLost, nothing of the unit is stored, the pool carries on. On
    SQLite the hook blocks its connection's thread; on PostgreSQL (no thread) it waits in
    the database, and the kill cancels that query on the server."""
    entered = threading.Event()
    release = threading.Event()
    tester: list[beam.Pid] = []

    def block(tx: domain.Tx, cs: domain.Changeset) -> None:
        if cs.get("title") != "slow":
            return
        if tx.dialect == "postgresql":
            beam.send(tester[0], "entered")
            tx.execute(sa.select(sa.func.pg_sleep(10)))
        else:
            entered.set()
            release.wait(10)

    async with beam.open_node():
        await start(backend, pool_size=1)
        alice = await Chat.register("alice")
        Notice.__actions__["create"].before_action = (block,)
        try:
            test = beam.self()
            tester.append(test)

            async def slow() -> None:
                try:
                    await Chat.notify(user_id=alice.id, title="slow")
                except domain.ConnectionLost as exc:
                    beam.send(test, ("lost", str(exc)))
                else:
                    beam.send(test, ("written",))

            beam.spawn(slow)
            if backend.name == "postgresql":
                assert await beam.receive(lambda m: m == "entered", timeout=5) == "entered"
                await trio.sleep(0.1)  # the pg_sleep is on its way to the server
            else:
                await trio.to_thread.run_sync(entered.wait, 10)
            repo = Chat.repo()
            assert isinstance(repo, domain.Repo)
            victim = beam.whereis(repo.names[0])
            assert victim is not None
            beam.exit(victim, "kill")
            with trio.fail_after(5):  # not the 10 s of the sleep: cancelled on the server
                reply = await beam.receive(lambda m: isinstance(m, tuple), timeout=5)
            assert reply[0] == "lost", reply
            release.set()
        finally:
            Notice.__actions__["create"].before_action = ()
        ok = await Chat.notify(user_id=alice.id, title="after")
        notices = await Chat.read(Notice, actor=alice)
        assert [n.title for n in notices] == [ok.title]


def test_declarations_are_checked() -> None:
    with pytest.raises(ResourceDefinitionError, match="no primary key"):

        class NoKey(domain.Resource):
            name: str = domain.attribute()

    with pytest.raises(ResourceDefinitionError, match="accepts 'nope'"):

        class BadAccept(domain.Resource):
            id: uuid.UUID = domain.uuid_primary_key()
            actions = (domain.create("create", accept=("nope",)),)

    with pytest.raises(ResourceDefinitionError, match="annotation includes None"):

        class BadNil(domain.Resource):
            id: uuid.UUID = domain.uuid_primary_key()
            x: str | None = domain.attribute(allow_nil=False)

    with pytest.raises(ResourceDefinitionError, match="identity"):

        class BadIdentity(domain.Resource):
            id: uuid.UUID = domain.uuid_primary_key()
            identities = (domain.identity("u", "missing"),)

    with pytest.raises(ResourceDefinitionError, match=r"index \('missing',\) names unknown"):

        class BadIndex(domain.Resource):
            id: uuid.UUID = domain.uuid_primary_key()
            indexes = (domain.index("missing"),)


def test_indexes_are_named_by_the_convention() -> None:
    class Indexed(domain.Resource):
        __tablename__ = "indexed_things"
        id: uuid.UUID = domain.uuid_primary_key()
        grp: int = domain.attribute()
        at: int = domain.attribute()
        indexes = (domain.index("grp", "at"),)

    (ix,) = Indexed.__table__.indexes
    assert ix.name == "ix_indexed_things_grp_at"
    assert [c.name for c in ix.columns] == ["grp", "at"]
    assert not ix.unique


def test_resources_of_one_name_in_two_modules_resolve_within_their_module() -> None:
    import examples.chat.model as chat  # defines its own Room and Message

    from . import app

    assert app.Room.__relationships__["messages"].target() is app.Message
    assert chat.Message.__relationships__["room"].target() is chat.Room


def test_random_uuid_keys_are_version_4_unique_and_not_shared_with_a_fork() -> None:
    from domain._resource import random_uuid

    keys = [random_uuid() for _ in range(2_000)]  # several refills of the bulk pool
    assert len(set(keys)) == len(keys)
    assert {k.version for k in keys} == {4}
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write_end, random_uuid().bytes)
        os._exit(0)
    os.waitpid(child, 0)
    from_child = uuid.UUID(bytes=os.read(read_end, 16))
    os.close(read_end)
    os.close(write_end)
    assert from_child != random_uuid()  # the child drew fresh bytes, not the parent's next


def test_an_sqlite_files_directory_is_created(tmp_path: Path) -> None:
    from domain._data_layer import ensure_sqlite_directory

    ensure_sqlite_directory(f"sqlite:///{tmp_path}/a/b/app.db")
    assert (tmp_path / "a" / "b").is_dir()
    # Only its owner may read the database (and the directory made for it).
    assert (tmp_path / "a" / "b" / "app.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
    ensure_sqlite_directory("sqlite://")  # in memory: nothing to create, no error
    ensure_sqlite_directory("postgresql+psycopg://u@h/db")


async def test_sqlite_reads_go_to_query_only_readers(tmp_path: Path) -> None:
    async with beam.open_node():
        await Chat.start_link(f"sqlite:///{tmp_path / 'db.sqlite'}")
        await Chat.create_tables()
        repo = Chat.repo()
        assert isinstance(repo, domain.SQLiteRepo)
        assert repo.pool_size == 4  # one writer, three readers
        await Chat.register("alice")
        write = ChatUser.__table__.delete()
        with pytest.raises(Exception, match="readonly"):  # a reader refuses to write
            await repo.run(lambda tx: tx.conn.execute(write), read_only=True)
        assert [u.name for u in await Chat.read(ChatUser)] == ["alice"]
