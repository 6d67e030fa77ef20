"""The parent of ``python -m web module:app --nodes N``: N node processes on one port, kept up.

Each node is a child process running ``python -m web`` for one node of the cluster: it
listens on the shared port with ``SO_REUSEPORT`` (the kernel spreads new connections among
the nodes) and joins the cluster under its own name. The parent serves no request and joins
no cluster; it only keeps the nodes running, as a one-for-one supervisor does:

* a node that dies is started again under the same name (a new incarnation), unless nodes
  died more than ``max_restarts`` times within ``max_seconds``: then the parent stops every
  node and exits with status 1, saying which node died last and how. A node that stopped
  cleanly (status 0: someone sent it SIGTERM) is started again after a second, unless the
  parent is told to stop meanwhile (a service manager signals every process at once);
* SIGTERM or SIGINT is passed on to every node as SIGTERM (each closes its sockets with 1001
  and leaves the cluster); nodes still running after ``stop_timeout`` seconds are killed, and
  the parent exits with status 0. A second signal kills the nodes at once.

The nodes run in a process group of their own, so a Ctrl-C in the terminal reaches the
parent only (which stops them in order). Each node holds one end of a socket pair whose other
end the parent keeps: a node tells the parent on it that it serves (with a fingerprint of its
endpoint's secret key, so the parent can warn when the nodes sign with different keys), and
a node whose parent is gone (even killed) reads the end of it and stops by itself::

    status = trio.run(supervise, NodeGroup(["web1", "web2"], command, "http://127.0.0.1:4000"))
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import trio

__all__ = ["NodeGroup", "cores", "default_prefix", "reserve_port", "supervise"]

logger = logging.getLogger("web.nodes")

#: What a node writes on its control socket once it serves: ``ready <key fingerprint>``.
READY: Final = b"ready"


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """What :func:`supervise` runs: the node names, and the command line of one node.

    *command* gets a node's name and the file descriptor of its control socket and returns
    the argv of its process; *env* is the environment of every node; *address* is where
    they serve (for the log). Limits: at most *max_restarts* restarts within *max_seconds*;
    *stop_timeout* seconds for the nodes to stop before they are killed.

    >>> NodeGroup(["web1", "web2"], lambda name, fd: ["python", "-m", "web", "..."], "http://:4000")
    """

    names: Sequence[str]
    command: Callable[[str, int], Sequence[str]]
    address: str
    env: dict[str, str] | None = None
    max_restarts: int = 5
    max_seconds: float = 30.0
    stop_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class _Ready:
    name: str
    process: trio.Process
    fingerprint: str


@dataclass(frozen=True, slots=True)
class _Exited:
    name: str
    process: trio.Process


@dataclass(frozen=True, slots=True)
class _Signal:
    signum: int


@dataclass(frozen=True, slots=True)
class _StopTimeout:
    pass


@dataclass(frozen=True, slots=True)
class _Restart:
    name: str


_Event = _Ready | _Exited | _Signal | _StopTimeout | _Restart

#: Seconds before a node that exited with status 0 (it was told to stop, by a signal of its
#: own) is started again: when a service manager signals every process of the group at once,
#: the parent's own signal arrives meanwhile and nothing is restarted.
_CLEAN_EXIT_GRACE: Final = 1.0


def cores() -> int:
    """The number of cores this process may run on (what ``--nodes auto`` starts).

    >>> cores()
    8
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_prefix(port: int) -> str:
    """The node names' prefix when none is given: this host and the port (``myhost:4000/``),
    so that groups on several machines or ports can share one cluster.

    >>> default_prefix(4000)
    'myhost:4000/'
    """
    return f"{socket.gethostname().split('.')[0]}:{port}/"


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (without listening) a ``SO_REUSEPORT`` socket on *host*:*port* and return it with
    the port it got (*port* 0: a free one the nodes then share).

    While the parent keeps it open the port stays ours: a program that does not share ports
    cannot take it between two incarnations of a node, and a port already in use is a clear
    error here rather than in every node. It never listens, so it is given no connection.

    >>> sock, port = reserve_port("127.0.0.1", 0)
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


async def supervise(group: NodeGroup) -> int:
    """Run the nodes of *group* until a signal stops them (0) or they die too often (1).

    >>> status = trio.run(supervise, group)
    """
    return await _Supervisor(group).run()


