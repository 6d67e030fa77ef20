"""The PostgreSQL data layer under failure: cancelled and killed callers, killed connection
owners, connections terminated by the server, a pool run dry, units past their timeout,
LISTEN/NOTIFY to processes, and the trio loop under load (it must never wait on the
database). Each test runs in a schema of its own."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
import trio

import beam
import domain
from domain import ConnectionLost, DatabaseTimeout

from .app import Chat, ChatUser, Notice
from .pg_support import DSN, eventually, names, node, schema, start

__all__ = ["node", "schema"]  # fixtures, used by name

pytestmark = pytest.mark.postgres


async def server_rows(sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """*sql* on a connection of the test's own (the server's view, not the pool's)."""
    conn = await domain._pg_conn.TrioConnection.connect(DSN, autocommit=True)
    try:
        cur = await conn.execute(sql, args)
        return list(await cur.fetchall())
    finally:
        await conn.close()


async def sleeping_on_server(schema: str) -> int:
    rows = await server_rows(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s",
        f"%pg_sleep%{schema}%",
    )
    return int(rows[0][0])


def sleep_unit(schema: str, seconds: float) -> Any:
    """A unit that sleeps on the server; the schema in a comment finds it in pg_stat_activity."""
    stmt = sa.text(f"SELECT pg_sleep({seconds}) /* {schema} */")
    return lambda tx: tx.execute(stmt)


async def gone_from_server(schema: str) -> None:
    async def no_sleep() -> bool:
        return await sleeping_on_server(schema) == 0

    await eventually(no_sleep, "the sleep was cancelled on the server")


# -- cancellation ---------------------------------------------------------------------------------


async def test_a_cancelled_caller_cancels_its_query_on_the_server(schema: str, node: None) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        before = repo.stats().replaced
        with trio.move_on_after(0.5) as scope:
            await repo.run(sleep_unit(schema, 30))
        assert scope.cancelled_caught
        await gone_from_server(schema)
        # The connection was replaced before anyone else could use it, and the pool serves.
        assert await names() == []
        assert repo.stats().replaced == before + 1
        await Chat.register("alice")
        assert await names() == ["alice"]


async def test_a_killed_caller_cancels_its_query_on_the_server(schema: str, node: None) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        me = beam.self()

        async def caller() -> None:
            beam.send(me, "running")
            await repo.run(sleep_unit(schema, 30))

        pid = beam.spawn(caller)
        await beam.receive(lambda m: m == "running", timeout=5)

        async def sleeping() -> bool:
            return await sleeping_on_server(schema) == 1

        await eventually(sleeping, "the caller's sleep runs")
        beam.exit(pid, "kill")
        await gone_from_server(schema)
        await Chat.register("alice")
        assert await names() == ["alice"]
        assert repo.stats().in_use == 0


async def test_a_caller_killed_inside_a_transaction_leaves_nothing(schema: str, node: None) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        me = beam.self()

        async def holder() -> None:
            async with Chat.transaction():
                await Chat.register("ghost")
                beam.send(me, "holding")
                await trio.sleep_forever()

        pid = beam.spawn(holder)
        await beam.receive(lambda m: m == "holding", timeout=5)
        assert repo.stats().in_use == 1
        beam.exit(pid, "kill")
        # The owner rolls the connection back (it was between statements) and lends it again.
        await Chat.register("alice")
        assert await names() == ["alice"]
        assert repo.stats().replaced == 0


# -- lost connections ---------------------------------------------------------------------------


async def test_killing_the_owner_mid_transaction_loses_it_and_the_pool_recovers(
    schema: str, node: None
) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        me = beam.self()

        async def writer() -> None:
            try:
                async with Chat.transaction():
                    await Chat.register("first")
                    beam.send(me, "wrote")
                    await beam.receive(lambda m: m == "go", timeout=10)
                    await Chat.register("second")
            except ConnectionLost as exc:
                beam.send(me, ("lost", str(exc)))
            else:
                beam.send(me, ("committed",))

        pid = beam.spawn(writer)
        await beam.receive(lambda m: m == "wrote", timeout=5)
        owner = beam.whereis(repo.names[0])
        assert owner is not None
        ref = beam.monitor(owner)
        beam.exit(owner, "kill")
        down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref, timeout=5)
        assert down.reason == "killed"
        beam.send(pid, "go")
        outcome = await beam.receive(lambda m: isinstance(m, tuple), timeout=10)
        assert outcome[0] == "lost", outcome
        await Chat.register("alice")  # a fresh owner, a fresh connection
        assert await names() == ["alice"]
        assert beam.whereis(repo.names[0]) not in (None, owner)


