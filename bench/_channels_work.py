"""The load generator of the ``channels`` suite (run in a fresh interpreter per repetition).

It starts a server (:mod:`bench._channels_server`) in another interpreter, opens the clients
one by one (wsproto does each handshake: Phoenix V2 join, or Engine.IO/Socket.IO connect),
then reads every socket from one ``selectors`` loop. Every frame of a run has the same size,
so most clients only count bytes; a sample of clients parses each frame with wsproto and
takes the delivery latency from the send time in the payload (one clock: same machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from ._channels_server import TOPIC
from ._measure import report_and_exit

_REPO = Path(__file__).resolve().parent.parent
_SAMPLED = 50
_QUIET = 3.0


class _Server:
    def __init__(self, kind: str, clients: int, broadcasts: int, interval: float) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench._channels_server",
                kind,
                str(clients),
                str(broadcasts),
                str(interval),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=_REPO,
            env=env,
        )
        self.rss: list[int] = []
        self.port = 0
        while not self.port:
            self._line()

    def _line(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark server exited with {self.process.wait()}")
        word, value = line.split()
        if word == "PORT":
            self.port = int(value)
        elif word == "RSS":
            self.rss.append(int(value))

    def wait_rss(self, count: int) -> int:
        while len(self.rss) < count:
            self._line()
        return self.rss[count - 1]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class _Client:
    """One connection, opened with a blocking handshake, then read without blocking."""

    def __init__(self, kind: str, port: int, *, parse: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.parse = parse
        self.received = 0
        self.latencies: list[float] = []
        self.frame_size = 0
        if kind == "raw":
            return
        target = "/socket/websocket?vsn=2.0.0"
        if kind == "socketio":
            target = "/socket.io/?EIO=4&transport=websocket"
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target=target)))
        self._until(lambda e: isinstance(e, AcceptConnection))
        if kind == "ours":
            join = json.dumps(["1", "1", TOPIC, "phx_join", {}])
            self.sock.sendall(self.ws.send(TextMessage(join)))
            self._until(lambda e: isinstance(e, TextMessage) and '"phx_reply"' in e.data)
        else:
            self._until(lambda e: isinstance(e, TextMessage) and e.data.startswith("0"))
            self.sock.sendall(self.ws.send(TextMessage("40")))
            self._until(lambda e: isinstance(e, TextMessage) and e.data.startswith("40"))

    def _until(self, match: Any) -> None:
        while True:
            for event in self.ws.events():
                if match(event):
                    return
            data = self.sock.recv(65_536)
            if not data:
                raise RuntimeError("the benchmark server closed a connection during set-up")
            self.ws.receive_data(data)

    def read(self, now: float) -> int:
        try:
            data = self.sock.recv(262_144)
        except BlockingIOError:
            return 0
        self.received += len(data)
        if self.parse and data:
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    text = event.data
                    if not self.frame_size:
                        length = len(text.encode())
                        self.frame_size = length + (2 if length < 126 else 4)
                    sent = float(text[text.index('"t":"') + 5 :].split('"', 1)[0])
                    self.latencies.append(now - sent)
        return len(data)


def fanout(kind: str, clients: int, broadcasts: int, interval: float) -> None:
    """Deliver *broadcasts* ticks to *clients* through the *kind* server; report msg/s,
    latency percentiles and lost messages."""
    server = _Server(kind, clients, broadcasts, interval)
    try:
        every = max(1, clients // _SAMPLED)
        conns = [_Client(kind, server.port, parse=i % every == 0) for i in range(clients)]
        selector = selectors.DefaultSelector()
        for conn in conns:
            conn.sock.setblocking(False)
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        # The server says DONE after its last broadcast; the run ends once no byte has come
        # for _QUIET seconds after that (or at a generous cap, for a server that stalls).
        assert server.process.stdout is not None
        selector.register(server.process.stdout, selectors.EVENT_READ, None)
        first = last = 0.0
        cap = time.monotonic() + 60.0 + 20 * broadcasts * interval
        quiet_until = cap
        while time.monotonic() < min(quiet_until, cap):
            ready = selector.select(timeout=0.5)
            now = time.time()
            for key, _ in ready:
                if key.data is None:
                    if server.process.stdout.readline().startswith("DONE"):
                        selector.unregister(server.process.stdout)
                        quiet_until = time.monotonic() + _QUIET
                elif key.data.read(now):
                    if not first:
                        first = now
                    last = now
                    if quiet_until != cap:
                        quiet_until = time.monotonic() + _QUIET
        sampled = [c for c in conns if c.frame_size]
        size = sampled[0].frame_size if sampled else 0
        delivered = sum(c.received for c in conns) // size if size else 0
        latencies = sorted(x for c in conns for x in c.latencies)
        for conn in conns:
            conn.sock.close()
    finally:
        server.stop()
    duration = max(last - first, 1e-9)
    report_and_exit(
        {
            "per_s": delivered / duration,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0,
            "lost": float(clients * broadcasts - delivered),
        }
    )


def idle_memory(kind: str, clients: int) -> None:
    """Hold *clients* idle connections (joined, for ``ours``); report the server's memory
    per connection."""
    server = _Server(kind, clients, 0, 1.0)
    conns: list[_Client] = []
    try:
        before = server.wait_rss(1)
        conns = [_Client(kind, server.port, parse=False) for _ in range(clients)]
        after = server.wait_rss(2)
    finally:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.close()
        server.stop()
    report_and_exit({"bytes": (after - before) / clients})
