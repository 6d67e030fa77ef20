"""The ``cluster`` suite's side of its nodes: a Redis server, and node programs to drive.

:func:`bench_redis` gives the suite a Redis of its own (``redis-server`` on a free port, no
persistence), so that no other program's traffic lands on the channels measured; without the
binary it falls back to a Redis answering at 127.0.0.1:6379 (the suite then keeps to a
namespace of its own). :class:`NodeProgram` runs :mod:`bench._cluster_node` in a child
process and sends it commands; every wait has a deadline::

    with bench_redis() as url, NodeProgram(url, "bench-1", "a") as a:
        a.wait_ready()
        print(a.call("await_nodes", names=[]))
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from ._measure import log

__all__ = ["NodeError", "NodeProgram", "bench_redis", "free_port", "redis_answers"]

_REPO = Path(__file__).resolve().parent.parent
_SHARED_REDIS = ("127.0.0.1", 6379)

#: The longest a node program may take to start and join (seconds).
START_TIMEOUT = 30.0


class NodeError(RuntimeError):
    """A node program answered a command with an error, or did not answer in time."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(host: str, port: int) -> bool:
    """Whether a Redis server answers ``PING`` at *host*:*port*."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def bench_redis() -> Iterator[str | None]:
    """The URL of a Redis for the suite (its own server when it can start one), or ``None``
    when there is none to use."""
    binary = shutil.which("redis-server")
    if binary is None:
        if redis_answers(*_SHARED_REDIS):
            log("  redis-server not found: using the Redis at 127.0.0.1:6379")
            yield "redis://127.0.0.1:6379/0"
        else:
            yield None
        return
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10.0
        while not redis_answers("127.0.0.1", port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait()


class NodeProgram:
    """One :mod:`bench._cluster_node` child process: start it, command it, kill it.

    >>> with NodeProgram(url, "bench-1", "a") as a:
    ...     a.wait_ready()
    ...     a.call("server")
    """

    def __init__(
        self, url: str, namespace: str, name: str, *, heartbeat: float = 1.0, timeout: float = 5.0
    ) -> None:
        self.name = name
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench._cluster_node"),
                *(url, namespace, name, str(heartbeat), str(timeout)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_REPO,
            env=env,
            bufsize=0,
        )
        assert self.process.stdout is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self._next_id = 0
        self._ready = False

    def __enter__(self) -> NodeProgram:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _line(self, deadline: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(timeout=left):
                raise NodeError(f"node {self.name} did not answer in time")
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise NodeError(f"node {self.name} exited with {self.process.wait()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        event: dict[str, Any] = json.loads(line)
        return event

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the node has joined the cluster and reads commands."""
        deadline = time.monotonic() + timeout
        while not self._ready:
            self._ready = self._line(deadline).get("event") == "ready"

    def call(self, op: str, *, timeout: float = 150.0, **args: Any) -> dict[str, Any]:
        """Send the command *op* with *args*; return its answer, or raise :class:`NodeError`."""
        assert self.process.stdin is not None
        self.wait_ready()
        self._next_id += 1
        ident = self._next_id
        self.process.stdin.write((json.dumps({"op": op, "id": ident, **args}) + "\n").encode())
        deadline = time.monotonic() + timeout
        while True:
            answer = self._line(deadline)
            if answer.get("event") == "answer" and answer.get("id") == ident:
                break
        if "error" in answer:
            raise NodeError(f"node {self.name}: {op} failed: {answer['error']}")
        return answer

    def kill(self) -> float:
        """SIGKILL the node and return the ``time.monotonic()`` of the kill."""
        at = time.monotonic()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return at

    def stop(self) -> None:
        """Kill the node if it still runs and release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._selector.close()
