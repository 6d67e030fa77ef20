"""domain.jobs on PostgreSQL only: the table as Oban lays it out, NOTIFY waking a queue,
two nodes sharing one database, and crashes injected at random while a batch drains (on
SQLite too, one node)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

import beam
from domain import jobs as dj
from domain.jobs import worker_name
from domain.jobs._sql import insert_jobs
from supervisors import FaultInjector

from ..support.backends import Backend, pg_engine
from .app import Chat
from .jobs_support import (
    ACTIVE,
    OVERLAPS,
    PERFORMED,
    Exclusive,
    Noop,
    running,
    states,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]

#: Oban's oban_jobs columns (its PyPI package's install.sql, and Elixir Oban's migrations):
#: name -> (udt_name, nullable, has a default).
OBAN_COLUMNS = {
    "id": ("int8", False, True),
    "state": ("oban_job_state", False, True),
    "queue": ("text", False, True),
    "worker": ("text", False, False),
    "attempt": ("int2", False, True),
    "max_attempts": ("int2", False, True),
    "priority": ("int2", False, True),
    "args": ("jsonb", False, True),
    "meta": ("jsonb", False, True),
    "tags": ("_text", False, True),
    "errors": ("jsonb", False, True),
    "attempted_by": ("_text", False, True),
    "inserted_at": ("timestamp", False, True),
    "scheduled_at": ("timestamp", False, True),
    "attempted_at": ("timestamp", True, False),
    "cancelled_at": ("timestamp", True, False),
    "completed_at": ("timestamp", True, False),
    "discarded_at": ("timestamp", True, False),
}
OBAN_STATES = [
    "available", "scheduled", "executing", "retryable", "completed", "discarded", "cancelled"
]  # fmt: skip


@pytest.fixture
def pg(backend: Backend) -> Backend:
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL only")
    return backend


async def test_the_table_is_laid_out_as_obans(pg: Backend) -> None:
    with trio.fail_after(30):
        async with running(pg):
            engine = pg_engine()
            assert engine is not None
            try:
                with engine.connect() as conn:
                    rows = conn.exec_driver_sql(
                        "SELECT column_name, udt_name, is_nullable, column_default, "
                        "is_identity, identity_generation FROM information_schema.columns "
                        "WHERE table_schema = %s AND table_name = 'oban_jobs'",
                        (pg.schema,),
                    ).all()
                    labels = conn.exec_driver_sql(
                        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                        " JOIN pg_namespace n ON n.oid = t.typnamespace"
                        " WHERE t.typname = 'oban_job_state' AND n.nspname = %s"
                        " ORDER BY e.enumsortorder",
                        (pg.schema,),
                    ).all()
            finally:
                engine.dispose()
            found = {
                name: (udt, nullable == "YES", default is not None or identity == "YES")
                for name, udt, nullable, default, identity, _ in rows
            }
            assert found == OBAN_COLUMNS
            assert next(r for r in rows if r[0] == "id")[5] == "ALWAYS"
            assert [label for (label,) in labels] == OBAN_STATES


async def test_notify_wakes_a_queue_that_never_polls(pg: Backend) -> None:
    with trio.fail_after(30):
        async with running(pg, poll_interval=3600.0) as jobs:
            await jobs.start_link()
            await trio.sleep(0.2)  # its first claim (at start) is over
            now = jobs.now()
            # Written as another node would: no local wake-up, only NOTIFY oban_insert.
            prefix = jobs.prefix
            assert prefix == pg.schema
            [job], _ = await Chat.repo().run(
                lambda tx: insert_jobs(tx, [Noop.new({"n": 1})], now, prefix)
            )

            async def done() -> bool:
                got = await jobs.get_job(job.id)
                return got is not None and got.state == "completed"

            await wait_for(done, "NOTIFY to wake the queue", timeout=10)


async def test_two_nodes_share_the_queue_and_never_run_a_job_twice(pg: Backend) -> None:
    with trio.fail_after(60):
        async with running(pg, name="a", node="node-a", queues={"default": 5}) as a:
            b = dj.Jobs(Chat, name="b", node="node-b", queues={"default": 5}, poll_interval=0.05)
            await a.start_link()
            await b.start_link()
            batch = await a.insert_all(
                [Exclusive.new({"n": i, "sleep": 0.002}) for i in range(300)]
            )

            async def drained() -> bool:
                return (await states(a)) == {"completed": 300}

            await wait_for(drained, "the batch to drain", timeout=50)
            assert OVERLAPS == []
            assert all(PERFORMED[i] == 1 for i in range(300))
            done = await a.list_jobs(limit=300)
            by_node = Counter(j.attempted_by[0] for j in done)
            assert set(by_node) == {"node-a", "node-b"}, by_node
            assert {j.attempt for j in done} == {1}
            assert len(batch) == 300


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_kills_of_jobs_and_producers_lose_nothing(backend: Backend, seed: int) -> None:
    """Job processes and producers killed at random while 150 jobs drain (two nodes on
    PostgreSQL, one on SQLite): every job completes, none runs twice at once, and each
    job's attempts are its recorded errors plus its rescues plus the one that succeeded."""
    rng = random.Random(seed)
    nodes = 2 if backend.name == "postgresql" else 1
    with trio.fail_after(90):
        async with running(
            backend, name="n0", node="node-0", queues={"default": 4}, max_restarts=20
        ) as first:
            all_jobs = [first]
            for i in range(1, nodes):
                j = dj.Jobs(Chat, name=f"n{i}", node=f"node-{i}", queues={"default": 4},
                            poll_interval=0.05, max_restarts=20)  # fmt: skip
                all_jobs.append(j)
            for j in all_jobs:
                await j.start_link()
            # Each job long enough that the drain (at least 150 x 0.1 s over 8 or 4 runners)
            # outlasts the 16 kills below (about 0.5 s): a faster drain left the last kills
            # without a victim.
            await first.insert_all([Exclusive.new({"n": i, "sleep": 0.1}) for i in range(150)])
            kills = Counter[str]()

            async def drained() -> bool:
                return (await states(first)) == {"completed": 150}

            # 12 job processes and 4 producers killed, at random moments and victims.
            # Seeded and logged by the FaultInjector: job processes crash (an exception as
            # the exit reason, which their producer records), producers are killed.
            chaos = FaultInjector(seed=seed)
            plan = ["job"] * 12 + ["producer"] * 4
            rng.shuffle(plan)
            for kind in plan:
                await trio.sleep(rng.uniform(0.01, 0.05))
                victim: beam.Pid | None = None
                while victim is None:
                    if kind == "producer":
                        victim = beam.whereis(rng.choice(all_jobs).queue_name("default"))
                    else:
                        runners = chaos.matching(lambda info: "run_job" in info.initial_call)
                        victim = rng.choice(runners) if runners else None
                    if victim is None:
                        await trio.sleep(0.005)
                if kind == "producer":
                    chaos.kill(victim)
                else:
                    chaos.crash(victim)
                kills[kind] += 1
            await wait_for(drained, "every job to complete despite the kills", timeout=80)
            assert kills == {"job": 12, "producer": 4}
            assert OVERLAPS == []
            assert set() == ACTIVE
            ended = await first.list_jobs(limit=150)
            crashes = [e for j in ended for e in j.errors if "InjectedCrash" in e["error"]]
            assert 1 <= len(crashes) <= 12
            for job in ended:
                assert PERFORMED[job.args["n"]] >= 1
                assert job.attempt == len(job.errors) + job.meta.get("rescued", 0) + 1, job