async def test_a_connection_terminated_by_the_server_mid_transaction(
    schema: str, node: None
) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        me = beam.self()

        async def writer() -> None:
            try:
                async with Chat.transaction():
                    await Chat.register("first")
                    beam.send(me, "wrote")
                    await beam.receive(lambda m: m == "go", timeout=10)
                    await Chat.register("second")
            except ConnectionLost as exc:
                beam.send(me, ("lost", str(exc)))
            else:
                beam.send(me, ("committed",))

        pid = beam.spawn(writer)
        await beam.receive(lambda m: m == "wrote", timeout=5)
        assert await terminate(repo.names[0]) == 1
        beam.send(pid, "go")
        outcome = await beam.receive(lambda m: isinstance(m, tuple), timeout=10)
        assert outcome[0] == "lost", outcome
        assert "terminat" in outcome[1]
        await Chat.register("alice")
        assert await names() == ["alice"]
        assert repo.stats().replaced == 1


async def test_an_idle_connection_terminated_by_the_server_is_replaced_unseen(
    schema: str, node: None
) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)
        await Chat.register("alice")
        assert await terminate(repo.names[0]) == 1
        await trio.sleep(0.1)  # the server's notice reaches the idle socket
        await Chat.register("bob")  # no error: checkout found it lost and waited for another
        assert await names() == ["alice", "bob"]
        assert repo.stats().replaced == 1


async def terminate(application_name: str) -> int:
    rows = await server_rows(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        application_name,
    )
    return sum(1 for (done,) in rows if done)


# -- the pool -------------------------------------------------------------------------------------


async def test_a_dry_pool_queues_callers_in_order_and_times_them_out(
    schema: str, node: None
) -> None:
    with trio.fail_after(30):
        repo = await start(schema, pool_size=2, timeout=1.0)
        me = beam.self()

        async def holder(tag: str) -> None:
            async with Chat.transaction():
                await Chat.read(ChatUser)
                beam.send(me, ("holding", tag))
                await beam.receive(lambda m: m == "release", timeout=20)

        holders = [beam.spawn(holder, tag) for tag in ("a", "b")]
        for _ in holders:
            await beam.receive(lambda m: m[0] == "holding", timeout=5)
        stats = repo.stats()
        assert (stats.in_use, stats.idle, stats.waiting) == (2, 0, 0)

        # A third caller waits its turn, then gives up after the repo's timeout.
        started = trio.current_time()
        with pytest.raises(DatabaseTimeout, match=f"no connection of {re.escape(repo.name)}"):
            await Chat.register("late")
        assert trio.current_time() - started >= 1.0
        assert repo.stats().timeouts == 1

        # Callers queue in order: the first to wait is the first served.
        async def caller(name: str) -> None:
            beam.send(me, ("queued", name))
            await Chat.register(name)
            beam.send(me, ("served", name))

        for name in ("first", "second"):
            beam.spawn(caller, name)
            queued = ("queued", name)
            await beam.receive(lambda m: m == queued, timeout=5)  # noqa: B023 - used at once
            await trio.sleep(0.05)
        assert repo.stats().waiting == 2
        beam.send(holders[0], "release")
        served = [await beam.receive(lambda m: m[0] == "served", timeout=5) for _ in range(2)]
        assert [name for _, name in served] == ["first", "second"]
        beam.send(holders[1], "release")
        assert await names() == ["first", "second"]
        stats = repo.stats()
        assert (stats.waiting, stats.connected, stats.size) == (0, 2, 2)


async def test_a_unit_past_the_timeout_is_cancelled_on_the_server(schema: str, node: None) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1, timeout=0.5)
        with pytest.raises(DatabaseTimeout, match="cancelled on the server"):
            await repo.run(sleep_unit(schema, 30))
        await gone_from_server(schema)
        await Chat.register("alice")
        assert await names() == ["alice"]


