"""psycopg on trio (domain/_pg_conn.py) and the private names of psycopg and SQLAlchemy that
the PostgreSQL data layer relies on: an upgrade that moves one of them fails here first."""

from __future__ import annotations

import inspect
import os
import uuid
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import trio
from psycopg import errors as e
from psycopg import generators, pq

from domain._pg_conn import TaskLock, TrioConnection

from ..support.backends import PG_URL, pg_engine

DSN = sa.engine.make_url(PG_URL).set(drivername="postgresql").render_as_string(False)

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres() -> None:
    engine = pg_engine()
    if engine is None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    engine.dispose()


# -- what we rely on ----------------------------------------------------------------------------


def test_psycopg_is_the_pinned_minor_version() -> None:
    """psycopg has no trio support of its own: TrioConnection overrides internals of 3.3."""
    major, minor = (int(p) for p in psycopg.__version__.split(".")[:2])
    assert (major, minor) == (3, 3), (
        f"psycopg {psycopg.__version__}: domain/_pg_conn.py and _pg_link.py were written "
        "against 3.3; check every name this module tests, then move the pin in pyproject.toml"
    )


def test_the_private_psycopg_names_are_there() -> None:
    conn_cls = psycopg.AsyncConnection
    # Every wait of the async API goes through wait(gen, interval, timeout), serialised by
    # the `lock` attribute the constructor sets (TrioConnection swaps both).
    assert list(inspect.signature(conn_cls.wait).parameters) == [
        "self",
        "gen",
        "interval",
        "timeout",
    ]
    assert "self.lock = ALock()" in inspect.getsource(conn_cls.__init__)
    # connect(): parameters, the connection generator, the cancel generator.
    assert inspect.iscoroutinefunction(conn_cls._get_connection_params)
    assert callable(conn_cls._connect_gen)
    assert inspect.isgeneratorfunction(psycopg.Connection._cancel_gen)
    assert "_should_cancel" in dir(conn_cls)
    assert "_finish" not in dir(conn_cls)  # ours; psycopg must not define one we shadow
    from psycopg._conninfo_utils import get_param, get_param_def, is_ip_address, split_attempts
    from psycopg.conninfo import make_conninfo, timeout_from_conninfo

    for fn in (get_param, get_param_def, is_ip_address, split_attempts, make_conninfo):
        assert callable(fn)
    assert timeout_from_conninfo({"connect_timeout": "3"}) == 3
    assert issubclass(e._WaitTimeout, e.OperationalError)
    assert callable(e.error_from_result)
    # The generators' protocol: Wait bits out, Ready bits in.
    from psycopg.waiting import Ready, Wait

    assert (int(Wait.R), int(Wait.W), int(Ready.R), int(Ready.W)) == (1, 2, 1, 2)
    for gen in (generators.send, generators.fetch_many, generators.cancel, generators.notifies):
        assert callable(gen)
    # libpq's pipeline mode and the calls the link makes in it.
    for name in (
        "enter_pipeline_mode",
        "exit_pipeline_mode",
        "pipeline_sync",
        "send_prepare",
        "send_query_prepared",
        "send_query_params",
        "consume_input",
        "notifies",
    ):
        assert hasattr(pq.PGconn, name), name
    assert pq.version() >= 140000, "pipeline mode needs libpq 14"
    assert psycopg.capabilities.has_cancel_safe(), "the non-blocking cancel needs libpq 17"


def test_the_private_sqlalchemy_names_are_there() -> None:
    from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

    dialect = pg_dialect.dialect(paramstyle="numeric_dollar")
    table = sa.table("t", sa.column("a", sa.Integer()))
    stmt = sa.select(table).where(table.c.a == 5)
    key = stmt._generate_cache_key()
    assert key is not None
    assert key.bindparams
    compiled: Any = stmt.compile(dialect=dialect, cache_key=key)
    fed_by, _ = compiled._cache_key_bind_match
    assert fed_by[key.bindparams[0]]
    assert compiled._result_columns[0].keyname == "a"
    assert compiled.positiontup == ["a_1"]
    # SQLAlchemy's await_ runs in greenlets that declare themselves its providers.
    from sqlalchemy.util import concurrency

    assert "__sqlalchemy_greenlet_provider__" in inspect.getsource(concurrency.await_)


