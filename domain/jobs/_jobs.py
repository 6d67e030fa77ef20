"""The :class:`Jobs` facade: one application's job system (its queues, cron entries and
options) on a domain's data layer."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio

import beam
from supervisors import ChildSpec, Supervisor

from .._changeset import Changeset
from .._data import DataLayer, Tx
from .._domain import Domain
from ._cron import Cron
from ._job import Job, NewJob
from ._runtime import JobEvent, Kill, Maintenance, Producer, QueueInfo, Wake, insert_cron
from ._sql import (
    SIGNAL_CHANNEL,
    cancel_job,
    cancel_waiting,
    channel,
    counts,
    insert_jobs,
    retry_job,
)
from ._table import TABLE
from ._worker import Worker, worker_name

__all__ = ["Jobs"]

_ANCHOR: trio.lowlevel.RunVar[tuple[dt.datetime, float]] = trio.lowlevel.RunVar("jobs.anchor")


def trio_clock() -> dt.datetime:
    """Wall time (aware UTC) that moves with trio's clock: the wall time when the run first
    asked, plus the trio time since. Under ``MockClock`` it moves only when the clock does.
    Outside trio (a SQLite connection's thread, running a hook) it is the wall clock."""
    try:
        wall, base = _ANCHOR.get()
    except RuntimeError:  # not in a trio run
        return dt.datetime.now(dt.UTC)
    except LookupError:
        wall, base = dt.datetime.now(dt.UTC), trio.current_time()
        _ANCHOR.set((wall, base))
    return wall + dt.timedelta(seconds=trio.current_time() - base)


class Jobs:
    """Durable background jobs in the domain's database (Oban's model and table)::

        jobs = Jobs(App, queues={"default": 10, "mail": 2},
                    crons=[Cron("0 3 * * *", Prune)])
        tree = [App.child_spec(), jobs.child_spec()]     # after the repo it uses
        await jobs.insert(Mailer.new({"to": user.id}))

    Options: *queues* (name -> concurrency limit on this node), *crons*, *name* (prefix of
    the processes' registered names), *node* (as written in ``attempted_by``; default the
    beam node's name, else host and OS pid), *poll_interval* (s, claiming due scheduled
    jobs and, on SQLite, jobs other processes inserted), *heartbeat_interval* (at most a
    quarter of *rescue_after*) and *rescue_after* (a producer silent that long is dead; its
    jobs are rescued),
    *rescue_interval*, *prune_after* (seconds to keep ended jobs; None keeps them),
    *shutdown_grace* (seconds running jobs get to finish when a queue stops), *clock* (aware
    UTC now; default follows trio's clock), *max_restarts* in *max_seconds* (the restart
    intensity of the jobs' supervisor), *prefix* (the schema in Oban's channel names,
    ``<prefix>.oban_insert``; default the repo's schema, else ``public``).
    """

    def __init__(
        self,
        domain: type[Domain],
        *,
        queues: Mapping[str, int] | None = None,
        crons: Sequence[Cron] = (),
        name: str = "jobs",
        node: str | None = None,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 15.0,
        rescue_after: float = 60.0,
        rescue_interval: float = 30.0,
        prune_after: float | None = 7 * 86400.0,
        shutdown_grace: float = 15.0,
        clock: Callable[[], dt.datetime] | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        prefix: str | None = None,
    ) -> None:
        self.domain = domain
        self.queues = dict(queues if queues is not None else {"default": 10})
        for queue, limit in self.queues.items():
            if not queue or limit < 1:
                raise ValueError(f"queue {queue!r} needs a name and a limit >= 1, not {limit}")
        self.crons = tuple(crons)
        self.name = name
        self._node = node
        self.poll_interval = poll_interval
        # A producer must write its heartbeat several times within rescue_after, or its
        # running jobs would be rescued (and run twice) while it is alive.
        self.heartbeat_interval = min(heartbeat_interval, rescue_after / 4)
        self.rescue_after = rescue_after
        self.rescue_interval = rescue_interval
        self.prune_after = prune_after
        self.shutdown_grace = shutdown_grace
        self.clock = clock or trio_clock
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._prefix = prefix

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def node(self) -> str:
        """This node's name in ``attempted_by``."""
        if self._node is None:
            name = beam.node()
            if name == "nonode@nohost":
                name = f"{socket.gethostname()}.{os.getpid()}"
            self._node = name
        return self._node

    @property
    def prefix(self) -> str:
        """The schema Oban names its channels after (``<prefix>.oban_insert``)."""
        if self._prefix is None:
            return getattr(self.repo(), "schema", None) or "public"
        return self._prefix

    def _prefix_in(self, tx: Tx) -> str:
        # Only PostgreSQL notifies; a SQLite hook runs on a connection's thread, off the node.
        return self.prefix if tx.dialect == "postgresql" else "public"

    @property
    def events_topic(self) -> str:
        """The local PubSub topic of :class:`JobEvent` messages: ``"<name>:events"``."""
        return f"{self.name}:events"

    def subscribe(self) -> None:
        """Subscribe the calling process to this node's job events (see :class:`JobEvent`)."""
        beam.subscribe(self.events_topic)

    def emit(self, event: JobEvent) -> None:
        """Broadcast *event* to this node's subscribers."""
        beam.local_broadcast(self.events_topic, event)

    def now(self) -> dt.datetime:
        """The jobs' clock (aware UTC)."""
        return self.clock()

    def repo(self) -> DataLayer:
        """The data layer the jobs live in: the domain's, on this node."""
        return self.domain.repo()

    def queue_name(self, queue: str) -> str:
        """The registered name of *queue*'s producer on this node."""
        return f"{self.name}.queue.{queue}"

    def child_specs(self) -> list[ChildSpec]:
        """The maintenance process and one producer per queue (shutdown: the grace period,
        and a few seconds to put back what was still running)."""
        grace = self.shutdown_grace + 15.0
        specs = [
            ChildSpec(
                id=f"{self.name}.maintenance",
                start=Maintenance.start_link,
                args=(self,),
                shutdown=5.0,
            )
        ]
        for queue, limit in self.queues.items():
            name = self.queue_name(queue)

            async def start(arg: Any, name: str = name) -> beam.Pid | None:
                return await Producer.start_link(arg, name=name)

            specs.append(
                ChildSpec(id=name, start=start, args=((self, queue, limit),), shutdown=grace)
            )
        return specs

    def child_spec(self) -> ChildSpec:
        """The job system as a child of your tree (after the domain's repo)::

        Application("app", [App.child_spec(), jobs.child_spec()])
        """
        return Supervisor.child_spec(
            self.child_specs(),
            id=f"{self.name}.sup",
            name=f"{self.name}.sup",
            max_restarts=self.max_restarts,
            max_seconds=self.max_seconds,
        )

    async def start_link(self) -> beam.Pid:
        """Start the queues and maintenance, linked to the caller: ``await jobs.start_link()``."""
        return await Supervisor.start_link(
            self.child_specs(),
            name=f"{self.name}.sup",
            max_restarts=self.max_restarts,
            max_seconds=self.max_seconds,
        )

    async def stop(self) -> None:
        """Stop the queues gracefully (running jobs get ``shutdown_grace``)."""
        await Supervisor.stop(f"{self.name}.sup")

    # -- inserting -----------------------------------------------------------------------------

    def insert_in(self, tx: Tx, job: NewJob) -> Job:
        """Insert *job* inside *tx* (from an action's hook): it exists exactly when the
        transaction commits::

            after_action=(lambda tx, cs, msg: jobs.insert_in(tx, Digest.new({"id": msg.id})),)
        """
        return insert_jobs(tx, [job], self.now(), self._prefix_in(tx))[0]

    def insert_all_in(self, tx: Tx, new: Sequence[NewJob]) -> list[Job]:
        """Insert every job of *new* inside *tx*, as :meth:`insert_in`."""
        return insert_jobs(tx, list(new), self.now(), self._prefix_in(tx))

    def after_action(
        self, make: Callable[[Changeset, Any], NewJob | None]
    ) -> Callable[[Tx, Changeset, Any], None]:
        """An ``after_action`` hook that inserts the job ``make(changeset, record)`` returns
        (``None``: none) in the action's transaction::

            create("send", after_action=[jobs.after_action(lambda cs, m: Notify.new({"id": m.id}))])
        """

        def hook(tx: Tx, cs: Changeset, record: Any) -> None:
            job = make(cs, record)
            if job is not None:
                self.insert_in(tx, job)

        return hook

    async def insert(self, job: NewJob) -> Job:
        """Insert *job* (inside ``Domain.transaction`` it joins it); the job as written::

        job = await jobs.insert(Mailer.new({"to": 1}, schedule_in=60))
        """
        return (await self.insert_all([job]))[0]

    async def insert_all(self, new: Sequence[NewJob]) -> list[Job]:
        """Insert many jobs in one transaction: ``await jobs.insert_all(batch)``."""
        new = list(new)
        now = self.now()
        prefix = self.prefix
        written, _ = await self.repo().run(lambda tx: insert_jobs(tx, new, now, prefix, final=True))
        self._wake({j.queue for j in written if j.state == "available" and not j.conflict})
        return written

    def _wake(self, queues: set[str]) -> None:
        for queue in queues:
            pid = beam.whereis(self.queue_name(queue))
            if pid is not None:
                beam.send(pid, Wake())

    # -- managing jobs -------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job | None:
        """The job *job_id* as stored now, or ``None``."""

        def get(tx: Tx) -> Job | None:
            rows = tx.execute(TABLE.select().where(TABLE.c.id == job_id))
            row = rows.first()
            return Job.from_row(rows.names, row) if row is not None else None

        return (await self.repo().run(get, read_only=True))[0]

    async def list_jobs(
        self, *, state: str | None = None, queue: str | None = None, limit: int = 100
    ) -> list[Job]:
        """The latest jobs (newest first), optionally of one *state* and *queue*."""

        def read(tx: Tx) -> list[Job]:
            stmt = TABLE.select().order_by(TABLE.c.id.desc()).limit(limit)
            if state is not None:
                stmt = stmt.where(TABLE.c.state == state)
            if queue is not None:
                stmt = stmt.where(TABLE.c.queue == queue)
            rows = tx.execute(stmt)
            return [Job.from_row(rows.names, r) for r in rows]

        return (await self.repo().run(read, read_only=True))[0]

    async def cancel_job(self, job_id: int) -> bool:
        """Cancel job *job_id* (an executing one's process is killed, on whichever node runs
        it); false if it had already ended or does not exist."""
        now = self.now()
        prefix = self.prefix
        before, _ = await self.repo().run(lambda tx: cancel_job(tx, job_id, now, prefix))
        if before is None:
            return False
        if before.state == "executing":
            pid = beam.whereis(self.queue_name(before.queue))
            if pid is not None:
                beam.send(pid, Kill(job_id))
        return True

    def cancel_waiting_in(
        self, tx: Tx, worker: type[Worker] | str, args: Mapping[str, str] | None = None
    ) -> list[int]:
        """Inside *tx* (a hook, ``Domain.transaction``): cancel the jobs of *worker* not yet
        started whose args hold every key of *args* with that value (compared as text);
        their ids. Running ones are left alone::

            jobs.cancel_waiting_in(tx, Digest, {"notification_id": str(note.id)})
        """
        name = worker if isinstance(worker, str) else worker_name(worker)
        return cancel_waiting(tx, name, dict(args or {}), self.now())

    async def cancel_waiting(
        self, worker: type[Worker] | str, args: Mapping[str, str] | None = None
    ) -> list[int]:
        """Cancel the waiting jobs of *worker* matching *args* (as :meth:`cancel_waiting_in`,
        joining a ``Domain.transaction`` if one is open): their ids::

            await jobs.cancel_waiting(Digest, {"user_id": str(user.id)})
        """
        return (await self.repo().run(lambda tx: self.cancel_waiting_in(tx, worker, args)))[0]

    async def retry_job(self, job_id: int) -> bool:
        """Run job *job_id* again now (a completed, discarded, cancelled, scheduled or
        retryable one); false if it is executing or available already, or missing."""
        now = self.now()
        prefix = self.prefix
        job, _ = await self.repo().run(lambda tx: retry_job(tx, job_id, now, prefix))
        if job is None:
            return False
        self._wake({job.queue})
        return True

    async def counts(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and state: ``{"default": {"completed": 10, "available": 2}}``."""
        return (await self.repo().run(counts, read_only=True))[0]

    async def insert_cron(self, minute: dt.datetime) -> list[Job]:
        """Insert the jobs of the cron entries due in *minute* (what the maintenance process
        does at each minute; each tick's job is unique cluster-wide)."""
        return await insert_cron(self, minute)

    # -- queues on this node -------------------------------------------------------------------

    async def pause_queue(self, queue: str, *, all_nodes: bool = False) -> QueueInfo:
        """Stop claiming jobs of *queue* on this node (running ones finish); *all_nodes*
        (PostgreSQL): on every node too, through Oban's ``pause`` signal."""
        await self._signal_all(all_nodes, {"action": "pause", "queue": queue})
        return await beam.call(self.queue_name(queue), ("pause",))

    async def resume_queue(self, queue: str, *, all_nodes: bool = False) -> QueueInfo:
        """Claim jobs of *queue* again on this node (and every node, *all_nodes*)."""
        await self._signal_all(all_nodes, {"action": "resume", "queue": queue})
        return await beam.call(self.queue_name(queue), ("resume",))

    async def scale_queue(self, queue: str, limit: int, *, all_nodes: bool = False) -> QueueInfo:
        """Run up to *limit* jobs of *queue* at once on this node (and on every node,
        *all_nodes*: each node's limit)."""
        if limit < 1:
            raise ValueError("a queue's limit must be at least 1")
        await self._signal_all(all_nodes, {"action": "scale", "queue": queue, "limit": limit})
        return await beam.call(self.queue_name(queue), ("scale", limit))

    async def _signal_all(self, all_nodes: bool, payload: dict[str, Any]) -> None:
        repo = self.repo()
        if all_nodes and repo.dialect == "postgresql":
            text = json.dumps(payload, separators=(",", ":"))
            await repo.notify(channel(SIGNAL_CHANNEL, self.prefix), text)  # type: ignore[attr-defined]

    async def check_queue(self, queue: str) -> QueueInfo:
        """The state of *queue*'s producer on this node."""
        return await beam.call(self.queue_name(queue), ("check",))
