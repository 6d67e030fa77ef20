"""The units of work on ``oban_jobs``: plain functions of a :class:`~domain.Tx`, so they run
inside whatever transaction the caller has (an action's hook, ``Domain.transaction``) or a
transaction of their own through ``repo.run``. Every time is passed in (``now``): the jobs'
clock is trio's, so tests can move it.

PostgreSQL-only parts: ``FOR UPDATE SKIP LOCKED`` in :func:`fetch`, the advisory lock that
serialises unique inserts, and ``NOTIFY oban_insert`` (Oban's channel and payload) after an
insert of available jobs. On SQLite one writer at a time gives the same guarantees.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .._data import Tx
from ._job import Job, NewJob
from ._table import PRODUCERS, TABLE

__all__ = [
    "INSERT_CHANNEL",
    "SIGNAL_CHANNEL",
    "Outcome",
    "ack",
    "cancel_job",
    "cancel_waiting",
    "channel",
    "counts",
    "fetch",
    "heartbeat",
    "insert_jobs",
    "prune",
    "rescue",
    "retry_job",
]

#: Oban's channel for "jobs were inserted" (``<prefix>.oban_insert``, the prefix being the
#: schema of the table): payload ``{"queue": "<name>"}``.
INSERT_CHANNEL = "oban_insert"
#: Oban's channel for signals to producers (``<prefix>.oban_signal``): we send and obey
#: ``{"action": "pkill", "job_id": id}`` (kill the running job).
SIGNAL_CHANNEL = "oban_signal"


def channel(name: str, prefix: str) -> str:
    """The full channel Oban uses for *name* in schema *prefix*:
    ``channel(INSERT_CHANNEL, "public") == "public.oban_insert"``."""
    return f"{prefix}.{name}"


_T = TABLE
_COLUMNS = tuple(_T.c)
_FETCHABLE = ("available", "scheduled", "retryable")


#: On PostgreSQL, a condition that turns ``synchronous_commit`` off for the rest of the
#: transaction (``set_config(..., is_local => true)``, evaluated once before any row is
#: written: an uncorrelated scalar subquery is a one-time InitPlan). Put in the claim's and the
#: outcome's ``WHERE``, it lets their commit return before the WAL reaches the disk without a
#: ``SET LOCAL`` round trip of its own, so each is a single statement, sent alone as its own
#: transaction (``final=True``): one round trip, no flush to wait for.
#:
#: Why losing them is safe (at least once): a server crash can lose only a suffix of the WAL,
#: the last asynchronous commits. A lost claim leaves the job as it was before (available,
#: its attempt not counted): it is claimed and run again. A lost outcome leaves the job
#: executing under its attempt: rescued (available again) and run again, as when our node
#: dies mid-job. An outcome never survives its claim (the WAL is ordered, and the outcome's
#: UPDATE matches only the claimed attempt). A durable commit after them (an insert of jobs,
#: or the job's own writes in ``perform``) flushes everything before it, them included. So
#: nothing is lost and nothing runs twice at once; a job may run once more after a server
#: crash, which at-least-once semantics allow and idempotent workers expect. Inserts are
#: never made asynchronous: the job must exist exactly when the caller's data does.
_ASYNC_COMMIT = (
    sa.select(
        sa.func.set_config(
            sa.literal_column("'synchronous_commit'"),
            sa.literal_column("'off'"),
            sa.literal_column("true"),
        )
    )
    .scalar_subquery()
    .is_not(None)
)


def _notify(tx: Tx, channel: str, payload: Mapping[str, Any]) -> None:
    tx.execute(
        sa.select(
            sa.func.pg_notify(
                sa.bindparam("channel", type_=sa.String()),
                sa.bindparam("payload", type_=sa.String()),
            )
        ),
        {"channel": channel, "payload": json.dumps(payload, separators=(",", ":"))},
    )


def _uniq_key(job: NewJob) -> str:
    assert job.unique is not None
    parts: dict[str, Any] = {"salt": job.unique.salt}
    if "worker" in job.unique.fields:
        parts["worker"] = job.worker
    if "queue" in job.unique.fields:
        parts["queue"] = job.queue
    if "args" in job.unique.fields:
        keys = job.unique.keys
        parts["args"] = {k: v for k, v in job.args.items() if not keys or k in keys}
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _existing(tx: Tx, job: NewJob, key: str, now: dt.datetime) -> Job | None:
    assert job.unique is not None
    if tx.dialect == "postgresql":
        lock = int.from_bytes(bytes.fromhex(key[:16]), "big", signed=True)
        tx.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("k", lock, sa.BigInteger))))
    cond = sa.and_(
        _T.c.meta["uniq_key"].as_string() == sa.bindparam("key", key),
        _T.c.state.in_(job.unique.states),
    )
    if job.unique.period is not None:
        since = now - dt.timedelta(seconds=job.unique.period)
        cond = sa.and_(
            cond, _T.c.inserted_at >= sa.bindparam("since", since, _T.c.inserted_at.type)
        )
    rows = tx.execute(sa.select(*_COLUMNS).where(cond).order_by(_T.c.id).limit(1))
    first = rows.first()
    return Job.from_row(rows.names, first, conflict=True) if first is not None else None


#: Inserting on PostgreSQL, one row or many: one statement of fixed shape, its rows one JSON
#: array (one C-accelerated ``json.dumps`` on our side, a ``jsonb`` parse on the server's),
#: only the ids coming back (every other column is what we sent, so the jobs are built from
#: that), and ``NOTIFY "<prefix>.oban_insert"`` sent by the same statement, once per queue
#: given an available job (Oban's payload). Sent as the unit's last statement it is one
#: round trip with its commit.
_INSERT = sa.text(
    "WITH ins AS ("
    "INSERT INTO oban_jobs (state, queue, worker, attempt, max_attempts, priority, args, "
    "meta, tags, errors, attempted_by, inserted_at, scheduled_at) "
    "SELECT (j->>0)::oban_job_state, j->>1, j->>2, 0, (j->>3)::int2, (j->>4)::int2, j->5, "
    "j->6, ARRAY(SELECT jsonb_array_elements_text(j->7)), '[]'::jsonb, '{}'::text[], "
    "(j->>8)::timestamp, (j->>9)::timestamp "
    "FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS e(j, n) ORDER BY n "
    "RETURNING id, queue, state) "
    "SELECT id, (SELECT count(pg_notify(:channel, jsonb_build_object('queue', q.queue)::text)) "
    "FROM (SELECT DISTINCT queue FROM ins WHERE state = 'available') AS q) AS woke FROM ins"
).bindparams(sa.bindparam("rows", type_=sa.Text()), sa.bindparam("channel", type_=sa.Text()))


def _naive(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo is not None else at


def _bulk_param(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as one JSON array of arrays (positions as in :data:`_BULK_INSERT`)."""
    stamps: dict[dt.datetime, str] = {}  # a batch shares a few timestamps: format each once

    def stamp(at: dt.datetime) -> str:
        text = stamps.get(at)
        if text is None:
            text = stamps[at] = _naive(at).isoformat()
        return text

    return json.dumps(
        [
            (
                r["state"],
                r["queue"],
                r["worker"],
                r["max_attempts"],
                r["priority"],
                r["args"],
                r["meta"],
                r["tags"],
                stamp(r["inserted_at"]),
                stamp(r["scheduled_at"]),
            )
            for r in rows
        ],
        separators=(",", ":"),
    )


