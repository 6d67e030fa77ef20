"""One pooled PostgreSQL connection as the engine uses it: few round trips, no SQLAlchemy
execution on the way.

A :class:`Link` wraps one :class:`~domain._pg_conn.TrioConnection` (autocommit at the
psycopg level: the link says where transactions begin and end) and keeps it in libpq's
pipeline mode, so that what a unit of work needs goes to the server in as few round trips
as the work allows:

* ``BEGIN`` (and ``SAVEPOINT``, ``RELEASE``, ``ROLLBACK TO``) are queued and travel with
  the next statement; a unit that runs no statement sends nothing at all;
* each statement is prepared on the server the first time this connection runs it
  (``PREPARE`` travels with that first execution), then executed by name; parameters go as
  text with the casts SQLAlchemy rendered, rows come back binary and are loaded by psycopg's
  C loaders, then through the few SQLAlchemy result processors the types need;
* a write's ``COMMIT`` is one round trip; a read-only unit's ``COMMIT``, and the
  ``ROLLBACK`` after a failed unit, are sent without waiting: their replies are read and
  dropped at the start of the connection's next round trip.

A unit's last statement may end its transaction (``final=True``): a unit of one statement
then runs alone, with no ``BEGIN``/``COMMIT``, so a create action or a read is one round trip;
:meth:`Link.run_batch` carries the lone ``INSERT``s of several units in one flight and one
commit (``domain/_pg_batch.py``).

Units are plain functions (:data:`domain.Unit`); :meth:`Link.run_unit` runs one in a greenlet
of the calling task (``domain/_greenlets.py``), so that when it calls :meth:`PgTx.execute`
the task awaits the database on trio while the unit waits.
``tx.conn`` is a SQLAlchemy ``Connection`` over the same connection and transaction, for
hooks and DDL: the link leaves pipeline mode for it, and a DB-API shim passes each of its
statements to psycopg's async API.

A link whose operation was interrupted (a cancelled task, a killed process) is ``busy``
for good: its connection's state is not known, so the pool hands it to its owner process,
which replaces the connection (the query was already cancelled on the server).
"""

from __future__ import annotations

import itertools
import math
import select
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
import trio
from psycopg import errors as e
from psycopg import pq
from psycopg.abc import PQGen
from psycopg.adapt import PyFormat, Transformer
from psycopg.generators import fetch_many, send
from sqlalchemy.pool import StaticPool

from ._data import Rows, Tx
from ._greenlets import run_in_greenlet, wait_for
from ._notifiers import Notification
from ._pg_compile import Compiled, compiled_for, expand
from ._pg_conn import CANCEL_GRACE, DeadlineExceeded, TrioConnection

__all__ = ["FlightBroken", "Link", "PgTx", "run_unit_body"]

T = TypeVar("T")

_BINARY = pq.Format.BINARY
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_PIPELINE_ABORTED = pq.ExecStatus.PIPELINE_ABORTED
_IDLE = pq.TransactionStatus.IDLE
_BAD = pq.ConnStatus.BAD

#: Prepared statements kept per connection; the least recently used one goes past this.
MAX_PREPARED = 256

_TEXT_FORMATS: dict[int, list[PyFormat]] = {}


def _text_formats(n: int) -> list[PyFormat]:
    formats = _TEXT_FORMATS.get(n)
    if formats is None:
        formats = _TEXT_FORMATS[n] = [PyFormat.TEXT] * n
    return formats


