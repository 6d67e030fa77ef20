"""A job as read from ``oban_jobs``, a job about to be inserted, and what ``perform`` returns.

``perform`` returns ``None`` (or anything that is not one of these) for success,
:class:`Cancel` to stop for good, :class:`Snooze` to run again later without spending an
attempt, or :class:`JobError` (as an exception raised would) to fail this attempt::

    async def perform(self, job: Job) -> Cancel | Snooze | None:
        if job.args["user_id"] is None:
            return Cancel("no user")
        if not await ready():
            return Snooze(30)
        await send(job.args["user_id"])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cancel", "Job", "JobError", "NewJob", "Snooze", "Unique"]


@dataclass(frozen=True)
class Job:
    """One row of ``oban_jobs``, as ``perform`` gets it (Oban's fields, timestamps aware
    UTC)::

        async def perform(self, job: Job) -> None:
            print(job.id, job.args, job.attempt, job.max_attempts)
    """

    id: int
    state: str
    queue: str
    worker: str
    args: Mapping[str, Any]
    meta: Mapping[str, Any]
    tags: tuple[str, ...]
    errors: tuple[Mapping[str, Any], ...]
    attempt: int
    max_attempts: int
    priority: int
    attempted_by: tuple[str, ...]
    inserted_at: dt.datetime
    scheduled_at: dt.datetime
    attempted_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    discarded_at: dt.datetime | None = None
    cancelled_at: dt.datetime | None = None
    #: Set by ``insert`` when a unique job already existed and no new row was written.
    conflict: bool = False

    @classmethod
    def written(cls, fields: dict[str, Any]) -> Job:
        """The job *fields* describe (every field without a default, as just inserted),
        built without the frozen ``__init__``'s call per field: a bulk insert builds
        thousands. *fields* becomes the job's own; do not change it after::

            Job.written({"id": 1, "state": "available", ..., "scheduled_at": now})
        """
        job = object.__new__(cls)
        job.__dict__.update(fields)
        return job

    @classmethod
    def from_row(cls, names: Sequence[str], row: Sequence[Any], conflict: bool = False) -> Job:
        """A job from a ``SELECT *``/``RETURNING *`` row of ``oban_jobs``:
        ``Job.from_row(rows.names, rows.first())``."""
        v = dict(zip(names, row, strict=True))
        return cls(
            id=int(v["id"]),
            state=str(v["state"]),
            queue=v["queue"],
            worker=v["worker"],
            args=v["args"] or {},
            meta=v["meta"] or {},
            tags=tuple(v["tags"] or ()),
            errors=tuple(v["errors"] or ()),
            attempt=int(v["attempt"]),
            max_attempts=int(v["max_attempts"]),
            priority=int(v["priority"]),
            attempted_by=tuple(v["attempted_by"] or ()),
            inserted_at=v["inserted_at"],
            scheduled_at=v["scheduled_at"],
            attempted_at=v.get("attempted_at"),
            completed_at=v.get("completed_at"),
            discarded_at=v.get("discarded_at"),
            cancelled_at=v.get("cancelled_at"),
            conflict=conflict,
        )


@dataclass(frozen=True)
class Unique:
    """Uniqueness of a worker's jobs: no second job with the same ``fields`` (any of
    ``"worker"``, ``"queue"``, ``"args"``; ``keys`` narrows args to those keys) inserted
    within ``period`` seconds (``None``: ever) while the first is in one of ``states``. A
    conflicting insert writes nothing and returns the existing job with ``conflict=True``::

        class Digest(Worker):
            unique = Unique(period=300, keys=("user_id",))
    """

    period: float | None = 60.0
    fields: tuple[str, ...] = ("worker", "queue", "args")
    keys: tuple[str, ...] = ()
    states: tuple[str, ...] = ("available", "scheduled", "executing", "retryable", "completed")
    #: Mixed into the key (a cron entry's tick makes each tick's job unique).
    salt: str = ""

    def __post_init__(self) -> None:
        wrong = [f for f in self.fields if f not in ("worker", "queue", "args")]
        if wrong:
            raise ValueError(f"Unique fields must be worker, queue or args, not {wrong}")


@dataclass(frozen=True)
class NewJob:
    """A job to insert, made by ``Worker.new``: ``await jobs.insert(Mailer.new({"to": 1}))``."""

    worker: str
    args: Mapping[str, Any]
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 20
    tags: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    scheduled_at: dt.datetime | None = None
    schedule_in: float | None = None
    unique: Unique | None = None


@dataclass(frozen=True)
class Cancel:
    """``perform``'s answer to stop the job for good (state ``cancelled``, the reason in
    its errors): ``return Cancel("user deleted")``."""

    reason: str = "cancelled"


@dataclass(frozen=True)
class Snooze:
    """``perform``'s answer to run again in *seconds*, without spending an attempt:
    ``return Snooze(60)``."""

    seconds: float


class JobError(Exception):
    """``perform`` raising or returning it fails the attempt with its message (retried with
    backoff until ``max_attempts``, then discarded): ``raise JobError("smtp down")``."""
