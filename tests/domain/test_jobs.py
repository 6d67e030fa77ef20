"""domain.jobs on both backends: inserting, running, every outcome and state transition,
uniqueness, scheduling, transactional enqueue, cancel and retry, queues paused and scaled,
crashes of job processes and of producers."""

from __future__ import annotations

import pytest
import trio

import beam
from domain import jobs as dj

from ..support.backends import Backend
from .app import Chat
from .jobs_support import (
    PERFORMED,
    Answers,
    Blocks,
    Flaky,
    Noop,
    Slow,
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
