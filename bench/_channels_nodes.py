"""Channels served by two nodes on one port against one node: servers, clients and CPU.

:class:`NodesRig` (run in the suite's process, which is the load generator) starts the app of
:mod:`bench._channels_app` twice with ``python -m web``: once as one node alone, once as
``--nodes N --cluster URL`` (N node processes on one port, ``SO_REUSEPORT``: the kernel
spreads the connections among them). It connects the same number of joined clients to each
(the join's reply says which node took each one), plus a control client that asks a node to
broadcast. :meth:`NodesRig.burst` runs one burst on one side and takes, over the burst, the
delivered messages (bytes counted: every frame of a run has one size, learned from a probe
broadcast), the CPU time of every node process (its CPU-time clock) and of Redis
(``INFO cpu``), of the load generator itself, and of the whole box (``/proc/stat``), from
which :func:`limit` names what held the delivery rate back::

    with NodesRig(url, clients=1000, nodes=2) as rig:
        sample = rig.burst("2 nodes", broadcasts=50, interval=0.005)
        print(limit(sample))
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from ._channels_app import CONTROL
from ._channels_server import TOPIC
from ._cluster_control import free_port
from ._measure import Sample, log

__all__ = ["ONE", "NodesRig", "limit", "several"]

_REPO: Final = Path(__file__).resolve().parent.parent
_APP: Final = "bench._channels_app:endpoint"
#: How long a burst waits for a missing byte after the last broadcast (seconds).
_QUIET: Final = 2.0
_LIMIT: Final = 120.0
_START_TIMEOUT: Final = 60.0
_TICK: Final = os.sysconf("SC_CLK_TCK")
_LIBC: Final = ctypes.CDLL(None, use_errno=True)
#: The clients are read in rounds at most this often (seconds), so that a read takes every
#: frame that came meanwhile: fewer system calls per message for the load generator, whose
#: CPU is taken from the same cores as the nodes'. It delays the last byte's time by as much.
_ROUND: Final = 0.005
#: A core, or the box, counts as saturated from this share of it (percent): a burst starts
#: and ends with a few idle milliseconds, and three busy processes on two cores wait for each
#: other now and then.
_SATURATED: Final = 85.0

#: The label of the one-node side.
ONE: Final = "1 node"


def several(nodes: int) -> str:
    """The label of the side served by *nodes* nodes on one port.

    >>> several(2)
    '2 nodes, one port'
    """
    return f"{nodes} nodes, one port"


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread, those gone too) of process *pid* so far,
    read from its CPU-time clock (nanoseconds; ``/proc/<pid>/stat`` counts 10 ms ticks)."""
    clock = ctypes.c_int()
    failed = _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock))
    if failed:
        raise OSError(failed, f"clock_getcpuclockid({pid}): {os.strerror(failed)}")
    return time.clock_gettime(clock.value)


