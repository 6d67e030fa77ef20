"""Workers: classes whose ``perform(job)`` does a job's work, and the options its jobs get.

A worker is found by its name, stored in each row's ``worker`` column (``module.Class``, as
Oban stores ``MyApp.Worker``); defining the class registers it::

    class Mailer(Worker):
        queue = "mail"
        max_attempts = 5

        async def perform(self, job: Job) -> None:
            await send_mail(job.args["to"])

    await jobs.insert(Mailer.new({"to": "ann@example.com"}, schedule_in=60))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

from ._backoff import backoff
from ._job import Job, NewJob, Unique

__all__ = ["Worker", "worker_for", "worker_name"]

_WORKERS: dict[str, type[Worker]] = {}


def worker_name(cls: type[Worker]) -> str:
    """The name a worker's jobs carry: ``worker_name(Mailer) == "app.jobs.Mailer"``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def worker_for(name: str) -> type[Worker]:
    """The worker class registered as *name*; :class:`LookupError` if none:
    ``worker_for(job.worker)``."""
    try:
        return _WORKERS[name]
    except KeyError:
        raise LookupError(f"no worker named {name!r} is defined on this node") from None


class Worker:
    """Subclass it and define ``async def perform(self, job)``. Options, as class
    attributes: ``queue`` ("default"), ``max_attempts`` (20), ``priority`` (0, highest;
    up to 9), ``tags``, ``unique`` (a :class:`Unique`, or None), ``timeout`` (seconds, None:
    none) and :meth:`backoff` (Oban's exponential with jitter)::

        class Prune(Worker):
            queue = "maintenance"
            timeout = 60.0

            async def perform(self, job: Job) -> None:
                await prune_older_than(job.args["days"])
    """

    queue: ClassVar[str] = "default"
    max_attempts: ClassVar[int] = 20
    priority: ClassVar[int] = 0
    tags: ClassVar[tuple[str, ...]] = ()
    unique: ClassVar[Unique | None] = None
    timeout: ClassVar[float | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.max_attempts < 1:
            raise ValueError(f"{cls.__name__}.max_attempts must be at least 1")
        if not 0 <= cls.priority <= 9:
            raise ValueError(f"{cls.__name__}.priority must be 0..9")
        _WORKERS[worker_name(cls)] = cls

    async def perform(self, job: Job) -> Any:
        """Do the job's work (see the module docstring for what it may return)."""
        raise NotImplementedError(f"{type(self).__name__} must define perform")

    def backoff(self, job: Job) -> float:
        """Seconds before retrying *job* after its failed attempt (Oban's default):
        override to change it, ``return 10 * job.attempt``."""
        return backoff(job.attempt, job.max_attempts)

    @classmethod
    def new(
        cls,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        tags: tuple[str, ...] | None = None,
        meta: Mapping[str, Any] | None = None,
        scheduled_at: dt.datetime | None = None,
        schedule_in: float | None = None,
        unique: Unique | None = None,
    ) -> NewJob:
        """A job of this worker, to insert; keywords override the class's options::

        await jobs.insert(Mailer.new({"to": 7}, schedule_in=300, priority=1))
        """
        return NewJob(
            worker=worker_name(cls),
            args=dict(args or {}),
            queue=queue or cls.queue,
            priority=cls.priority if priority is None else priority,
            max_attempts=cls.max_attempts if max_attempts is None else max_attempts,
            tags=tuple(cls.tags if tags is None else tags),
            meta=dict(meta or {}),
            scheduled_at=scheduled_at,
            schedule_in=schedule_in,
            unique=cls.unique if unique is None else unique,
        )
