"""Workloads of the ``domain`` suite; each runs in a fresh interpreter (see ``bench/domain.py``).

One resource, :class:`BenchItem` (uuid primary key, an integer group, two strings with length
constraints, a create timestamp), in a :class:`BenchDomain` with a create and a read action.
The baselines write and read the *same* table (``BenchItem.__table__``, so same columns, same
types) with the same values made the same way (``uuid4()`` and ``datetime.now(UTC)`` in
Python) and the same SQL statements, one row per transaction:

* :func:`sequential_raw`: psycopg on the trio-native connection the domain drives
  (``domain._pg_conn.TrioConnection``), hand-written SQL, each statement prepared, each its
  own transaction (autocommit: one statement, one round trip): the floor on trio;
* :func:`sequential_core`: SQLAlchemy Core on a synchronous connection, one ``with
  conn.begin():`` per statement, what a Flask or Django developer has;
* :func:`concurrent_psycopg`: 50 OS threads, each with its own psycopg connection in
  autocommit, each INSERT its own transaction (the domain's concurrent creates share flights
  and commits: ``domain/_pg_batch.py``).

Every worker connects and warms up (statement caches, psycopg's prepared statements) before
its clock starts, and runs with beam's GC tuning (``gc.freeze()`` + threshold 100,000, what
``beam.run`` does by default) so that the garbage collector's settings are not the difference.
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from time import perf_counter, process_time
from typing import Any

import psycopg
import sqlalchemy as sa
import trio.lowlevel
from sqlalchemy.pool import NullPool

import beam
from domain import (
    Domain,
    Resource,
    attribute,
    create,
    create_timestamp,
    define,
    define_read,
    read,
    uuid_primary_key,
)
from domain._pg_conn import TrioConnection

from ._measure import Sample

__all__ = [
    "GROUP_SIZE",
    "BenchDomain",
    "BenchItem",
    "concurrent_domain",
    "concurrent_psycopg",
    "psycopg_url",
    "sequential_core",
    "sequential_domain",
    "sequential_raw",
]

#: Rows per read group: a filtered read returns this many rows.
GROUP_SIZE = 10
#: The group of the rows that the create workloads insert (read groups are 1..groups).
CREATED_GROUP = 0
BODY = "lorem ipsum dolor sit amet " * 4  # ~100 characters, like a short message
#: Beam's default GC tuning (``beam.run(tune_gc=True)``), applied to every side alike.
GC_THRESHOLD = (100_000, 50, 100)
#: A trio task step longer than this is a stall of the loop (the issue's goal: none).
STALL_THRESHOLD = 0.010


class BenchItem(Resource):
    """The benchmarked resource: a row the size of a chat message."""

    __tablename__ = "bench_items"
    id: uuid.UUID = uuid_primary_key()
    grp: int = attribute(min=0)
    title: str = attribute(min_length=1, max_length=80)
    body: str = attribute(max_length=500)
    inserted_at: datetime = create_timestamp()
    actions = (create("create", accept=("grp", "title", "body")), read("read"))


class BenchDomain(Domain):
    """The domain the suite calls through its code interface."""

    resources = (BenchItem,)
    add_item = define(BenchItem, "create")
    list_items = define_read(BenchItem, "read")


TABLE = BenchItem.__table__
#: The baselines' statements, built once (raw Core would not rebuild them per call).
CORE_INSERT = sa.insert(TABLE).returning(*TABLE.c)
CORE_FILTERED = sa.select(TABLE).where(TABLE.c.grp == sa.bindparam("g")).order_by(TABLE.c.id)
CORE_GET = sa.select(TABLE).where(TABLE.c.id == sa.bindparam("k")).order_by(TABLE.c.id).limit(2)
#: The same statements as SQLAlchemy renders them, for psycopg.
PSYCOPG_INSERT = (
    "INSERT INTO bench_items (id, grp, title, body, inserted_at) "
    "VALUES (%s, %s, %s, %s, %s) "
    "RETURNING bench_items.id, bench_items.grp, bench_items.title, bench_items.body, "
    "bench_items.inserted_at"
)
_COLUMNS = (
    "bench_items.id, bench_items.grp, bench_items.title, bench_items.body, bench_items.inserted_at"
)
PSYCOPG_FILTERED = (
    f"SELECT {_COLUMNS} FROM bench_items WHERE bench_items.grp = %s ORDER BY bench_items.id"
)
PSYCOPG_GET = (
    f"SELECT {_COLUMNS} FROM bench_items WHERE bench_items.id = %s ORDER BY bench_items.id LIMIT 2"
)


def psycopg_url(url: str) -> str:
    """The libpq URL (no ``+psycopg`` driver suffix) of an SQLAlchemy PostgreSQL *url*."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)


