"""Nothing is lost when processes die on two nodes and one whole node is SIGKILLed.

The chat runs on two nodes, each ``python -m web`` serving it on a port of its own in one
cluster (a Redis the test owns) over one PostgreSQL database (of the test's own). Bots, half
of them at home on each node, chat in two rooms each over Channels, a client id on every
message, and wait for each ack; a chat page (LiveView) stays open on each node. Meanwhile a
seeded chaos loop kills, on both nodes at random, the processes the single-node chaos test
kills (room channels, LiveViews, socket transports, PubSub topic processes, database
connection actors, the presence tracker) and the chat's rate limiter (one node's holds the
cluster's global name). Part-way through, one node is SIGKILLed: its bots
reconnect to the survivor and send again what was not acknowledged; then the node is started
again (same name, a new incarnation) and bots go back to it whenever they reconnect. At the
end:

* every acknowledged message is stored exactly once, and nothing else is stored (each bot
  sends until its last message is acknowledged);
* every bot saw every message of its rooms (pushed live, or in the history a join pushes),
  and a join on either node pushes the latest messages exactly as the database has them
  (a message the killed node acknowledged in its last moments included: the chat
  acknowledges only once its broadcast has left the node, ``beam.cluster.flush``);
* after the SIGKILL the survivor stops showing the dead node's presences within
  ``down_period`` plus a broadcast period (and then shows every bot once), and at the end
  both nodes show every bot once in each of its rooms;
* both nodes and their chat trees are alive.

Each node serves :func:`endpoint`: the chat as ``examples.chat.serve`` builds it, with
control routes for the test (``/_chaos/...``: seed the bots, kill a random process, read
presence) and a presence tracker of short periods (:data:`BROADCAST_PERIOD`,
:data:`DOWN_PERIOD`) in place of the chat's, which keeps Phoenix's (a broadcast every 1.5 s,
down after 30 s). The nodes' logs are summed up at the end.

It runs ``BEAM_CHAOS_CLUSTER_SECONDS`` seconds of load (20 by default), seeded by
``BEAM_CHAOS_CLUSTER_SEED`` (7).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import trio
from wsproto.utilities import ProtocolError

import beam
import presence
import web
from examples.chat import chaos, serve
from examples.chat.accounts import hash_off_loop
from examples.chat.live import HISTORY
from examples.chat.model import Chat, Room, User
from supervisors import ChildSpec, Supervisor

from ..support import wsclient
from ..support.backends import PG_URL, pg_engine
from ..support.chat import sign_in, socket_token
from ..support.http import http
from ..support.nodes import REPO_ROOT, free_port, redis_server

#: Bots in all; bot *i* is at home on node ``i % 2`` and chats in two of :data:`ROOMS`.
BOTS = 16
ROOMS = ("lobby", "random", "ops")
PASSWORD = "chaos-password"
#: The presence tracker's periods on the nodes (s): down after ``2 * 3`` silent broadcasts.
BROADCAST_PERIOD = 0.5
MAX_SILENT_PERIODS = 3
DOWN_PERIOD = BROADCAST_PERIOD * MAX_SILENT_PERIODS * 2
#: Allowance for polling and a busy machine on top of the bounds the test checks (s).
SLACK = 1.0
#: How long every bot may take to be connected and present again, after the SIGKILL and at
#: the end (the machine may be busy; it takes a second or two).
REJOIN_TIMEOUT = 30.0
#: How long a bot waits for any one reply before it gives the connection up (s).
REPLY_TIMEOUT = 10.0
#: The module whose :func:`endpoint` the nodes serve (this one).
STEPS = __name__
APP = "chat.sup"
TRACKER_ID = "Tracker"

# -- node side: the app each node serves (``python -m web <this module>:endpoint``) -------------


async def endpoint() -> web.Endpoint:
    """The chat as ``python -m web examples.chat.serve:endpoint`` serves it, with this test's
    presence periods and its control routes (``/_chaos/...``, JSON in and out): ``seed``,
    ``kill``, ``presence`` and ``alive``, each answered by the functions below."""
    chat = await serve.endpoint()
    await _short_presence_periods()
    chat.route("POST", "/_chaos/seed", _json_route(lambda body: seed(**body)))
    chat.route("POST", "/_chaos/kill", _json_route(lambda body: kill_one(**body)))
    chat.route("POST", "/_chaos/presence", _json_route(lambda body: presence_counts(**body)))
    chat.route("POST", "/_chaos/alive", _json_route(lambda body: alive()))
    return chat


def _json_route(
    step: Callable[[dict[str, Any]], Awaitable[Any]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        result = await step(json.loads(request.body or b"{}"))
        body = json.dumps(result).encode()
        return web.Response(200, body, (("content-type", "application/json"),))

    return handle


async def _short_presence_periods() -> None:
    """Replace the chat's tracker with one of this test's periods (before anyone joins)."""
    start = functools.partial(
        presence.Tracker.start_link,
        broadcast_period=BROADCAST_PERIOD,
        max_silent_periods=MAX_SILENT_PERIODS,
    )
    await Supervisor.terminate_child(APP, TRACKER_ID)
    await Supervisor.delete_child(APP, TRACKER_ID)
    await Supervisor.start_child(APP, ChildSpec(TRACKER_ID, start, (None,)))


async def seed(bots: list[str], password: str) -> dict[str, str]:
    """Register the bots and open the rooms of :data:`ROOMS` that the demo lacks; answer
    each room's id by name."""
    alice = (await Chat.read(User, filter={"username": "alice"}))[0]
    for name in bots:
        await Chat.register(name, await hash_off_loop(password))
    found = {room.name: room for room in await Chat.read(Room, actor=alice)}
    for name in ROOMS:
        if name not in found:
            found[name] = await Chat.open_room(name, actor=alice)
    return {name: str(found[name].id) for name in ROOMS}


