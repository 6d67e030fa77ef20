"""The chat on two nodes (two OS processes, one PostgreSQL database, one Redis), with one user
in the browser on each: they see each other online, typing, their messages and a mention
notification, all crossing from one node to the other."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import trio

from ..support.backends import PG_URL, pg_engine
from ..support.browser import in_browser
from ..support.chat import TIMEOUT_MS
from ..support.chat import sign_in_browser as sign_in
from ..support.http import http
from ..support.nodes import REPO_ROOT, free_port, redis_server


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A PostgreSQL database of its own for the test (dropped afterwards); its URL."""
    engine = pg_engine()
    if engine is None:
        import pytest

        pytest.skip("PostgreSQL is not reachable")
    engine.dispose()
    name = f"chat_nodes_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def chat_node(
    name: str, port: int, cluster: str, database: str, data_dir: Path
) -> AsyncIterator[str]:
    """``python -m web examples.chat.serve:endpoint`` as node *name* on *port*; its URL once
    it answers."""
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "CHAT_DATA_DIR": str(data_dir),
        "CHAT_DEMO": "1",
        "BEAM_CLUSTER": cluster,
    }
    argv = [sys.executable, "-m", "web", "examples.chat.serve:endpoint", "--name", name]
    argv += ["--port", str(port)]
    process = await trio.lowlevel.open_process(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    request = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    try:
        with trio.fail_after(60):
            while True:
                with contextlib.suppress(OSError):
                    if (await http(port, request))[0] == 200:
                        break
                if process.poll() is not None:
                    raise RuntimeError(f"chat node {name} exited ({process.returncode})")
                await trio.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        if process.poll() is None:
            process.kill()
            await process.wait()


async def test_two_users_on_two_nodes_chat_in_the_browser(tmp_path: Path) -> None:
    with redis_server() as redis, fresh_database() as database:
        async with (
            chat_node("chat1", free_port(), redis.url, database, tmp_path) as one,
            chat_node("chat2", free_port(), redis.url, database, tmp_path) as two,
        ):

            def steps(browser: Any) -> None:
                alice = sign_in(browser.new_context(), one, "alice")  # on chat1
                bob = sign_in(browser.new_context(), two, "bob")  # on chat2
                alice.wait_for_selector("#online li:has-text('bob')", timeout=TIMEOUT_MS)
                bob.wait_for_selector("#online li:has-text('alice')", timeout=TIMEOUT_MS)
                bob.type("#content", "hi ali", delay=20)
                alice.wait_for_selector("#typing:has-text('bob')", timeout=TIMEOUT_MS)
                bob.fill("#content", "hi alice, from the other node!")
                bob.press("#content", "Enter")
                alice.wait_for_selector(
                    ".message:has-text('from the other node')", timeout=TIMEOUT_MS
                )
                alice.fill("#content", "hello bob")
                alice.press("#content", "Enter")
                bob.wait_for_selector(".message:has-text('hello bob')", timeout=TIMEOUT_MS)
                bob.fill("#content", "@alice have a look")
                bob.press("#content", "Enter")
                alice.wait_for_selector("#notification-count:has-text('1')", timeout=TIMEOUT_MS)
                # bob leaves: chat1 sees him go once presence has crossed back
                bob.context.close()
                alice.wait_for_selector(
                    "#online li:has-text('bob')", state="detached", timeout=TIMEOUT_MS
                )

            await in_browser(steps)
