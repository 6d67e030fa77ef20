"""The data-layer seam (Ash's ``Ash.DataLayer``): what the domain needs of a database.

The action engine never opens a connection, never picks one and never commits: it builds
*units of work*, plain functions of a :class:`Tx` that run whole inside one transaction, and
hands them to a :class:`DataLayer`. A data layer promises these:

* ``dialect``: ``"sqlite"`` or ``"postgresql"`` (the engine picks dialect-specific SQL,
  such as an upsert's ``INSERT ... ON CONFLICT``, from it);
* ``await run(unit)``: run ``unit(tx)`` in one transaction on a connection that may write,
  commit, and return ``(result, tx.outbox)``, the notifications the unit queued (the engine
  dispatches them after the commit, never inside it); an error rolls the transaction back
  and is raised, with database constraint errors translated by :func:`translate_error`;
* ``await run(unit, read_only=True)``: the same for a unit that only reads (it may go to a
  read-only connection, and must not write);
* ``await start_link()`` / ``await stop()``: start its processes linked to the caller, and
  stop them;
* ``child_spec()``: the same start as a child of a supervision tree.

A unit is a plain function wherever the data layer runs it: on SQLite a connection's own
thread, on PostgreSQL a greenlet of the calling task whose statements are awaited on trio
(``domain/_data_layer.py``). So it must not touch trio, and must not block (on PostgreSQL it
runs on the loop). Units and hooks reach the database through :meth:`Tx.execute` (what the
engine uses: SQLAlchemy Core statements built once per shape, ``domain/_read.py``,
``domain/_write.py``, run without SQLAlchemy's execution overhead where the data layer can)
or ``tx.conn`` (a SQLAlchemy ``Connection`` on the same transaction), so a data layer needs
no knowledge of resources, policies or actions. :func:`domain.Domain.start_link` takes any
data layer instead of a URL. Two more: ``transaction()`` (one transaction across the calling
task's units, for ``Domain.transaction``) and ``stats()`` (the pool's :class:`PoolStats`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

import beam
from supervisors import ChildSpec

from ._errors import DomainError, Invalid
from ._notifiers import Notification
from ._resource import METADATA

__all__ = ["DataLayer", "PoolStats", "Rows", "Tx", "Unit", "translate_error"]

T = TypeVar("T")


@dataclass(frozen=True)
class PoolStats:
    """A pool's state: ``size`` connections configured, ``connected`` open now, ``idle``,
    ``in_use`` (checked out), ``waiting`` (callers queued), and since it started: ``queries``
    (statements run), ``errors`` (statements that failed), ``timeouts`` (callers that gave
    up), ``replaced`` (connections lost or replaced)::

        stats = Chat.repo().stats()
        print(f"{stats.in_use}/{stats.size} in use, {stats.waiting} waiting")
    """

    size: int
    connected: int
    idle: int
    in_use: int
    waiting: int
    queries: int
    errors: int
    timeouts: int
    replaced: int


class Rows:
    """What one statement gave back: the column ``names``, the ``rows`` (sequences, in
    column order) and the ``rowcount`` (rows returned, or rows a write touched)::

        rows = tx.execute(sa.select(Note.__table__).where(Note.owner_id == owner))
        titles = [row[rows.names.index("title")] for row in rows]
    """

    __slots__ = ("names", "rowcount", "rows")

    def __init__(self, names: tuple[str, ...], rows: list[Any], rowcount: int) -> None:
        self.names = names
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def first(self) -> Any:
        """The first row, or ``None``: ``tx.execute(stmt).first()``."""
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        """The only row; :class:`LookupError` unless there is exactly one:
        ``tx.execute(insert_stmt, values).one()``."""
        if len(self.rows) != 1:
            raise LookupError(f"expected exactly one row, got {len(self.rows)}")
        return self.rows[0]

    def one_or_none(self) -> Any:
        """The only row, or ``None`` for none; :class:`LookupError` for more:
        ``tx.execute(update_stmt, params).one_or_none()``."""
        if len(self.rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self.rows)}")
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or ``None``: ``tx.execute(count).scalar()``."""
        return self.rows[0][0] if self.rows else None


