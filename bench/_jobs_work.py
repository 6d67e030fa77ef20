"""Workloads of the ``jobs`` suite; each runs in a fresh interpreter (see ``bench/jobs.py``).

* :func:`drain_jobs`: *n* no-op jobs inserted with ``insert_all``, then drained by one node
  (one producer, limit 50, a process per job, every outcome recorded in its own
  transaction, lifecycle events broadcast);
* :func:`drain_raw`: the same rows through the same SQL shape with nothing around it: one
  trio-native psycopg connection inserts them (one multi-row ``INSERT`` per 500, in one
  transaction), claims 50 at a time with ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
  SKIP LOCKED)`` and marks each completed with its own ``UPDATE`` (autocommit: one round
  trip each), in a loop: the database work of a job queue, without processes, events or the
  domain (claims and completions committed without waiting for the WAL flush, as the
  queue's are);
* :func:`latency_jobs`: one job at a time inserted as another node would (no local wake-up:
  ``NOTIFY oban_insert`` only); the time from before the insert to ``perform`` starting;
* :func:`latency_raw`: the floor for that: the same insert, NOTIFY and claim by hand;
* :func:`drain_procrastinate`: procrastinate (PyPI) draining as many no-op tasks with
  concurrency 50;
* :func:`latency_notify`: a bare ``NOTIFY`` from the same repo to a process listening through
  the repo's listener, one at a time (the wake-up alone, no durable write).
"""

from __future__ import annotations

import gc
import json
import statistics
from datetime import UTC, datetime
from functools import partial
from time import perf_counter
from typing import Any

import sqlalchemy as sa
import trio

import beam
from domain import Domain, Notify
from domain import jobs as dj
from domain._pg_conn import TrioConnection
from domain.jobs._sql import insert_jobs

from ._measure import Sample

__all__ = [
    "BenchNoop",
    "drain_jobs",
    "drain_raw",
    "latency_jobs",
    "latency_notify",
    "latency_raw",
]

CONCURRENCY = 50
GC_THRESHOLD = (100_000, 50, 100)


class BenchJobsDomain(Domain):
    """A domain with no resources: the jobs live in its repo."""


class BenchNoop(dj.Worker):
    """Does nothing (the throughput figure)."""

    async def perform(self, job: dj.Job) -> None:
        return None


class BenchStart(dj.Worker):
    """Tells the bench process when it started (the latency figure)."""

    async def perform(self, job: dj.Job) -> None:
        beam.send("bench.latency", ("started", job.args["i"], trio.current_time()))


def _tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


async def _start(url: str, schema: str, pool_size: int = 10) -> None:
    await BenchJobsDomain.start_link(url, schema=schema, pool_size=pool_size)
    await dj.install(BenchJobsDomain.repo())
    await BenchJobsDomain.repo().run(lambda tx: tx.conn.exec_driver_sql("TRUNCATE oban_jobs"))
    await BenchJobsDomain.repo().run(lambda tx: tx.conn.exec_driver_sql("TRUNCATE oban_producers"))


def drain_jobs(url: str, schema: str, n: int) -> Sample:
    """Insert *n* no-op jobs, then drain them with one node, limit 50: jobs/s."""

    async def main() -> Sample:
        _tune_gc()
        await _start(url, schema)
        jobs = dj.Jobs(BenchJobsDomain, queues={"default": CONCURRENCY}, prune_after=None)
        started = perf_counter()
        await jobs.insert_all([BenchNoop.new({"i": i}) for i in range(n)])
        inserted = perf_counter()
        jobs.subscribe()
        await jobs.start_link()
        done = 0
        while done < n:
            event = await beam.receive(dj.JobEvent)
            if event.kind == "stop":
                done += 1
        drained = perf_counter()
        counts = await jobs.counts()
        assert counts == {"default": {"completed": n}}, counts
        return {
            "rate": n / (drained - inserted),
            "insert_rate": n / (inserted - started),
        }

    return beam.run(main)