async def kill_one(seed: int, restart_allowed: bool) -> list[str] | None:
    """Kill one of the chat's processes of this node, picked by :func:`chaos.pick` with a
    generator seeded by *seed*; answer ``[kind, pid]``, or ``None`` when nothing qualified."""
    found = chaos.pick(random.Random(seed), restart_allowed=restart_allowed, kinds=chaos.KINDS)
    if found is None:
        return None
    kind, victim = found
    beam.exit(victim, "kill")
    return [kind, str(victim)]


async def presence_counts(topics: list[str]) -> dict[str, dict[str, int]]:
    """How many presences (metas) each key has in each of *topics*, as this node sees them."""
    return {
        topic: {key: len(entry["metas"]) for key, entry in presence.list(topic).items()}
        for topic in topics
    }


async def alive() -> bool:
    """Whether the chat's application supervisor runs."""
    return beam.whereis(APP) is not None


# -- test side: the database, the nodes ----------------------------------------------------


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A PostgreSQL database of the test's own (dropped afterwards); its URL."""
    engine = pg_engine()
    if engine is None:
        pytest.skip("PostgreSQL is not reachable")
    engine.dispose()
    name = f"chat_chaos_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql, args).fetchall()


async def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of *sql* on the database at *url*, on a worker thread."""
    return await trio.to_thread.run_sync(_query, url, sql, *args)


class ChatNode:
    """One chat node: ``python -m web <this module>:endpoint --name NAME --port PORT`` in the
    cluster, its output in a log file per incarnation; ``process`` is ``None`` while it is
    down."""

    def __init__(self, name: str, redis: str, database: str, data_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "DATABASE_URL": database,
            "CHAT_DATA_DIR": str(data_dir),
            "CHAT_DEMO": "1",
            "CHAT_RATE_LIMITS": "message=1000000/60,api=100000/60",
            "BEAM_CLUSTER": redis,
            "PYTHONUNBUFFERED": "1",
        }
        self.process: trio.Process | None = None
        self.processes: list[trio.Process] = []  # every incarnation's, to reap at the end
        self.logs: list[Path] = []

    @property
    def up(self) -> bool:
        return self.process is not None

    async def start(self) -> None:
        """Start the node (it asks again for its name while a killed incarnation holds it)
        and wait until the chat answers over HTTP."""
        log = self.data_dir / f"{self.name}.{len(self.logs) + 1}.log"
        self.logs.append(log)
        argv = [sys.executable, "-m", "web", f"{STEPS}:endpoint", "--name", self.name]
        argv += ["--port", str(self.port), "--name-wait", "30"]
        with log.open("wb") as output:
            process = await trio.lowlevel.open_process(
                argv, cwd=REPO_ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        request = b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        with trio.move_on_after(90) as waited:
            while process.poll() is None:
                with contextlib.suppress(OSError):
                    if (await http(self.port, request))[0] == 200:
                        break
                await trio.sleep(0.1)
        if waited.cancelled_caught or process.poll() is not None:
            raise AssertionError(f"{self.name} did not start:\n{log.read_text()[-3000:]}")
        self.process = process

    async def call(self, step: str, **args: Any) -> Any:
        """POST *args* to the node's ``/_chaos/<step>``; the JSON answer."""
        body = json.dumps(args).encode()
        head = f"POST /_chaos/{step} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        status, _, answer = await http(self.port, head.encode() + body)
        assert status == 200, (self.name, step, status, answer[:500])
        return json.loads(answer)

    def sigkill(self) -> None:
        """SIGKILL the node (it says nothing to anyone) and mark it down."""
        assert self.process is not None
        self.process.kill()
        self.process = None

    async def stop(self) -> None:
        """End every incarnation still running (SIGTERM, then SIGKILL after 10 s)."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        with trio.move_on_after(10):
            for process in self.processes:
                await process.wait()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                await process.wait()
        self.process = None

    def problems(self) -> Counter[str]:
        """The warnings and errors the node logged (all incarnations), numbers blurred."""
        found: Counter[str] = Counter()
        for log in self.logs:
            for line in log.read_text(errors="replace").splitlines():
                matched = re.match(r"\[[^]]+\] (WARNING|ERROR|CRITICAL) (\S+): (.*)", line)
                if matched:
                    text = re.sub(r"<[\d.]+>|\d+", "N", matched.group(3))[:110]
                    found[f"{matched.group(1)} {matched.group(2)}: {text}"] += 1
        return found


# -- test side: the clients ----------------------------------------------------------------


class _Lost(Exception):
    """The connection went away (or stopped answering)."""


#: What a client meets when its connection goes: closed, reset, refused, cut off in the
#: middle of the handshake (the node or the connection's process was killed), too slow.
LOST = (
    wsclient.Closed,
    trio.TooSlowError,
    trio.BrokenResourceError,
    OSError,
    ProtocolError,
)


class Link:
    """One WebSocket speaking the Phoenix protocol: replies to the requests waiting for them,
    everything else to *on_push*. :meth:`read` runs as a task for the link's lifetime."""

    def __init__(self, client: wsclient.Client, on_push: Callable[[list[Any]], None]) -> None:
        self.client = client
        self.on_push = on_push
        self.refs = 0
        self.waiting: dict[str, tuple[str, str | None, trio.Event]] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.lost = trio.Event()

    def ref(self) -> str:
        self.refs += 1
        return str(self.refs)

    async def read(self) -> None:
        try:
            while True:
                frame = json.loads(await self.client.receive())
                join_ref, ref, topic, event, payload = frame
                if event == "phx_reply" and ref in self.waiting:
                    self.replies[ref] = payload
                    self.waiting.pop(ref)[2].set()
                    continue
                self.on_push(frame)
                if event in ("phx_error", "phx_close"):  # its channel is gone: no replies
                    for waiting_ref, (where, joined, done) in list(self.waiting.items()):
                        if where == topic and joined == join_ref:
                            self.replies[waiting_ref] = {"status": "error", "response": {}}
                            self.waiting.pop(waiting_ref)
                            done.set()
        except (
            *LOST,
            trio.ClosedResourceError,
            trio.BusyResourceError,  # answering the server's close while a request goes out
        ):
            pass
        finally:
            self.lost.set()
            for _, _, done in self.waiting.values():
                done.set()

    async def call(self, frame: list[Any]) -> dict[str, Any]:
        """Send *frame* (``[join_ref, ref, topic, event, payload]``) and wait for its reply;
        :class:`_Lost` if the connection goes or it takes longer than :data:`REPLY_TIMEOUT`."""
        join_ref, ref, topic = frame[0], frame[1], frame[2]
        if self.lost.is_set():  # the reader is gone: nobody would answer
            raise _Lost()
        done = trio.Event()
        self.waiting[ref] = (topic, join_ref, done)
        try:
            await self.client.send(json.dumps(frame))
        except (
            *LOST,
            trio.ClosedResourceError,
            trio.BusyResourceError,  # the reader is answering the server's close
        ) as error:
            raise _Lost() from error
        with trio.move_on_after(REPLY_TIMEOUT):
            await done.wait()  # set by the reader: a reply, its channel's end, or its own
        self.waiting.pop(ref, None)
        if ref not in self.replies:
            raise _Lost()
        return self.replies.pop(ref)


