"""The processes that run jobs: a producer per queue, a process per job, and the node's
maintenance process (rescue, pruning, cron).

* The **producer** of a queue (a ``GenServer`` registered as ``"<jobs>.queue.<name>"``)
  traps exits, claims up to *limit* due jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and
  runs each in a process of its own, linked to it. It claims again when a job ends, when
  ``NOTIFY oban_insert`` names its queue (PostgreSQL), when poked after a local insert, and
  every ``poll_interval`` (scheduled and retried jobs coming due; SQLite's other writers).
  It writes its heartbeat to ``oban_producers``. When it starts it puts back the jobs its
  node's previous producer of the queue left ``executing`` (their processes died with it).
  Asked to stop, it claims nothing more, waits up to ``shutdown_grace`` seconds for the
  running jobs, then kills the rest and makes them available again.
* A **job process** runs ``perform`` (under the worker's ``timeout``), records the outcome
  (completed, retryable or discarded with the error, cancelled, snoozed) and exits. If it
  dies instead (killed, crashed), its producer records the exit reason as the attempt's
  error.
* The **maintenance** process rescues the jobs of producers not heard from for
  ``rescue_after`` seconds (a node that died), prunes ended jobs older than ``prune_after``,
  and inserts each cron entry's job once per tick (unique on the tick, cluster-wide).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

import beam

from .._errors import DomainError
from .._pg_notify import Notify
from ._job import Cancel, Job, JobError, Snooze, Unique
from ._sql import (
    INSERT_CHANNEL,
    SIGNAL_CHANNEL,
    Outcome,
    ack,
    channel,
    fetch,
    heartbeat,
    prune,
    rescue,
)
from ._table import JOB_STATES
from ._worker import Worker, worker_for

if TYPE_CHECKING:
    from ._jobs import Jobs

__all__ = ["JobEvent", "Maintenance", "Producer", "QueueInfo", "run_job"]

_log = logging.getLogger("domain.jobs")


@dataclass(frozen=True)
class JobEvent:
    """A job's lifecycle event, broadcast on this node to ``jobs.events_topic``: ``kind``
    is ``"start"``, ``"stop"`` (ended: ``state`` says how) or ``"exception"`` (the attempt
    failed: ``error``); ``duration`` in seconds for the last two::

        jobs.subscribe()
        event = await beam.receive(JobEvent)
    """

    kind: str
    job: Job
    node: str
    duration: float | None = None
    state: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class QueueInfo:
    """A queue's producer on this node: its ``limit``, whether it is ``paused``, the ids of
    the jobs ``running`` now, and its ``node`` and ``uuid`` (as in ``attempted_by``)."""

    queue: str
    limit: int
    paused: bool
    running: tuple[int, ...]
    node: str
    uuid: str


@dataclass(frozen=True)
class _Poll:
    pass


@dataclass(frozen=True)
class _Beat:
    pass


@dataclass(frozen=True)
class Wake:
    """Sent to a producer to make it claim jobs now (after a local insert)."""


@dataclass(frozen=True)
class Kill:
    """Sent to a producer to kill the process running job ``job_id`` (it was cancelled)."""

    job_id: int


@dataclass
class _State:
    jobs: Jobs
    queue: str
    limit: int
    node: str
    uuid: uuid.UUID
    paused: bool = False
    stopping: bool = False
    #: The last claim found fewer jobs than it asked for: until told of new ones (NOTIFY,
    #: a local insert, the poll), a job ending is no reason to claim again.
    drained: bool = False
    running: dict[beam.Pid, Job] = field(default_factory=dict)
    by_job: dict[int, beam.Pid] = field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).strip()


def _backoff_for(job: Job) -> float:
    try:
        return float(worker_for(job.worker)().backoff(job))
    except Exception:
        return Worker().backoff(job)


async def run_job(jobs: Jobs, job: Job) -> None:
    """The body of a job's process: perform, record the outcome, broadcast the events."""
    started = trio.current_time()
    jobs.emit(JobEvent("start", job, jobs.node))
    outcome: Outcome
    try:
        worker_cls = worker_for(job.worker)
        worker = worker_cls()
        if worker_cls.timeout is not None:
            with trio.fail_after(worker_cls.timeout):
                result = await worker.perform(job)
        else:
            result = await worker.perform(job)
    except trio.TooSlowError:
        outcome = Outcome(
            "error", f"timeout: perform ran longer than {worker_cls.timeout} s", _backoff_for(job)
        )
    except Exception as exc:
        outcome = Outcome("error", _error_text(exc), _backoff_for(job))
    else:
        if isinstance(result, Cancel):
            outcome = Outcome("cancel", result.reason)
        elif isinstance(result, Snooze):
            outcome = Outcome("snooze", delay=result.seconds)
        elif isinstance(result, JobError):
            outcome = Outcome("error", f"JobError: {result}", _backoff_for(job))
        else:
            outcome = Outcome("completed")
    now = jobs.now()
    state, _ = await jobs.repo().run(lambda tx: ack(tx, job, outcome, now))
    duration = trio.current_time() - started
    kind = "exception" if outcome.kind == "error" else "stop"
    jobs.emit(JobEvent(kind, job, jobs.node, duration, state, outcome.error))


