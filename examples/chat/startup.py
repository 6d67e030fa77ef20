"""One node at a time through the chat's start-up (schema migrations, seeding, the secret key),
so that several nodes started together do not race each other.

On PostgreSQL the lock is a session advisory lock (it holds across machines); on SQLite, where
the nodes share one data directory on one machine, it is an exclusive ``flock`` on a file
there. Both are taken and released on a worker thread (they block), and both go away with the
process that holds them, so a node killed mid-start never leaves the others waiting::

    async with startup_lock(url, data_dir):
        await upgrade_database(url)
        await seed_demo()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import psycopg
import trio

__all__ = ["LOCK_KEY", "startup_lock"]

#: The advisory lock's key on PostgreSQL (any constant the chat alone uses).
LOCK_KEY: Final = 0x63686174  # "chat"


@contextlib.asynccontextmanager
async def startup_lock(url: str, data_dir: Path) -> AsyncIterator[None]:
    """Hold the chat's start-up lock for the database at *url* (see the module doc).

    >>> async with startup_lock("sqlite:///.chat-data/chat.db", Path(".chat-data")):
    ...     ...
    """
    if url.startswith(("postgresql", "postgres")):
        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        connection = await trio.to_thread.run_sync(_connect, dsn)
        try:
            await trio.to_thread.run_sync(_advisory, connection, "pg_advisory_lock")
            try:
                yield
            finally:
                await trio.to_thread.run_sync(_advisory, connection, "pg_advisory_unlock")
        finally:
            connection.close()
        return
    fd = await trio.to_thread.run_sync(_open_lock_file, data_dir)
    try:
        await trio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


def _open_lock_file(data_dir: Path) -> int:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(data_dir / ".startup.lock", os.O_CREAT | os.O_RDWR, 0o600)


def _advisory(connection: psycopg.Connection[tuple[object, ...]], function: str) -> None:
    connection.execute(f"SELECT {function}(%s)", (LOCK_KEY,))
