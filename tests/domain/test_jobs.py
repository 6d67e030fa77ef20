"""domain.jobs on both backends: inserting, running, every outcome and state transition,
uniqueness, scheduling, transactional enqueue, cancel and retry, queues paused and scaled,
crashes of job processes and of producers."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import trio

import beam
from domain import Invalid, Tx
from domain import jobs as dj
from domain.jobs._sql import fetch, heartbeat, prune

from ..support.backends import Backend
from .app import Chat
from .jobs_support import (
    GATES,
    PERFORMED,
    Answers,
    Blocks,
    Flaky,
    JobsApp,
    Noop,
    Slow,
    notes_running,
    running,
    states,
    wait_for,
)


async def test_an_inserted_job_runs_once_and_completes(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            await jobs.start_link()
            job = await jobs.insert(Noop.new({"n": 1}))
            assert (job.state, job.attempt, job.queue) == ("available", 0, "default")

            async def done() -> bool:
                got = await jobs.get_job(job.id)
                return got is not None and got.state == "completed"

            await wait_for(done, "the job to complete")
            got = await jobs.get_job(job.id)
            assert got is not None
            assert got.attempt == 1
            assert got.completed_at is not None
            assert got.attempted_by[0] == jobs.node
            assert PERFORMED[1] == 1


async def job_state(jobs: dj.Jobs, job_id: int) -> dj.Job:
    got = await jobs.get_job(job_id)
    assert got is not None
    return got


async def until_state(jobs: dj.Jobs, job_id: int, *wanted: str) -> dj.Job:
    async def reached() -> bool:
        return (await job_state(jobs, job_id)).state in wanted

    await wait_for(reached, f"job {job_id} to reach {wanted}")
    return await job_state(jobs, job_id)


async def test_errors_are_retried_then_discarded_with_every_error_recorded(
    backend: Backend,
) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            await jobs.start_link()
            retried = await jobs.insert(Flaky.new({"n": "r", "ok_at": 2}))
            discarded = await jobs.insert(Flaky.new({"n": "d"}))
            ok = await until_state(jobs, retried.id, "completed")
            assert ok.attempt == 2
            assert [e["attempt"] for e in ok.errors] == [1]
            assert "RuntimeError: boom 1" in ok.errors[0]["error"]
            gone = await until_state(jobs, discarded.id, "discarded")
            assert gone.attempt == gone.max_attempts == 3
            assert [e["attempt"] for e in gone.errors] == [1, 2, 3]
            assert gone.discarded_at is not None
            assert PERFORMED["r"] == 2
            assert PERFORMED["d"] == 3


async def test_cancel_snooze_and_returned_errors(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            await jobs.start_link()
            cancel, snooze, error = await jobs.insert_all(
                [
                    Answers.new({"n": "c", "answer": "cancel"}),
                    Answers.new({"n": "s", "answer": "snooze", "seconds": 0.3}),
                    Answers.new({"n": "e", "answer": "error"}),
                ]
            )
            c = await until_state(jobs, cancel.id, "cancelled")
            assert c.cancelled_at is not None
            assert c.errors[0]["error"] == "not wanted"
            s = await until_state(jobs, snooze.id, "completed")
            # A snooze spends no attempt: it ran twice, the second is attempt 1 again.
            assert (s.attempt, s.meta.get("snoozed"), PERFORMED["s"]) == (1, 1, 2)
            e = await until_state(jobs, error.id, "discarded")
            assert [x["error"] for x in e.errors] == ["JobError: returned an error"] * 2


async def test_a_snoozed_job_waits_as_scheduled(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            await jobs.start_link()
            job = await jobs.insert(Answers.new({"n": "s", "answer": "snooze"}))
            s = await until_state(jobs, job.id, "scheduled")
            assert s.attempt == 0
            assert s.scheduled_at > jobs.now()


async def test_a_scheduled_job_runs_when_due(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            await jobs.start_link()
            later = await jobs.insert(Noop.new({"n": "later"}, schedule_in=1.5))
            at = await jobs.insert(
                Noop.new({"n": "far"}, scheduled_at=jobs.now().replace(year=2999))
            )
            assert (later.state, at.state) == ("scheduled", "scheduled")
            await trio.sleep(0.2)
            assert (await job_state(jobs, later.id)).state == "scheduled"
            await until_state(jobs, later.id, "completed")
            assert (await job_state(jobs, at.id)).state == "scheduled"


async def test_a_job_past_its_timeout_is_killed_and_discarded(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            await jobs.start_link()
            job = await jobs.insert(Slow.new({"n": 1}))
            got = await until_state(jobs, job.id, "discarded")
            assert "timeout" in got.errors[0]["error"]


async def test_killing_a_job_process_mid_job_records_the_crash_and_retries(
    backend: Backend,
) -> None:
    with trio.fail_after(30):
        async with running(backend, queues={"slow": 2}) as jobs:
            await jobs.start_link()
            job = await jobs.insert(Blocks.new({"n": 1}))

            async def started() -> bool:
                return PERFORMED[1] == 1

            await wait_for(started, "the job to start")
            info = await jobs.check_queue("slow")
            assert info.running == (job.id,)
            victim = next(
                pid for pid in beam.processes()
                if (i := beam.process_info(pid)) is not None and "run_job" in i.initial_call
            )  # fmt: skip
            beam.exit(victim, "kill")

            async def retried() -> bool:
                return PERFORMED[1] == 2

            await wait_for(retried, "the job to run again")
            got = await job_state(jobs, job.id)
            assert got.attempt == 2
            assert "the job's process exited: 'killed'" in got.errors[0]["error"]
            GATES.setdefault(1, trio.Event()).set()
            done = await until_state(jobs, job.id, "completed")
            assert done.attempt == 2


async def test_a_job_enqueued_by_an_action_exists_exactly_when_its_data_does(
    backend: Backend,
) -> None:
    with trio.fail_after(30):
        async with notes_running(backend) as jobs:
            await JobsApp.write("one")
            assert [j.args for j in await jobs.list_jobs()] == [{"n": "one"}]

            async def rolled_back() -> None:
                async with JobsApp.transaction():
                    await JobsApp.write("two")
                    await jobs.insert(Noop.new({"n": "three"}))
                    raise RuntimeError("roll back")

            with pytest.raises(RuntimeError):
                await rolled_back()
            assert [j.args for j in await jobs.list_jobs()] == [{"n": "one"}]
            async with JobsApp.transaction():
                await JobsApp.write("four")
                await jobs.insert(Noop.new({"n": "five"}))
            assert sorted(j.args["n"] for j in await jobs.list_jobs()) == ["five", "four", "one"]
            # An action that fails (too long) takes its job with it.
            with pytest.raises(Invalid):
                await JobsApp.write("x" * 51)
            assert len(await jobs.list_jobs()) == 3
            await jobs.start_link()

            async def all_done() -> bool:
                return (await states(jobs)) == {"completed": 3}

            await wait_for(all_done, "the three jobs")


async def test_unique_jobs_conflict_within_their_period_and_states(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            once = dj.Unique(period=60, keys=("user",))
            first = await jobs.insert(Noop.new({"user": 1, "n": 1}, unique=once))
            again = await jobs.insert(Noop.new({"user": 1, "n": 2}, unique=once))
            other = await jobs.insert(Noop.new({"user": 2, "n": 3}, unique=once))
            assert (first.conflict, again.conflict, other.conflict) == (False, True, False)
            assert again.id == first.id
            # Outside the states it applies to, a new job is written.
            only_waiting = dj.Unique(period=None, states=("available",), keys=("user",))
            assert (await jobs.insert(Noop.new({"user": 1}, unique=only_waiting))).conflict
            await jobs.cancel_job(first.id)
            assert not (await jobs.insert(Noop.new({"user": 1}, unique=only_waiting))).conflict
            # insert_all: conflicts come back in place.
            batch = await jobs.insert_all(
                [Noop.new({"user": 2}, unique=once), Noop.new({"user": 9}, unique=once)]
            )
            assert [j.conflict for j in batch] == [True, False]
            assert batch[0].id == other.id


async def test_unique_inserts_racing_write_one_job(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            once = dj.Unique(period=None)
            results: list[dj.Job] = []

            async def insert() -> None:
                results.append(await jobs.insert(Noop.new({"n": "race"}, unique=once)))

            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(insert)
            assert len({j.id for j in results}) == 1
            assert sum(not j.conflict for j in results) == 1


async def test_cancel_and_retry_by_id(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend, queues={"slow": 1}) as jobs:
            await jobs.start_link()
            running_job = await jobs.insert(Blocks.new({"n": 1}))
            waiting = await jobs.insert(Blocks.new({"n": 2}, schedule_in=3600))

            async def started() -> bool:
                return PERFORMED[1] == 1

            await wait_for(started, "the job to start")
            assert await jobs.cancel_job(waiting.id)
            assert await jobs.cancel_job(running_job.id)  # kills its process
            assert not await jobs.cancel_job(running_job.id)
            got = await until_state(jobs, running_job.id, "cancelled")
            assert got.cancelled_at is not None

            async def empty() -> bool:
                return (await jobs.check_queue("slow")).running == ()

            await wait_for(empty, "the cancelled job's process to go")
            assert (await job_state(jobs, running_job.id)).state == "cancelled"
            GATES.setdefault(1, trio.Event()).set()
            assert await jobs.retry_job(running_job.id)
            assert not await jobs.retry_job(12345)
            done = await until_state(jobs, running_job.id, "completed")
            assert (done.attempt, PERFORMED[1]) == (2, 2)


async def test_pause_resume_and_scale_a_queue(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend, queues={"slow": 1}) as jobs:
            await jobs.start_link()
            paused = await jobs.pause_queue("slow")
            assert paused.paused
            batch = await jobs.insert_all([Blocks.new({"n": i}) for i in range(3)])
            await trio.sleep(0.3)
            assert sum(PERFORMED.values()) == 0
            await jobs.resume_queue("slow")

            async def one() -> bool:
                return len((await jobs.check_queue("slow")).running) == 1

            await wait_for(one, "one job running (limit 1)")
            await trio.sleep(0.2)
            assert sum(PERFORMED.values()) == 1
            await jobs.scale_queue("slow", 3)

            async def three() -> bool:
                return len((await jobs.check_queue("slow")).running) == 3

            await wait_for(three, "three jobs running (limit 3)")
            for i in range(3):
                GATES.setdefault(i, trio.Event()).set()
            for job in batch:
                await until_state(jobs, job.id, "completed")


async def test_killing_the_producer_puts_its_jobs_back_and_they_run_again(
    backend: Backend,
) -> None:
    with trio.fail_after(30):
        async with running(backend, queues={"slow": 2}) as jobs:
            await jobs.start_link()
            job = await jobs.insert(Blocks.new({"n": 1}))

            async def started() -> bool:
                return PERFORMED[1] == 1

            await wait_for(started, "the job to start")
            producer = beam.whereis(jobs.queue_name("slow"))
            assert producer is not None
            beam.exit(producer, "kill")

            async def again() -> bool:
                return PERFORMED[1] == 2

            await wait_for(again, "the restarted producer to run the job again")
            assert beam.whereis(jobs.queue_name("slow")) not in (None, producer)
            got = await job_state(jobs, job.id)
            assert (got.state, got.attempt, got.meta.get("rescued")) == ("executing", 2, 1)
            GATES[1].set()
            await until_state(jobs, job.id, "completed")


async def test_graceful_stop_waits_for_running_jobs_then_puts_the_rest_back(
    backend: Backend,
) -> None:
    with trio.fail_after(30):
        async with running(backend, queues={"slow": 2}, shutdown_grace=0.5) as jobs:
            await jobs.start_link()
            quick, stuck = await jobs.insert_all([Blocks.new({"n": 1}), Blocks.new({"n": 2})])

            async def started() -> bool:
                return PERFORMED[1] == 1 and PERFORMED[2] == 1

            await wait_for(started, "both jobs to start")

            async def release() -> None:
                await trio.sleep(0.1)
                GATES[1].set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(release)
                await jobs.stop()
            assert (await job_state(jobs, quick.id)).state == "completed"
            back = await job_state(jobs, stuck.id)
            assert (back.state, back.attempt, back.meta.get("rescued")) == ("available", 1, 1)


async def test_jobs_of_a_dead_node_are_rescued(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend, rescue_after=5.0, rescue_interval=0.05) as jobs:
            job, last = await jobs.insert_all(
                [Noop.new({"n": 1}), Noop.new({"n": 2}, max_attempts=1)]
            )
            dead = uuid.uuid4()
            long_ago = jobs.now() - dt.timedelta(seconds=60)

            def claim(tx: Tx) -> None:
                fetch(tx, "default", 2, "dead-node", dead, jobs.now())
                heartbeat(tx, dead, "dead-node", "default", {}, long_ago, start=True)

            await Chat.repo().run(claim)
            assert (await states(jobs)) == {"executing": 2}
            await jobs.start_link()
            done = await until_state(jobs, job.id, "completed")
            assert (done.attempt, done.meta.get("rescued")) == (2, 1)
            assert (await job_state(jobs, last.id)).state == "discarded"
            assert (PERFORMED[1], PERFORMED[2]) == (1, 0)


async def test_ended_jobs_are_pruned_after_their_retention(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            await jobs.insert_all([Noop.new({"n": i}) for i in range(3)])
            await jobs.start_link()

            async def done() -> bool:
                return (await states(jobs)) == {"completed": 3}

            await wait_for(done, "the jobs")
            later = jobs.now() + dt.timedelta(days=8)
            pruned, _ = await Chat.repo().run(lambda tx: prune(tx, later, 7 * 86400))
            assert pruned == 3
            assert await states(jobs) == {}


async def test_events_report_start_stop_and_exception_with_durations(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            jobs.subscribe()
            await jobs.start_link()
            await jobs.insert(Flaky.new({"n": 1, "ok_at": 2}))
            kinds = []
            for _ in range(4):
                event = await beam.receive(dj.JobEvent, timeout=10)
                kinds.append((event.kind, event.job.attempt, event.state))
                if event.kind != "start":
                    assert event.duration is not None
                    assert event.duration >= 0
            assert kinds == [
                ("start", 1, None),
                ("exception", 1, "retryable"),
                ("start", 2, None),
                ("stop", 2, "completed"),
            ]


async def test_cron_inserts_one_job_per_tick_whoever_asks(backend: Backend) -> None:
    with trio.fail_after(30):
        async with running(backend) as jobs:
            every = dj.Cron("*/5 * * * *", Noop, {"n": "cron"})
            paris = dj.Cron("0 3 * * *", Noop, {"n": "paris"}, timezone="Europe/Paris")
            jobs.crons = (every, paris)
            other = dj.Jobs(Chat, crons=(every, paris), node="other")
            tick = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)  # 03:00 in Paris
            results: list[list[dj.Job]] = []

            async def insert(j: dj.Jobs) -> None:
                results.append(await j.insert_cron(tick))

            async with trio.open_nursery() as nursery:
                for j in (jobs, other, jobs, other):
                    nursery.start_soon(insert, j)
            written = [j for r in results for j in r if not j.conflict]
            assert sorted(j.args["n"] for j in written) == ["cron", "paris"]
            assert await jobs.insert_cron(tick + dt.timedelta(minutes=1)) == []
            assert [
                j.args["n"] for j in await jobs.insert_cron(tick + dt.timedelta(minutes=5))
            ] == ["cron"]
            assert all(j.meta["cron"] for j in written)


async def test_cron_ticks_and_scheduled_jobs_follow_the_mock_clock(
    backend: Backend, mock_clock: trio.testing.MockClock
) -> None:
    """Time moves only when the test jumps the clock: a cron entry fires once per minute it
    covers, and a job scheduled in 10 minutes waits for them (real waits are only for the
    database)."""
    mock_clock.rate = 1.0  # real time passes too, so the database waits work
    # The jobs' wall clock starts from the wall time of its first reading, then moves with
    # real time too: a start in a minute's last seconds would see a cron tick of its own
    # before the first jump. Start it early in a minute.
    if dj.trio_clock().second >= 45:
        await trio.sleep(60.5 - dj.trio_clock().second)
    with trio.fail_after(60 + 720):  # the jumps below count
        every = dj.Cron("* * * * *", Noop, {"n": "tick"})
        quiet = {"poll_interval": 30.0, "heartbeat_interval": 3600.0, "rescue_interval": 3600.0}
        async with running(backend, crons=[every], repo_timeout=None, **quiet) as jobs:
            await jobs.start_link()
            later = await jobs.insert(Noop.new({"n": "later"}, schedule_in=600))

            async def cron_jobs() -> list[dj.Job]:
                return [j for j in await jobs.list_jobs() if j.meta.get("cron")]

            assert await cron_jobs() == []
            for minutes in (1, 2):
                mock_clock.jump(60)

                async def fired(minutes: int = minutes) -> bool:
                    return len(await cron_jobs()) == minutes

                await wait_for(fired, f"cron job {minutes}")
            assert (await job_state(jobs, later.id)).state == "scheduled"
            mock_clock.jump(600)
            await until_state(jobs, later.id, "completed")
            await wait_for(lambda: _completed(jobs, 3), "the cron jobs to run")


async def _completed(jobs: dj.Jobs, n: int) -> bool:
    return (await states(jobs)).get("completed", 0) >= n
