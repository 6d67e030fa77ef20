"""Channel fan-out over two nodes against one: the load generator and its servers.

:class:`FanoutRig` (run in the suite's process) starts three such servers, ``solo`` alone and
``fan1`` and ``fan2`` in one cluster, and holds two sets of the same number of joined
clients: all on ``solo``, or half on ``fan1`` and half on ``fan2``. :meth:`FanoutRig.burst`
has one setup's broadcaster (``solo`` or ``fan1``) send a burst, counts the bytes its
clients receive (every frame of a run has one size, learned from a probe broadcast) and
reports the servers' CPU per delivered message::

    with FanoutRig(url, clients=2000) as rig:
        rig.burst("cluster", broadcasts=100, interval=0.025)   # {"cpu_us": ..., "lost": ...}
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from ._channels_server import TOPIC
from ._cluster_fanout_server import ALONE
from ._measure import Sample

__all__ = ["FanoutRig"]

_REPO = Path(__file__).resolve().parent.parent
#: How long a burst waits for a missing byte before counting it lost (seconds).
_QUIET = 2.0
_LIMIT = 60.0


class _Server:
    """One server process of the rig, and its command pipe."""

    def __init__(self, url: str, name: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._cluster_fanout_server", url, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_REPO,
            env=env,
            bufsize=1,
        )
        self.port = int(self.expect("PORT"))

    def expect(self, word: str) -> str:
        """The value of the server's next line, which must start with *word*."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"fan-out server {self.name} exited with {self.process.wait()}")
        said, _, value = line.strip().partition(" ")
        if said != word:
            raise RuntimeError(f"fan-out server {self.name} said {line!r}, expected {word}")
        return value

    def tell(self, *words: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(" ".join(map(str, words)) + "\n")
        self.process.stdin.flush()

    def cpu(self) -> float:
        self.tell("CPU")
        return float(self.expect("CPU"))

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class _Client:
    """One joined connection: a blocking handshake, then bytes counted without parsing."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        ws = WSConnection(ConnectionType.CLIENT)
        target = "/socket/websocket?vsn=2.0.0"
        self.sock.sendall(ws.send(Request(host=f"127.0.0.1:{port}", target=target)))
        self._until(ws, lambda e: isinstance(e, AcceptConnection))
        join = json.dumps(["1", "1", TOPIC, "phx_join", {}])
        self.sock.sendall(ws.send(TextMessage(join)))
        self._until(ws, lambda e: isinstance(e, TextMessage) and '"phx_reply"' in e.data)
        self.sock.setblocking(False)
        self.received = 0

    def _until(self, ws: WSConnection, match: Any) -> None:
        while True:
            for event in ws.events():
                if match(event):
                    return
            data = self.sock.recv(65_536)
            if not data:
                raise RuntimeError("a fan-out server closed a connection during set-up")
            ws.receive_data(data)

    def read(self) -> int:
        try:
            data = self.sock.recv(262_144)
        except BlockingIOError:
            return 0
        self.received += len(data)
        return len(data)


class _Setup:
    """The servers and clients of one side: who broadcasts, whose CPU counts."""

    def __init__(self, servers: Sequence[_Server], clients: int) -> None:
        self.servers = list(servers)
        self.clients: list[_Client] = []
        for i in range(clients):
            self.clients.append(_Client(self.servers[i * len(self.servers) // clients].port))
        self.selector = selectors.DefaultSelector()
        for client in self.clients:
            self.selector.register(client.sock, selectors.EVENT_READ, client)
        self.frame = 0
        #: Messages sent to the clients and lost, over every burst so far.
        self.sent = self.lost = 0

    def _read_until(self, expected: int, broadcaster: _Server) -> float:
        """Read until the clients hold *expected* bytes, or none came for ``_QUIET``
        seconds after the broadcaster's ``DONE``; return the time of the last byte."""
        assert broadcaster.process.stdout is not None
        selector = self.selector
        selector.register(broadcaster.process.stdout, selectors.EVENT_READ, None)
        total = sum(c.received for c in self.clients)
        done = False
        last = time.monotonic()
        cap = last + _LIMIT
        try:
            while total < expected:
                now = time.monotonic()
                if now > cap or (done and now - last > _QUIET):
                    break
                for key, _ in selector.select(timeout=0.1):
                    if key.data is None:
                        line = broadcaster.process.stdout.readline()
                        if not line.startswith("DONE"):
                            raise RuntimeError(f"the broadcaster said {line!r}")
                        done = True
                        selector.unregister(broadcaster.process.stdout)
                        last = time.monotonic()
                    else:
                        got = key.data.read()
                        if got:
                            total += got
                            last = time.monotonic()
        finally:
            if not done:
                selector.unregister(broadcaster.process.stdout)
        if not done:  # every byte came before the broadcaster's word that it is done
            broadcaster.expect("DONE")
        return last

    def probe(self) -> None:
        """One broadcast to learn the frame size (the same for every frame of a run)."""
        broadcaster = self.servers[0]
        broadcaster.tell("GO", 1, 0.0)
        broadcaster.expect("DONE")
        deadline = time.monotonic() + _LIMIT
        while any(c.received == 0 for c in self.clients) and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=0.1):
                key.data.read()
        time.sleep(0.2)  # a frame split in two TCP segments: take its end too
        for key, _ in self.selector.select(timeout=0):
            key.data.read()
        sizes = {c.received for c in self.clients}
        if len(sizes) != 1 or 0 in sizes:
            raise RuntimeError(f"the probe broadcast reached the clients unevenly: {sizes}")
        self.frame = sizes.pop()

    def burst(self, broadcasts: int, interval: float) -> Sample:
        for client in self.clients:
            client.received = 0
        before = sum(server.cpu() for server in self.servers)
        started = time.monotonic()
        self.servers[0].tell("GO", broadcasts, interval)
        expected = broadcasts * len(self.clients)
        last = self._read_until(expected * self.frame, self.servers[0])
        cpu = sum(server.cpu() for server in self.servers) - before
        delivered = sum(c.received for c in self.clients) // self.frame
        self.sent += expected
        self.lost += expected - delivered
        return {
            "cpu_us": 1e6 * cpu / max(delivered, 1),
            "lost": float(expected - delivered),
            "per_s": delivered / max(last - started, 1e-9),
        }

    def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.sock.close()
        self.selector.close()