RAW_INSERT_COLUMNS = (
    "state, queue, worker, attempt, max_attempts, priority, args, meta, tags, errors, "
    "attempted_by, inserted_at, scheduled_at"
)
#: The claim and the completion by hand, each one statement committed on its own without
#: waiting for the WAL flush (set_config in a one-time InitPlan), as the queue's are.
RAW_FETCH = """
UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, attempted_at = %s,
       attempted_by = %s
WHERE (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL
  AND id IN (SELECT id FROM oban_jobs
             WHERE state IN ('available', 'scheduled', 'retryable') AND queue = %s
                   AND scheduled_at <= %s
             ORDER BY priority, scheduled_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
  AND attempt < max_attempts
RETURNING id, attempt
"""
RAW_ACK = """
UPDATE oban_jobs SET state = 'completed', completed_at = %s
WHERE (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL
  AND id = %s AND state = 'executing' AND attempt = %s
"""


def drain_raw(url: str, schema: str, n: int) -> Sample:
    """The floor: the same rows inserted, claimed 50 at a time and completed one by one with
    hand-written SQL on one connection, in a loop."""

    async def main() -> Sample:
        _tune_gc()
        await _start(url, schema)
        conn = await _raw_connection(url, schema, autocommit=True)
        started = perf_counter()
        now = datetime.now(UTC).replace(tzinfo=None)
        async with conn.transaction():
            for start in range(0, n, 500):
                chunk = range(start, min(n, start + 500))
                values = []
                params: list[object] = []
                for i in chunk:
                    values.append("('available', 'default', %s, 0, 20, 0, %s, '{}', '{}', "
                                  "'[]', '{}', %s, %s)")  # fmt: skip
                    params += ["bench.BenchNoop", json.dumps({"i": i}), now, now]
                await conn.execute(
                    f"INSERT INTO oban_jobs ({RAW_INSERT_COLUMNS}) VALUES {', '.join(values)}",
                    params,
                )
        inserted = perf_counter()
        done = 0
        by = ["raw", "00000000-0000-0000-0000-000000000000"]
        while done < n:
            at = datetime.now(UTC).replace(tzinfo=None)
            cur = await conn.execute(RAW_FETCH, (at, by, "default", at, CONCURRENCY), prepare=True)
            claimed = await cur.fetchall()
            for job_id, attempt in claimed:
                ended = datetime.now(UTC).replace(tzinfo=None)
                await conn.execute(RAW_ACK, (ended, job_id, attempt), prepare=True)
                done += 1
        drained = perf_counter()
        await conn.close()
        return {"rate": n / (drained - inserted), "insert_rate": n / (inserted - started)}

    return beam.run(main)


def _started(i: int, message: object) -> bool:
    return isinstance(message, tuple) and message[1] == i


def _notified(payload: str, message: object) -> bool:
    return isinstance(message, Notify) and message.payload == payload


def _percentiles(samples: list[float]) -> Sample:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000}


def latency_jobs(url: str, schema: str, n: int) -> Sample:
    """Insert-to-start of one job at a time, woken by NOTIFY alone: p50 and p99 in ms."""

    async def main() -> Sample:
        _tune_gc()
        await _start(url, schema)
        beam.register("bench.latency", beam.self())
        jobs = dj.Jobs(BenchJobsDomain, queues={"default": 1}, poll_interval=60.0)
        await jobs.start_link()
        await trio.sleep(0.2)
        repo = BenchJobsDomain.repo()
        samples: list[float] = []
        for i in range(n):
            new = [BenchStart.new({"i": i})]
            now = jobs.now()
            before = trio.current_time()
            await repo.run(partial(insert_jobs, jobs=new, now=now, prefix=schema, final=True))
            _, _, at = await beam.receive(partial(_started, i))
            samples.append(at - before)
            await trio.sleep(0.005)
        return _percentiles(samples)

    return beam.run(main)


#: The insert and its NOTIFY in one statement (its own transaction: one round trip with the
#: commit), as the queue's insert does.
RAW_INSERT_ONE = f"""
WITH ins AS (
INSERT INTO oban_jobs ({RAW_INSERT_COLUMNS})
VALUES ('available', 'default', 'bench.BenchStart', 0, 20, 0, %s, '{{}}', '{{}}', '[]', '{{}}',
        %s, %s)
RETURNING id)
SELECT pg_notify('oban_insert', %s) FROM ins
"""


