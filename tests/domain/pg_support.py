"""What the PostgreSQL data layer's tests share: a schema of each test's own, a repo started
in it, a node, and a wait for a condition."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import trio

import beam
from domain import PostgresRepo

from ..support.backends import PG_URL, pg_engine
from .app import Chat, ChatUser

__all__ = ["DSN", "eventually", "names", "node", "schema", "start"]

DSN = sa.engine.make_url(PG_URL).set(drivername="postgresql").render_as_string(False)


@pytest.fixture
def schema() -> Iterator[str]:
    engine = pg_engine()
    if engine is None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


async def start(schema: str, *, pool_size: int = 2, timeout: float = 30.0) -> PostgresRepo:
    # A name of its own: connections are found on the server by it (application_name).
    repo = PostgresRepo(
        PG_URL, schema=schema, pool_size=pool_size, timeout=timeout, name=f"Chat.{schema}"
    )
    await Chat.start_link(repo)
    await Chat.create_tables()
    return repo


async def eventually(check: Any, what: str, seconds: float = 5.0) -> None:
    deadline = trio.current_time() + seconds
    for _ in range(int(seconds / 0.02) + 1):
        if await check():
            return
        if trio.current_time() > deadline:
            break
        await trio.sleep(0.02)
    raise AssertionError(f"not within {seconds} s: {what}")


async def names() -> list[str]:
    return sorted(u.name for u in await Chat.read(ChatUser))


@pytest.fixture
async def node() -> AsyncIterator[None]:
    async with beam.open_node():
        yield