class Bot:
    """A chatty client of two rooms: sends one message at a time and waits for its ack,
    recovers from whatever happens (rejoins a crashed channel, reconnects to its home node,
    else to the other one), sends again what was not acknowledged, and keeps every message
    of its rooms it is shown."""

    def __init__(
        self, name: str, token: str, nodes: list[ChatNode], topics: list[str], seed: int
    ) -> None:
        self.name = name
        self.token = token
        self.nodes = nodes  # home first
        self.topics = topics
        self.rng = random.Random(seed)
        self.seen: dict[str, set[str]] = {topic: set() for topic in topics}
        self.join_refs: dict[str, str | None] = dict.fromkeys(topics)
        self.tracked: dict[str, bool] = dict.fromkeys(topics, False)
        self.acked: list[tuple[str, str]] = []
        self.pending: tuple[str, str] | None = None
        self.pending_since = 0.0
        #: (when it was first sent, how long until its ack) of every acknowledged message
        self.latencies: list[tuple[float, float]] = []
        self.sent = 0
        self.node: str | None = None
        self.connections: Counter[str] = Counter()
        self.recoveries = 0
        self.rejoins = 0
        self.overflows = 0
        self.sending = True
        self.settled = trio.Event()
        #: What happened to the bot, when: for the story of a message it missed.
        self.timeline: list[tuple[float, str]] = []
        #: client id -> (when its ack came, the node that sent it)
        self.acked_at: dict[str, tuple[float, str | None]] = {}

    def note(self, what: str) -> None:
        self.timeline.append((trio.current_time(), what))

    def on_push(self, frame: list[Any]) -> None:
        join_ref, _, topic, event, payload = frame
        if topic not in self.seen:
            return
        if event == "history":
            ids = [m["client_id"] for m in payload["messages"]]
            if self.seen[topic] and len(ids) >= HISTORY and ids[0] not in self.seen[topic]:
                self.overflows += 1  # it may have missed older messages than these
            self.seen[topic].update(ids)
        elif event == "new_message":
            self.seen[topic].add(payload["client_id"])
        elif event == "presence_state" and join_ref == self.join_refs[topic]:
            self.tracked[topic] = True
            self.note(f"joined {topic[5:13]}")
        elif event in ("phx_error", "phx_close") and join_ref == self.join_refs[topic]:
            self.join_refs[topic] = None
            self.tracked[topic] = False
            self.note(f"{event} {topic[5:13]}")

    def _forget_joins(self) -> None:
        self.join_refs = dict.fromkeys(self.topics)
        self.tracked = dict.fromkeys(self.topics, False)

    async def run(self) -> None:
        attempt = 0
        while True:
            node = self.nodes[attempt % len(self.nodes)]
            connected = False
            try:
                path = f"/socket/websocket?vsn=2.0.0&token={self.token}"
                async with wsclient.connect(node.port, path) as client:
                    connected = True
                    link = Link(client, self.on_push)
                    self.node = node.name
                    self.connections[node.name] += 1
                    self.note(f"connected to {node.name}")
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(link.read)
                        with contextlib.suppress(_Lost):
                            await self._session(link)
                        nursery.cancel_scope.cancel()
            except LOST:
                pass
            except wsclient.Rejected as refused:
                if refused.status < 500:
                    raise  # refused for a reason (a 403): that is a failure
            self.node = None
            self._forget_joins()
            if connected:
                self.note("connection lost")
            self.recoveries += 1
            attempt = 0 if connected else attempt + 1  # home first after a lost connection
            await trio.sleep(0.02)

    async def _join(self, link: Link, topic: str) -> None:
        while self.join_refs[topic] is None or not self.tracked[topic]:
            ref = link.ref()
            self.join_refs[topic], self.tracked[topic] = ref, False
            reply = await link.call([ref, ref, topic, "phx_join", {}])
            if reply["status"] != "ok":
                self.join_refs[topic] = None
                await trio.sleep(0.02)
                continue
            with trio.move_on_after(REPLY_TIMEOUT):
                while self.join_refs[topic] == ref and not self.tracked[topic]:
                    if link.lost.is_set():
                        raise _Lost()
                    await trio.sleep(0.01)
            if not self.tracked[topic]:  # crashed after the join (its history read, say)
                self.join_refs[topic] = None
                self.rejoins += 1

    async def _session(self, link: Link) -> None:
        for topic in self.topics:
            await self._join(link, topic)
        while True:
            if not self.sending and self.pending is None:
                self.settled.set()  # stay connected and present, rejoining if need be
                with trio.move_on_after(0.05):
                    await link.lost.wait()
                if link.lost.is_set():
                    raise _Lost()
                for topic in self.topics:
                    if self.join_refs[topic] is None or not self.tracked[topic]:
                        await self._join(link, topic)
                continue
            if self.pending is None:
                topic = self.topics[self.sent % len(self.topics)]
                self.pending = (topic, f"{self.name}-{self.sent}")
                self.pending_since = trio.current_time()
                self.sent += 1
            topic, client_id = self.pending
            if self.join_refs[topic] is None or not self.tracked[topic]:
                self.rejoins += 1
                await self._join(link, topic)
            join_ref = self.join_refs[topic]
            payload = {"content": f"message {client_id}", "client_id": client_id}
            reply = await link.call([join_ref, link.ref(), topic, "new_message", payload])
            if reply["status"] == "ok":
                assert reply["response"]["client_id"] == client_id, reply
                self.acked.append(self.pending)
                self.acked_at[client_id] = (trio.current_time(), self.node)
                self.seen[topic].add(client_id)
                now = trio.current_time()
                self.latencies.append((self.pending_since, now - self.pending_since))
                self.pending = None
                await trio.sleep(self.rng.uniform(0.05, 0.2))
            elif self.join_refs[topic] == join_ref:  # refused (the database failed): rejoin
                self.join_refs[topic] = None