# -- the connection ----------------------------------------------------------------------------


async def test_queries_transactions_and_notifications_run_on_trio() -> None:
    conn = await TrioConnection.connect(DSN)
    try:
        cur = await conn.execute("SELECT %s::int + 1", (41,))
        assert await cur.fetchone() == (42,)
        await conn.rollback()
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE t (x int)")
            await conn.execute("INSERT INTO t VALUES (1), (2)")
        cur = await conn.execute("SELECT sum(x) FROM t")
        assert await cur.fetchone() == (3,)
        await conn.commit()
        await conn.set_autocommit(True)
        channel = f"pinned_{uuid.uuid4().hex[:12]}"  # the server's channels are shared
        await conn.execute(f"LISTEN {channel}")
        other = await TrioConnection.connect(DSN, autocommit=True)
        try:
            await other.execute(f"NOTIFY {channel}, 'hello'")
        finally:
            await other.close()
        got = [n async for n in conn.notifies(timeout=5, stop_after=1)]
        assert [(n.channel, n.payload) for n in got] == [(channel, "hello")]
        assert [n async for n in conn.notifies(timeout=0.05)] == []
    finally:
        await conn.close()
    assert conn.closed


async def test_a_cancelled_query_is_cancelled_on_the_server_and_the_connection_stays_usable() -> (
    None
):
    conn = await TrioConnection.connect(DSN, autocommit=True)
    try:
        with trio.fail_after(5):  # not the 30 s of the sleep
            with trio.move_on_after(0.3):
                await conn.execute("SELECT pg_sleep(30)")
        assert not conn.closed
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        cur = await conn.execute("SELECT 7")
        assert await cur.fetchone() == (7,)
        pid = conn.info.backend_pid
        probe = await TrioConnection.connect(DSN, autocommit=True)
        try:
            cur = await probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND query LIKE %s",
                (pid, "%pg_sleep(30)%"),
            )
            # The backend moved on: its last query is the probe's SELECT 7, not the sleep.
            assert await cur.fetchone() == (0,)
        finally:
            await probe.close()
    finally:
        await conn.close()


async def test_closing_wakes_a_task_waiting_on_the_connection() -> None:
    conn = await TrioConnection.connect(DSN, autocommit=True)
    failures: list[BaseException] = []

    async def sleeper() -> None:
        try:
            await conn.execute("SELECT pg_sleep(30)")
        except psycopg.Error as exc:
            failures.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper)
            await trio.sleep(0.2)
            await conn.close()
    assert len(failures) == 1
    assert isinstance(failures[0], psycopg.OperationalError)


async def test_connecting_to_nothing_fails_with_psycopgs_error() -> None:
    with trio.fail_after(10), pytest.raises(psycopg.OperationalError):
        await TrioConnection.connect("host=127.0.0.1 port=1 dbname=x connect_timeout=2")


async def test_a_host_name_is_resolved_on_trio() -> None:
    dsn = DSN.replace("127.0.0.1", "localhost")
    if os.environ.get("DATABASE_URL") and "127.0.0.1" not in DSN:
        pytest.skip("DATABASE_URL names another host")
    conn = await TrioConnection.connect(dsn)
    try:
        cur = await conn.execute("SELECT 1")
        assert await cur.fetchone() == (1,)
    finally:
        await conn.close()


async def test_the_task_lock_is_fifo_and_not_reentrant() -> None:
    lock = TaskLock()
    order: list[int] = []

    async def take(n: int) -> None:
        async with lock:
            order.append(n)
            await trio.sleep(0.01)

    async with lock:
        with pytest.raises(RuntimeError, match="re-entrant"):
            await lock.acquire()
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(take, n)
                await trio.sleep(0.001)
            assert lock.locked()
            lock.release()
            await lock.acquire()  # behind the three waiting ones
            assert order == [0, 1, 2]
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()
