"""Multi-node tests: a Redis server the test owns, and beam nodes as separate OS processes.

``redis_server()`` starts ``redis-server`` on a free port (no persistence) and can kill and
restart it on the same port. ``start_node(url, name)`` runs this module as a node program in
a child Python process: it opens a beam node, joins the cluster's PubSub through Redis and
obeys one JSON command per line on stdin, answering and reporting events as JSON lines on
stdout (log records of ``beam.cluster`` included). Every wait has a hard timeout::

    with redis_server() as redis:
        async with start_node(redis.url, "a") as a, start_node(redis.url, "b") as b:
            await b.call("subscribe", topic="room")
            await a.call("broadcast", topic="room", msg="hi")
            await b.expect("message", msg="'hi'")

Commands (``call(op, **args)`` returns the answer's fields, raising if the node reports an
error): ``subscribe`` (topic) starts a process that reports each message it receives as a
``message`` event (``repr`` of the message); ``broadcast``, ``local_broadcast`` (topic, msg; a
list arrives as a tuple), ``direct_broadcast`` (node, topic, msg); ``ping``; ``nodes`` (answers
``nodes``, the list ``beam.nodes()``); ``echo`` (name) registers a process that answers each
``(pid, *rest)`` with ``("echo", its own pid, *rest)`` to that pid; ``kill`` (name) kills the
process registered as *name* and waits until it is gone; ``sink`` (name) starts a process that
reports each message it gets as a ``message`` event with ``topic`` its *name*; ``send`` (sink,
name, node, msg, count) has that sink send ``(its pid, msg, i)`` for each i in ``range(count)``
to ``(name, node)`` (``(its pid, msg)`` if count is 1); ``send_last`` (sink, msg) has it send
``(its pid, msg)`` to the second field of the last message it got (the pid of the echo that
answered it). ``run`` (fn, args) imports ``fn`` (``"package.module:function"``), awaits
``function(**args)`` in the command loop's process and answers its JSON-able result as
``result``: each test module keeps its node-side steps to itself this way (spawn what must
outlive the command; report later events with :func:`emit`).

``start_node(..., heartbeat=, timeout=)`` sets the cluster's heartbeat and timeout, and
``start_node(..., expect_ready=False)`` does not wait for ``ready`` (to see a refusal).
``start_node(..., from_env=True)`` has the node program join through its configuration
instead: ``BEAM_NODE`` and ``BEAM_CLUSTER`` set to *name* and *url*, and a plain
``beam.open_node()`` (the heartbeat and timeout are then the defaults, 1.0 and 5.0 s).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Final

import trio

import beam

REPO_ROOT = Path(__file__).resolve().parents[2]

_FROM_ENV: Final = "-"
_NODE_ENV: Final = "BEAM_NODE"
_CLUSTER_ENV: Final = "BEAM_CLUSTER"

#: The hard limit on any single wait for a node (start-up included).
NODE_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process on a fixed port, which a test can kill and restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait (at most 5 s) until it accepts connections."""
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the server (no goodbye to its clients) and reap it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free port for the duration of the ``with``."""
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


class NodeProcess:
    """The test's end of one node program: send commands, wait for events."""

    def __init__(self, name: str, process: trio.Process) -> None:
        self.name = name
        self.process = process
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._next_id = 0

    async def _read_event(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"node {self.name} exited (code {self.process.poll()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    async def expect(
        self, kind: str, timeout: float = NODE_TIMEOUT, **fields: Any
    ) -> dict[str, Any]:
        """Wait for the next event of *kind* with *fields* not seen by an earlier expect."""
        with trio.fail_after(timeout):
            for event in self.events:
                if _matches(event, kind, fields) and not event.get("_seen"):
                    event["_seen"] = True
                    return event
            while True:
                event = await self._read_event()
                if _matches(event, kind, fields):
                    event["_seen"] = True
                    return event

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send a command and wait for its answer."""
        assert self.process.stdin is not None
        self._next_id += 1
        ident = self._next_id
        line = json.dumps({"op": op, "id": ident, **args}) + "\n"
        await self.process.stdin.send_all(line.encode())
        answer = await self.expect("answer", id=ident)
        if "error" in answer:
            raise RuntimeError(f"node {self.name}: {op} failed: {answer['error']}")
        return answer

    async def drain(self) -> None:
        """Read every event the node has sent so far (sync first with ``ping``)."""
        await self.call("ping")

    def seen(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        """The events of *kind* with *fields* read so far."""
        return [event for event in self.events if _matches(event, kind, fields)]


def _matches(event: dict[str, Any], kind: str, fields: dict[str, Any]) -> bool:
    return event.get("event") == kind and all(event.get(k) == v for k, v in fields.items())


@contextlib.asynccontextmanager
async def start_node(
    url: str,
    name: str,
    *,
    heartbeat: float = 1.0,
    timeout: float = 5.0,
    expect_ready: bool = True,
    from_env: bool = False,
) -> AsyncIterator[NodeProcess]:
    """Run a node program called *name* joined to the cluster at *url*; kill it at the end."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(_NODE_ENV, None)
    env.pop(_CLUSTER_ENV, None)
    if from_env:  # the node program configures itself from BEAM_NODE/BEAM_CLUSTER
        env.update({_NODE_ENV: name, _CLUSTER_ENV: url})
        url = _FROM_ENV
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.support.nodes", url, name, str(heartbeat), str(timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
    )
    node = NodeProcess(name, process)
    try:
        if expect_ready:
            await node.expect("ready")
        yield node
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with trio.move_on_after(5):
            await process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                await stream.aclose()