class ServerError(Exception):
    """A 5xx while a process the request needed was being killed: a person would reload."""


class Watcher:
    """An open chat page (LiveView, as the official client speaks it), rejoining whenever its
    view dies, reloading from its home node, else the other one, when the connection goes."""

    def __init__(self, name: str, nodes: list[ChatNode], cookie: str) -> None:
        self.name = name
        self.nodes = nodes
        self.cookie = cookie
        self.mounts = 0
        self.crashes = 0
        self.refs = 0

    async def run(self) -> None:
        attempt = 0
        while True:
            port = self.nodes[attempt % len(self.nodes)].port
            connected = False
            try:
                csrf, element, session = await self._dead_render(port)
                path = f"/live/websocket?_csrf_token={quote(csrf)}&vsn=2.0.0"
                cookie = [(b"cookie", self.cookie.encode())]
                async with wsclient.connect(port, path, headers=cookie) as client:
                    connected = True
                    topic = f"lv:{element}"
                    while True:
                        await self._mount(client, topic, session)
                        await self._until_crash(client, topic)
            except (*LOST, ServerError):
                pass
            except wsclient.Rejected as refused:
                if refused.status < 500:
                    raise
            attempt = 0 if connected else attempt + 1
            await trio.sleep(0.05)

    async def _dead_render(self, port: int) -> tuple[str, str, str]:
        request = f"GET / HTTP/1.1\r\nhost: x\r\ncookie: {self.cookie}\r\n"
        try:
            status, _, body = await http(port, (request + "connection: close\r\n\r\n").encode())
        except (IndexError, ValueError) as cut:  # the node died mid-answer
            raise ServerError(0) from cut
        if status >= 500:
            raise ServerError(status)
        assert status == 200, status
        page = body.decode()
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
        main = re.search(r'<div id="(phx-[^"]+)" data-phx-main data-phx-session="([^"]+)"', page)
        assert csrf is not None
        assert main is not None
        return csrf.group(1), main.group(1), main.group(2)

    async def _mount(self, client: wsclient.Client, topic: str, session: str) -> None:
        while True:
            self.refs += 1
            ref = str(self.refs)
            join = {"url": "http://x/", "session": session, "params": {}}
            await client.send(json.dumps([ref, ref, topic, "phx_join", join]))
            with trio.fail_after(REPLY_TIMEOUT):
                while True:
                    frame = json.loads(await client.receive())
                    if frame[3] == "phx_reply" and frame[1] == ref:
                        break
            if frame[4]["status"] == "ok":
                self.mounts += 1
                return
            await trio.sleep(0.05)

    async def _until_crash(self, client: wsclient.Client, topic: str) -> None:
        while True:
            frame = json.loads(await client.receive())
            if frame[2] == topic and frame[3] in ("phx_error", "phx_close"):
                self.crashes += 1
                return