def _readable(fd: int) -> bool:
    """Whether *fd* has something to read now (no wait; ``poll``, as a busy server's
    descriptors go past what ``select`` takes)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _exchange(pgconn: Any, groups: int) -> PQGen[list[list[Any]]]:
    """Flush what is queued, then read *groups* result groups (one per queued command, one
    per sync): the generator a round trip waits on."""
    yield from send(pgconn)
    out = []
    for _ in range(groups):
        out.append((yield from fetch_many(pgconn)))
    return out


def _exchange_batch(pgconn: Any, groups: int) -> PQGen[tuple[list[list[Any]], list[Any]]]:
    """Flush what is queued, read *groups* result groups, then read to the sync that ends
    the flight: ``(groups, errors)``, *errors* what the server reported at the sync (an
    implicit transaction's commit that failed)."""
    yield from send(pgconn)
    out = []
    for _ in range(groups):
        out.append((yield from fetch_many(pgconn)))
    errors: list[Any] = []
    for _ in range(4):  # an error group and its end, then the sync
        group = yield from fetch_many(pgconn)
        if group and group[0].status == _PIPELINE_SYNC:
            return out, errors
        errors.extend(group)
    raise e.InternalError("the replies to a batch did not end with its sync")


class FlightBroken(Exception):
    """The connection failed (or passed its deadline) while :meth:`Link.run_batch` ran the
    statements of a failed flight one by one: ``error`` is why, ``outcomes`` what those run
    before got (``None`` for the others)."""

    def __init__(self, error: Exception, outcomes: list[Any]) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcomes = outcomes


class Link:
    """One connection of the pool, driven by whichever process checked it out (see the
    module docstring). ``owner`` is the process that holds the connection; ``busy`` says an
    operation was interrupted; ``dead`` that the connection is gone::

        conn = await TrioConnection.connect(dsn, autocommit=True)
        link = Link(conn, owner_pid, "App.repo.conn.0")
        rows = await link.execute(stmt, {"id": key})
    """

    def __init__(self, conn: TrioConnection[Any], owner: Any, name: str) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.owner = owner
        self.name = name
        self.backend_pid = conn.info.backend_pid
        self.busy = False
        self.dead = False
        self.queries = 0
        self.errors = 0
        self.depth = 0  # 0: no transaction; 1: in one; n > 1: n - 1 savepoints inside
        self._encoding = conn.info.encoding
        # A UTC session gets UTC datetimes from psycopg: no conversion after loading.
        self._utc = conn.pgconn.parameter_status(b"TimeZone") == b"UTC"
        self._transformer = Transformer(conn)
        self._prepared: OrderedDict[bytes, bytes] = OrderedDict()
        self._prepared_ids = itertools.count()
        self._queued: list[bytes] = []  # commands for the next round trip
        self._stale: list[bytes] = []  # prepared statements to deallocate, likewise
        self._discard = 0  # result groups sent earlier whose replies nobody awaits
        self._on_server = False  # the current transaction's BEGIN has been sent
        self._pipeline = False
        self._engine: sa.Engine | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def broken(self) -> bool:
        """Whether the connection is closed or lost."""
        return self.dead or self.conn.closed or self.pgconn.status == _BAD

    def healthy_when_idle(self) -> bool:
        """Whether an idle connection still stands, judged without waiting: the replies to
        commands sent without waiting are read if they arrived; anything else the server
        sent to an idle connection (a termination notice, the end of the stream) means it
        is gone."""
        if self.broken:
            return False
        pgconn = self.pgconn
        try:
            if not _readable(pgconn.socket):
                return True
            pgconn.consume_input()
            while self._discard and not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None or result.status == _PIPELINE_SYNC:
                    self._discard -= 1  # a command's replies end with None; a sync is one
                elif result.status == _FATAL_ERROR and pgconn.status == _BAD:
                    return False
        except e.OperationalError:
            return False
        if pgconn.status == _BAD:
            return False
        return bool(self._discard) or not _readable(pgconn.socket)

    # -- transactions ----------------------------------------------------------------------------

    def begin(self, read_only: bool = False) -> None:
        """Open a transaction (``BEGIN`` goes with the next statement)."""
        if self.depth:
            raise RuntimeError(f"{self.name} is already in a transaction")
        self.depth = 1
        self._on_server = False
        self._queued.append(b"BEGIN READ ONLY" if read_only else b"BEGIN")

    def savepoint(self) -> bytes:
        """Open a savepoint inside the transaction; returns its name."""
        if not self.depth:
            raise RuntimeError(f"{self.name} has no transaction to put a savepoint in")
        name = b"s%d" % self.depth
        self.depth += 1
        self._queued.append(b"SAVEPOINT " + name)
        return name

    def release(self, name: bytes) -> None:
        """Keep what was done since savepoint *name*."""
        self.depth -= 1
        if not self._unsent(name):
            self._queued.append(b"RELEASE SAVEPOINT " + name)

    def rollback_to(self, name: bytes) -> None:
        """Undo what was done since savepoint *name* (and drop it)."""
        self.depth -= 1
        if not self._unsent(name):
            self._queued += [b"ROLLBACK TO SAVEPOINT " + name, b"RELEASE SAVEPOINT " + name]

    def _unsent(self, name: bytes) -> bool:
        """Drop savepoint *name* if nothing was sent since it was set (nor it): true then."""
        queued = self._queued
        if queued and queued[-1] == b"SAVEPOINT " + name:
            queued.pop()
            return True
        return False

    async def commit(self) -> None:
        """Commit and wait for the server to confirm. Not interruptible: a commit in flight
        when the task is cancelled finishes first (its outcome would be unknown otherwise)."""
        self.depth = 0
        if not self._on_server:  # nothing reached the server: nothing to commit
            self._queued.clear()
            return
        self._queued.append(b"COMMIT")
        conn = self.conn
        deadline, conn.deadline = conn.deadline, math.inf  # a commit is never cut short
        try:
            with _shield():
                await self._round_trip(None, None)
        finally:
            conn.deadline = deadline

    def end_later(self, commit: bool) -> None:
        """Commit (a read-only unit) or roll back (a failed one) without waiting: the reply
        is read at the start of the next round trip."""
        self.depth = 0
        if not self._on_server:
            self._queued.clear()
            return
        self._queued.append(b"COMMIT" if commit else b"ROLLBACK")
        self._send_now()

    async def rollback_now(self) -> None:
        """Roll back whatever is open, and wait (the owner's recovery after a borrower died
        inside a transaction)."""
        self.depth = 0
        self._queued.clear()
        if self.pgconn.transaction_status == _IDLE and not self._discard:
            return
        self._queued.append(b"ROLLBACK")
        await self._round_trip(None, None)

    # -- statements ----------------------------------------------------------------------------

    async def execute(
        self, statement: Any, params: Mapping[str, Any] | None = None, final: bool = False
    ) -> Rows:
        """Run a SQLAlchemy Core *statement* with *params* in the current transaction (or
        on its own): its :class:`~domain.Rows`. *final*: no other statement follows in this
        transaction, so it ends with this one (see :meth:`domain.Tx.execute`)."""
        keys = tuple(params) if params else ()
        compiled, values = compiled_for(statement, keys)
        if params:
            values.update(params)
        return await self._round_trip(compiled, values, final)

    def _send_now(self) -> None:
        """Queue the queued commands and a sync, flush without waiting; the replies are
        dropped later."""
        self._enter_pipeline()
        pgconn = self.pgconn
        for command in self._queued:
            pgconn.send_query_params(command, None)
        pgconn.pipeline_sync()
        pgconn.flush()  # what does not fit now goes with the next round trip
        self._discard += len(self._queued) + 1
        self._queued.clear()

    def _send_stale(self) -> None:
        """Send the ``DEALLOCATE`` of each statement evicted from the prepared cache ahead of
        the next round trip, with a sync of their own: nobody waits for their results."""
        if self._stale:
            for command in self._stale:
                self.pgconn.send_query_params(command, None)
            self.pgconn.pipeline_sync()
            self._discard += len(self._stale) + 1
            self._stale = []

    def _enter_pipeline(self) -> None:
        if not self._pipeline:
            self.pgconn.enter_pipeline_mode()
            self._pipeline = True

    async def _round_trip(
        self, compiled: Compiled | None, values: Any, final: bool = False
    ) -> Rows:
        """Send the queued commands, then *compiled* with *values* (if any) and a sync, in
        one flight; read every reply; raise the first error; the statement's rows.

        With *final* in a transaction of depth 1, the transaction ends with the statement:
        if nothing of it reached the server yet, its ``BEGIN`` is dropped and the statement
        runs alone (one statement is atomic on its own); else ``COMMIT`` follows it in the
        same flight."""
        if self.busy:
            raise e.OperationalError(f"{self.name} was interrupted mid-operation; not reusable")
        self._enter_pipeline()
        pgconn = self.pgconn
        queued = self._queued
        self._send_stale()
        discard = self._discard
        after: tuple[bytes, ...] = ()
        implicit = False
        if final and self.depth == 1 and compiled is not None:
            if not self._on_server and queued and queued[-1].startswith(b"BEGIN"):
                queued.pop()
                implicit = True
            else:
                after = (b"COMMIT",)
        new_name: bytes | None = None
        for command in queued:
            pgconn.send_query_params(command, None)
        groups = discard + len(queued) + len(after) + 1
        if compiled is not None:
            if compiled.expanding is not None:
                sql, args = expand(compiled, values)
                pgconn.send_query_params(sql, self._dump(args), None, None, _BINARY)
            else:
                args = self._args(compiled, values)
                sql = compiled.sql
                prepared_name = self._prepared.get(sql)
                if prepared_name is None:
                    new_name = prepared_name = b"t%d" % next(self._prepared_ids)
                    pgconn.send_prepare(prepared_name, sql, None)
                    groups += 1
                else:
                    self._prepared.move_to_end(sql)
                pgconn.send_query_prepared(prepared_name, self._dump(args), None, _BINARY)
            groups += 1
            self.queries += 1
        for command in after:
            pgconn.send_query_params(command, None)
        pgconn.pipeline_sync()
        self._queued = []
        self._discard = 0
        self.busy = True
        results = await self.conn.wait(_exchange(pgconn, groups))
        self.busy = False
        if queued:
            self._on_server = bool(self.depth)
        if implicit:
            self.depth = 0
            self._on_server = False
        rows = self._outcome(results, discard, len(queued), compiled, new_name, len(after))
        if after:  # committed with the statement
            self.depth = 0
            self._on_server = False
        return rows

    async def run_batch(self, items: Sequence[tuple[Compiled, Any]]) -> list[Rows | Exception]:
        """Run single statements of independent units (each would run alone, in a transaction
        of its own) in one flight and one implicit transaction: one round trip and one
        commit for all. Each item's :class:`~domain.Rows`, or the error it gets alone: if
        anything fails in the shared flight, nothing of it is kept and each statement runs
        again on its own (its own transaction, its own outcome), in order. An error of the
        connection itself (lost, past the deadline) is raised for all."""
        if self.busy:
            raise e.OperationalError(f"{self.name} was interrupted mid-operation; not reusable")
        outcomes: list[Rows | Exception | None] = [None] * len(items)
        sent: list[tuple[int, Compiled, bytes | None]] = []
        self._enter_pipeline()
        pgconn = self.pgconn
        self._send_stale()
        discard = self._discard
        groups = discard
        prepared = self._prepared
        fresh: dict[bytes, bytes] = {}
        for i, (compiled, values) in enumerate(items):
            try:
                args = self._args(compiled, values)
            except sa.exc.ArgumentError as exc:
                outcomes[i] = exc
                continue
            sql = compiled.sql
            name = prepared.get(sql)
            new_name: bytes | None = None
            if name is None:
                name = fresh.get(sql)
                if name is None:
                    new_name = name = fresh[sql] = b"t%d" % next(self._prepared_ids)
                    pgconn.send_prepare(name, sql, None)
                    groups += 1
            else:
                prepared.move_to_end(sql)
            pgconn.send_query_prepared(name, self._dump(args), None, _BINARY)
            groups += 1
            sent.append((i, compiled, new_name))
            self.queries += 1
        pgconn.pipeline_sync()
        self._discard = 0
        self.busy = True
        results, errors = await self.conn.wait(_exchange_batch(pgconn, groups))
        self.busy = False
        at = discard
        failed = bool(errors)
        for i, compiled, new_name in sent:
            if new_name is not None:
                (reply,) = results[at]
                at += 1
                if reply.status == _COMMAND_OK:
                    self._remember(compiled.sql, new_name)
                else:
                    failed = True
            group = results[at]
            at += 1
            result = group[-1] if group else None
            if result is None or result.status not in (_TUPLES_OK, _COMMAND_OK):
                failed = True
            else:
                outcomes[i] = self._rows(compiled, result)
        if failed and len(sent) == 1 and not errors:
            # Alone in its transaction: its error is what it gets on its own.
            i, compiled, new_name = sent[0]
            group = results[at - 1]
            if group and group[-1].status == _FATAL_ERROR:
                self.errors += 1
                outcomes[i] = e.error_from_result(group[-1], encoding=self._encoding)
                return outcomes  # type: ignore[return-value]
        if failed:  # nothing was kept: each on its own, in order
            for i, _, _ in sent:
                outcomes[i] = None
            for i, compiled, _ in sent:
                try:
                    outcomes[i] = await self._round_trip(compiled, items[i][1])
                except e.Error as exc:
                    if self.broken or isinstance(exc, DeadlineExceeded):
                        raise FlightBroken(exc, outcomes) from exc
                    outcomes[i] = exc
        return outcomes  # type: ignore[return-value]

    def _args(self, compiled: Compiled, values: Any) -> list[Any]:
        try:
            return compiled.parameters(values)
        except KeyError as missing:
            raise sa.exc.ArgumentError(
                f"a value is required for the bind parameter {missing.args[0]!r}"
            ) from None

    def _dump(self, args: Sequence[Any]) -> Sequence[Any]:
        return self._transformer.dump_sequence(args, _text_formats(len(args)))

    def _outcome(
        self,
        results: list[list[Any]],
        discard: int,
        queued: int,
        compiled: Compiled | None,
        new_name: bytes | None,
        after: int,
    ) -> Rows:
        # results[:discard]: replies to commands sent without waiting (a read-only unit's
        # COMMIT, a failed unit's ROLLBACK); nobody awaits them.
        error: Any = None
        at = discard + queued
        for group in results[discard:at]:
            if error is None and group and group[0].status == _FATAL_ERROR:
                error = group[0]
        if new_name is not None:
            (prepared,) = results[at]
            at += 1
            if prepared.status == _COMMAND_OK:
                assert compiled is not None
                self._remember(compiled.sql, new_name)
            elif error is None and prepared.status == _FATAL_ERROR:
                error = prepared
        result: Any = None
        if compiled is not None:
            result = results[at][-1] if results[at] else None
            at += 1
            if error is None and result is not None and result.status == _FATAL_ERROR:
                error = result
        for group in results[at : at + after]:
            if error is None and group and group[0].status == _FATAL_ERROR:
                error = group[0]
        if error is not None:
            self.errors += 1
            raise e.error_from_result(error, encoding=self._encoding)
        if compiled is None:
            return Rows((), [], 0)
        if result is None or result.status == _PIPELINE_ABORTED:
            raise e.InternalError(f"{self.name}: no reply to the statement")
        return self._rows(compiled, result)

    def _rows(self, compiled: Compiled, result: Any) -> Rows:
        """The :class:`~domain.Rows` of a statement's successful *result*, loaded in one pass."""
        if result.status != _TUPLES_OK:
            return Rows((), [], result.command_tuples or 0)
        transformer = self._transformer
        transformer.set_pgresult(result)
        rows: list[Any] = transformer.load_rows(0, result.ntuples, tuple)
        loaders = compiled.utc_loaders if self._utc else compiled.loaders
        if loaders:
            for n, row in enumerate(rows):
                values = list(row)
                for i, load in loaders:
                    if values[i] is not None:
                        values[i] = load(values[i])
                rows[n] = tuple(values)
        return Rows(compiled.names, rows, len(rows))

    def _remember(self, sql: bytes, name: bytes) -> None:
        prepared = self._prepared
        prepared[sql] = name
        if len(prepared) > MAX_PREPARED:
            _, oldest = prepared.popitem(last=False)
            self._stale.append(b"DEALLOCATE " + oldest)

    # -- units of work -------------------------------------------------------------------------

    async def run_unit(
        self, unit: Callable[[Tx], T], read_only: bool
    ) -> tuple[T, list[Notification]]:
        """Run ``unit(tx)`` in a transaction of its own: ``(result, notifications)``."""
        self.begin(read_only)
        tx = PgTx(self)
        try:
            result = await run_in_greenlet(run_unit_body, (unit, tx))
        except BaseException:
            if not self.busy and not self.broken:
                try:
                    self.end_later(commit=False)
                except e.Error:  # the connection went away as well
                    self.dead = True
            raise
        if read_only:
            self.end_later(commit=True)
        else:
            await self.commit()
        return result, tx.outbox

    async def run_in(self, unit: Callable[[Tx], T], tx: PgTx) -> T:
        """Run ``unit(tx)`` inside the open transaction *tx* (``Domain.transaction``)."""
        return await run_in_greenlet(run_unit_body, (unit, tx))

    # -- tx.conn: SQLAlchemy over the same connection -------------------------------------------

    async def leave_pipeline(self) -> None:
        """Send what is queued, read every reply, leave pipeline mode: psycopg's own API
        (``tx.conn``) may use the connection then."""
        if self._queued or self._discard:
            await self._round_trip(None, None)
        if self._pipeline:
            self.pgconn.exit_pipeline_mode()
            self._pipeline = False

    async def driver_execute(
        self, query: Any, params: Any, many: bool
    ) -> tuple[Any, int, list[Any]]:
        """One statement of ``tx.conn`` through psycopg's async API: (description, rowcount,
        rows)."""
        await self.leave_pipeline()
        if self.depth:
            self._on_server = True
        self.busy = True
        cursor = self.conn.cursor()
        try:
            if many:
                await cursor.executemany(query, params)
            else:
                await cursor.execute(query, params)
        except e.Error:
            self.errors += 1
            self.busy = False
            raise
        self.queries += 1
        rows = await cursor.fetchall() if cursor.pgresult is not None and cursor.description else []
        self.busy = False
        return cursor.description, cursor.rowcount, rows

    def sa_connection(self) -> sa.Connection:
        """A SQLAlchemy ``Connection`` on this link (inside a unit's greenlet only)."""
        if self._engine is None:
            shim = _DriverConnection(self)
            self._engine = sa.create_engine(
                "postgresql+psycopg://",
                creator=lambda: shim,
                poolclass=StaticPool,
                pool_reset_on_return=None,
                use_native_hstore=False,
            )
        return self._engine.connect()

    def close(self) -> None:
        """Close the connection now (a task waiting on it sees it closed)."""
        self.dead = True
        self.conn._finish()


def run_unit_body(job: tuple[Callable[[Tx], T], PgTx]) -> T:
    """``unit(tx)`` for :func:`~domain._greenlets.run_in_greenlet`, letting go of
    ``tx.conn`` after."""
    unit, tx = job
    try:
        return unit(tx)
    finally:
        tx.close_conn()


class PgTx(Tx):
    """A transaction on a :class:`Link`: :meth:`execute` goes straight to the connection;
    ``conn`` (made on first use) is a SQLAlchemy ``Connection`` on the same transaction."""

    def __init__(self, link: Link) -> None:
        super().__init__(None)
        self.link = link
        self._sa: sa.Connection | None = None
        self._ended = False

    @property
    def conn(self) -> sa.Connection:
        """The transaction as a SQLAlchemy ``Connection``: ``tx.conn.execute(stmt)``."""
        if self._sa is None:
            self._sa = self.link.sa_connection()
        return self._sa

    @property
    def dialect(self) -> str:
        """Always ``"postgresql"``."""
        return "postgresql"

    def execute(
        self, statement: Any, params: Mapping[str, Any] | None = None, *, final: bool = False
    ) -> Rows:
        """Run *statement* with *params* in this transaction: its :class:`~domain.Rows`
        (*final*: see :meth:`domain.Tx.execute`)::

        row = tx.execute(insert_returning(table), values, final=True).one()
        """
        if self._ended:
            raise RuntimeError(
                "a statement after one run with final=True: the transaction has ended"
            )
        if final:
            self._ended = True
        return wait_for(self.link.execute(statement, params, final))

    def close_conn(self) -> None:
        """Let go of ``conn`` (the link's transaction is not touched)."""
        if self._sa is not None:
            self._sa.close()
            self._sa = None


def _shield() -> trio.CancelScope:
    """A cancel scope shielded for :data:`~domain._pg_conn.CANCEL_GRACE` seconds."""
    return trio.CancelScope(shield=True, deadline=trio.current_time() + CANCEL_GRACE)


class _DriverCursor:
    """The DB-API cursor ``tx.conn`` sees: each statement awaits the link's connection."""

    arraysize = 1

    def __init__(self, link: Link) -> None:
        self._link = link
        self.description: Any = None
        self.rowcount = -1
        self._rows: list[Any] = []
        self._at = 0

    def execute(self, query: Any, params: Any = None) -> None:
        self.description, self.rowcount, self._rows = wait_for(
            self._link.driver_execute(query, params, False)
        )
        self._at = 0

    def executemany(self, query: Any, params: Any) -> None:
        self.description, self.rowcount, self._rows = wait_for(
            self._link.driver_execute(query, params, True)
        )
        self._at = 0

    def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        row = self._rows[self._at]
        self._at += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        rows = self._rows[self._at : self._at + n]
        self._at += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._at :]
        self._at = len(self._rows)
        return rows

    def close(self) -> None:
        self._rows = []


class _DriverConnection:
    """The DB-API connection ``tx.conn`` sees. Transactions belong to the link, so commit
    and rollback do nothing here; everything else is the psycopg connection's."""

    def __init__(self, link: Link) -> None:
        self._link = link

    def cursor(self, *args: Any, **kwargs: Any) -> _DriverCursor:
        return _DriverCursor(self._link)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link.conn, name)