# -- the node program (run as ``python -m tests.support.nodes URL NAME``) -------------------------


def emit(event: dict[str, Any]) -> None:
    """Report *event* (a JSON-able dict with an ``"event"`` kind) from a node program."""
    _emit(event)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=repr) + "\n")
    sys.stdout.flush()


class _EmitLogs(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _emit({"event": "log", "level": record.levelname, "text": record.getMessage()})


async def _reporter(commander: beam.Pid, topic: str) -> None:
    beam.subscribe(topic)
    beam.send(commander, ("subscribed", topic))
    while True:
        message = await beam.receive()
        _emit({"event": "message", "topic": topic, "msg": repr(message)})


async def _echo() -> None:
    while True:
        message = await beam.receive()
        if type(message) is tuple and len(message) >= 1 and type(message[0]) is beam.Pid:
            beam.send(message[0], ("echo", beam.self(), *message[1:]))


_SEND: Final = "tests.support.nodes.send"


async def _sink(commander: beam.Pid, name: str) -> None:
    beam.send(commander, ("sink", name, beam.self()))
    last: beam.Pid | None = None
    while True:
        message = await beam.receive()
        if type(message) is tuple and message[:1] == (_SEND,):
            _, dest, payload, count = message
            if dest is None:
                dest = last
            for i in range(count):  # from this process: the order to check
                beam.send(dest, (beam.self(), payload, i) if count > 1 else (beam.self(), payload))
            continue
        if type(message) is tuple and len(message) >= 2 and type(message[1]) is beam.Pid:
            last = message[1]
        _emit({"event": "message", "topic": name, "msg": repr(message)})


def _is_sink_of(name: str) -> Callable[[Any], bool]:
    return lambda message: type(message) is tuple and message[:2] == ("sink", name)


def _is_down(ref: beam.Ref) -> Callable[[Any], bool]:
    return lambda message: type(message) is beam.Down and message.ref == ref


def _is(expected: Any) -> Callable[[Any], bool]:
    return lambda message: bool(message == expected)


def _value(raw: Any) -> Any:
    return tuple(_value(item) for item in raw) if isinstance(raw, list) else raw


async def _node_main(url: str, name: str, heartbeat: float, timeout: float) -> None:
    handler = _EmitLogs()
    logging.getLogger("beam").addHandler(handler)
    logging.getLogger("beam").setLevel(logging.INFO)
    sinks: dict[str, beam.Pid] = {}
    if url == _FROM_ENV:  # beam.open_node() reads BEAM_NODE and BEAM_CLUSTER
        try:
            async with beam.open_node():
                await _serve(sinks)
        except beam.cluster.NodeNameTaken as error:
            _emit({"event": "refused", "error": str(error)})
        return
    async with beam.open_node():
        try:
            await beam.cluster.start_pubsub(
                url, node=name, wait=5.0, warn_interval=0.5, heartbeat=heartbeat, timeout=timeout
            )
        except beam.cluster.NodeNameTaken as error:
            _emit({"event": "refused", "error": str(error)})
            return
        await _serve(sinks)


async def _serve(sinks: dict[str, beam.Pid]) -> None:
    """Obey the commands read on stdin, one JSON object a line (see the module's doc)."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    buffer = b""
    _emit({"event": "ready", "node": beam.node_name()})
    while True:
        while b"\n" not in buffer:
            chunk = await stdin.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        command = json.loads(line)
        answer: dict[str, Any] = {"event": "answer", "id": command["id"]}
        try:
            op = command["op"]
            if op == "subscribe":
                beam.spawn(_reporter, beam.self(), command["topic"])
                await beam.receive(_is(("subscribed", command["topic"])), timeout=5)
            elif op == "broadcast":
                beam.broadcast(command["topic"], _value(command["msg"]))
            elif op == "local_broadcast":
                beam.local_broadcast(command["topic"], _value(command["msg"]))
            elif op == "direct_broadcast":
                beam.direct_broadcast(command["node"], command["topic"], _value(command["msg"]))
            elif op == "nodes":
                answer["nodes"] = beam.nodes()
            elif op == "echo":
                beam.register(command["name"], beam.spawn(_echo))
            elif op == "kill":
                target = beam.whereis(command["name"])
                assert target is not None
                gone = beam.monitor(target)
                beam.exit(target, "kill")
                await beam.receive(_is_down(gone), timeout=5)
            elif op == "sink":
                sink_name = command["name"]
                beam.spawn(_sink, beam.self(), sink_name)
                _, _, sinks[sink_name] = await beam.receive(_is_sink_of(sink_name), timeout=5)
            elif op == "send":
                dest = (command["name"], command["node"])
                msg = (_SEND, dest, _value(command["msg"]), command.get("count", 1))
                beam.send(sinks[command["sink"]], msg)
            elif op == "send_last":
                beam.send(sinks[command["sink"]], (_SEND, None, _value(command["msg"]), 1))
            elif op == "run":
                module_name, _, function_name = command["fn"].partition(":")
                function = getattr(importlib.import_module(module_name), function_name)
                answer["result"] = await function(**command.get("args", {}))
            elif op != "ping":
                raise ValueError(f"unknown command {op!r}")
        except Exception as error:
            answer["error"] = f"{type(error).__name__}: {error}"
        _emit(answer)


if __name__ == "__main__":
    trio.run(_node_main, sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
