"""Data layers on threads: connection actors in a supervised pool (SQLite and PostgreSQL).

Both implement :class:`domain.DataLayer` (``domain/_data.py``) the same way. Each connection
is a :class:`beam.ThreadActor` owning one SQLAlchemy connection (its own OS thread); a
:class:`supervisors.Supervisor` restarts a crashed or killed one. A call ships a whole unit
of work (a function of a :class:`domain.Tx`) to one connection in one ask, so the trio loop
never waits on the database. If the connection's owner dies while the caller waits, the
caller marks the unit cancelled: the thread rolls back instead of committing, and the caller
gets :class:`ConnectionLost`.

What differs between the two is small, and is all that the subclasses say:

* :class:`SQLiteRepo`: an SQLite file allows one writer at a time and, in write-ahead-log
  mode, readers beside it: one writer connection takes every write; the others are readers
  (``PRAGMA query_only``) for ``run(unit, read_only=True)``. An in-memory database has one
  connection for both.
* :class:`PostgresRepo`: every connection is alike and takes reads and writes.

:func:`data_layer` picks one from a URL::

    layer = data_layer("sqlite:///data/app.db", name="App.repo")
"""

from __future__ import annotations

import contextlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import trio
from sqlalchemy.pool import NullPool

import beam
from supervisors import ChildSpec, Supervisor

from ._data import DataLayer, Tx, translate_error
from ._errors import ConnectionLost
from ._notifiers import Notification

__all__ = [
    "PostgresRepo",
    "Repo",
    "SQLiteRepo",
    "data_layer",
    "database_url",
    "ensure_sqlite_directory",
]

T = TypeVar("T")


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
    """One database connection on its own thread, from an engine of its own."""

    def __init__(self, make_engine: Callable[[], sa.Engine], schema: str | None) -> None:
        super().__init__()
        self.engine = make_engine()
        conn = self.engine.connect()
        if schema is not None:
            conn = conn.execution_options(schema_translate_map={None: schema})
        self.conn = conn

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

    def on_stop(self) -> None:
        self.conn.close()
        self.engine.dispose()


class Repo(ABC):
    """A pool of connection thread actors under a supervisor, for one database: the shared
    machinery of :class:`SQLiteRepo` and :class:`PostgresRepo` (build one of those, or let
    :func:`data_layer` pick).

    :meth:`run` ships ``fn(tx)`` to the least busy connection that may take it and returns
    its result and the committed notifications. ``names`` are the connections' registered
    names (``"<name>.conn.<i>"``); ``pool_size`` is how many there are::

        repo = SQLiteRepo("sqlite:///data/app.db", name="App.repo")
        await repo.start_link()
        count, _ = await repo.run(lambda tx: tx.conn.execute(count_users).scalar_one())
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
        self._writers, self._readers = self._roles(self.names)
        self._busy = dict.fromkeys(self.names, 0)
        self.supervisor: beam.Pid | None = None

    @abstractmethod
    def _resolve(self, url: str, pool_size: int | None) -> tuple[str, int]:
        """The URL to connect to and the pool size (the default when *pool_size* is None)."""

    @abstractmethod
    def _roles(self, names: list[str]) -> tuple[list[str], list[str]]:
        """(the connections that take writes, those that take read-only units)."""

    @abstractmethod
    def _engine(self, read_only: bool) -> sa.Engine:
        """A fresh engine for one connection (a reader's when *read_only*)."""

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

    def _pick(self, names: list[str]) -> str:
        busy = self._busy
        best = names[0]
        for conn_name in names:
            if busy[conn_name] < busy[best]:
                best = conn_name
                if busy[best] == 0:
                    break
        return best

    async def run(
        self, fn: Callable[[Tx], T], *, read_only: bool = False
    ) -> tuple[T, list[Notification]]:
        """Run ``fn(tx)`` in a transaction on a pooled connection: (result, notifications).
        *read_only* units may go to a reader (they must not write).

        >>> rows, _ = await repo.run(lambda tx: tx.conn.execute(stmt).all(), read_only=True)
        """
        names = self._readers if read_only else self._writers
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
                raise translate_error(value)
            result, outbox = value
            return result, outbox
        raise ConnectionLost(f"no connection of {self.name} came back after 200 attempts")


_MEMORY_URLS = ("sqlite://", "sqlite:///:memory:")


class SQLiteRepo(Repo):
    """The SQLite data layer: one writer connection, which every write goes to, and readers
    (``PRAGMA query_only``) for read-only units; 4 connections by default. Write-ahead
    logging lets readers run beside the writer. An in-memory database (``"sqlite://"``) has
    one connection for both::

        repo = SQLiteRepo("sqlite:///data/app.db", name="App.repo")
    """

    dialect = "sqlite"

    def _resolve(self, url: str, pool_size: int | None) -> tuple[str, int]:
        if url in _MEMORY_URLS:
            if pool_size not in (None, 1):
                raise ValueError("an in-memory SQLite database needs pool_size=1")
            return "sqlite:///file:domain_mem?mode=memory&cache=shared&uri=true", 1
        return url, 4 if pool_size is None else pool_size

    def _roles(self, names: list[str]) -> tuple[list[str], list[str]]:
        return names[:1], names[1:] or names[:1]

    def _engine(self, read_only: bool) -> sa.Engine:
        ensure_sqlite_directory(self.url)
        engine = sa.create_engine(
            self.url, poolclass=NullPool, connect_args={"check_same_thread": False}
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        if read_only:  # a reader: a unit that tries to write fails instead
            sa.event.listen(engine, "connect", _sqlite_query_only)
        return engine


class PostgresRepo(Repo):
    """The PostgreSQL data layer on threads: 10 alike connections by default (psycopg 3),
    each taking reads and writes; *schema* maps unqualified tables to that schema::

        repo = PostgresRepo("postgresql+psycopg://app@db/app", name="App.repo", pool_size=20)
    """

    dialect = "postgresql"

    def _resolve(self, url: str, pool_size: int | None) -> tuple[str, int]:
        return url, 10 if pool_size is None else pool_size

    def _roles(self, names: list[str]) -> tuple[list[str], list[str]]:
        return names, names

    def _engine(self, read_only: bool) -> sa.Engine:
        return sa.create_engine(self.url, poolclass=NullPool)


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
    kind: type[Repo] = SQLiteRepo if url.startswith("sqlite") else PostgresRepo
    return kind(url, pool_size=pool_size, schema=schema, name=name, timeout=timeout)