def insert_jobs(
    tx: Tx, jobs: Sequence[NewJob], now: dt.datetime, prefix: str = "public",
    *, final: bool = False,
) -> list[Job]:  # fmt: skip
    """Insert *jobs* in *tx* and return them as written (a unique job that already exists
    comes back as the existing row with ``conflict=True``), in the order given; on
    PostgreSQL the same statement sends ``NOTIFY oban_insert`` for the queues given available
    jobs. *final*: nothing follows in the unit, so the insert goes with the ``COMMIT`` (one
    round trip; see :meth:`domain.Tx.execute`)::

        [job] = insert_jobs(tx, [Mailer.new({"to": 1})], now)
    """
    results: list[Job | None] = [None] * len(jobs)
    # Each row in the shape of a Job's fields (with "id" to come): what is written, and the
    # job returned (built from it: only the ids come back on PostgreSQL).
    rows: list[dict[str, Any]] = []
    where: list[int] = []
    for i, job in enumerate(jobs):
        meta = job.meta
        if job.unique is not None:
            key = _uniq_key(job)
            found = _existing(tx, job, key, now)
            if found is not None:
                results[i] = found
                continue
            meta = {**meta, "uniq_key": key}
        at = job.scheduled_at
        if at is not None:
            at = at.astimezone(dt.UTC)
        elif job.schedule_in is not None:
            at = now + dt.timedelta(seconds=job.schedule_in)
        else:
            at = now
        state = "scheduled" if at > now else "available"
        rows.append(
            {
                "state": state,
                "queue": job.queue,
                "worker": job.worker,
                "attempt": 0,
                "max_attempts": job.max_attempts,
                "priority": job.priority,
                "args": job.args,
                "meta": meta,
                "tags": job.tags,
                "errors": (),
                "attempted_by": (),
                "inserted_at": now,
                "scheduled_at": at,
            }
        )
        where.append(i)
    if rows and tx.dialect == "postgresql":
        params = {"rows": _bulk_param(rows), "channel": channel(INSERT_CHANNEL, prefix)}
        written = tx.execute(_INSERT, params, final=final)
        ids = sorted(r[0] for r in written.rows)  # identity values follow the rows' order
        for offset, (job_id, row) in enumerate(zip(ids, rows, strict=True)):
            row["id"] = int(job_id)
            results[where[offset]] = Job.written(row)
    elif rows:
        values = [
            {**r, "args": dict(r["args"]), "meta": dict(r["meta"]), "tags": list(r["tags"]),
             "errors": [], "attempted_by": []}
            for r in rows
        ]  # fmt: skip
        if len(values) == 1:
            one = tx.execute(sa.insert(_T).returning(*_COLUMNS), values[0])
            results[where[0]] = Job.from_row(one.names, one.one())
        else:
            # One executemany: SQLAlchemy batches it into multi-row INSERTs
            # ("insertmanyvalues") compiled once, RETURNING in the order of the rows given.
            stmt = sa.insert(_T).returning(*_COLUMNS, sort_by_parameter_order=True)
            result = tx.conn.execute(stmt, values)
            names = tuple(result.keys())
            for offset, got in enumerate(result.all()):
                results[where[offset]] = Job.from_row(names, got)
    return [r for r in results if r is not None]