# -- test side: the chaos --------------------------------------------------------------------


class Chaos:
    """Random kills on every node that is up, one every 50 to 250 ms, until paused."""

    def __init__(self, nodes: list[ChatNode], seed: int) -> None:
        self.nodes = nodes
        self.rng = random.Random(seed)
        self.kills: Counter[tuple[str, str]] = Counter()
        self.paused = False
        self.gate = trio.Lock()  # held while one kill is under way
        self._last_restart: dict[str, float] = {}

    async def pause(self) -> None:
        async with self.gate:
            self.paused = True

    def resume(self) -> None:
        self.paused = False

    async def run(self) -> None:
        while True:
            await trio.sleep(self.rng.uniform(0.05, 0.25))
            async with self.gate:
                up = [node for node in self.nodes if node.up]
                if self.paused or not up:
                    continue
                node = self.rng.choice(up)
                now = trio.current_time()
                # Supervisors allow 10 restarts in 5 s: a database actor, the tracker or the
                # rate limiter at most every 1.5 s per node keeps each tree well inside that.
                allowed = now - self._last_restart.get(node.name, -10.0) > 1.5
                found = await node.call(
                    "kill", seed=self.rng.getrandbits(32), restart_allowed=allowed
                )
            if found is not None:
                kind = found[0]
                self.kills[node.name, kind] += 1
                if kind in chaos.SUPERVISED:
                    self._last_restart[node.name] = now


