"""Database backends for the tests that need one: SQLite (a temp file) and PostgreSQL (a
schema per test). The domain suite and the chat's migration test use the :func:`backend`
fixture; a ``conftest.py`` (or a test module) makes it available by importing it.

PostgreSQL is 127.0.0.1:5432 db ``test`` or ``DATABASE_URL``; unreachable means skip, unless
``BEAM_REQUIRE_POSTGRES=1``. Each PostgreSQL test gets its own schema, dropped afterwards, so
concurrent runs never collide.

>>> def test_round_trip(backend: Backend) -> None:
...     engine = sa.create_engine(backend.url)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
if PG_URL.startswith("postgresql://"):
    PG_URL = "postgresql+psycopg://" + PG_URL[len("postgresql://") :]


@dataclass(frozen=True)
class Backend:
    """One database of a test: ``url`` for SQLAlchemy, ``schema`` (PostgreSQL) or ``None``."""

    name: str
    url: str
    schema: str | None


def pg_engine() -> sa.Engine | None:
    """An engine on :data:`PG_URL`, or ``None`` if it is unreachable (a failure instead when
    ``BEAM_REQUIRE_POSTGRES=1``)."""
    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        if os.environ.get("BEAM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {PG_URL}: {exc}")
        return None
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each test twice: on a SQLite file, and on a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'db.sqlite'}", None)
        return
    engine = pg_engine()
    if engine is None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Backend("postgresql", PG_URL, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