class Producer(beam.GenServer[_State]):
    """A queue's producer (see the module docstring); started by :class:`Jobs`."""

    async def init(self, arg: tuple[Jobs, str, int]) -> beam.Ok[_State]:
        jobs, queue, limit = arg
        beam.trap_exit(True)
        state = _State(jobs, queue, limit, jobs.node, uuid.uuid4())
        now = jobs.now()

        def start(tx: Any) -> None:
            rescue(tx, now, jobs.rescue_after, node=state.node, queue=queue, keep=(state.uuid,))
            heartbeat(tx, state.uuid, state.node, queue, self._meta(state), now, start=True)

        repo = jobs.repo()
        await repo.run(start)
        if repo.dialect == "postgresql":
            await repo.listen(channel(INSERT_CHANNEL, jobs.prefix))  # type: ignore[attr-defined]
            await repo.listen(channel(SIGNAL_CHANNEL, jobs.prefix))  # type: ignore[attr-defined]
        beam.send(beam.self(), _Poll())
        beam.send_after(beam.self(), _Beat(), jobs.heartbeat_interval)
        return beam.Ok(state)

    @staticmethod
    def _meta(state: _State) -> dict[str, Any]:
        return {"local_limit": state.limit, "paused": state.paused}

    async def handle_call(self, request: Any, from_: beam.From, state: _State) -> Any:
        kind = request[0]
        if kind == "pause":
            state.paused = True
        elif kind == "resume":
            state.paused = False
            await self._dispatch(state)
        elif kind == "scale":
            state.limit = int(request[1])
            await self._dispatch(state)
        return beam.Reply(self._info(state), state)

    @staticmethod
    def _info(state: _State) -> QueueInfo:
        return QueueInfo(
            state.queue,
            state.limit,
            state.paused,
            tuple(sorted(j.id for j in state.running.values())),
            state.node,
            str(state.uuid),
        )

    async def handle_info(self, message: Any, state: _State) -> beam.NoReply[_State]:
        if isinstance(message, beam.Exit):
            self._exited(message, state)
            while True:  # take every other ended job now: one claim for all of them
                try:
                    more = await beam.receive(
                        lambda m: isinstance(m, beam.Exit) and m.pid in state.running, timeout=0
                    )
                except beam.ReceiveTimeout:
                    break
                self._exited(more, state)
            if not state.drained:
                await self._dispatch(state)
        elif isinstance(message, _Poll):
            await self._dispatch(state)
            beam.send_after(beam.self(), _Poll(), state.jobs.poll_interval)
        elif isinstance(message, Wake):
            await self._dispatch(state)
        elif isinstance(message, Notify):
            await self._notified(message, state)
        elif isinstance(message, Kill):
            self._kill(message.job_id, state)
        elif isinstance(message, _Beat):
            jobs = state.jobs
            now, meta = jobs.now(), self._meta(state)
            try:
                await jobs.repo().run(
                    lambda tx: heartbeat(tx, state.uuid, state.node, state.queue, meta, now)
                )
            except DomainError as exc:
                _log.warning("queue %s could not write its heartbeat: %s", state.queue, exc)
            beam.send_after(beam.self(), _Beat(), jobs.heartbeat_interval)
        return beam.NoReply(state)

    async def _notified(self, note: Notify, state: _State) -> None:
        try:
            decoded = json.loads(note.payload)
        except ValueError:
            return
        payloads = decoded if isinstance(decoded, list) else [decoded]
        prefix = state.jobs.prefix
        for payload in payloads:
            if not isinstance(payload, dict):
                continue
            if note.channel == channel(INSERT_CHANNEL, prefix):
                if payload.get("queue") == state.queue:
                    await self._dispatch(state)
                    return
            elif note.channel == channel(SIGNAL_CHANNEL, prefix):
                if payload.get("queue", "*") not in ("*", state.queue):
                    continue
                action = payload.get("action")
                if action == "pkill":
                    self._kill(int(payload.get("job_id", -1)), state)
                elif payload.get("ident", "any") != "any":
                    continue  # addressed to one Oban instance by its name and node
                elif action == "pause":
                    state.paused = True
                elif action == "resume":
                    state.paused = False
                    await self._dispatch(state)
                elif action == "scale" and isinstance(payload.get("limit"), int):
                    state.limit = max(1, payload["limit"])
                    await self._dispatch(state)

    def _kill(self, job_id: int, state: _State) -> None:
        pid = state.by_job.get(job_id)
        if pid is not None:
            beam.exit(pid, "kill")

    def _exited(self, message: beam.Exit, state: _State) -> None:
        job = state.running.pop(message.pid, None)
        if job is None:
            if message.reason != beam.NORMAL:  # a link that is not one of our jobs
                raise beam.ProcessExit(message.reason)
            return
        state.by_job.pop(job.id, None)
        if message.reason == beam.NORMAL:
            return
        jobs = state.jobs
        reason = message.reason
        text = _error_text(reason) if isinstance(reason, BaseException) else repr(reason)
        outcome = Outcome("error", f"the job's process exited: {text}", _backoff_for(job))
        # Recorded from a process of its own: the producer goes on claiming meanwhile.
        beam.spawn(_record_crash, jobs, job, outcome)

    async def _dispatch(self, state: _State) -> None:
        if state.paused or state.stopping:
            return
        demand = state.limit - len(state.running)
        if demand <= 0:
            return
        jobs = state.jobs
        now = jobs.now()
        try:
            claimed, _ = await jobs.repo().run(
                lambda tx: fetch(tx, state.queue, demand, state.node, state.uuid, now, final=True)
            )
        except DomainError as exc:  # the database is away: claim again at the next poll
            _log.warning("queue %s could not claim jobs: %s", state.queue, exc)
            return
        state.drained = len(claimed) < demand
        for job in claimed:
            pid = beam.spawn_link(run_job, jobs, job)
            state.running[pid] = job
            state.by_job[job.id] = pid

    async def terminate(self, reason: Any, state: _State) -> None:
        state.stopping = True
        jobs = state.jobs
        with trio.move_on_after(jobs.shutdown_grace):
            while state.running:
                message = await beam.receive(
                    lambda m: isinstance(m, beam.Exit) and m.pid in state.running
                )
                self._exited(message, state)
        for pid in state.running:
            beam.exit(pid, "kill")
        with trio.move_on_after(5.0):
            while state.running:
                message = await beam.receive(
                    lambda m: isinstance(m, beam.Exit) and m.pid in state.running
                )
                state.running.pop(message.pid, None)
        now = jobs.now()

        def stop(tx: Any) -> None:
            # The jobs killed above go back to available (their attempt is spent, as
            # Oban's rescue leaves it); then this producer's row goes.
            rescue(tx, now, jobs.rescue_after, node=state.node, queue=state.queue, keep=())
            heartbeat(tx, state.uuid, state.node, state.queue, {}, now, stop=True)

        with trio.move_on_after(10.0) as scope:
            scope.shield = True
            await jobs.repo().run(stop)