def expected_presence(bots: list[Bot], topics: list[str]) -> dict[str, Counter[str]]:
    """Per topic, how many presences each bot should have: one per channel it has joined
    (and been tracked in)."""
    return {
        topic: Counter(
            bot.name
            for bot in bots
            if bot.node is not None and topic in bot.tracked and bot.tracked[topic]
        )
        for topic in topics
    }


async def presence_of_bots(
    node: ChatNode, topics: list[str], names: set[str]
) -> dict[str, Counter[str]]:
    """Per topic, how many presences each bot has as *node* sees them."""
    counts = await node.call("presence", topics=topics)
    return {
        topic: Counter({key: n for key, n in counts[topic].items() if key in names})
        for topic in topics
    }


async def dead_presences_gone(
    survivor: ChatNode, bots: list[Bot], topics: list[str], deadline: float
) -> float:
    """Wait until *survivor* shows no presence of the dead node: no bot has more presences
    in a room than it has joins there on the survivor (bots may still be rejoining); the time
    that took. Fails at *deadline*."""
    names = {bot.name for bot in bots}
    start = trio.current_time()
    excess: dict[str, dict[str, int]] = {}
    with trio.move_on_at(deadline):
        while True:
            live = {
                topic: Counter(
                    bot.name
                    for bot in bots
                    if bot.node == survivor.name and bot.tracked.get(topic, False)
                )
                for topic in topics
            }
            seen = await presence_of_bots(survivor, topics, names)
            excess = {topic[5:13]: dict(seen[topic] - live[topic]) for topic in topics}
            if not any(excess.values()):
                return trio.current_time() - start
            await trio.sleep(0.1)
    raise AssertionError(
        f"{survivor.name} still shows presences of the dead node (extra presences by room "
        f"and bot): {excess}"
    )


async def settle_presence(
    nodes: list[ChatNode], bots: list[Bot], topics: list[str], deadline: float
) -> float:
    """Wait until every node of *nodes* shows each bot exactly once in each room it is in,
    with every bot connected and joined; the time that took. Fails at *deadline*."""
    names = {bot.name for bot in bots}
    here = {node.name for node in nodes}
    want = {topic: Counter(bot.name for bot in bots if topic in bot.topics) for topic in topics}
    seen: dict[str, Any] = {}
    start = trio.current_time()
    with trio.move_on_at(deadline):
        while True:
            # every bot is connected to one of these nodes and tracked in all its rooms
            ok = all(bot.node in here for bot in bots)
            ok = ok and expected_presence(bots, topics) == want
            for node in nodes:
                seen[node.name] = await presence_of_bots(node, topics, names)
                ok = ok and seen[node.name] == want
            if ok:
                return trio.current_time() - start
            await trio.sleep(0.1)
    differences = {  # node -> topic -> bot -> (presences wanted, presences seen)
        node: {
            topic[5:13]: {key: (want[topic][key], got[key]) for key in want[topic] | got}
            for topic, got in counts.items()
            if got != want[topic]
        }
        for node, counts in seen.items()
    }
    not_joined = [
        (b.name, b.node) for b in bots if b.node not in here or not all(b.tracked.values())
    ]
    raise AssertionError(
        f"presence did not settle: (wanted, seen) by node, room and bot {differences}, bots "
        f"not joined {not_joined}"
    )


async def check_history(bot: Bot, node: ChatNode, expected: dict[str, list[str]]) -> None:
    """Join the bot's rooms on *node* afresh: the history each pushes is the database's."""
    path = f"/socket/websocket?vsn=2.0.0&token={bot.token}"
    async with wsclient.connect(node.port, path) as client:
        for i, topic in enumerate(bot.topics):
            ref = str(i + 1)
            await client.send(json.dumps([ref, ref, topic, "phx_join", {}]))
        got: dict[str, list[str]] = {}
        with trio.fail_after(REPLY_TIMEOUT):
            while len(got) < len(bot.topics):
                frame = json.loads(await client.receive())
                if frame[3] == "history":
                    got[frame[2]] = [m["client_id"] for m in frame[4]["messages"]]
    for topic in bot.topics:
        assert got[topic] == expected[topic], (bot.name, node.name, topic)