async def test_stats_count_queries_errors_and_use(schema: str, node: None) -> None:
    with trio.fail_after(20):
        repo = await start(schema, pool_size=3)
        stats = repo.stats()
        assert (stats.size, stats.connected, stats.idle, stats.in_use) == (3, 3, 3, 0)
        before = stats.queries
        await Chat.register("alice")
        with pytest.raises(domain.Invalid):
            await Chat.register("alice")  # a unique violation: an error of the database
        stats = repo.stats()
        assert stats.queries >= before + 2
        assert stats.errors >= 1
        assert stats.in_use == 0


# -- units: statements, tx.conn and final ---------------------------------------------------------


async def test_the_fast_path_and_tx_conn_share_one_transaction(schema: str, node: None) -> None:
    table = ChatUser.__table__
    with trio.fail_after(20):
        repo = await start(schema)
        alice = await Chat.register("alice")

        def unit(tx: domain.Tx) -> list[str]:
            tx.execute(table.update().where(table.c.id == alice.id).values(name="alice2"))
            seen = [row.name for row in tx.conn.execute(sa.select(table.c.name))]
            with tx.conn.begin_nested() as savepoint:  # a savepoint through SQLAlchemy
                tx.conn.execute(table.delete())
                savepoint.rollback()
            seen += [row[0] for row in tx.execute(sa.select(table.c.name)).rows]
            return seen

        seen, _ = await repo.run(unit)
        assert seen == ["alice2", "alice2"]
        assert await names() == ["alice2"]

        def failing(tx: domain.Tx) -> None:
            tx.execute(table.update().values(name="nobody"))
            raise RuntimeError("the unit fails after a write")

        with pytest.raises(RuntimeError):
            await repo.run(failing)
        assert await names() == ["alice2"]


async def test_nothing_runs_after_a_final_statement(schema: str, node: None) -> None:
    table = ChatUser.__table__
    with trio.fail_after(20):
        repo = await start(schema)

        def unit(tx: domain.Tx) -> None:
            tx.execute(sa.select(table.c.id), final=True)
            tx.execute(sa.select(table.c.id))

        with pytest.raises(RuntimeError, match="final"):
            await repo.run(unit)
        await Chat.register("alice")

        def after_write(tx: domain.Tx) -> int:
            tx.execute(table.update().values(is_admin=True))
            return tx.execute(sa.select(sa.func.count()).select_from(table), final=True).scalar()

        count, _ = await repo.run(after_write)
        assert count == 1
        assert (await Chat.read(ChatUser))[0].is_admin is True