async def _record_crash(jobs: Jobs, job: Job, outcome: Outcome) -> None:
    now = jobs.now()
    for delay in (0.5, 1.0, 2.0, 4.0, 8.0):  # the database may be away for a moment
        try:
            state, _ = await jobs.repo().run(lambda tx: ack(tx, job, outcome, now))
            break
        except DomainError as exc:
            _log.warning("could not record the crash of job %s: %s", job.id, exc)
            await trio.sleep(delay)
    else:
        return  # left executing: rescued when its producer stops or is restarted
    jobs.emit(JobEvent("exception", job, jobs.node, None, state, outcome.error))


@dataclass
class _MaintenanceState:
    jobs: Jobs
    last_minute: dt.datetime | None = None


@dataclass(frozen=True)
class _Rescue:
    pass


@dataclass(frozen=True)
class _CronTick:
    pass


class Maintenance(beam.GenServer[_MaintenanceState]):
    """The node's rescuer, pruner and cron scheduler (see the module docstring)."""

    async def init(self, jobs: Jobs) -> beam.Ok[_MaintenanceState]:
        state = _MaintenanceState(jobs)
        beam.send(beam.self(), _Rescue())
        if jobs.crons:
            state.last_minute = _minute(jobs.now())
            self._next_tick(state)
        return beam.Ok(state)

    def _next_tick(self, state: _MaintenanceState) -> None:
        now = state.jobs.now()
        following = _minute(now) + dt.timedelta(minutes=1)
        beam.send_after(beam.self(), _CronTick(), max(0.0, (following - now).total_seconds()))

    async def handle_info(self, message: Any, state: _MaintenanceState) -> Any:
        jobs = state.jobs
        if isinstance(message, _Rescue):
            now = jobs.now()
            try:
                await jobs.repo().run(lambda tx: rescue(tx, now, jobs.rescue_after))
                if jobs.prune_after is not None:
                    age = jobs.prune_after
                    await jobs.repo().run(lambda tx: prune(tx, now, age))
            except DomainError as exc:
                _log.warning("jobs maintenance failed (will try again): %s", exc)
            beam.send_after(beam.self(), _Rescue(), jobs.rescue_interval)
        elif isinstance(message, _CronTick):
            minute = _minute(jobs.now())
            if state.last_minute is None or minute > state.last_minute:
                state.last_minute = minute
                try:
                    await insert_cron(jobs, minute)
                except DomainError as exc:  # this node misses the tick; others may not
                    _log.warning("cron jobs of %s not inserted: %s", minute.isoformat(), exc)
            self._next_tick(state)
        return beam.NoReply(state)


def _minute(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


async def insert_cron(jobs: Jobs, minute: dt.datetime) -> list[Job]:
    """Insert the job of every cron entry of *jobs* due in *minute* (UTC), each unique on
    its entry and tick, so every node may do it and one job is written per tick."""
    due = [
        entry.worker.new(
            dict(entry.args),
            meta={"cron": True, "cron_expr": entry.expression, "cron_tz": entry.timezone},
            unique=Unique(
                period=None,
                states=JOB_STATES,
                salt=f"cron:{entry.expression}:{entry.timezone}:{minute.isoformat()}",
            ),
        )
        for entry in jobs.crons
        if entry.due(minute)
    ]
    if not due:
        return []
    return await jobs.insert_all(due)