# -- the test ----------------------------------------------------------------------------------


async def test_nothing_is_lost_on_two_nodes_while_processes_and_a_node_are_killed(
    tmp_path: Path,
) -> None:
    seconds = float(os.environ.get("BEAM_CHAOS_CLUSTER_SECONDS", "20"))
    seed = int(os.environ.get("BEAM_CHAOS_CLUSTER_SEED", "7"))
    rng = random.Random(seed)
    with trio.fail_after(seconds + 300), redis_server() as redis, fresh_database() as database:
        nodes = [ChatNode(f"chat{i}", redis.url, database, tmp_path) for i in (1, 2)]
        try:
            for node in nodes:  # one after the other: the first migrates and seeds
                await node.start()
            await _chaos_run(nodes, database, seconds, seed, rng)
        finally:
            with trio.CancelScope(shield=True):
                for node in nodes:
                    await node.stop()


async def _chaos_run(
    nodes: list[ChatNode], database: str, seconds: float, seed: int, rng: random.Random
) -> None:
    names = [f"bot{i:02d}" for i in range(BOTS)]
    rooms = await nodes[0].call("seed", bots=names, password=PASSWORD)
    topics = [f"room:{rooms[name]}" for name in ROOMS]
    bots: list[Bot] = []
    for i, name in enumerate(names):
        home = nodes[i % 2]
        token = (await socket_token(home.port, name, PASSWORD))["token"]
        mine = [topics[i % len(topics)], topics[(i + 1) % len(topics)]]
        bots.append(Bot(name, token, _home_first(nodes, home), mine, rng.getrandbits(32)))
    watchers = [
        Watcher(user, _home_first(nodes, home), await sign_in(home.port, user))
        for user, home in zip(("alice", "bob"), nodes, strict=True)
    ]
    chaos_loop = Chaos(nodes, rng.getrandbits(32))
    victim = rng.choice(nodes)
    survivor = next(node for node in nodes if node is not victim)
    figures: dict[str, float] = {}

    async def kill_a_node() -> None:
        await trio.sleep(seconds * 0.4)
        await chaos_loop.pause()  # a quiet survivor, to see presence settle
        victim.sigkill()
        killed = figures["killed"] = trio.current_time()
        deadline = killed + DOWN_PERIOD + BROADCAST_PERIOD + SLACK
        figures["presence"] = await dead_presences_gone(survivor, bots, topics, deadline)
        deadline = killed + REJOIN_TIMEOUT
        figures["rejoined"] = await settle_presence([survivor], bots, topics, deadline)
        chaos_loop.resume()
        await victim.start()
        figures["restart"] = trio.current_time() - killed

    async with trio.open_nursery() as nursery:
        for bot in bots:
            nursery.start_soon(bot.run)
        for watcher in watchers:
            nursery.start_soon(watcher.run)
        nursery.start_soon(chaos_loop.run)
        with trio.fail_after(seconds + 120):
            async with trio.open_nursery() as scenario:
                scenario.start_soon(kill_a_node)
                await trio.sleep(seconds)
            # The node is back: stop the kills, let every bot finish its last send.
            await chaos_loop.pause()
            for bot in bots:
                bot.sending = False
            for bot in bots:
                await bot.settled.wait()
        # Presence: both nodes show each bot once in each of its rooms.
        deadline = trio.current_time() + REJOIN_TIMEOUT
        figures["final presence"] = await settle_presence(nodes, bots, topics, deadline)
        stored = await _check_messages(database, bots, topics, figures["killed"])
        await _check_histories(database, bots, nodes, topics)
        for node in nodes:  # both nodes and their trees are alive
            assert await node.call("alive") is True, node.name
        nursery.cancel_scope.cancel()

    kills = chaos_loop.kills
    for node in nodes:  # the chaos happened, on both nodes
        assert sum(n for (where, _), n in kills.items() if where == node.name) >= 1
    assert sum(kills.values()) > seconds
    assert len(victim.logs) == 2  # it was started again
    moved = [b.name for b in bots if b.nodes[0] is victim and b.connections[survivor.name]]
    assert moved, "no bot of the killed node reconnected to the survivor"
    back = [b.name for b in bots if b.nodes[0] is victim and b.node == victim.name]
    for watcher in watchers:
        assert watcher.mounts >= 1
        assert watcher.mounts >= watcher.crashes
    killed_at = figures["killed"]
    problems: Counter[str] = Counter()
    for node in nodes:
        problems += node.problems()
    print(
        f"\ncluster chaos {seconds:.0f} s (seed {seed}): {sum(len(b.acked) for b in bots)} "
        f"acked, {stored} stored; SIGKILLed {victim.name}: presence settled on "
        f"{survivor.name} in {figures['presence']:.2f} s (bound "
        f"{DOWN_PERIOD + BROADCAST_PERIOD:.1f} s) and showed every bot once "
        f"{figures['rejoined']:.2f} s later, {victim.name} back after "
        f"{figures['restart']:.1f} s; {len(moved)} bots moved, {len(back)} back home at the "
        f"end; final presence settled in {figures['final presence']:.2f} s; "
        f"kills {dict(sorted(kills.items()))}; recoveries {sum(b.recoveries for b in bots)}, "
        f"rejoins {sum(b.rejoins for b in bots)}; ack latency {_latencies(bots, killed_at)}; "
        f"page mounts {[w.mounts for w in watchers]}; "
        "warnings and errors logged:"
    )
    for text, count in problems.most_common():
        print(f"  {count:4d} x {text}")


