"""The data-layer seam: a domain runs on any DataLayer, picked from a URL or built by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import trio

import beam
import domain

from ..support.backends import Backend
from .app import Chat, ChatUser


def test_a_url_picks_the_implementation() -> None:
    assert isinstance(domain.data_layer("sqlite://"), domain.SQLiteRepo)
    assert isinstance(domain.data_layer("postgresql+psycopg://u@h/db"), domain.PostgresRepo)
    assert Chat.repo_for("sqlite://").dialect == "sqlite"
    assert Chat.repo_for("postgresql+psycopg://u@h/db").dialect == "postgresql"
    with pytest.raises(TypeError, match="abstract"):
        domain.Repo("sqlite://")  # type: ignore[abstract]
    with pytest.raises(ValueError, match="pool_size=1"):
        domain.SQLiteRepo("sqlite://", pool_size=2)


async def test_a_domain_runs_on_a_data_layer_it_is_given(backend: Backend) -> None:
    layer = domain.data_layer(backend.url, schema=backend.schema, name="Given.repo")
    async with beam.open_node():
        await Chat.start_link(layer)
        assert Chat.repo() is layer
        await Chat.create_tables()
        await Chat.register("alice")
        assert [u.name for u in await Chat.read(ChatUser)] == ["alice"]
        assert beam.whereis("Given.repo.conn.0") is not None


async def test_stop_closes_every_connection(tmp_path: Path) -> None:
    layer = domain.SQLiteRepo(f"sqlite:///{tmp_path / 'db.sqlite'}", name="Stopped.repo")
    async with beam.open_node():
        await layer.start_link()
        assert all(beam.whereis(name) is not None for name in layer.names)
        await layer.stop()
        assert all(beam.whereis(name) is None for name in layer.names)
        await layer.stop()  # stopping again is harmless


async def test_a_restarted_sqlite_connection_finds_its_statements_compiled(tmp_path: Path) -> None:
    """Killed, a connection actor is restarted by the repo's supervisor; its first units
    reuse the statements compiled before (the engine is the repo's, not the actor's), so a
    crash does not make the next requests pay for compiling every statement again."""
    layer = domain.SQLiteRepo(f"sqlite:///{tmp_path / 'db.sqlite'}", name="Restarted.repo")
    statement = sa.select(sa.literal(1).label("one"))

    def cached(tx: domain.Tx) -> sa.engine.interfaces.CacheStats:
        result = tx.conn.execute(statement)
        stats: sa.engine.interfaces.CacheStats = result.context.cache_hit
        return stats

    async with beam.open_node():
        await layer.start_link()
        writer = beam.whereis("Restarted.repo.conn.0")
        assert writer is not None
        await layer.run(cached)  # compiled once
        ref = beam.monitor(writer)
        beam.exit(writer, "kill")
        await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref)
        with trio.fail_after(5):
            while beam.whereis("Restarted.repo.conn.0") in (None, writer):  # noqa: ASYNC110
                await trio.sleep(0.01)
        hit, _ = await layer.run(cached)
        assert hit == sa.engine.interfaces.CacheStats.CACHE_HIT
        await layer.stop()
