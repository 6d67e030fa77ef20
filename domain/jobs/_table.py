"""The ``oban_jobs`` table (Oban's layout) and ``oban_producers``, for PostgreSQL and SQLite.

On PostgreSQL the columns are Oban's own: the ``oban_job_state`` enum, ``jsonb`` args, meta and
errors, ``text[]`` tags and attempted_by, ``timestamp without time zone`` in UTC, a
``GENERATED ALWAYS AS IDENTITY`` bigint id, the same check constraints and indexes, so Oban's
tools read what we write. On SQLite the same columns hold JSON text and ISO timestamps::

    await install(App.repo())          # CREATE TABLE IF NOT EXISTS ... (tests, prototypes)
    with_jobs_tables(App.metadata())   # for migrations: the domain's tables and these
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from .._data import DataLayer

__all__ = [
    "JOB_STATES",
    "METADATA",
    "PRODUCERS",
    "TABLE",
    "install",
    "jobs_metadata",
    "uninstall",
    "with_jobs_tables",
]

#: Oban's job states, in its enum's order.
JOB_STATES = (
    "available",
    "scheduled",
    "executing",
    "retryable",
    "completed",
    "discarded",
    "cancelled",
)


class NaiveUTC(sa.types.TypeDecorator[dt.datetime]):
    """A UTC ``timestamp without time zone`` (Oban's timestamps): aware UTC datetimes in
    Python, naive UTC in the database."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=dt.UTC)
            return value.astimezone(dt.UTC)
        return value


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(pg.JSONB(), "postgresql")


def _text_array() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(pg.ARRAY(sa.Text()), "postgresql")


#: The jobs' own MetaData (Oban's tables are not resources).
METADATA = sa.MetaData()


class _State(sa.types.TypeDecorator[str]):
    """Oban's ``oban_job_state`` enum; read as text (the PostgreSQL path hands an enum it has
    no loader for over as bytes)."""

    impl = sa.Enum(*JOB_STATES, name="oban_job_state", metadata=METADATA, create_constraint=False)
    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        def load(value: Any) -> Any:
            return value.decode() if isinstance(value, bytes) else value

        return load


_STATE = _State()

TABLE = sa.Table(
    "oban_jobs",
    METADATA,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(always=True),
        primary_key=True,
    ),
    sa.Column("state", _STATE, nullable=False, server_default="available"),
    sa.Column("queue", sa.Text(), nullable=False, server_default="default"),
    sa.Column("worker", sa.Text(), nullable=False),
    sa.Column("attempt", sa.SmallInteger(), nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.SmallInteger(), nullable=False, server_default="20"),
    sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"),
    # Server defaults that read the same on both backends ('{}' is an empty text[] on
    # PostgreSQL); create_all sets Oban's exact ones on PostgreSQL (_oban_defaults).
    sa.Column("args", _json(), nullable=False, server_default="{}"),
    sa.Column("meta", _json(), nullable=False, server_default="{}"),
    sa.Column("tags", _text_array(), nullable=False, server_default="{}"),
    sa.Column("errors", _json(), nullable=False, server_default="[]"),
    sa.Column("attempted_by", _text_array(), nullable=False, server_default="{}"),
    sa.Column(
        "inserted_at", NaiveUTC(), nullable=False, server_default=sa.func.current_timestamp()
    ),
    sa.Column(
        "scheduled_at", NaiveUTC(), nullable=False, server_default=sa.func.current_timestamp()
    ),
    sa.Column("attempted_at", NaiveUTC()),
    sa.Column("cancelled_at", NaiveUTC()),
    sa.Column("completed_at", NaiveUTC()),
    sa.Column("discarded_at", NaiveUTC()),
    sa.CheckConstraint("attempt >= 0 AND attempt <= max_attempts", name="attempt_range"),
    sa.CheckConstraint("length(queue) > 0", name="queue_length"),
    sa.CheckConstraint("length(worker) > 0", name="worker_length"),
    sa.CheckConstraint("max_attempts > 0", name="positive_max_attempts"),
    sa.CheckConstraint("priority >= 0", name="non_negative_priority"),
)