class Tx:
    """A transaction in progress: ``execute`` runs a statement in it, ``conn`` is it as a
    SQLAlchemy ``Connection``, ``outbox`` holds the notifications released after the
    outermost commit, and ``info`` is for hooks.

    The engine runs every statement through :meth:`execute` (the PostgreSQL data layer runs
    them without SQLAlchemy's execution overhead); hooks may use either. Hooks that run
    inside the transaction get it and may run nested actions through
    :meth:`domain.Domain.create_in` and friends; their notifications join this outbox::

        def audit(tx: Tx, cs: Changeset, record: Message) -> None:
            tx.execute(audit_log.insert(), {"message_id": record.id})

    This base class runs everything through the SQLAlchemy connection it is given (the
    SQLite data layer's thread actors use it as it is).
    """

    def __init__(self, conn: sa.Connection | None = None) -> None:
        self._conn = conn
        self.outbox: list[Notification] = []
        self.info: dict[str, Any] = {}

    @property
    def conn(self) -> sa.Connection:
        """The transaction as a SQLAlchemy ``Connection`` (``tx.conn.execute(stmt)``)."""
        if self._conn is None:
            raise RuntimeError("this transaction has no SQLAlchemy connection")
        return self._conn

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``: ``if tx.dialect == "sqlite": ...``."""
        return self.conn.dialect.name

    def execute(
        self, statement: Any, params: Mapping[str, Any] | None = None, *, final: bool = False
    ) -> Rows:
        """Run a SQLAlchemy Core *statement* (with *params*, as ``conn.execute`` takes them)
        in this transaction and return its :class:`Rows`.

        ``final=True`` promises that the unit runs no other statement after this one, so
        the data layer may end the transaction with it: PostgreSQL then sends ``BEGIN``, the
        statement and ``COMMIT`` in one round trip (or the statement alone, when it is the
        unit's only one); a statement after it raises :class:`RuntimeError`. Nothing that can
        fail may follow it in the unit::

            row = tx.execute(insert_returning(table), {"id": key, "title": "hi"}).one()
        """
        result = self.conn.execute(statement, params)
        if result.returns_rows:
            rows = list(result.all())
            return Rows(tuple(result.keys()), rows, len(rows))
        return Rows((), [], result.rowcount)


#: A unit of work: runs whole inside one transaction and returns its result.
Unit = Callable[[Tx], T]


class DataLayer(Protocol):
    """What a :class:`domain.Domain` needs of a database (see this module's docstring).

    :class:`domain.SQLiteRepo` (connection thread actors) and :class:`domain.PostgresRepo`
    (psycopg on trio) implement it; ``Domain.start_link`` picks one from the URL, or takes
    one you built::

        layer = SQLiteRepo("sqlite:///data/app.db", name="App.repo")
        await App.start_link(layer)
        rows, outbox = await layer.run(lambda tx: tx.conn.execute(stmt).all(), read_only=True)
    """

    #: The supervisor's registered name, ``"<Domain>.repo"`` for a domain's own.
    name: str

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        ...

    async def run(
        self, unit: Callable[[Tx], T], *, read_only: bool = False
    ) -> tuple[T, list[Notification]]:
        """Run ``unit(tx)`` in one transaction: ``(result, notifications to dispatch)``."""
        ...

    async def start_link(self) -> beam.Pid:
        """Start the data layer's processes, linked to the caller; returns its top pid."""
        ...

    async def stop(self) -> None:
        """Stop the processes :meth:`start_link` started (each connection closes)."""
        ...

    def child_spec(self) -> ChildSpec:
        """:meth:`start_link` as a child of a supervision tree."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[list[Notification] | None]:
        """One transaction for the calling task's units inside the block (nested: a
        savepoint); yields the outermost block's outbox, ``None`` for a nested one."""
        ...

    def stats(self) -> PoolStats:
        """The state of its connections now (a dashboard's numbers)."""
        ...


def translate_error(exc: BaseException) -> BaseException:
    """The error a caller should see for *exc*, raised by a unit: a unique violation becomes
    :class:`Invalid` on the identity's first field (``"has already been taken"``), a missing
    reference or a missing required value :class:`Invalid` on ``base``; anything else is
    returned as it is::

        raise translate_error(exc)
    """
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, sa_exc.IntegrityError):
        orig: Any = exc.orig
    elif isinstance(exc, psycopg.IntegrityError):  # the PostgreSQL data layer's own path
        orig = exc
    else:
        return exc
    text = str(orig)
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
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