async def _raw_connection(url: str, schema: str, autocommit: bool) -> TrioConnection:
    dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)
    return await TrioConnection.connect(
        dsn, autocommit=autocommit, options=f"-c search_path={schema} -c TimeZone=UTC"
    )


def latency_raw(url: str, schema: str, n: int) -> Sample:
    """The floor for :func:`latency_jobs` with the same durable steps by hand: the INSERT and
    ``NOTIFY oban_insert`` committed together (one statement), the notification reaching a
    process through the repo's listener, and that process claiming the row with the same
    ``UPDATE`` (commit not waiting for the flush, as the queue's claim): p50 and p99 in ms."""

    async def main() -> Sample:
        _tune_gc()
        await _start(url, schema)
        repo = BenchJobsDomain.repo()
        await repo.listen("oban_insert")  # type: ignore[attr-defined]
        conn = await _raw_connection(url, schema, autocommit=True)
        by = ["raw", "00000000-0000-0000-0000-000000000000"]
        samples: list[float] = []
        for i in range(n):
            before = trio.current_time()
            now = datetime.now(UTC).replace(tzinfo=None)
            await conn.execute(
                RAW_INSERT_ONE, (json.dumps({"i": i}), now, now, str(i)), prepare=True
            )
            await beam.receive(partial(_notified, str(i)))
            at = datetime.now(UTC).replace(tzinfo=None)
            cur = await conn.execute(RAW_FETCH, (at, by, "default", at, 1), prepare=True)
            claimed = await cur.fetchall()
            assert len(claimed) == 1, claimed
            samples.append(trio.current_time() - before)
            await trio.sleep(0.005)
        await conn.close()
        return _percentiles(samples)

    return beam.run(main)


def latency_notify(url: str, schema: str, n: int) -> Sample:
    """The floor: NOTIFY through the repo to a process listening through its listener."""

    async def main() -> Sample:
        _tune_gc()
        await _start(url, schema)
        repo = BenchJobsDomain.repo()
        await repo.listen("bench_latency")  # type: ignore[attr-defined]
        samples: list[float] = []
        for i in range(n):
            before = trio.current_time()
            await repo.notify("bench_latency", str(i))  # type: ignore[attr-defined]
            await beam.receive(partial(_notified, str(i)))
            samples.append(trio.current_time() - before)
            await trio.sleep(0.005)
        return _percentiles(samples)

    return beam.run(main)


def drain_procrastinate(url: str, schema: str, n: int) -> Sample:
    """procrastinate (PyPI, its asyncio worker) doing the same: *n* no-op tasks deferred
    with ``batch_defer_async``, then drained by one worker with concurrency 50 (LISTEN/NOTIFY
    on, ``wait=False``: it returns once the queue is empty), in its own tables in the
    suite's schema."""
    import asyncio

    import procrastinate
    import psycopg

    dsn = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)
    options = f"-c search_path={schema} -c TimeZone=UTC"

    async def main() -> Sample:
        _tune_gc()
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, options=options
        ) as conn:
            cur = await conn.execute("SELECT to_regclass('procrastinate_jobs')")
            installed = (await cur.fetchone() or (None,))[0] is not None
        connector = procrastinate.PsycopgConnector(conninfo=dsn, kwargs={"options": options})
        app = procrastinate.App(connector=connector)

        @app.task(name="bench_noop", queue="default")
        async def noop(i: int) -> None:
            return None

        async with app.open_async():
            if not installed:
                await app.schema_manager.apply_schema_async()
            await connector.execute_query_async(
                "TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE"
            )
            started = perf_counter()
            batch: list[dict[str, Any]] = [{"i": i} for i in range(n)]
            await noop.batch_defer_async(*batch)
            inserted = perf_counter()
            await app.run_worker_async(
                queues=["default"],
                concurrency=CONCURRENCY,
                wait=False,
                install_signal_handlers=False,
                delete_jobs="never",
            )
            drained = perf_counter()
            done = await connector.execute_query_one_async(
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded'"
            )
        assert done["n"] == n, done
        return {"rate": n / (drained - inserted), "insert_rate": n / (inserted - started)}

    return asyncio.run(main())
