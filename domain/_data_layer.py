"""The data layers: SQLite on connection threads, PostgreSQL on trio; both supervised pools.

Both implement :class:`domain.DataLayer` (``domain/_data.py``) as a :class:`Repo`: a pool of
connections, each owned by a process (``"<name>.conn.<i>"``) under the repo's
:class:`supervisors.Supervisor`, which restarts one that crashes or is killed. A call hands
a whole unit of work (a function of a :class:`domain.Tx`) to the pool, so the trio loop never
waits on the database. What differs is where the unit runs:

* :class:`SQLiteRepo`: SQLite's driver blocks, so each connection is a
  :class:`beam.ThreadActor` (its own OS thread) and a unit is shipped to it in one ask. An
  SQLite file allows one writer at a time and, in write-ahead-log mode, readers beside it:
  one writer connection takes every write; the others are readers (``PRAGMA query_only``)
  for ``run(unit, read_only=True)``. An in-memory database has one connection for both. If
  the connection's owner dies while the caller waits, the caller marks the unit cancelled:
  the thread rolls back instead of committing, and the caller gets :class:`ConnectionLost`.
* :class:`PostgresRepo`: every connection is alike, driven by psycopg on trio with no
  thread (``domain/_pg_conn.py``); the caller checks one out and runs its unit in its own
  task, statements compiled once and pipelined (``domain/_pg_link.py``), then checks it in
  (``domain/_pg_pool.py``); a write unit checks one out when it first needs it, and one
  whose only statement is an ``INSERT`` flies with the other callers' concurrent ones, one
  round trip and one commit (``domain/_pg_batch.py``). ``LISTEN``/``NOTIFY`` reach
  processes as messages (``domain/_pg_notify.py``).

:meth:`Repo.transaction` (what ``Domain.transaction`` uses) keeps one connection for the
calling task across several units; nested, it is a savepoint. :func:`data_layer` picks a
repo from a URL::

    layer = data_layer("sqlite:///data/app.db", name="App.repo")
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
import trio
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

import beam
from supervisors import AlreadyStarted, ChildSpec, Supervisor

from ._data import DataLayer, PoolStats, Tx, translate_error
from ._errors import ConnectionLost, DatabaseTimeout
from ._greenlets import run_in_greenlet
from ._notifiers import Notification
from ._pg_batch import Batcher, LazyTx
from ._pg_conn import DeadlineExceeded, TaskLock
from ._pg_link import Link, PgTx, run_unit_body
from ._pg_notify import listen, start_listener
from ._pg_pool import Pool, start_owner, start_watchdog

__all__ = [
    "PostgresRepo",
    "Repo",
    "SQLiteRepo",
    "data_layer",
    "database_url",
    "ensure_sqlite_directory",
]

T = TypeVar("T")

#: PostgreSQL kills a query whose client went away within this many milliseconds.
CLIENT_CHECK_MS = 1000
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def database_url(default: str = "sqlite:///data/app.db") -> str:
    """``DATABASE_URL`` from the environment (``postgresql://`` becomes psycopg 3), else
    *default* (an SQLite file; ``"sqlite://"`` is an in-memory database).

    >>> url = database_url()  # "sqlite:///data/app.db" when DATABASE_URL is unset
    """
    url = os.environ.get("DATABASE_URL") or default
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of an SQLite file *url* (``sqlite:///data/app.db``) if missing,
    so a fresh checkout starts without a set-up step, and the file itself, readable and
    writable by its owner only (0600: SQLite would make it 0644, readable by every user of
    the machine); other URLs are left alone. An existing file keeps its mode.

    >>> ensure_sqlite_directory("sqlite:///data/app.db")
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


class Repo(ABC):
    """A pool of database connections under a supervisor, for one database: what
    :class:`SQLiteRepo` and :class:`PostgresRepo` share (build one of those, or let
    :func:`data_layer` pick).

    :meth:`run` runs ``fn(tx)`` in a transaction on a pooled connection and returns its
    result and the committed notifications. ``names`` are the connections' registered names
    (``"<name>.conn.<i>"``); ``pool_size`` is how many there are; ``timeout`` bounds a call
    (waiting for a connection included)::

        repo = SQLiteRepo("sqlite:///data/app.db", name="App.repo")
        await repo.start_link()
        count, _ = await repo.run(lambda tx: tx.execute(count_users).scalar())
    """

    dialect: str

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
        name: str = "domain.repo",
        timeout: float | None = 30.0,
    ) -> None:
        url, pool_size = self._resolve(url, pool_size)
        self.url = url
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        self.pool_size = pool_size
        self.schema = schema
        self.name = name
        self.timeout = timeout
        self.names = [f"{name}.conn.{i}" for i in range(pool_size)]
        self.supervisor: beam.Pid | None = None

    @abstractmethod
    def _resolve(self, url: str, pool_size: int | None) -> tuple[str, int]:
        """The URL to connect to and the pool size (the default when *pool_size* is None)."""

    @abstractmethod
    def child_specs(self) -> list[ChildSpec]:
        """The children of the repo's supervisor (one per connection, at least)."""

    @abstractmethod
    async def run(
        self, fn: Callable[[Tx], T], *, read_only: bool = False
    ) -> tuple[T, list[Notification]]:
        """Run ``fn(tx)`` in a transaction on a pooled connection: (result, notifications).
        *read_only* units may go to a reader (they must not write).

        >>> rows, _ = await repo.run(lambda tx: tx.execute(stmt).rows, read_only=True)
        """

    @abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[list[Notification] | None]:
        """Keep one connection and one transaction for the calling task: every :meth:`run`
        of the task inside the block joins it (each in a savepoint of its own), and it
        commits when the block ends (rolls back if it raises). Nested, a savepoint. Yields
        the outbox of the outermost block (``None`` for a nested one): its notifications
        are for after the commit::

            async with repo.transaction() as outbox:
                await repo.run(unit_a)
                await repo.run(unit_b)
        """

    @abstractmethod
    def stats(self) -> PoolStats:
        """The pool's state now: ``repo.stats().in_use``."""

    def _timeout(self) -> float:
        return math.inf if self.timeout is None else self.timeout

    async def start_link(self) -> beam.Pid:
        """Start the pool's supervisor (linked to the caller) and every connection.

        >>> async def main():
        ...     pid = await SQLiteRepo("sqlite://").start_link()
        """
        self.supervisor = await Supervisor.start_link(
            self.child_specs(), name=self.name, max_restarts=10, max_seconds=5.0
        )
        return self.supervisor

    async def stop(self) -> None:
        """Stop the pool's supervisor and so every connection (each closes its own).

        >>> async def main():
        ...     await App.repo().stop()
        """
        if self.supervisor is not None:
            await Supervisor.stop(self.supervisor)
            self.supervisor = None

    def child_spec(self) -> ChildSpec:
        """The pool as a child of your supervision tree.

        >>> tree = [repo.child_spec(), web_spec]
        """
        return ChildSpec(
            id=self.name, start=self.start_link, type="supervisor", shutdown="infinity"
        )


class _Token:
    __slots__ = ("cancelled", "committing", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = False
        self.committing = False


class _Cancelled(Exception):
    pass


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver would BEGIN only before a write, so a unit's reads would each see a
    # different commit; transactions are begun explicitly instead (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Write-ahead logging: readers never wait for the writer, and a commit syncs the log once
    # instead of a rollback journal and the database (synchronous stays FULL: a committed
    # write survives a power cut). In-memory databases keep their own journal.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    """Every unit is one transaction from its first statement: one snapshot for its reads."""
    conn.exec_driver_sql("BEGIN")


def _sqlite_query_only(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


class _Connection(beam.ThreadActor):
    """One database connection on its own thread, through its repo's engine. Besides whole
    units (:meth:`run`), it keeps a transaction open across asks for ``Repo.transaction``
    (:meth:`open`, :meth:`run_in`, :meth:`savepoint`, :meth:`end`)."""

    def __init__(self, make_engine: Callable[[], sa.Engine], schema: str | None) -> None:
        super().__init__()
        self.engine = make_engine()
        conn = self.engine.connect()
        if schema is not None:
            conn = conn.execution_options(schema_translate_map={None: schema})
        self.conn = conn
        self.block: Any = None
        self.savepoints: list[Any] = []

    def run(self, fn: Callable[[Tx], Any], token: _Token) -> tuple[str, Any]:
        try:
            tx = Tx(self.conn)
            with self.conn.begin():
                result = fn(tx)
                with token.lock:
                    if token.cancelled:
                        raise _Cancelled
                    token.committing = True
            return "ok", (result, tx.outbox)
        except _Cancelled:
            return "error", ConnectionLost("the caller gave up; rolled back")
        except Exception as exc:
            if self.conn.invalidated:
                self.conn.rollback()
            return "error", exc

    def open(self) -> tuple[str, Any]:
        return self._guarded(self._open)

    def _open(self) -> None:
        self.block = self.conn.begin()

    def run_in(self, fn: Callable[[Tx], Any]) -> tuple[str, Any]:
        tx = Tx(self.conn)
        try:
            savepoint = self.conn.begin_nested()
        except Exception as exc:
            return "error", exc
        try:
            result = fn(tx)
        except Exception as exc:
            savepoint.rollback()
            return "error", exc
        savepoint.commit()
        return "ok", (result, tx.outbox)

    def savepoint(self) -> tuple[str, Any]:
        return self._guarded(lambda: self.savepoints.append(self.conn.begin_nested()))

    def release(self, keep: bool) -> tuple[str, Any]:
        def release() -> None:
            savepoint = self.savepoints.pop()
            if keep:
                savepoint.commit()
            else:
                savepoint.rollback()

        return self._guarded(release)

    def end(self, commit: bool) -> tuple[str, Any]:
        def end() -> None:
            self.savepoints.clear()
            block, self.block = self.block, None
            if block is None:
                return
            if commit:
                block.commit()
            else:
                block.rollback()

        return self._guarded(end)

    def _guarded(self, step: Callable[[], Any]) -> tuple[str, Any]:
        """An error is an answer, never an exception: one would stop the actor."""
        try:
            return "ok", step()
        except Exception as exc:
            return "error", exc

    def on_stop(self) -> None:
        self.conn.close()  # the engine is the repo's, shared (see SQLiteRepo._engine)


_MEMORY_URLS = ("sqlite://", "sqlite:///:memory:")


class _SQLiteBlock:
    """An open ``SQLiteRepo.transaction``: the writer it holds, for which task."""

    def __init__(self, repo: SQLiteRepo, task: trio.lowlevel.Task) -> None:
        self.repo = repo
        self.task = task
        self.outbox: list[Notification] = []


_SQLITE_BLOCK: ContextVar[_SQLiteBlock | None] = ContextVar("domain.sqlite_block", default=None)


class SQLiteRepo(Repo):
    """The SQLite data layer: one writer connection, which every write goes to, and readers
    (``PRAGMA query_only``) for read-only units; 4 connections by default, each a thread
    actor. Write-ahead logging lets readers run beside the writer. An in-memory database
    (``"sqlite://"``) has one connection for both::

        repo = SQLiteRepo("sqlite:///data/app.db", name="App.repo")
    """

    dialect = "sqlite"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
        name: str = "domain.repo",
        timeout: float | None = 30.0,
    ) -> None:
        super().__init__(url, pool_size=pool_size, schema=schema, name=name, timeout=timeout)
        self._writers, self._readers = self.names[:1], self.names[1:] or self.names[:1]
        self._busy = dict.fromkeys(self.names, 0)
        self._writer = TaskLock()  # a transaction block holds the writer between its units
        self._queries = 0
        self._errors = 0
        self._engines: dict[bool, sa.Engine] = {}
        self._engines_lock = threading.Lock()

    def _resolve(self, url: str, pool_size: int | None) -> tuple[str, int]:
        if url in _MEMORY_URLS:
            if pool_size not in (None, 1):
                raise ValueError("an in-memory SQLite database needs pool_size=1")
            return "sqlite:///file:domain_mem?mode=memory&cache=shared&uri=true", 1
        return url, 4 if pool_size is None else pool_size

    def _engine(self, read_only: bool) -> sa.Engine:
        """The engine the writer (or every reader) connects through: made once and kept by
        the repo, so that a connection restarted by its supervisor finds the statements
        compiled already (SQLAlchemy caches them per engine; a fresh engine made a restarted
        connection's first units compile every statement again). ``NullPool``: each
        connection actor opens a DBAPI connection of its own and closes it when it stops."""
        with self._engines_lock:
            engine = self._engines.get(read_only)
            if engine is None:
                ensure_sqlite_directory(self.url)
                engine = sa.create_engine(
                    self.url, poolclass=NullPool, connect_args={"check_same_thread": False}
                )
                sa.event.listen(engine, "connect", _sqlite_pragmas)
                sa.event.listen(engine, "begin", _sqlite_begin)
                if read_only:  # a reader: a unit that tries to write fails instead
                    sa.event.listen(engine, "connect", _sqlite_query_only)
                self._engines[read_only] = engine
            return engine

    def child_specs(self) -> list[ChildSpec]:
        """One child spec per connection actor."""
        return [
            ChildSpec(
                id=conn_name,
                start=partial(_Connection.start_link, name=conn_name),
                args=(partial(self._engine, conn_name not in self._writers), self.schema),
                shutdown=5.0,
            )
            for conn_name in self.names
        ]

    def stats(self) -> PoolStats:
        """The pool's state: ``in_use`` counts units shipped and not yet answered."""
        busy = self._busy.values()
        return PoolStats(
            size=self.pool_size,
            connected=sum(1 for name in self.names if beam.whereis(name) is not None),
            idle=sum(1 for n in busy if n == 0),
            in_use=sum(1 for n in busy if n > 0),
            waiting=sum(max(0, n - 1) for n in busy),
            queries=self._queries,
            errors=self._errors,
            timeouts=0,
            replaced=0,
        )

    def _pick(self, names: list[str]) -> str:
        busy = self._busy
        best = names[0]
        for conn_name in names:
            if busy[conn_name] < busy[best]:
                best = conn_name
                if busy[best] == 0:
                    break
        return best

    def _block(self) -> _SQLiteBlock | None:
        block = _SQLITE_BLOCK.get()
        if block is not None and block.repo is self and block.task is trio.lowlevel.current_task():
            return block
        return None

    async def _ask(self, conn_name: str, method: str, *args: Any) -> Any:
        """One ask to a connection, its death turned into :class:`ConnectionLost`."""
        try:
            kind, value = await beam.ask(conn_name, method, *args, timeout=self.timeout)
        except (beam.NoProc, beam.ProcessExit, beam.CallTimeout) as exc:
            raise ConnectionLost(
                f"connection {conn_name} died mid-transaction ({exc}); the transaction was "
                "rolled back and the supervisor restarts the connection; retrying is safe"
            ) from exc
        if kind == "error":
            raise translate_error(value)
        return value

    async def run(
        self, fn: Callable[[Tx], T], *, read_only: bool = False
    ) -> tuple[T, list[Notification]]:
        """Run ``fn(tx)`` in a transaction on a pooled connection: (result, notifications).
        *read_only* units may go to a reader (they must not write).

        >>> rows, _ = await repo.run(lambda tx: tx.execute(stmt).rows, read_only=True)
        """
        block = self._block()
        if block is not None:
            self._queries += 1
            result, outbox = await self._call(self._writers[0], "run_in", fn)
            block.outbox.extend(outbox)
            return result, []
        if read_only:
            return await self._run(self._readers, fn)
        async with self._writer:
            return await self._run(self._writers, fn)

    async def _call(self, conn_name: str, method: str, *args: Any) -> Any:
        try:
            return await self._ask(conn_name, method, *args)
        except Exception:
            self._errors += 1
            raise

    async def _run(self, names: list[str], fn: Callable[[Tx], T]) -> tuple[T, list[Notification]]:
        self._queries += 1
        for attempt in range(200):
            conn_name = self._pick(names)
            token = _Token()
            self._busy[conn_name] += 1
            try:
                kind, value = await beam.ask(conn_name, "run", fn, token, timeout=self.timeout)
            except beam.NoProc:
                # Not running yet (being restarted): nothing of ours ran there. Wait, retry.
                await trio.sleep(0.005 * min(attempt + 1, 20))
                continue
            except (beam.ProcessExit, beam.CallTimeout) as exc:
                self._errors += 1
                with token.lock:
                    token.cancelled = True
                    committed = token.committing
                if committed:
                    raise ConnectionLost(
                        f"connection {conn_name} died after committing; the write is stored "
                        f"but its notifications were lost ({exc})"
                    ) from exc
                raise ConnectionLost(
                    f"connection {conn_name} died mid-transaction ({exc}); the transaction was "
                    "rolled back and the supervisor restarts the connection; retrying is safe"
                ) from exc
            finally:
                self._busy[conn_name] -= 1
            if kind == "error":
                self._errors += 1
                raise translate_error(value)
            result, outbox = value
            return result, outbox
        raise ConnectionLost(f"no connection of {self.name} came back after 200 attempts")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[list[Notification] | None]:
        """See :meth:`Repo.transaction`: the writer is held for the block (other writes wait
        for it; reads go on beside it)::

            async with repo.transaction():
                ...
        """
        writer = self._writers[0]
        block = self._block()
        if block is not None:
            mark = len(block.outbox)
            await self._call(writer, "savepoint")
            try:
                yield None
            except BaseException:
                del block.outbox[mark:]
                with trio.CancelScope(shield=True):
                    await self._call(writer, "release", False)
                raise
            await self._call(writer, "release", True)
            return
        async with self._writer:
            block = _SQLiteBlock(self, trio.lowlevel.current_task())
            token = _SQLITE_BLOCK.set(block)
            try:
                await self._call(writer, "open")
                try:
                    yield block.outbox
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await self._call(writer, "end", False)
                    raise
                await self._call(writer, "end", True)
            finally:
                _SQLITE_BLOCK.reset(token)


class _PgBlock:
    """An open ``PostgresRepo.transaction``: its connection, for which task."""

    def __init__(self, repo: PostgresRepo, link: Link, task: trio.lowlevel.Task) -> None:
        self.repo = repo
        self.link = link
        self.task = task
        self.outbox: list[Notification] = []


_PG_BLOCK: ContextVar[_PgBlock | None] = ContextVar("domain.pg_block", default=None)


class PostgresRepo(Repo):
    """The PostgreSQL data layer: 10 alike connections by default, each taking reads and
    writes, owned by processes and driven by psycopg 3 on trio with no thread (see the
    module docstring); *schema* becomes the connections' ``search_path``, so unqualified
    tables live there. ``listen``/``unlisten``/``notify`` bring ``LISTEN``/``NOTIFY`` to
    processes::

        repo = PostgresRepo("postgresql+psycopg://app@db/app", name="App.repo", pool_size=20)
    """

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
        name: str = "domain.repo",
        timeout: float | None = 30.0,
    ) -> None:
        super().__init__(url, pool_size=pool_size, schema=schema, name=name, timeout=timeout)
        conninfo = sa.engine.make_url(url).set(drivername="postgresql")
        self.conninfo = conninfo.render_as_string(hide_password=False)
        options = [str(conninfo_to_dict(self.conninfo).get("options") or "")]
        options.append(f"-c client_connection_check_interval={CLIENT_CHECK_MS}")
        # The domain stores and returns UTC; a UTC session returns it with nothing to convert.
        options.append("-c TimeZone=UTC")
        if schema is not None:
            if not _SCHEMA_NAME.match(schema):
                raise ValueError(f"schema {schema!r} is not a plain PostgreSQL identifier")
            options.append(f"-c search_path={schema}")
        self.options = " ".join(o for o in options if o)
        self.pool = Pool(name, self.pool_size, self.conninfo, options=self.options)
        self.batcher = Batcher(self.pool, self._checkout, self._failure)
        self.listener = f"{name}.listener"

    def _resolve(self, url: str, pool_size: int | None) -> tuple[str, int]:
        return url, 10 if pool_size is None else pool_size

    def child_specs(self) -> list[ChildSpec]:
        """One connection owner per connection, and the watchdog of their deadlines."""
        owners = [
            ChildSpec(id=conn_name, start=start_owner, args=(self.pool, i), shutdown=5.0)
            for i, conn_name in enumerate(self.names)
        ]
        if self.timeout is None:
            return owners
        interval = min(1.0, max(0.01, self.timeout / 20))
        watchdog = ChildSpec(
            id=f"{self.name}.watchdog",
            start=start_watchdog,
            args=(self.pool, interval),
            shutdown="brutal_kill",
        )
        return [*owners, watchdog]

    def stats(self) -> PoolStats:
        """The pool's state now (see :class:`domain.PoolStats`); ``waiting`` counts the
        creates queued for a flight too."""
        stats = self.pool.stats()
        return dataclasses.replace(stats, waiting=stats.waiting + len(self.batcher.pending))

    def _block(self) -> _PgBlock | None:
        block = _PG_BLOCK.get()
        if block is not None and block.repo is self and block.task is trio.lowlevel.current_task():
            return block
        return None

    async def run(
        self, fn: Callable[[Tx], T], *, read_only: bool = False
    ) -> tuple[T, list[Notification]]:
        """Run ``fn(tx)`` in a transaction on a pooled connection: (result, notifications).
        *read_only* units run in a read-only transaction.

        >>> rows, _ = await repo.run(lambda tx: tx.execute(stmt).rows, read_only=True)
        """
        block = self._block()
        if block is not None:
            return await self._run_in(block, fn), []
        pool = self.pool
        deadline = trio.current_time() + self._timeout()
        if not read_only:
            return await self._run_lazily(fn, deadline)
        link = pool.take() or await self._checkout(deadline)
        conn = link.conn
        conn.deadline = deadline
        try:
            return await link.run_unit(fn, read_only)
        except Exception as exc:
            raise self._failure(exc, link) from exc
        finally:
            conn.deadline = math.inf
            pool.checkin(link)

    async def _run_lazily(
        self, fn: Callable[[Tx], T], deadline: float
    ) -> tuple[T, list[Notification]]:
        """A write unit: it takes a connection when it first needs one; a lone ``INSERT``
        flies with other callers' (``domain/_pg_batch.py``)."""
        pool = self.pool

        async def acquire() -> Link:
            return pool.take() or await self._checkout(deadline)

        tx = LazyTx(acquire, self.batcher, deadline)
        try:
            try:
                result = await run_in_greenlet(run_unit_body, (fn, tx))
            except BaseException:
                link = tx.link
                if link is not None and not link.busy and not link.broken:
                    try:
                        link.end_later(commit=False)
                    except psycopg.Error:  # the connection went away as well
                        link.dead = True
                raise
            link = tx.link
            if link is not None:
                await link.commit()
        except Exception as exc:
            raise self._failure(exc, tx.link) from exc
        finally:
            link = tx.link
            if link is not None:
                link.conn.deadline = math.inf
                pool.checkin(link)
        return result, tx.outbox

    async def _checkout(self, deadline: float) -> Link:
        """Wait in line for a connection until *deadline* (the pool had none free)."""
        with trio.move_on_at(deadline):
            return await self.pool.checkout()
        raise self._timed_out(None)

    async def _run_in(self, block: _PgBlock, fn: Callable[[Tx], T]) -> T:
        link = block.link
        savepoint = link.savepoint()
        tx = PgTx(link)
        link.conn.deadline = trio.current_time() + self._timeout()
        try:
            result = await link.run_in(fn, tx)
        except BaseException as exc:
            if not link.busy and not link.broken:
                link.rollback_to(savepoint)
            if isinstance(exc, Exception):
                raise self._failure(exc, link) from exc
            raise
        finally:
            link.conn.deadline = math.inf
        link.release(savepoint)
        block.outbox.extend(tx.outbox)
        return result

    def _failure(self, exc: Exception, link: Link | None) -> BaseException:
        """What the caller sees of *exc*, raised by a unit on *link* (``None``: the unit had
        no connection of its own; a flight's errors come translated)."""
        if link is None:
            return translate_error(exc)
        if isinstance(exc, DeadlineExceeded) or isinstance(
            getattr(exc, "orig", None), DeadlineExceeded
        ):
            return self._timed_out(link)
        if link.broken and isinstance(exc, (psycopg.Error, sa_exc.DBAPIError)):
            return ConnectionLost(
                f"connection {link.name} was lost ({exc}); its transaction was rolled back "
                "(if it was committing, the commit may have happened) and the pool replaces "
                "the connection; retrying is safe",
                resource=None,
            )
        return translate_error(exc)

    def _timed_out(self, link: Link | None) -> DatabaseTimeout:
        if link is None:
            self.pool.timeouts += 1
            stats = self.pool.stats()
            return DatabaseTimeout(
                f"no connection of {self.name} came free within {self.timeout} s "
                f"({stats.in_use} in use, {stats.waiting} waiting); nothing ran"
            )
        return DatabaseTimeout(
            f"the unit ran longer than {self.timeout} s on {link.name}; it was cancelled on "
            "the server and rolled back"
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[list[Notification] | None]:
        """See :meth:`Repo.transaction`; a unit that fails inside the block rolls back to its
        own savepoint, so the block may catch the error and go on::

            async with repo.transaction():
                ...
        """
        block = self._block()
        if block is not None:
            link = block.link
            mark = len(block.outbox)
            savepoint = link.savepoint()
            try:
                yield None
            except BaseException:
                del block.outbox[mark:]
                if not link.busy and not link.broken:
                    link.rollback_to(savepoint)
                raise
            link.release(savepoint)
            return
        pool = self.pool
        link = pool.take() or await self._checkout(trio.current_time() + self._timeout())
        block = _PgBlock(self, link, trio.lowlevel.current_task())
        token = _PG_BLOCK.set(block)
        try:
            link.begin()
            try:
                yield block.outbox
            except BaseException:
                if not link.busy and not link.broken:
                    link.end_later(commit=False)
                raise
            try:
                await link.commit()
            except Exception as exc:
                raise self._failure(exc, link) from exc
        finally:
            _PG_BLOCK.reset(token)
            pool.checkin(link)

    async def _ensure_listener(self) -> None:
        if beam.whereis(self.listener) is not None or self.supervisor is None:
            return
        spec = ChildSpec(
            id=self.listener,
            start=start_listener,
            args=(self.conninfo, self.options, self.listener),
            shutdown=5.0,
        )
        with contextlib.suppress(AlreadyStarted):  # started meanwhile by another process
            await Supervisor.start_child(self.supervisor, spec)

    async def listen(self, channel: str) -> None:
        """Have the calling process receive a :class:`domain.Notify` for each ``NOTIFY`` on
        *channel* from now on (until :meth:`unlisten`, or it exits)::

            await repo.listen("jobs")
            note = await beam.receive(domain.Notify)
        """
        await self._ensure_listener()
        await listen(self.listener, channel, True)

    async def unlisten(self, channel: str) -> None:
        """Stop the calling process receiving *channel*'s notifications:
        ``await repo.unlisten("jobs")``."""
        if beam.whereis(self.listener) is not None:
            await listen(self.listener, channel, False)

    async def notify(self, channel: str, payload: str = "") -> None:
        """``NOTIFY`` *channel* with *payload* (at most 8000 bytes); inside a
        ``Domain.transaction`` it is sent when the transaction commits::

            await repo.notify("jobs", str(job.id))
        """
        stmt = _notify_statement()
        await self.run(lambda tx: tx.execute(stmt, {"channel": channel, "payload": payload}))


_NOTIFY: list[Any] = []


def _notify_statement() -> Any:
    if not _NOTIFY:
        _NOTIFY.append(
            sa.select(
                sa.func.pg_notify(
                    sa.bindparam("channel", type_=sa.String()),
                    sa.bindparam("payload", type_=sa.String()),
                )
            )
        )
    return _NOTIFY[0]


def data_layer(
    url: str,
    *,
    pool_size: int | None = None,
    schema: str | None = None,
    name: str = "domain.repo",
    timeout: float | None = 30.0,
) -> DataLayer:
    """The data layer for *url*: an :class:`SQLiteRepo` for ``sqlite:`` URLs, else a
    :class:`PostgresRepo`::

        layer = data_layer(database_url(), name="App.repo")
    """
    kind: type[SQLiteRepo | PostgresRepo] = SQLiteRepo if url.startswith("sqlite") else PostgresRepo
    return kind(url, pool_size=pool_size, schema=schema, name=name, timeout=timeout)