def _fetch_statement(async_commit: bool = False) -> Any:
    due = (
        sa.select(_T.c.id)
        .where(
            sa.or_(*(_T.c.state == state for state in _FETCHABLE)),
            _T.c.queue == sa.bindparam("b_queue", type_=sa.Text()),
            _T.c.scheduled_at <= sa.bindparam("b_now", type_=_T.c.scheduled_at.type),
        )
        .order_by(_T.c.priority, _T.c.scheduled_at, _T.c.id)
        .limit(sa.bindparam("b_demand", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    where = [_T.c.id.in_(due), _T.c.attempt < _T.c.max_attempts]
    if async_commit:
        where.insert(0, _ASYNC_COMMIT)
    return (
        sa.update(_T)
        .where(*where)
        .values(
            state="executing",
            attempt=_T.c.attempt + 1,
            attempted_at=sa.bindparam("b_at", type_=_T.c.attempted_at.type),
            attempted_by=sa.bindparam("b_by", type_=_T.c.attempted_by.type),
        )
        .returning(*_COLUMNS)
    )


#: The claim and the completion, built once (the hot path: compiled once, a dict hit after);
#: on PostgreSQL with the asynchronous commit in them.
_FETCH = _fetch_statement()
_FETCH_PG = _fetch_statement(async_commit=True)
_THIS_ATTEMPT = (
    _T.c.id == sa.bindparam("job_id", type_=sa.BigInteger()),
    _T.c.state == "executing",
    _T.c.attempt == sa.bindparam("job_attempt", type_=sa.SmallInteger()),
)
_COMPLETED = {
    "state": "completed",
    "completed_at": sa.bindparam("b_at", type_=_T.c.completed_at.type),
}
_COMPLETE = sa.update(_T).where(*_THIS_ATTEMPT).values(**_COMPLETED)
_COMPLETE_PG = sa.update(_T).where(_ASYNC_COMMIT, *_THIS_ATTEMPT).values(**_COMPLETED)


def fetch(
    tx: Tx, queue: str, demand: int, node: str, producer: uuid.UUID, now: dt.datetime,
    *, final: bool = False,
) -> list[Job]:  # fmt: skip
    """Claim up to *demand* due jobs of *queue* for *producer*: each becomes ``executing``
    with its attempt counted (on PostgreSQL rows other producers hold are skipped,
    ``FOR UPDATE SKIP LOCKED``, and the transaction commits without waiting for the flush:
    see ``_ASYNC_COMMIT``). *final*: the claim is the unit's last statement (see
    :meth:`domain.Tx.execute`; the producer's claim is one round trip)::

        jobs = fetch(tx, "default", 10, "node1", producer_uuid, now, final=True)
    """
    params = {"b_queue": queue, "b_now": now, "b_demand": demand, "b_at": now,
              "b_by": [node, str(producer)]}  # fmt: skip
    postgres = tx.dialect == "postgresql"
    rows = tx.execute(_FETCH_PG if postgres else _FETCH, params, final=final)
    jobs = [Job.from_row(rows.names, r) for r in rows]
    jobs.sort(key=lambda j: (j.priority, j.scheduled_at, j.id))
    return jobs


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: ``kind`` is ``"completed"``, ``"error"``, ``"cancel"`` or
    ``"snooze"``; ``error`` the reason recorded; ``delay`` seconds until the next run (an
    error's backoff, a snooze's seconds)."""

    kind: str
    error: str | None = None
    delay: float = 0.0


def ack(tx: Tx, job: Job, outcome: Outcome, now: dt.datetime) -> str | None:
    """Record how *job*'s attempt ended; the job's new state, or ``None`` when the job was
    no longer this attempt's (cancelled or rescued meanwhile)::

        ack(tx, job, Outcome("completed"), now)
    """
    values: dict[str, Any]
    if outcome.kind == "completed":
        stmt = _COMPLETE_PG if tx.dialect == "postgresql" else _COMPLETE
        params = {"job_id": job.id, "job_attempt": job.attempt, "b_at": now}
        return "completed" if tx.execute(stmt, params, final=True).rowcount else None
    if outcome.kind == "snooze":
        meta = {**job.meta, "snoozed": int(job.meta.get("snoozed", 0)) + 1}
        values = {
            "state": "scheduled",
            "scheduled_at": now + dt.timedelta(seconds=outcome.delay),
            "attempt": job.attempt - 1,
            "meta": meta,
        }
    else:
        error = {"attempt": job.attempt, "at": now.isoformat(), "error": outcome.error or ""}
        errors = [*job.errors, error]
        if outcome.kind == "cancel":
            values = {"state": "cancelled", "cancelled_at": now, "errors": errors}
        elif job.attempt >= job.max_attempts:
            values = {"state": "discarded", "discarded_at": now, "errors": errors}
        else:
            at = now + dt.timedelta(seconds=outcome.delay)
            values = {"state": "retryable", "scheduled_at": at, "errors": errors}
    where = [
        _T.c.id == sa.bindparam("job_id", job.id),
        _T.c.state == "executing",
        _T.c.attempt == sa.bindparam("job_attempt", job.attempt),
    ]
    if tx.dialect == "postgresql":
        where.insert(0, _ASYNC_COMMIT)
    done = tx.execute(sa.update(_T).where(*where).values(**values), final=True)
    return str(values["state"]) if done.rowcount else None


def cancel_job(tx: Tx, job_id: int, now: dt.datetime, prefix: str = "public") -> Job | None:
    """Cancel job *job_id* unless it already ended; the job as it was before (its state
    says whether it was executing, so its process must be killed), or ``None``::

        before = cancel_job(tx, 42, now)
    """
    rows = tx.execute(
        sa.select(*_COLUMNS).where(_T.c.id == sa.bindparam("job_id", job_id)).with_for_update()
    )
    row = rows.first()
    if row is None:
        return None
    job = Job.from_row(rows.names, row)
    if job.state in ("completed", "discarded", "cancelled"):
        return None
    tx.execute(
        sa.update(_T)
        .where(_T.c.id == sa.bindparam("job_id", job_id))
        .values(state="cancelled", cancelled_at=now)
    )
    if job.state == "executing" and tx.dialect == "postgresql":
        _notify(tx, channel(SIGNAL_CHANNEL, prefix), {"action": "pkill", "job_id": job_id})
    return job


#: The states :func:`cancel_waiting` cancels: jobs not running now and not ended.
WAITING = ("available", "scheduled", "retryable")


def cancel_waiting(tx: Tx, worker: str, args: Mapping[str, str], now: dt.datetime) -> list[int]:
    """Cancel the jobs of *worker* still waiting to run (available, scheduled, retryable)
    whose args hold every key of *args* with that value (compared as text); their ids.
    Running jobs are left alone (cancel those by id)::

        cancel_waiting(tx, "app.Digest", {"user_id": str(user.id)}, now)
    """
    cond = sa.and_(_T.c.worker == sa.bindparam("worker", worker), _T.c.state.in_(WAITING))
    for i, (key, value) in enumerate(sorted(args.items())):
        cond = sa.and_(cond, _T.c.args[key].as_string() == sa.bindparam(f"arg{i}", str(value)))
    ids = [int(r[0]) for r in tx.execute(sa.select(_T.c.id).where(cond))]
    if ids:
        tx.execute(
            sa.update(_T)
            .where(_T.c.id.in_(ids), _T.c.state.in_(WAITING))
            .values(state="cancelled", cancelled_at=now)
        )
    return ids


def retry_job(tx: Tx, job_id: int, now: dt.datetime, prefix: str = "public") -> Job | None:
    """Make job *job_id* available now (unless it is executing or available already),
    with one more attempt allowed if it spent them all; the job as it is now, or ``None``."""
    rows = tx.execute(
        sa.select(*_COLUMNS).where(_T.c.id == sa.bindparam("job_id", job_id)).with_for_update()
    )
    row = rows.first()
    if row is None:
        return None
    job = Job.from_row(rows.names, row)
    if job.state in ("executing", "available"):
        return None
    rows = tx.execute(
        sa.update(_T)
        .where(_T.c.id == sa.bindparam("job_id", job_id))
        .values(
            state="available",
            scheduled_at=now,
            max_attempts=max(job.max_attempts, job.attempt + 1),
            completed_at=None,
            discarded_at=None,
            cancelled_at=None,
        )
        .returning(*_COLUMNS)
    )
    if tx.dialect == "postgresql":
        _notify(tx, channel(INSERT_CHANNEL, prefix), {"queue": job.queue})
    return Job.from_row(rows.names, rows.one())


def heartbeat(
    tx: Tx, producer: uuid.UUID, node: str, queue: str, meta: Mapping[str, Any],
    now: dt.datetime, *, start: bool = False, stop: bool = False,
) -> None:  # fmt: skip
    """Write (*start*), refresh, or delete (*stop*) a producer's row in ``oban_producers``."""
    key = sa.bindparam("uuid", producer, PRODUCERS.c.uuid.type)
    if stop:
        tx.execute(sa.delete(PRODUCERS).where(PRODUCERS.c.uuid == key))
    elif start:
        tx.execute(
            sa.insert(PRODUCERS).values(
                uuid=producer, name="oban", node=node, queue=queue, meta=dict(meta),
                started_at=now, updated_at=now,
            )
        )  # fmt: skip
    else:
        tx.execute(
            sa.update(PRODUCERS)
            .where(PRODUCERS.c.uuid == key)
            .values(updated_at=now, meta=dict(meta))
        )


def rescue(
    tx: Tx,
    now: dt.datetime,
    rescue_after: float,
    *,
    node: str | None = None,
    queue: str | None = None,
    keep: Iterable[uuid.UUID] = (),
) -> list[int]:
    """Put back the orphaned ``executing`` jobs: those whose producer has not been heard
    from for *rescue_after* seconds (a node that died), or, with *node* and *queue*, every
    one of that node's queue not run by a producer in *keep* (its producer was restarted,
    and its job processes died with it). Each goes back to ``available`` (its meta's
    ``rescued`` counted), or to ``discarded`` if it has no attempt left; their ids::

        rescued = rescue(tx, now, 60.0)
    """
    stale_before = now - dt.timedelta(seconds=rescue_after)
    dead = tx.execute(
        sa.select(PRODUCERS.c.uuid).where(
            PRODUCERS.c.updated_at
            < sa.bindparam("before", stale_before, PRODUCERS.c.updated_at.type)
        )
    )
    live = tx.execute(sa.select(PRODUCERS.c.uuid))
    dead_ids = {str(r[0]) for r in dead}
    live_ids = {str(r[0]) for r in live} - dead_ids
    kept = {str(k) for k in keep}
    cond = _T.c.state == "executing"
    if queue is not None:
        cond = sa.and_(cond, _T.c.queue == sa.bindparam("queue", queue))
    rows = tx.execute(
        sa.select(_T.c.id, _T.c.attempted_by, _T.c.attempt, _T.c.max_attempts, _T.c.meta,
                  _T.c.attempted_at).where(cond)
    )  # fmt: skip
    orphans: list[tuple[int, int, int, Mapping[str, Any]]] = []
    for job_id, by, attempt, max_attempts, meta, attempted_at in rows:
        by = list(by or ())
        owner = by[1] if len(by) > 1 else None
        if node is not None:
            if by[:1] == [node] and owner not in kept:
                orphans.append((job_id, attempt, max_attempts, meta or {}))
        elif owner not in live_ids and (
            owner in dead_ids or attempted_at is None or attempted_at < stale_before
        ):
            orphans.append((job_id, attempt, max_attempts, meta or {}))
    for job_id, attempt, max_attempts, meta in orphans:
        guard = sa.and_(
            _T.c.id == sa.bindparam("job_id", job_id),
            _T.c.state == "executing",
            _T.c.attempt == sa.bindparam("job_attempt", attempt),
        )
        if attempt >= max_attempts:
            values: dict[str, Any] = {"state": "discarded", "discarded_at": now}
        else:
            rescued = {**meta, "rescued": int(meta.get("rescued", 0)) + 1}
            values = {"state": "available", "meta": rescued}
        tx.execute(sa.update(_T).where(guard).values(**values))
    if dead_ids:
        tx.execute(
            sa.delete(PRODUCERS).where(
                PRODUCERS.c.updated_at
                < sa.bindparam("before", stale_before, PRODUCERS.c.updated_at.type)
            )
        )
    return [o[0] for o in orphans]


def prune(tx: Tx, now: dt.datetime, max_age: float, limit: int = 10_000) -> int:
    """Delete completed, cancelled and discarded jobs that ended more than *max_age*
    seconds ago (at most *limit*); how many::

        prune(tx, now, 7 * 86400)
    """
    before = now - dt.timedelta(seconds=max_age)
    b = sa.bindparam("before", before, _T.c.completed_at.type)
    old = (
        sa.select(_T.c.id)
        .where(
            sa.or_(
                sa.and_(_T.c.state == "completed", _T.c.completed_at <= b),
                sa.and_(_T.c.state == "cancelled", _T.c.cancelled_at <= b),
                sa.and_(_T.c.state == "discarded", _T.c.discarded_at <= b),
            )
        )
        .order_by(_T.c.id)
        .limit(sa.bindparam("limit", limit, sa.Integer))
        .scalar_subquery()
    )
    return tx.execute(sa.delete(_T).where(_T.c.id.in_(old))).rowcount


def counts(tx: Tx) -> dict[str, dict[str, int]]:
    """Jobs per queue and state: ``{"default": {"available": 3, "completed": 10}}``."""
    rows = tx.execute(
        sa.select(_T.c.queue, _T.c.state, sa.func.count()).group_by(_T.c.queue, _T.c.state)
    )
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for queue, state, n in rows:
        out[queue][str(state)] = int(n)
    return dict(out)
