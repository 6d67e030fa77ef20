"""Concurrent creates share a flight and a commit: group commit for single-``INSERT`` units.

A create action is a unit of one statement (``INSERT ... RETURNING``, ``final=True``): alone,
it is one round trip and one commit, and the commit is what costs most, on the server (WAL
flush) and here (a wake-up per round trip). When many processes create at once, the
:class:`Batcher` lets a few connections carry them together: the first callers each take a
connection (at most :data:`FLIGHTS` at once) and *lead* a flight; callers arriving while
those fly queue, and the next flight takes every one queued (up to :data:`MAX_BATCH`). A
flight sends its statements back to back in one implicit transaction (no ``BEGIN``, one
sync): one round trip, one commit. Each caller gets its own rows when the commit is done,
so what it was told is durable, as alone. While other flights are about, a leader lets the
tasks ready to run go first (callers just answered, about to create again), so that their
creates join its flight.

Independence is kept: a statement that fails in a flight (a unique violation, a deadlock
with another transaction) makes the server roll the whole flight back, and each statement
then runs again on its own, in order (its own transaction, so its own outcome, exactly
what it would have got alone). A flight lost with its connection, or past the earliest
deadline of its callers, fails for all of them (``ConnectionLost``, ``DatabaseTimeout``), as
a unit's statement would alone.

Interruption: a caller cancelled or killed while queued leaves the queue (nothing of it was
sent). Once its statement flies with others', it cannot be taken back without taking theirs
too: the flight finishes (shielded: a leader killed mid-flight still delivers everyone's
rows; the watchdog's deadline still bounds it), then the cancellation goes on; the row may
have been committed (and the caller, cancelled at its next wait, does not dispatch its
notifications), as when a cancellation comes just after a statement completes alone. A
flight of one (a create with nobody else creating) is interrupted as before: its query is
cancelled on the server and the connection replaced.

Only plain ``INSERT`` statements fly together (no ``ON CONFLICT``: an upsert locks rows
that exist, and locks held across a flight could deadlock with other transactions)::

    batcher = Batcher(pool, checkout, failure)
    rows = await batcher.submit(compiled, values, deadline)
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import outcome
import sqlalchemy as sa
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from ._data import Rows
from ._greenlets import wait_for
from ._pg_compile import Compiled, compiled_for
from ._pg_link import FlightBroken, Link, PgTx
from ._pg_pool import Pool

__all__ = ["FLIGHTS", "MAX_BATCH", "Batcher", "LazyTx", "batchable"]

#: Flights in the air at once (each on a connection of its own), at most the pool's size.
FLIGHTS = 4
#: Statements one flight carries at most.
MAX_BATCH = 64

_QUEUED, _FLYING, _START, _LEAD = range(4)
_NO_SCOPE = contextlib.nullcontext()


def batchable(compiled: Compiled) -> bool:
    """Whether *compiled* may fly with others' statements: a plain ``INSERT``."""
    sql = compiled.sql
    return compiled.expanding is None and sql[:7] == b"INSERT " and b" ON CONFLICT " not in sql


class _Sub:
    __slots__ = ("compiled", "deadline", "link", "state", "task", "values")

    def __init__(self, compiled: Compiled, values: Any, deadline: float, task: Task) -> None:
        self.compiled = compiled
        self.values = values
        self.deadline = deadline
        self.task = task
        self.state = _QUEUED
        self.link: Link | None = None


