"""Workers and helpers shared by the jobs tests (tests/domain/test_jobs*.py)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import beam
from domain import (
    Changeset,
    Domain,
    Resource,
    Tx,
    attribute,
    create,
    data_layer,
    define,
    read,
    uuid_primary_key,
)
from domain import jobs as dj

from ..support.backends import Backend
from .app import Chat

#: Side effects the workers record, per test (reset by ``running``).
PERFORMED: Counter[Any] = Counter()
ACTIVE: set[Any] = set()
OVERLAPS: list[Any] = []
GATES: dict[Any, trio.Event] = {}


class Noop(dj.Worker):
    async def perform(self, job: dj.Job) -> None:
        PERFORMED[job.args.get("n")] += 1


class Exclusive(dj.Worker):
    """Records a job running twice at once; sleeps a little so overlaps could happen."""

    max_attempts = 50

    def backoff(self, job: dj.Job) -> float:
        return 0.0

    async def perform(self, job: dj.Job) -> None:
        n = job.args["n"]
        if n in ACTIVE:
            OVERLAPS.append(n)
        ACTIVE.add(n)
        try:
            await trio.sleep(job.args.get("sleep", 0.01))
        finally:
            ACTIVE.discard(n)
        PERFORMED[n] += 1


class Flaky(dj.Worker):
    """Fails until its attempt reaches args["ok_at"]."""

    max_attempts = 3

    def backoff(self, job: dj.Job) -> float:
        return 0.0

    async def perform(self, job: dj.Job) -> Any:
        PERFORMED[job.args["n"]] += 1
        if job.attempt < job.args.get("ok_at", 99):
            raise RuntimeError(f"boom {job.attempt}")
        return None


class Answers(dj.Worker):
    """Returns what args["answer"] says."""

    max_attempts = 2

    def backoff(self, job: dj.Job) -> float:
        return 0.0

    async def perform(self, job: dj.Job) -> Any:
        PERFORMED[job.args["n"]] += 1
        answer = job.args["answer"]
        if answer == "cancel":
            return dj.Cancel("not wanted")
        if answer == "snooze":
            return None if job.meta.get("snoozed") else dj.Snooze(job.args.get("seconds", 3600))
        if answer == "error":
            return dj.JobError("returned an error")
        return None


class Blocks(dj.Worker):
    """Waits on GATES[n] (forever, unless the test sets it)."""

    max_attempts = 5
    queue = "slow"

    def backoff(self, job: dj.Job) -> float:
        return 0.0

    async def perform(self, job: dj.Job) -> None:
        n = job.args["n"]
        PERFORMED[n] += 1
        gate = GATES.setdefault(n, trio.Event())
        await gate.wait()


class Slow(dj.Worker):
    timeout = 0.2
    max_attempts = 1

    async def perform(self, job: dj.Job) -> None:
        PERFORMED[job.args["n"]] += 1
        await trio.sleep(10)


def job_processes() -> list[beam.Pid]:
    """The processes running a job now, on this node."""
    return [
        pid
        for pid in beam.processes()
        if (info := beam.process_info(pid)) is not None and "run_job" in info.initial_call
    ]


def reset() -> None:
    PERFORMED.clear()
    ACTIVE.clear()
    OVERLAPS.clear()
    GATES.clear()


@asynccontextmanager
async def running(backend: Backend, **options: Any) -> AsyncIterator[dj.Jobs]:
    """A node with the test domain and the jobs tables on *backend*, and a Jobs (not
    started: ``await jobs.start_link()``); ``repo_timeout=None`` for tests that jump a
    mock clock (a unit in flight would look overdue)."""
    reset()
    options.setdefault("poll_interval", 0.05)
    timeout = options.pop("repo_timeout", 30.0)
    async with beam.open_node():
        layer = data_layer(backend.url, schema=backend.schema, name="Chat.repo", timeout=timeout)
        await Chat.start_link(layer)
        await Chat.create_tables()
        await dj.install(Chat.repo())
        yield dj.Jobs(Chat, **options)


async def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    """Await until ``await predicate()`` is true (polling; real time)."""
    with trio.move_on_after(timeout):
        while True:
            if await predicate():
                return
            await trio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def states(jobs: dj.Jobs) -> dict[str, int]:
    out: dict[str, int] = Counter()
    for per_state in (await jobs.counts()).values():
        for state, n in per_state.items():
            out[state] += n
    return dict(out)


def _enqueue_note(tx: Tx, cs: Changeset, record: Any) -> None:
    if record.text != "no job":
        NOTE_JOBS.insert_in(tx, Noop.new({"n": record.text}))


class JobNote(Resource):
    id: uuid.UUID = uuid_primary_key()
    text: str = attribute(max_length=50)
    actions = (create("write", accept=("text",), after_action=[_enqueue_note]), read("read"))


class JobsApp(Domain):
    resources = (JobNote,)
    write = define(JobNote, "write", args=("text",))


#: The Jobs the hook inserts with (never started: inserting needs only the repo).
NOTE_JOBS = dj.Jobs(JobsApp)


@asynccontextmanager
async def notes_running(backend: Backend, **options: Any) -> AsyncIterator[dj.Jobs]:
    """Like :func:`running`, on :class:`JobsApp` (a resource whose action enqueues)."""
    reset()
    options.setdefault("poll_interval", 0.05)
    async with beam.open_node():
        await JobsApp.start_link(backend.url, schema=backend.schema)
        await JobsApp.create_tables()
        await dj.install(JobsApp.repo())
        yield dj.Jobs(JobsApp, **options)
