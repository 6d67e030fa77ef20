"""The data layer: connection thread actors in a supervised pool, and the transaction handle.

Each connection is a :class:`beam.ThreadActor` owning one SQLAlchemy connection (its own OS
thread); a :class:`supervisors.Supervisor` restarts a crashed or killed one. A call ships a
whole unit of work (a function of a :class:`Tx`) to one connection in one ask, so the trio
loop never waits on the database. If the connection's owner dies while the caller waits, the
caller marks the unit cancelled: the thread rolls back instead of committing, and the caller
gets :class:`ConnectionLost`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import trio
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

import beam
from supervisors import ChildSpec, Supervisor

from ._errors import ConnectionLost, DomainError, Invalid

__all__ = ["Repo", "Tx", "database_url", "ensure_sqlite_directory"]


def database_url(default: str = "sqlite:///data/app.db") -> str:
    """``DATABASE_URL`` from the environment (``postgresql://`` becomes psycopg 3), else
    *default* (an SQLite file; ``"sqlite://"`` is an in-memory database)."""
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


@dataclass
class Tx:
    """A transaction in progress, on a connection's thread: ``conn`` (SQLAlchemy), the
    ``outbox`` of notifications released after the outermost commit, and ``info`` for hooks.

    Hooks that run inside the transaction get it and may run nested actions through
    :meth:`domain.Domain.create_in` and friends; their notifications join this outbox.
    """

    conn: sa.Connection
    outbox: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.conn.dialect.name


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
    """One database connection on its own thread."""

    def __init__(self, url: str, schema: str | None, read_only: bool = False) -> None:
        super().__init__()
        if url.startswith("sqlite"):
            ensure_sqlite_directory(url)
            self.engine = sa.create_engine(
                url, poolclass=NullPool, connect_args={"check_same_thread": False}
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
            if read_only:  # a reader: a unit that tries to write fails instead
                sa.event.listen(self.engine, "connect", _sqlite_query_only)
        else:
            self.engine = sa.create_engine(url, poolclass=NullPool)
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


class Repo:
    """A pool of connection actors under a supervisor, for one database.

    ``pool_size`` defaults to 10 for PostgreSQL: :meth:`run` ships ``fn(tx)`` to the least
    busy connection and returns its result and the committed notifications. An SQLite file
    allows one writer at a time and, in write-ahead-log mode, readers beside it: its pool
    (4 by default) is one writer, which every write goes to, and readers (``PRAGMA
    query_only``) for ``run(fn, read_only=True)``. An in-memory SQLite database has one
    connection for both.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
        name: str = "domain.repo",
        timeout: float | None = 30.0,
    ) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if pool_size is None:
            pool_size = 10 if self.dialect == "postgresql" else 1 if memory else 4
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if memory:
            if pool_size != 1:
                raise ValueError("an in-memory SQLite database needs pool_size=1")
            url = "sqlite:///file:domain_mem?mode=memory&cache=shared&uri=true"
            self.url = url
        self.pool_size = pool_size
        self.schema = schema
        self.name = name
        self.timeout = timeout
        self.names = [f"{name}.conn.{i}" for i in range(pool_size)]
        if self.dialect == "sqlite":  # one writer; the others (if any) read
            self._writers, self._readers = self.names[:1], self.names[1:] or self.names[:1]
        else:
            self._writers = self._readers = self.names
        self._busy = dict.fromkeys(self.names, 0)
        self.supervisor: beam.Pid | None = None

    def child_specs(self) -> list[ChildSpec]:
        """One child spec per connection actor."""
        return [
            ChildSpec(
                id=conn_name,
                start=partial(_Connection.start_link, name=conn_name),
                args=(self.url, self.schema, conn_name not in self._writers),
                shutdown=5.0,
            )
            for conn_name in self.names
        ]

    async def start_link(self) -> beam.Pid:
        """Start the pool's supervisor (linked to the caller) and every connection."""
        self.supervisor = await Supervisor.start_link(
            self.child_specs(), name=self.name, max_restarts=10, max_seconds=5.0
        )
        return self.supervisor

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
        self, fn: Callable[[Tx], Any], *, read_only: bool = False
    ) -> tuple[Any, list[Any]]:
        """Run ``fn(tx)`` in a transaction on a pooled connection: (result, notifications).
        *read_only* units may go to a reader (they must not write)."""
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
                raise _translate(value)
            result, outbox = value
            return result, outbox
        raise ConnectionLost(f"no connection of {self.name} came back after 200 attempts")


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, sa_exc.IntegrityError):
        from ._resource import METADATA

        text = str(exc.orig)
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        for table in METADATA.tables.values():
            for con in table.constraints:
                if isinstance(con, sa.UniqueConstraint):
                    cols = [c.name for c in con.columns]
                    sqlite_text = ", ".join(f"{table.name}.{c}" for c in cols)
                    if (constraint and constraint == con.name) or (
                        "UNIQUE constraint failed: " + sqlite_text == text.strip()
                    ):
                        return Invalid({cols[0]: ["has already been taken"]}, resource=table.name)
        if "FOREIGN KEY" in text or "foreign key" in text:
            return Invalid({"base": ["refers to a record that does not exist"]})
        if "NOT NULL" in text or "null value" in text:
            return Invalid({"base": [f"a required value is missing ({text.splitlines()[0]})"]})
    return exc
