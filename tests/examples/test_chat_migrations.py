"""The chat's committed migrations build exactly the schema its resources declare.

``check`` fails when someone changes a resource without generating a revision (the CI
equivalent of ``python -m domain migrations check``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

import domain
from examples.chat.app import MIGRATIONS
from examples.chat.model import Chat

from ..support.backends import Backend, backend

__all__ = ["backend"]  # the fixture, shared with the domain suite


def test_migrations_match_the_resources(backend: Backend) -> None:
    migrations = domain.Migrations(Chat, backend.url, MIGRATIONS, schema=backend.schema)
    migrations.upgrade()
    migrations.check()  # raises MigrationsOutOfDate, listing the differences
    engine = sa.create_engine(backend.url, poolclass=sa.pool.NullPool)
    try:
        tables = set(sa.inspect(engine).get_table_names(schema=backend.schema))
    finally:
        engine.dispose()
    assert {t.name for t in Chat.tables()} <= tables
    migrations.downgrade("base")
    assert migrations.current() is None