sa.Index(
    "oban_jobs_state_queue_priority_scheduled_at_id_index",
    TABLE.c.state,
    TABLE.c.queue,
    TABLE.c.priority,
    TABLE.c.scheduled_at,
    TABLE.c.id,
)
sa.Index(
    "oban_jobs_staging_index",
    TABLE.c.scheduled_at,
    TABLE.c.id,
    postgresql_where=TABLE.c.state.in_(("scheduled", "retryable")),
    sqlite_where=TABLE.c.state.in_(("scheduled", "retryable")),
)
for _state, _column in (
    ("completed", "completed_at"),
    ("cancelled", "cancelled_at"),
    ("discarded", "discarded_at"),
):
    sa.Index(
        f"oban_jobs_{_column}_index",
        TABLE.c[_column],
        postgresql_where=TABLE.c.state == _state,
        sqlite_where=TABLE.c.state == _state,
    )

#: Oban's column defaults, set on PostgreSQL (so Oban's inserts, which leave them out, work).
_PG_DEFAULTS = {
    "args": "'{}'::jsonb",
    "meta": "'{}'::jsonb",
    "tags": "ARRAY[]::text[]",
    "errors": "'[]'::jsonb",
    "attempted_by": "ARRAY[]::text[]",
    "inserted_at": "timezone('UTC', now())",
    "scheduled_at": "timezone('UTC', now())",
}


@sa.event.listens_for(TABLE, "after_create")
def _oban_defaults(table: sa.Table, conn: sa.Connection, **_: Any) -> None:
    if conn.dialect.name != "postgresql":
        return
    sets = ", ".join(f"ALTER COLUMN {c} SET DEFAULT {d}" for c, d in _PG_DEFAULTS.items())
    conn.exec_driver_sql(f"ALTER TABLE {table.name} {sets}")


#: Oban's producers table: one row per running queue producer, its heartbeat in updated_at.
PRODUCERS = sa.Table(
    "oban_producers",
    METADATA,
    sa.Column("uuid", sa.Uuid(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False, server_default="oban"),
    sa.Column("node", sa.Text(), nullable=False),
    sa.Column("queue", sa.Text(), nullable=False),
    sa.Column("meta", _json(), nullable=False),
    sa.Column("started_at", NaiveUTC(), nullable=False),
    sa.Column("updated_at", NaiveUTC(), nullable=False),
    prefixes=["UNLOGGED"],
)


@sa.event.listens_for(PRODUCERS, "before_create")
def _unlogged_only_on_postgres(table: sa.Table, conn: sa.Connection, **_: Any) -> None:
    table._prefixes = ["UNLOGGED"] if conn.dialect.name == "postgresql" else []


def jobs_metadata() -> sa.MetaData:
    """The MetaData holding ``oban_jobs`` and ``oban_producers`` (and the state enum); a
    domain's migrations take them through :func:`with_jobs_tables`::

        jobs_metadata().tables["oban_jobs"].c.state
    """
    return METADATA


def with_jobs_tables(metadata: sa.MetaData) -> sa.MetaData:
    """*metadata* with ``oban_jobs`` and ``oban_producers`` copied in: what a domain's
    migrations should see once it runs jobs (else they count the tables as drops)::

        class App(Domain):
            resources = (User, Message)

            @classmethod
            def metadata(cls) -> sa.MetaData:
                return with_jobs_tables(super().metadata())
    """
    for table in (TABLE, PRODUCERS):
        if table.name not in metadata.tables:
            table.to_metadata(metadata)
    return metadata


async def install(repo: DataLayer) -> None:
    """Create the jobs tables if they are missing (tests and prototypes; production uses
    migrations)::

        await install(App.repo())
    """
    await repo.run(lambda tx: METADATA.create_all(tx.conn, checkfirst=True))


async def uninstall(repo: DataLayer) -> None:
    """Drop the jobs tables (and the state enum): ``await uninstall(App.repo())``."""
    await repo.run(lambda tx: METADATA.drop_all(tx.conn, checkfirst=True))