def _tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _group(i: int, groups: int) -> int:
    """The read group of the *i*-th read: a fixed pseudo-random walk over 1..groups."""
    return 1 + (i * 7919) % groups


def _row(i: int) -> dict[str, Any]:
    return {"grp": CREATED_GROUP, "title": f"item {i}", "body": BODY}


def _timed(n: int, op: Callable[[int], object]) -> float:
    """Microseconds per call of ``op(i)`` for i in range(n)."""
    started = perf_counter()
    for i in range(n):
        op(i)
    return (perf_counter() - started) / n * 1e6


# -- one caller, one operation at a time ------------------------------------------------------


def sequential_domain(url: str, creates: int, reads: int, groups: int) -> Sample:
    """Create actions, filtered read actions and gets by primary key, one after another from
    one beam process, through the domain's pool: microseconds per action."""

    async def main() -> Sample:
        await BenchDomain.start_link(url)
        ids = [item.id for item in await BenchDomain.read(BenchItem, filter={"grp": 1}, limit=1)]
        warm = max(20, min(200, creates // 10))
        for i in range(warm):
            await BenchDomain.add_item(**_row(i))
            await BenchDomain.list_items(filter={"grp": _group(i, groups)})
            await BenchDomain.get(BenchItem, ids[0])
        keys = [
            item.id
            for item in await BenchDomain.read(
                BenchItem, filter=TABLE.c.grp >= 1, sort=("id",), limit=reads
            )
        ]
        sample: Sample = {}
        g = partial(_group, groups=groups)
        started = perf_counter()
        for i in range(creates):
            await BenchDomain.add_item(**_row(i))
        sample["create_us"] = (perf_counter() - started) / creates * 1e6
        started = perf_counter()
        for i in range(reads):
            found = await BenchDomain.list_items(filter={"grp": g(i)})
            assert len(found) == GROUP_SIZE
        sample["read_us"] = (perf_counter() - started) / reads * 1e6
        started = perf_counter()
        for i in range(reads):
            await BenchDomain.get(BenchItem, keys[i % len(keys)])
        sample["get_us"] = (perf_counter() - started) / reads * 1e6
        return sample

    return beam.run(main)


def sequential_raw(url: str, creates: int, reads: int, groups: int) -> Sample:
    """The floor on trio for :func:`sequential_domain`: hand-written SQL through psycopg's
    async API on the trio-native connection the domain drives, in a trio task, each
    statement prepared and its own transaction (autocommit: one round trip each)."""

    async def main() -> Sample:
        conn = await TrioConnection.connect(psycopg_url(url), autocommit=True)

        async def insert(i: int) -> object:
            row = _row(i)
            values = (uuid.uuid4(), row["grp"], row["title"], row["body"], datetime.now(UTC))
            cur = await conn.execute(PSYCOPG_INSERT, values, prepare=True)
            return await cur.fetchone()

        async def filtered(i: int) -> object:
            cur = await conn.execute(PSYCOPG_FILTERED, (_group(i, groups),), prepare=True)
            rows = await cur.fetchall()
            assert len(rows) == GROUP_SIZE
            return rows

        cur = await conn.execute(
            "SELECT id FROM bench_items WHERE grp >= 1 ORDER BY id LIMIT %s", (reads,)
        )
        keys = [key for (key,) in await cur.fetchall()]

        async def get(i: int) -> object:
            cur = await conn.execute(PSYCOPG_GET, (keys[i % len(keys)],), prepare=True)
            return await cur.fetchall()

        async def timed(n: int, op: Callable[[int], Any]) -> float:
            started = perf_counter()
            for i in range(n):
                await op(i)
            return (perf_counter() - started) / n * 1e6

        _tune_gc()
        warm = max(20, min(200, creates // 10))
        for op in (insert, filtered, get):
            await timed(warm, op)
        sample = {
            "create_us": await timed(creates, insert),
            "read_us": await timed(reads, filtered),
            "get_us": await timed(reads, get),
        }
        await conn.close()
        return sample

    result: Sample = trio.run(main)
    return result


def sequential_core(url: str, creates: int, reads: int, groups: int) -> Sample:
    """The baseline of :func:`sequential_domain`: SQLAlchemy Core on one held connection (as a
    connection actor holds one), the same statements, one transaction per statement."""
    engine = sa.create_engine(url, poolclass=NullPool)
    conn = engine.connect()

    def insert(i: int) -> object:
        values = {"id": uuid.uuid4(), **_row(i), "inserted_at": datetime.now(UTC)}
        with conn.begin():
            return conn.execute(CORE_INSERT, values).one()

    def filtered(i: int) -> object:
        with conn.begin():
            rows = conn.execute(CORE_FILTERED, {"g": _group(i, groups)}).all()
        assert len(rows) == GROUP_SIZE
        return rows

    with conn.begin():
        keys = list(
            conn.execute(
                sa.select(TABLE.c.id).where(TABLE.c.grp >= 1).order_by(TABLE.c.id).limit(reads)
            ).scalars()
        )

    def get(i: int) -> object:
        with conn.begin():
            return conn.execute(CORE_GET, {"k": keys[i % len(keys)]}).all()

    _tune_gc()
    warm = max(20, min(200, creates // 10))
    for op in (insert, filtered, get):
        _timed(warm, op)
    return {
        "create_us": _timed(creates, insert),
        "read_us": _timed(reads, filtered),
        "get_us": _timed(reads, get),
    }


# -- many callers at once ---------------------------------------------------------------------


async def _stall_counter() -> None:
    """Counts the :class:`beam.LongSchedule` reports the system monitor sends here.

    ``"reset"`` forgets what came before: the monitor, installed in the middle of a task step,
    reports that step as lasting since ``perf_counter()``'s epoch (a beam bug: its start time
    is 0.0 until the first step it sees begin), so the suite resets the count once the
    installing step is over.
    """
    count, worst = 0, 0.0
    while True:
        message = await beam.receive()
        if isinstance(message, beam.LongSchedule):
            count += 1
            worst = max(worst, message.duration)
        elif message == "reset":
            count, worst = 0, 0.0
        elif isinstance(message, tuple) and message[0] == "report":
            beam.send(message[1], ("stalls", count, worst))


async def _creator(parent: beam.Pid, first: int, n: int) -> None:
    for i in range(first, first + n):
        await BenchDomain.add_item(**_row(i))
    beam.send(parent, "done")


def concurrent_domain(url: str, procs: int, per_proc: int, pool_size: int) -> Sample:
    """*procs* beam processes each doing *per_proc* create actions through a pool of
    *pool_size* connection actors: creates per second, this interpreter's CPU time per create
    (all threads; shown in the log, for diagnosis), and the trio-loop stalls (task steps over
    10 ms) the long-schedule monitor saw while they ran."""

    def is_done(message: Any) -> bool:
        return message == "done"

    async def main() -> Sample:
        me = beam.self()
        await BenchDomain.start_link(url, pool_size=pool_size)
        for p in range(procs):  # warm every connection and the code paths
            beam.spawn(_creator, me, p * 5, 5)
        for _ in range(procs):
            await beam.receive(is_done)
        counter = beam.spawn(_stall_counter)
        beam.system_monitor(long_schedule=STALL_THRESHOLD, receiver=counter)
        await trio.lowlevel.checkpoint()  # end the installing step; its bogus report goes first
        beam.send(counter, "reset")
        started, cpu = perf_counter(), process_time()
        for p in range(procs):
            beam.spawn(_creator, me, p * per_proc, per_proc)
        for _ in range(procs):
            await beam.receive(is_done)
        elapsed, cpu = perf_counter() - started, process_time() - cpu
        beam.system_monitor(long_schedule=None)
        beam.send(counter, ("report", me))
        _, count, worst = await beam.receive(
            lambda m: isinstance(m, tuple) and m[0] == "stalls", timeout=5
        )
        return {
            "rate": procs * per_proc / elapsed,
            "cpu_us_per_op": cpu / (procs * per_proc) * 1e6,
            "stalls": float(count),
            "worst_stall_ms": worst * 1e3,
        }

    return beam.run(main)


def concurrent_psycopg(url: str, threads: int, per_thread: int) -> Sample:
    """The baseline of :func:`concurrent_domain`: *threads* OS threads, each with its own
    psycopg 3 connection in autocommit, each doing *per_thread* of the same INSERT ...
    RETURNING, each its own transaction (one round trip, as a lone domain create): inserts
    per second, from the moment all are connected and warm."""
    conninfo = psycopg_url(url)
    ready = threading.Barrier(threads + 1)
    finished = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def insert(conn: psycopg.Connection[Any], i: int) -> None:
        row = _row(i)
        conn.execute(
            PSYCOPG_INSERT,
            (uuid.uuid4(), row["grp"], row["title"], row["body"], datetime.now(UTC)),
        ).fetchone()

    def worker(t: int) -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                for i in range(5):
                    insert(conn, t * 5 + i)
                ready.wait()
                for i in range(t * per_thread, (t + 1) * per_thread):
                    insert(conn, i)
                finished.wait()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            ready.abort()
            finished.abort()

    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    _tune_gc()
    try:
        ready.wait()
        started, cpu = perf_counter(), process_time()
        finished.wait()
        elapsed, cpu = perf_counter() - started, process_time() - cpu
    except threading.BrokenBarrierError:
        raise RuntimeError(f"a psycopg thread failed: {errors[:1]!r}") from None
    for thread in pool:
        thread.join()
    return {
        "rate": threads * per_thread / elapsed,
        "cpu_us_per_op": cpu / (threads * per_thread) * 1e6,
    }