def _box_busy() -> tuple[float, float]:
    """CPU seconds the whole box has spent busy and idle so far (every core)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / _TICK, idle / _TICK


def _bulk_end(data: bytes) -> int:
    """The length of a whole RESP bulk string reply that starts *data*."""
    header = data.partition(b"\r\n")[0]
    return len(header) + 2 + int(header[1:]) + 2


def _redis_cpu(url: str | None) -> float:
    """CPU seconds (user + system) of the Redis server at *url* so far (0 without one)."""
    if url is None:
        return 0.0
    host, _, port = url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5.0) as sock:
        sock.sendall(b"INFO cpu\r\n")
        data = b""
        while b"\r\n" not in data or len(data) < _bulk_end(data):
            chunk = sock.recv(65_536)
            if not chunk:
                raise RuntimeError(f"Redis at {url} closed the connection on INFO")
            data += chunk
    body = data.partition(b"\r\n")[2].decode()
    found = dict(line.split(":", 1) for line in body.splitlines() if ":" in line)
    return float(found["used_cpu_sys"]) + float(found["used_cpu_user"])


class _Group:
    """One ``python -m web`` of the app: one node, or *nodes* nodes under a parent."""

    def __init__(self, label: str, nodes: int, cluster: str | None, logs: Path) -> None:
        self.label = label
        self.port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        env.pop("BEAM_CLUSTER", None)
        env.pop("BEAM_NODE", None)
        argv = [sys.executable, "-m", "web", _APP, "--port", str(self.port)]
        if nodes > 1:
            assert cluster is not None
            # Names of its own, should the Redis be shared with other runs.
            prefix = f"bench-{os.getpid()}-"
            argv += ["--nodes", str(nodes), "--cluster", cluster, "--name", prefix]
        self.log_path = logs / f"{label.replace(' ', '-').replace(',', '')}.log"
        with open(self.log_path, "w") as log_file:
            self.process = subprocess.Popen(
                argv, cwd=_REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_file
            )
        self.pids: dict[str, int] = {}
        self._wait_serving(nodes)

    def _wait_serving(self, nodes: int) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        ready = f"with {nodes} nodes" if nodes > 1 else "serving on http://"
        while True:
            text = self.log_path.read_text()
            if ready in text:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: python -m web did not serve:\n{text[-3000:]}")
            time.sleep(0.05)
        if nodes == 1:
            self.pids = {"node": self.process.pid}
            return
        for line in text.splitlines():  # "started node bench1 (pid 1234)"
            if "started node " in line and "(pid " in line:
                name = line.split("started node ", 1)[1].split()[0]
                self.pids[name] = int(line.rsplit("(pid ", 1)[1].rstrip(")"))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each node process, by name."""
        return {name: _process_cpu(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        # The parent first, so that it starts no node again; its nodes would stop by
        # themselves once it is gone, but are killed at once.
        for pid in [self.process.pid, *self.pids.values()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()


class _Client:
    """One connection joined to *topic*: a blocking handshake and join, then non-blocking
    reads (counting bytes, or parsing frames when *parse*)."""

    def __init__(self, port: int, topic: str, *, parse: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.parse = parse
        self.received = 0
        self.sock.sendall(
            self.ws.send(Request(host=f"127.0.0.1:{port}", target="/socket/websocket?vsn=2.0.0"))
        )
        self._until(lambda e: isinstance(e, AcceptConnection))
        self.sock.sendall(self.ws.send(TextMessage(json.dumps(["1", "1", topic, "phx_join", {}]))))
        reply = self._until(lambda e: isinstance(e, TextMessage) and '"phx_reply"' in e.data)
        self.node: str = json.loads(reply.data)[4]["response"]["node"]
        self.topic = topic
        self.sock.setblocking(False)

    def _until(self, match: Any) -> Any:
        while True:
            for event in self.ws.events():
                if match(event):
                    return event
            data = self.sock.recv(65_536)
            if not data:
                raise RuntimeError("a benchmark node closed a connection during set-up")
            self.ws.receive_data(data)

    def push(self, ref: str, event: str, payload: dict[str, Any]) -> None:
        frame = self.ws.send(TextMessage(json.dumps(["1", ref, self.topic, event, payload])))
        self.sock.setblocking(True)
        try:
            self.sock.sendall(frame)
        finally:
            self.sock.setblocking(False)

    def read(self) -> int:
        """Bytes read now (0 if none were waiting)."""
        try:
            data = self.sock.recv(262_144)
        except BlockingIOError:
            return 0
        if not data:
            raise RuntimeError("a benchmark node closed a connection")
        self.received += len(data)
        if self.parse:
            self.ws.receive_data(data)
        return len(data)

    def replied(self) -> set[str]:
        """The refs of the replies parsed since the last call (for a client made with
        *parse*)."""
        found = set()
        for event in self.ws.events():
            if isinstance(event, TextMessage) and '"phx_reply"' in event.data:
                found.add(json.loads(event.data)[1])
        return found


class _Side:
    """One side: its servers, its clients, and how to run a burst on it."""

    def __init__(self, group: _Group, clients: int, redis: str | None) -> None:
        self.group = group
        self.redis = redis
        self.clients = [_Client(group.port, TOPIC) for _ in range(clients)]
        self.control = _Client(group.port, CONTROL, parse=True)
        self.split = Counter(c.node for c in self.clients)
        self.selector = selectors.DefaultSelector()
        for client in self.clients:
            self.selector.register(client.sock, selectors.EVENT_READ, client)
        self.selector.register(self.control.sock, selectors.EVENT_READ, None)
        self.frame = 0
        self.refs = 0
        self.answered: set[str] = set()
        #: Messages sent to the clients and lost, over every burst so far.
        self.sent = self.lost = 0

    def _go(self, count: int, interval: float) -> None:
        self.refs += 1
        self.control.push(str(self.refs), "go", {"count": count, "interval": interval})

    def _answered(self) -> bool:
        """Read the control client; whether the node answered the latest ``go``."""
        self.control.read()
        self.answered |= self.control.replied()
        return str(self.refs) in self.answered

    def _read_until(self, expected: int) -> tuple[float, float]:
        """Read until the clients hold *expected* bytes, or none came for ``_QUIET`` seconds
        after the control client's reply; the times of the first and the last byte."""
        total = sum(c.received for c in self.clients)
        done = False
        first = 0.0
        last = time.monotonic()
        cap = last + _LIMIT
        while total < expected:
            now = time.monotonic()
            if now > cap or (done and now - last > _QUIET):
                break
            for key, _ in self.selector.select(timeout=0.1):
                if key.data is None:
                    done = self._answered() or done
                    continue
                got = key.data.read()
                if got:
                    total += got
                    last = time.monotonic()
                    first = first or last
            time.sleep(_ROUND)
        while not done:  # every byte came before the control reply
            if not self.selector.select(timeout=_QUIET):
                raise RuntimeError(f"{self.group.label}: no reply to the burst's go")
            done = self._answered()
        return first, last

    def probe(self) -> None:
        """One broadcast to learn the frame size (the same for every frame of a run)."""
        self._go(1, 0.0)
        deadline = time.monotonic() + _LIMIT
        while any(c.received == 0 for c in self.clients) and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=0.1):
                if key.data is None:
                    self._answered()
                else:
                    key.data.read()
        time.sleep(0.2)  # a frame split in two TCP segments: take its end too
        for key, _ in self.selector.select(timeout=0):
            if key.data is None:
                self._answered()
            else:
                key.data.read()
        sizes = {c.received for c in self.clients}
        if len(sizes) != 1 or 0 in sizes:
            raise RuntimeError(f"the probe broadcast reached the clients unevenly: {sizes}")
        self.frame = sizes.pop()

    def burst(self, broadcasts: int, interval: float) -> Sample:
        for client in self.clients:
            client.received = 0
        nodes_before, redis_before = self.group.cpu(), _redis_cpu(self.redis)
        gen_before, (busy_before, idle_before) = time.process_time(), _box_busy()
        started = time.monotonic()
        self._go(broadcasts, interval)
        expected = broadcasts * len(self.clients)
        first, last = self._read_until(expected * self.frame)
        window = time.monotonic() - started
        nodes = {n: c - nodes_before[n] for n, c in self.group.cpu().items()}
        redis = _redis_cpu(self.redis) - redis_before
        gen = time.process_time() - gen_before
        busy_after, idle_after = _box_busy()
        busy, idle = busy_after - busy_before, idle_after - idle_before
        delivered = sum(c.received for c in self.clients) // self.frame
        self.sent += expected
        self.lost += expected - delivered
        served = sum(nodes.values())
        per = max(delivered, 1)
        # Shares of one core over the burst's window, except box_pct: of the whole box.
        return {
            "per_s": delivered / max(last - started, 1e-9),
            "offered_per_s": len(self.clients) / interval,
            "cpu_us": 1e6 * (served + redis) / per,
            "nodes_us": 1e6 * served / per,
            "redis_us": 1e6 * redis / per,
            "gen_us": 1e6 * gen / per,
            "lost": float(expected - delivered),
            "busiest_node_pct": 100 * max(nodes.values()) / window,
            "nodes_pct": 100 * served / window,
            "redis_pct": 100 * redis / window,
            "gen_pct": 100 * gen / window,
            "box_pct": 100 * busy / max(busy + idle, 1e-9),
            "others_pct": 100 * max(0.0, busy - served - redis - gen) / window,
            "first_ms": 1000 * (first - started) if first else 0.0,
        }

    def close(self) -> None:
        for client in [*self.clients, self.control]:
            with contextlib.suppress(OSError):
                client.sock.close()
        self.selector.close()


def limit(sample: Sample, cores: int | None = None) -> str:
    """What held a burst's delivery rate back, read from its *sample*: the offered rate, the
    box's cores (and who used them), one node's core, or the load generator's.

    >>> limit(rig.burst(ONE, broadcasts=50, interval=0.005))
    "the box's 2 cores, 97% busy: nodes 95% of a core (busiest 95%), ..."
    """
    cores = cores or os.cpu_count() or 1
    shares = (
        f"nodes {sample['nodes_pct']:.0f}% of a core (busiest {sample['busiest_node_pct']:.0f}%), "
        f"load generator {sample['gen_pct']:.0f}%, Redis {sample['redis_pct']:.0f}%, "
        f"other programs {sample['others_pct']:.0f}%"
    )
    if sample["per_s"] >= 0.9 * sample["offered_per_s"]:
        return f"the offered rate (the broadcast schedule); {shares}"
    if sample["box_pct"] >= _SATURATED:
        return f"the box's {cores} cores, {sample['box_pct']:.0f}% busy: {shares}"
    if sample["busiest_node_pct"] >= _SATURATED:
        return f"a node's core (a node runs on one): {shares}"
    if sample["gen_pct"] >= _SATURATED:
        return f"the load generator's core: {shares}"
    return f"no core saturated (waits: scheduling, the network path): {shares}"


class NodesRig:
    """The one-node side (:data:`ONE`) and the *nodes*-node side (:func:`several`), with
    *clients* joined clients each; a Redis at *url* carries the cluster. Use as a context
    manager; :meth:`burst` measures one burst of one side.

    >>> with NodesRig(url, clients=100, nodes=2) as rig:
    ...     print(rig.burst(ONE, broadcasts=10, interval=0.005))
    """

    def __init__(self, url: str, clients: int, nodes: int) -> None:
        self.url = url
        self._groups: list[_Group] = []
        self._sides: dict[str, _Side] = {}
        self._logs = tempfile.TemporaryDirectory(prefix="bench-channels-nodes-")
        try:
            logs = Path(self._logs.name)
            one = self._start(ONE, 1, None, logs)
            many = self._start(several(nodes), nodes, url, logs)
            self._sides[ONE] = _Side(one, clients, None)
            self._sides[several(nodes)] = _Side(many, clients, url)
            for label, side in self._sides.items():
                side.probe()
                split = ", ".join(f"{n} {c}" for n, c in sorted(side.split.items()))
                log(f"  {label}: clients per node: {split}")
        except BaseException:
            self.close()
            raise

    def _start(self, label: str, nodes: int, url: str | None, logs: Path) -> _Group:
        group = _Group(label, nodes, url, logs)
        self._groups.append(group)
        return group

    def burst(self, side: str, broadcasts: int, interval: float) -> Sample:
        """One burst of *broadcasts* (one every *interval* s) on *side*: the delivery rate,
        CPU per delivered message (µs) and shares of a core (%), see :func:`limit`."""
        return self._sides[side].burst(broadcasts, interval)

    def lost(self, side: str) -> tuple[int, int]:
        """Messages lost and sent over every burst of *side* so far."""
        found = self._sides[side]
        return found.lost, found.sent

    def split(self, side: str) -> dict[str, int]:
        """How many of *side*'s clients each node took."""
        return dict(self._sides[side].split)

    def close(self) -> None:
        """Close every client and stop every node."""
        for side in self._sides.values():
            side.close()
        for group in self._groups:
            group.stop()
        self._logs.cleanup()

    def __enter__(self) -> NodesRig:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
