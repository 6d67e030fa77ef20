"""domain.jobs through the domain's Alembic support: a domain whose metadata includes the
jobs tables gets them from a generated revision, on SQLite and PostgreSQL, and runs jobs."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import trio

import beam
from domain import Domain, Migrations
from domain import jobs as dj

from ..support.backends import Backend
from .jobs_support import PERFORMED, JobNote, Noop, reset, wait_for


class MigJobsApp(Domain):
    resources = (JobNote,)

    @classmethod
    def metadata(cls) -> sa.MetaData:
        return dj.with_jobs_tables(super().metadata())


def test_a_generated_revision_creates_the_jobs_tables(backend: Backend, tmp_path: Path) -> None:
    migrations = Migrations(MigJobsApp, backend.url, tmp_path, schema=backend.schema)
    revision = migrations.generate("jobs")
    assert revision is not None
    text = revision.read_text()
    assert "oban_jobs" in text
    assert "oban_producers" in text
    migrations.upgrade()
    migrations.check()  # no drift between the tables and the metadata
    assert migrations.generate("nothing") is None
    reset()

    async def main() -> None:
        with trio.fail_after(30):
            await MigJobsApp.start_link(backend.url, schema=backend.schema)
            jobs = dj.Jobs(MigJobsApp, poll_interval=0.05)
            await jobs.start_link()
            job = await jobs.insert(Noop.new({"n": "migrated"}))
            await wait_for(lambda: _completed(jobs, job.id), "the job")

    beam.run(main)
    assert PERFORMED["migrated"] == 1


async def _completed(jobs: dj.Jobs, job_id: int) -> bool:
    got = await jobs.get_job(job_id)
    return got is not None and got.state == "completed"