class _Supervisor:
    def __init__(self, group: NodeGroup) -> None:
        self.group = group
        self.running: dict[str, trio.Process] = {}
        self.ready: dict[str, str] = {}  # name -> fingerprint, of the nodes serving now
        self.deaths: deque[float] = deque()
        self.announced = False
        self.warned_keys = False
        self.stopping = False
        self.status = 0
        self.send, self.receive = trio.open_memory_channel[_Event](math.inf)

    async def run(self) -> int:
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                nursery.start_soon(self._watch_signals, signals)
                for name in self.group.names:
                    await self._start(nursery, name)
                async for event in self.receive:
                    await self._handle(nursery, event)
                    if self.stopping and not self.running:
                        break
            nursery.cancel_scope.cancel()
        return self.status

    async def _handle(self, nursery: trio.Nursery, event: _Event) -> None:
        if isinstance(event, _Signal):
            name = signal.Signals(event.signum).name
            if self.stopping:
                logger.warning("%s while stopping: killing every node now", name)
                self._signal_all(signal.SIGKILL)
            else:
                logger.info("stopping every node on %s", name)
                self._stop(nursery)
        elif isinstance(event, _StopTimeout):
            if self.running:
                logger.warning(
                    "nodes still running %s s after SIGTERM, killed: %s",
                    self.group.stop_timeout,
                    ", ".join(sorted(self.running)),
                )
                self._signal_all(signal.SIGKILL)
        elif isinstance(event, _Restart):
            if not self.stopping and event.name not in self.running:
                await self._start(nursery, event.name)
        elif isinstance(event, _Ready):
            if self.running.get(event.name) is event.process and not self.stopping:
                self._ready(event)
        elif self.running.get(event.name) is event.process:
            await self._exited(nursery, event.name, event.process)

    def _ready(self, event: _Ready) -> None:
        self.ready[event.name] = event.fingerprint
        if self.announced:
            logger.info("node %s serves again (pid %d)", event.name, event.process.pid)
        elif len(self.ready) == len(self.group.names):
            self.announced = True
            logger.info(
                "serving on %s with %d nodes: %s",
                self.group.address,
                len(self.group.names),
                ", ".join(self.group.names),
            )
        if len(set(self.ready.values())) > 1 and not self.warned_keys:
            self.warned_keys = True
            logger.warning(
                "the nodes sign with different secret keys, so a LiveView page rendered by one "
                "node cannot connect to another (and tokens signed by one fail on another): set "
                "the Endpoint's secret_key to the same value on every node (e.g. read it from "
                "an environment variable)"
            )

    async def _exited(self, nursery: trio.Nursery, name: str, process: trio.Process) -> None:
        del self.running[name]
        self.ready.pop(name, None)
        how = _how(process.returncode)
        if self.stopping:
            logger.info("node %s stopped (%s)", name, how)
            return
        now = trio.current_time()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - self.group.max_seconds:
            self.deaths.popleft()
        if len(self.deaths) > self.group.max_restarts:
            logger.error(
                "node %s %s, and nodes died %d times within %s s (more than --max-restarts "
                "%d): giving up, stopping every node",
                name,
                how,
                len(self.deaths),
                self.group.max_seconds,
                self.group.max_restarts,
            )
            self.status = 1
            self._stop(nursery)
            return
        if process.returncode == 0:
            logger.warning(
                "node %s %s; starting it again in %s s unless the parent is stopped meanwhile",
                name,
                how,
                _CLEAN_EXIT_GRACE,
            )
            nursery.start_soon(self._restart_later, name)
        else:
            logger.warning("node %s %s; starting it again", name, how)
            await self._start(nursery, name)

    async def _restart_later(self, name: str) -> None:
        await trio.sleep(_CLEAN_EXIT_GRACE)
        self.send.send_nowait(_Restart(name))

    async def _start(self, nursery: trio.Nursery, name: str) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = await trio.lowlevel.open_process(
                list(self.group.command(name, theirs.fileno())),
                pass_fds=(theirs.fileno(),),
                process_group=0,
                env=self.group.env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        logger.info("started node %s (pid %d)", name, process.pid)
        self.running[name] = process
        nursery.start_soon(self._watch, name, process, trio.socket.from_stdlib_socket(ours))

    async def _watch(
        self, name: str, process: trio.Process, control: trio.socket.SocketType
    ) -> None:
        """Report the node's ``ready`` lines, then its exit (whatever holds the socket)."""
        with control:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_control, name, process, control)
                await process.wait()
                nursery.cancel_scope.cancel()
        self.send.send_nowait(_Exited(name, process))

    async def _read_control(
        self, name: str, process: trio.Process, control: trio.socket.SocketType
    ) -> None:
        buffer = b""
        while chunk := await control.recv(4096):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                word, _, fingerprint = line.partition(b" ")
                if word == READY:
                    self.send.send_nowait(_Ready(name, process, fingerprint.decode()))

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            self.send.send_nowait(_Signal(signum))

    def _stop(self, nursery: trio.Nursery) -> None:
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        nursery.start_soon(self._stop_timer)

    async def _stop_timer(self) -> None:
        await trio.sleep(self.group.stop_timeout)
        self.send.send_nowait(_StopTimeout())

    def _signal_all(self, signum: int) -> None:
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)


def _how(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"