class FanoutRig:
    """Three servers (:mod:`bench._cluster_fanout_server`: one alone, two in the cluster at
    *url*) and *clients* joined clients
    on each side. Use as a context manager; :meth:`burst` measures one burst of one side.

    >>> with FanoutRig(url, clients=100) as rig:
    ...     print(rig.burst("solo", broadcasts=10, interval=0.025))
    """

    def __init__(self, url: str, clients: int, *, prefix: str = "bench") -> None:
        self._servers: list[_Server] = []
        self._setups: dict[str, _Setup] = {}
        try:
            solo = self._start(ALONE, f"{prefix}-solo")
            first = self._start(url, f"{prefix}-fan1")
            second = self._start(url, f"{prefix}-fan2")
            self._setups["solo"] = _Setup([solo], clients)
            self._setups["cluster"] = _Setup([first, second], clients)
            for setup in self._setups.values():
                setup.probe()
        except BaseException:
            self.close()
            raise

    def _start(self, url: str, name: str) -> _Server:
        server = _Server(url, name)
        self._servers.append(server)
        return server

    def burst(self, side: str, broadcasts: int, interval: float) -> Sample:
        """One burst of *broadcasts* on *side* (``"solo"`` or ``"cluster"``): the servers'
        CPU per delivered message in µs, the messages lost, and the delivery rate."""
        return self._setups[side].burst(broadcasts, interval)

    def lost(self, side: str) -> tuple[int, int]:
        """Messages lost and sent over every burst of *side* so far."""
        setup = self._setups[side]
        return setup.lost, setup.sent

    def close(self) -> None:
        """Close every client and kill every server."""
        for setup in self._setups.values():
            setup.close()
        for server in self._servers:
            server.stop()

    def __enter__(self) -> FanoutRig:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