async def test_prepared_statements_are_kept_to_a_bound(
    schema: str, node: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(domain._pg_link, "MAX_PREPARED", 3)
    count = sa.text("SELECT count(*) FROM pg_prepared_statements")
    with trio.fail_after(20):
        repo = await start(schema, pool_size=1)

        def select(n: int) -> Any:
            stmt: Any = sa.select(sa.literal_column(str(n)), sa.bindparam("x", type_=sa.Integer()))
            return lambda tx: tx.execute(stmt, {"x": n}).rows

        for n in range(10):  # ten shapes, each prepared on first use
            rows, _ = await repo.run(select(n))
            assert rows == [(n, n)]
        prepared, _ = await repo.run(lambda tx: tx.execute(count).scalar())
        assert prepared <= 4  # three kept (and the count's own, not yet evicted)


# -- LISTEN / NOTIFY ------------------------------------------------------------------------------


async def test_notify_reaches_listening_processes(schema: str, node: None) -> None:
    # Channels are the server's, shared with whatever else runs on it: names of our own.
    jobs, other = f"jobs_{schema}", f"other_{schema}"
    with trio.fail_after(30):
        repo = await start(schema)
        me = beam.self()

        async def listener(tag: str) -> None:
            await repo.listen(jobs)
            beam.send(me, ("listening", tag))
            while True:
                note = await beam.receive(domain.Notify)
                beam.send(me, (tag, note.channel, note.payload))

        pids = [beam.spawn(listener, tag) for tag in ("a", "b")]
        for _ in pids:
            await beam.receive(lambda m: m[0] == "listening", timeout=5)

        await repo.notify(jobs, "1")
        got = {await beam.receive(lambda m: m[0] in ("a", "b"), timeout=5) for _ in range(2)}
        assert got == {("a", jobs, "1"), ("b", jobs, "1")}

        # Inside a transaction: sent with the commit, never for a rollback.
        async with Chat.transaction():
            await repo.notify(jobs, "2")
            with pytest.raises(beam.ReceiveTimeout):
                await beam.receive(lambda m: m[0] in ("a", "b"), timeout=0.3)
        got = {await beam.receive(lambda m: m[0] in ("a", "b"), timeout=5) for _ in range(2)}
        assert got == {("a", jobs, "2"), ("b", jobs, "2")}

        async def rolled_back() -> None:
            async with Chat.transaction():
                await repo.notify(jobs, "never")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await rolled_back()
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(lambda m: m[0] in ("a", "b"), timeout=0.3)

        # A listener that dies is forgotten; the channel stays heard while one is left.
        beam.exit(pids[0], "kill")
        await trio.sleep(0.1)
        await repo.notify(jobs, "3")
        assert await beam.receive(lambda m: m[0] in ("a", "b"), timeout=5) == ("b", jobs, "3")
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(lambda m: m[0] == "a", timeout=0.3)

        # This process listens too, then stops.
        await repo.listen(other)
        await repo.notify(other, "x")
        note = await beam.receive(domain.Notify, timeout=5)
        assert (note.channel, note.payload) == (other, "x")
        await repo.unlisten(other)
        await repo.notify(other, "y")
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(domain.Notify, timeout=0.3)


async def test_the_listener_reconnects_and_listens_again(schema: str, node: None) -> None:
    jobs = f"jobs_{schema}"
    with trio.fail_after(30):
        repo = await start(schema)
        await repo.listen(jobs)
        assert await terminate(repo.listener) == 1

        async def delivered() -> bool:
            await repo.notify(jobs, "after")
            try:
                await beam.receive(domain.Notify, timeout=0.2)
            except beam.ReceiveTimeout:
                return False
            return True

        await eventually(delivered, "a notification after the listener reconnected", 10)


# -- the loop never waits on PostgreSQL -----------------------------------------------------------


async def _counter(parent: beam.Pid) -> None:
    reports: list[beam.LongSchedule] = []
    while True:
        message = await beam.receive()
        if isinstance(message, beam.LongSchedule):
            reports.append(message)
        elif message == "report":
            beam.send(parent, ("reports", reports))
            return


@pytest.mark.slow
async def test_the_loop_never_waits_on_postgres_under_load(schema: str) -> None:
    """40 processes write and read for a while, some units sleeping on the server: a step of
    the loop that waited for PostgreSQL would take at least the sleep (0.5 s); the monitor's
    threshold (0.3 s) sits far above what a step of ours takes (and what a busy machine's
    scheduler takes from a process now and then), and under the sleep. The node tunes
    the garbage collector as ``beam.run`` does (else a full collection of the test session's
    heap, hundreds of milliseconds, lands in some step)."""
    with trio.fail_after(60):
        async with beam.open_node(tune_gc=True):
            await _load(schema)


async def _load(schema: str) -> None:
    repo = await start(schema, pool_size=10)
    alice = await Chat.register("alice")
    me = beam.self()
    counter = beam.spawn(_counter, me)
    beam.system_monitor(long_schedule=0.3, receiver=counter)
    await trio.lowlevel.checkpoint()

    async def worker(n: int) -> None:
        for i in range(25):
            await Chat.notify(user_id=alice.id, title=f"{n}-{i}")
            await Chat.read(Notice, actor=alice, limit=10)
            if i % 10 == 0:
                await repo.run(sleep_unit(schema, 0.5))
        beam.send(me, "done")

    for n in range(40):
        beam.spawn(worker, n)
    for _ in range(40):
        await beam.receive(lambda m: m == "done", timeout=50)
    beam.system_monitor(long_schedule=None)
    beam.send(counter, "report")
    _, reports = await beam.receive(lambda m: m[0] == "reports", timeout=5)
    assert reports == [], [(r.duration, r.stack) for r in reports]
    assert len(await Chat.read(Notice, actor=alice)) == 40 * 25