class Batcher:
    """The flights of one pool's single-``INSERT`` units (see the module docstring).
    *checkout* waits for a connection until a deadline (raising the repo's timeout);
    *failure* turns an error of a connection into what a caller sees."""

    def __init__(
        self,
        pool: Pool,
        checkout: Callable[[float], Awaitable[Link]],
        failure: Callable[[Exception, Link], BaseException],
        flights: int = FLIGHTS,
    ) -> None:
        self.pool = pool
        self.checkout = checkout
        self.failure = failure
        self.flights = max(1, min(flights, pool.size))
        self.pending: deque[_Sub] = deque()
        self.starters = 0  # callers leading a flight or getting a connection to lead one
        self.flown = 0  # flights so far
        self.carried = 0  # statements they carried

    async def submit(self, compiled: Compiled, values: Any, deadline: float) -> Rows:
        """Run the statement *compiled* with *values* as a unit of its own, in a flight:
        its rows once committed, or its error."""
        sub = _Sub(compiled, values, deadline, current_task())
        if self.starters < self.flights:
            self.starters += 1
            return await self._start(sub)
        self.pending.append(sub)

        def abort(_: Any) -> Abort:
            if sub.state == _QUEUED:
                self.pending.remove(sub)
                return Abort.SUCCEEDED
            return Abort.FAILED  # flying: its outcome comes with the flight's

        got = await wait_task_rescheduled(abort)
        if got is _START:
            return await self._start(sub)
        if got is _LEAD:
            assert sub.link is not None
            return await self._lead(sub.link, sub)
        rows: Rows = got
        return rows

    async def _start(self, sub: _Sub) -> Rows:
        try:
            link = self.pool.take() or await self.checkout(sub.deadline)
        except BaseException:
            self.starters -= 1
            self._promote()
            raise
        return await self._lead(link, sub)

    def _promote(self) -> None:
        """A flight ended or never started: the longest queued caller starts the next."""
        if self.pending and self.starters < self.flights:
            sub = self.pending.popleft()
            sub.state = _START
            self.starters += 1
            reschedule(sub.task, outcome.Value(_START))

    async def _lead(self, link: Link, sub: _Sub) -> Rows:
        if self.starters > 1:
            # Other flights are about: the callers they answered may be ready to run with
            # creates to add. They go first, and their creates join this flight.
            await trio.lowlevel.cancel_shielded_checkpoint()
        batch = [sub]
        pending = self.pending
        while pending and len(batch) < MAX_BATCH:
            batch.append(pending.popleft())
        for member in batch:
            member.state = _FLYING
        self.flown += 1
        self.carried += len(batch)
        conn = link.conn
        alone = len(batch) == 1
        conn.deadline = sub.deadline if alone else min(member.deadline for member in batch)
        results: list[Any] = []
        try:
            # Shielded for the others' sake; a flight of one is interrupted as a unit alone is
            # (its query cancelled on the server).
            with _NO_SCOPE if alone else trio.CancelScope(shield=True):
                try:
                    results = await link.run_batch([(m.compiled, m.values) for m in batch])
                except FlightBroken as broke:  # those that ran alone before keep their outcome
                    results = [
                        self.failure(broke.error, link) if got is None else got
                        for got in broke.outcomes
                    ]
                except Exception as exc:  # the connection's: lost, or past the deadline
                    results = [self.failure(exc, link) for _ in batch]
        finally:
            conn.deadline = math.inf
            if len(results) != len(batch):  # interrupted in a way no member can tell apart
                lost = RuntimeError(f"a flight on {link.name} was interrupted")
                results = [lost for _ in batch]
            self._hand_on(link)
            for member, result in zip(batch[1:], results[1:], strict=True):
                if isinstance(result, BaseException):
                    reschedule(member.task, outcome.Error(result))
                else:
                    reschedule(member.task, outcome.Value(result))
        mine = results[0]
        if isinstance(mine, BaseException):
            raise mine
        rows: Rows = mine
        return rows

    def _hand_on(self, link: Link) -> None:
        """After a flight: *link* leads the next one (the longest queued caller flies it),
        or goes back to the pool."""
        if self.pending and not link.busy and not link.broken:
            sub = self.pending.popleft()
            sub.state = _LEAD
            sub.link = link
            reschedule(sub.task, outcome.Value(_LEAD))
            return
        self.pool.checkin(link)
        self.starters -= 1
        self._promote()


class LazyTx(PgTx):
    """A write unit's transaction that takes a connection only when it needs one: a unit
    whose one statement is a plain ``INSERT`` (``final=True``) flies it with the
    :class:`Batcher` instead; any other statement, or ``tx.conn``, checks a connection out
    (``BEGIN`` goes with its first statement)."""

    def __init__(
        self, acquire: Callable[[], Awaitable[Link]], batcher: Batcher, deadline: float
    ) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.link = None  # type: ignore[assignment]
        self._acquire = acquire
        self._batcher = batcher
        self._deadline = deadline

    @property
    def conn(self) -> sa.Connection:
        """The transaction as a SQLAlchemy ``Connection`` (checks a connection out)."""
        self._take()
        return super().conn

    def _take(self) -> Link:
        link: Link | None = self.link
        if link is None:
            link = self.link = wait_for(self._acquire())
            link.begin()
            link.conn.deadline = self._deadline
        return link

    def execute(
        self, statement: Any, params: Mapping[str, Any] | None = None, *, final: bool = False
    ) -> Rows:
        """See :meth:`domain.Tx.execute`."""
        if self.link is None and final and not self._ended:
            compiled, values = compiled_for(statement, tuple(params) if params else ())
            if batchable(compiled):
                self._ended = True
                if params:
                    values.update(params)
                return wait_for(self._batcher.submit(compiled, values, self._deadline))
        if self.link is None:
            self._take()
        return super().execute(statement, params, final=final)
