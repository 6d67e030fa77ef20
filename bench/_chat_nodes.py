"""The chat served by several nodes, for the ``chat`` suite's soak with a node kill.

:class:`ChatNodes` (run in the load generator's interpreter) gives one soak a cluster of its
own: a fresh PostgreSQL database, a ``redis-server`` on a free port (else the Redis at
127.0.0.1:6379, with node names of the soak's own) and a data directory (the secret key every
node signs with). It prepares the database with ``python -m bench._chat_server setup`` (the
bots and their rooms) while the first node starts, and starts the others once it serves, each
as ``python -m web examples.chat.serve:endpoint --name chatK --port P --cluster URL`` in demo mode
(``CHAT_DEMO=1``) with rate limits too high to matter. The first node started is the first to
register the cluster's global names (the chat's shared rate limiter among them), so killing
it (:meth:`ChatNodes.kill`) is the harder case: the survivors must also take those over.
:meth:`ChatNodes.stored` reads what the database holds, straight from its table::

    with ChatNodes(nodes=2, rooms=4, bots=20) as chat:
        print(chat.ports, chat.rooms)
        chat.kill(0)
        rows, distinct, client_ids = chat.stored()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

import psycopg

from domain import database_url

from ._cluster_control import bench_redis, free_port

__all__ = ["ChatNodes", "postgres_server", "postgres_unreachable"]

_REPO: Final = Path(__file__).resolve().parent.parent
_APP: Final = "examples.chat.serve:endpoint"
#: The PostgreSQL server (its ``postgres`` database) unless ``DATABASE_URL`` names another.
_DEFAULT_SERVER: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
_START_TIMEOUT: Final = 90.0
#: Every limit of the chat lifted: the bots send far faster than a person, all from one
#: address.
_LIMITS: Final = "message=1000000/60,api=1000000/60,login=1000000/60,room=1000000/60"


def postgres_server() -> str:
    """The URL (``postgresql://``, for psycopg) of the PostgreSQL server's ``postgres``
    database: ``DATABASE_URL``'s server, else the local one.

    >>> postgres_server()
    'postgresql://postgres@127.0.0.1:5432/postgres'
    """
    url = database_url(_DEFAULT_SERVER).replace("postgresql+psycopg://", "postgresql://", 1)
    return url.rsplit("/", 1)[0] + "/postgres"


def postgres_unreachable() -> str | None:
    """Why the PostgreSQL server cannot be used, or ``None`` when it answers.

    >>> postgres_unreachable()  # None: it answers
    """
    try:
        with psycopg.connect(postgres_server(), connect_timeout=5):
            return None
    except psycopg.Error as error:
        return f"PostgreSQL unreachable at {postgres_server()}: {error}"


@contextlib.contextmanager
def _fresh_database() -> Iterator[str]:
    """A database of its own (dropped afterwards); its URL."""
    server = postgres_server()
    name = f"bench_chat_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Node:
    """One node process, its port and its log file."""

    def __init__(self, name: str, cluster: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = logs / f"{name}.log"
        argv = [sys.executable, "-m", "web", _APP, "--name", name, "--port", str(self.port)]
        with open(self.log_path, "w") as log_file:
            self.process = subprocess.Popen(
                [*argv, "--cluster", cluster],
                cwd=_REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )

    def wait_serving(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while "serving on http://" not in (text := self.log_path.read_text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chat node {self.name} did not serve:\n{text[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


class ChatNodes:
    """*nodes* chat nodes in one cluster, on a database prepared for *bots* bots in *rooms*
    rooms (see the module's docstring). Use as a context manager.

    >>> with ChatNodes(nodes=2, rooms=4, bots=20) as chat:
    ...     chat.kill(0)
    """

    def __init__(self, nodes: int, rooms: int, bots: int) -> None:
        self._stack = contextlib.ExitStack()
        self._nodes: list[_Node] = []
        try:
            self._start(nodes, rooms, bots)
        except BaseException:
            self.close()
            raise

    def _start(self, nodes: int, rooms: int, bots: int) -> None:
        self.database = self._stack.enter_context(_fresh_database())
        url = self._stack.enter_context(bench_redis())
        if url is None:
            raise RuntimeError("no Redis: no redis-server binary and none at 127.0.0.1:6379")
        work = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-chat-")))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        for variable in ("BEAM_NODE", "BEAM_CLUSTER", "CHAT_SECRET_KEY", "CHAT_ADMIN_USERNAME"):
            env.pop(variable, None)
        env.update(
            DATABASE_URL=self.database,
            CHAT_DATA_DIR=str(work / "data"),
            CHAT_DEMO="1",
            CHAT_RATE_LIMITS=_LIMITS,
        )
        # The setup and the first node start together (their start-ups take turns under
        # the chat's start-up lock); the others once the first serves, so that it holds the
        # cluster's global names.
        setup = subprocess.Popen(
            [sys.executable, "-m", "bench._chat_server", "setup", str(rooms), str(bots)],
            cwd=_REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            prefix = f"chat-{uuid.uuid4().hex[:6]}-"  # names of its own, should Redis be shared
            for index in range(nodes):
                node = _Node(f"{prefix}{index + 1}", url, env, work)
                self._nodes.append(node)
                node.wait_serving()
            out, err = setup.communicate(timeout=_START_TIMEOUT)
        finally:
            if setup.poll() is None:
                setup.kill()
                setup.communicate()
        if setup.returncode != 0:
            raise RuntimeError(f"the chat's setup exited with {setup.returncode}:\n{err}")
        self.rooms = [line.split()[1] for line in out.splitlines() if line[:5] == "ROOM "]
        self.ports = [node.port for node in self._nodes]

    def kill(self, index: int) -> float:
        """SIGKILL node *index*; the ``time.perf_counter()`` of the kill."""
        at = time.perf_counter()
        self._nodes[index].kill()
        return at

    def stored(self) -> tuple[int, int, list[str]]:
        """The messages stored by the bots: rows, distinct (author, client id) pairs, and
        their client ids."""
        with psycopg.connect(self.database) as connection:
            pairs = connection.execute(
                "SELECT author_name, client_id FROM chat_messages WHERE author_name LIKE %s",
                ("bot%",),
            ).fetchall()
        distinct = set(pairs)
        return len(pairs), len(distinct), sorted(client_id for _, client_id in distinct)

    def close(self) -> None:
        """Kill every node and drop the database, the Redis and the data directory."""
        for node in self._nodes:
            node.kill()
        self._stack.close()

    def __enter__(self) -> ChatNodes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
