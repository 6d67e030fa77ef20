"""domain.jobs: durable background jobs run by supervised processes (Oban's model and its
``oban_jobs`` table, on trio).

Jobs are rows in the application's own database, inserted in the same transaction as the
data that caused them, claimed by a producer process per queue and run each in a process of
its own, retried with backoff, put back when their node dies::

    class Mailer(Worker):
        queue = "mail"
        max_attempts = 5

        async def perform(self, job: Job) -> None:
            await send_mail(job.args["to"])

    jobs = Jobs(App, queues={"default": 10, "mail": 2},
                crons=[Cron("0 3 * * *", Prune, timezone="Europe/Paris")])

    async def main():
        await App.start_link()
        await install(App.repo())           # or a migration (with_jobs_tables)
        await jobs.start_link()
        async with App.transaction():        # the job exists exactly when the user does
            user = await App.sign_up(name="ann")
            await jobs.insert(Mailer.new({"to": str(user.id)}, schedule_in=60))

PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` and wakes queues with ``NOTIFY
"<schema>.oban_insert"`` (Oban's channel); SQLite (one node) polls. Modules: ``_job`` (values),
``_worker``, ``_backoff``, ``_table`` (the tables), ``_sql`` (units of work), ``_runtime``
(the processes), ``_cron``, ``_jobs`` (the facade).
"""

import beam

from ._backoff import backoff
from ._cron import Cron, Crontab
from ._job import Cancel, Job, JobError, NewJob, Snooze, Unique
from ._jobs import Jobs, trio_clock
from ._runtime import JobEvent, QueueInfo
from ._table import JOB_STATES, install, jobs_metadata, uninstall, with_jobs_tables
from ._worker import Worker, worker_for, worker_name

__all__ = (
    "JOB_STATES",
    "Cancel",
    "Cron",
    "Crontab",
    "Job",
    "JobError",
    "JobEvent",
    "Jobs",
    "NewJob",
    "QueueInfo",
    "Snooze",
    "Unique",
    "Worker",
    "backoff",
    "install",
    "jobs_metadata",
    "trio_clock",
    "uninstall",
    "with_jobs_tables",
    "worker_for",
    "worker_name",
)

beam.lowlevel.fixup_module_metadata(__name__, globals())