async def test_a_node_sigkilled_mid_batch_loses_no_job(pg: Backend) -> None:
    """A node in an OS process of its own claims jobs from a batch and is SIGKILLed; the
    survivor rescues what it left executing (its heartbeat stopped) and runs everything."""
    assert pg.schema is not None
    with trio.fail_after(90):
        async with running(pg, name="survivor", node="survivor", queues={"default": 5},
                           rescue_after=1.0, rescue_interval=0.2) as jobs:  # fmt: skip
            await jobs.insert_all([Exclusive.new({"n": i, "sleep": 0.1}) for i in range(60)])
            root = ROOT
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "tests.domain.jobs_node", pg.url, pg.schema, "doomed"],
                cwd=str(root),
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(root)},
            )
            try:
                assert proc.stdout is not None
                line = b""
                while not line.endswith(b"\n"):
                    line += await proc.stdout.receive_some(100)
                assert line.strip() == b"ready"

                async def midway() -> bool:
                    got = await states(jobs)
                    return got.get("completed", 0) >= 10 and got.get("executing", 0) > 0

                await wait_for(midway, "the doomed node to be midway", timeout=30)
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                left = [j for j in await jobs.list_jobs(limit=60) if j.state == "executing"]
                assert left
                assert {j.attempted_by[0] for j in left} == {"doomed"}
                await jobs.start_link()

                async def drained() -> bool:
                    return (await states(jobs)) == {"completed": 60}

                await wait_for(drained, "the survivor to finish the batch", timeout=60)
                done = {j.id: j for j in await jobs.list_jobs(limit=60)}
                for j in left:
                    assert done[j.id].meta.get("rescued") == 1
                    assert done[j.id].attempted_by[0] == "survivor"
                for j in done.values():
                    assert j.attempt == len(j.errors) + j.meta.get("rescued", 0) + 1
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def test_a_job_written_as_oban_writes_it_is_run(pg: Backend) -> None:
    """Oban's own insert (its column defaults, then ``NOTIFY <prefix>.oban_insert``) from a
    connection of the test's own wakes our queue, and our worker runs the job."""
    with trio.fail_after(30):
        async with running(pg, poll_interval=3600.0) as jobs:
            await jobs.start_link()
            await trio.sleep(0.2)
            engine = pg_engine()
            assert engine is not None

            def insert() -> int:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'SET LOCAL search_path TO "{pg.schema}"')
                    job_id = conn.exec_driver_sql(
                        "INSERT INTO oban_jobs (worker, args) VALUES (%s, %s) RETURNING id",
                        (worker_name(Noop), '{"n": "oban"}'),
                    ).scalar_one()
                    conn.exec_driver_sql(
                        "SELECT pg_notify(%s, %s)",
                        (f"{pg.schema}.oban_insert", '{"queue": "default"}'),
                    )
                    return int(job_id)

            try:
                job_id = await trio.to_thread.run_sync(insert)
            finally:
                engine.dispose()

            async def done() -> bool:
                got = await jobs.get_job(job_id)
                return got is not None and got.state == "completed"

            await wait_for(done, "the job Oban's way inserted to run", timeout=10)
            assert PERFORMED["oban"] == 1


async def test_pause_resume_and_scale_reach_every_node(pg: Backend) -> None:
    with trio.fail_after(30):
        async with running(pg, name="a", node="node-a") as a:
            b = dj.Jobs(Chat, name="b", node="node-b", poll_interval=0.05)
            await a.start_link()
            await b.start_link()
            await a.pause_queue("default", all_nodes=True)

            async def b_is(paused: bool, limit: int = 10) -> bool:
                info = await b.check_queue("default")
                return (info.paused, info.limit) == (paused, limit)

            await wait_for(lambda: b_is(True), "node b to pause")
            await a.scale_queue("default", 3, all_nodes=True)
            await wait_for(lambda: b_is(True, 3), "node b to scale")
            await a.resume_queue("default", all_nodes=True)
            await wait_for(lambda: b_is(False, 3), "node b to resume")
            # Without all_nodes only the local queue changes.
            await a.pause_queue("default")
            await trio.sleep(0.2)
            assert not (await b.check_queue("default")).paused
            assert (await a.check_queue("default")).paused