def _latencies(bots: list[Bot], killed: float) -> str:
    """p50, p99 and max of the bots' ack latencies, and the sends slower than a second (when
    they were sent, relative to the SIGKILL)."""
    latencies = sorted(latency for bot in bots for _, latency in bot.latencies)
    slow = sorted((sent - killed, latency) for b in bots for sent, latency in b.latencies)
    slow = [(sent, latency) for sent, latency in slow if latency > 1.0]
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    shown = ", ".join(f"{latency:.1f} s at {sent:+.1f} s" for sent, latency in slow[:12])
    return (
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1]:.2f} s, "
        f"{len(slow)} over 1 s ({shown})"
    )


def _story(missed: list[str], bot: Bot, bots: list[Bot], killed: float) -> str:
    """When the *missed* messages were acknowledged, and by which node (times relative to
    the SIGKILL), and what happened to *bot* in the two seconds around each."""
    senders = {other.name: other for other in bots}
    told = []
    for client_id in missed:
        when, node = senders[client_id.rsplit("-", 1)[0]].acked_at[client_id]
        around = [f"{at - killed:+.2f} {what}" for at, what in bot.timeline if abs(at - when) < 2.0]
        told.append(f"{client_id} acked at {when - killed:+.2f} s by {node}; {bot.name}: {around}")
    return "; ".join(told)


def _home_first(nodes: list[ChatNode], home: ChatNode) -> list[ChatNode]:
    return [home, *(node for node in nodes if node is not home)]


async def _check_messages(
    database: str, bots: list[Bot], topics: list[str], killed: float
) -> int:
    """Every acknowledged message is stored exactly once, nothing else is, and every bot saw
    every message of its rooms; how many are stored."""
    rows = await query(database, "SELECT room_id::text, author_name, client_id FROM chat_messages")
    stored = Counter((f"room:{room}", author, cid) for room, author, cid in rows)
    twice = [key for key, n in stored.items() if n > 1]
    assert not twice, twice[:5]
    acked = [(topic, bot.name, cid) for bot in bots for topic, cid in bot.acked]
    assert len(acked) == len(set(acked))
    lost, unasked = set(acked) - set(stored), set(stored) - set(acked)
    assert not lost, f"acknowledged but not stored: {sorted(lost)[:5]}"
    assert not unasked, f"stored but never acknowledged: {sorted(unasked)[:5]}"
    by_room: dict[str, set[str]] = {topic: set() for topic in topics}
    for topic, _, cid in stored:
        by_room[topic].add(cid)
    for bot in bots:
        for topic in bot.topics:
            missed = by_room[topic] - bot.seen[topic]
            assert not missed, (
                f"{bot.name} never saw {len(missed)} messages of {topic} "
                f"({_story(sorted(missed)[:3], bot, bots, killed)}); history overflows: "
                f"{bot.overflows}"
            )
            assert bot.seen[topic] <= by_room[topic], bot.name
    return len(stored)


async def _check_histories(
    database: str, bots: list[Bot], nodes: list[ChatNode], topics: list[str]
) -> None:
    """A join on either node pushes the latest messages exactly as the database has them."""
    latest: dict[str, list[str]] = {}
    for topic in topics:
        rows = await query(
            database,
            "SELECT client_id FROM chat_messages WHERE room_id = %s "
            "ORDER BY inserted_at DESC LIMIT %s",
            uuid.UUID(topic.removeprefix("room:")),
            HISTORY,
        )
        latest[topic] = [cid for (cid,) in reversed(rows)]
    for bot in bots:
        for node in nodes:
            await check_history(bot, node, latest)
