"""Nothing is lost when processes die on two nodes and one whole node is SIGKILLed.

The chat runs on two nodes (two OS processes, node programs of :mod:`tests.support.nodes`
serving it on ports of their own) sharing one PostgreSQL database and one Redis. Bots (half
of them at home on each node) chat in two rooms each over Channels, a client id on every
message, and wait for each ack; a chat page (LiveView) stays open on each node. Meanwhile a
seeded chaos loop kills, on both nodes at random, the chat's processes that the single-node
chaos test kills (room channels, LiveViews, socket transports, PubSub topic processes,
database connection actors, the presence tracker). Part-way through, one node is SIGKILLed:
its bots reconnect to the survivor and send again what was not acknowledged; once presence
settled there the node is started again (same name, a new incarnation) and bots come back to
it as their connections are killed. At the end:

* every acknowledged message is stored exactly once, and nothing else is stored (each bot
  sends until its last message is acknowledged);
* every bot saw every message of its rooms (pushed live, or in the history a join pushes),
  and a join on either node pushes the latest messages exactly as the database has them;
* after the SIGKILL, presence on the survivor shows each bot once (the dead node's presences
  gone) within ``down_period`` plus a broadcast period, and at the end both nodes show
  every bot once in each of its rooms;
* both nodes and their chat trees are alive.

The chat's presence tracker runs with short periods here (the chat keeps Phoenix's: a
broadcast every 1.5 s, down after 30 s): each node replaces it in ``chat.sup`` with one whose
periods are :data:`BROADCAST_PERIOD` and :data:`DOWN_PERIOD`.

It runs ``BEAM_CHAOS_CLUSTER_SECONDS`` seconds of load (20 by default), seeded by
``BEAM_CHAOS_CLUSTER_SEED`` (7).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import trio

import beam
import presence
import web
from examples.chat import chaos
from examples.chat.accounts import hash_off_loop
from examples.chat.app import build
from examples.chat.live import HISTORY
from examples.chat.model import Chat, Room, User
from supervisors import ChildSpec, Supervisor

from ..support import wsclient
from ..support.backends import PG_URL, pg_engine
from ..support.chat import sign_in, socket_token
from ..support.http import http
from ..support.nodes import NodeProcess, emit, free_port, redis_server, start_node

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
#: The cluster's heartbeat and timeout (s): a SIGKILLed node's name is free after this.
HEARTBEAT = 0.5
CLUSTER_TIMEOUT = 2.5
#: How long a bot waits for any one reply before it gives the connection up (s).
REPLY_TIMEOUT = 10.0
#: Where the node programs find this module's node-side steps.
STEPS = __name__
APP = "chat.sup"
TRACKER_ID = "Tracker"

# -- node side (run in the node programs through ``run``) ------------------------------------


class _ForwardLogs(logging.Handler):
    """Warnings and errors of the chat's loggers, reported to the test as ``log`` events."""

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("beam"):  # the node program reports beam's itself
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            emit({"event": "log", "level": record.levelname, "logger": record.name, "text": text})


async def start_chat(port: int, database: str, data_dir: str) -> bool:
    """Start the chat in this node and serve it on *port* (in a process of its own); the
    test waits until it answers over HTTP."""
    handler = _ForwardLogs(logging.WARNING)
    logging.getLogger().addHandler(handler)
    beam.spawn(_serve_chat, port, database, data_dir)
    return True


async def _serve_chat(port: int, database: str, data_dir: str) -> None:
    generous = {"api": web.Limit(10_000, 60.0, "token requests")}
    endpoint = await build(
        Path(data_dir),
        database=database,
        messages_per_minute=1_000_000,
        demo=True,
        limits=generous,
    )
    await _short_presence_periods()
    async with trio.open_nursery() as nursery:
        await nursery.start(web.serve, endpoint, "127.0.0.1", port)
        await trio.sleep_forever()


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
    found = chaos.pick(random.Random(seed), restart_allowed=restart_allowed)
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
        import pytest

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
    """One chat node of the test: its node program (``None`` while it is down), one command
    at a time."""

    def __init__(
        self,
        name: str,
        redis: str,
        database: str,
        data_dir: Path,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.redis = redis
        self.database = database
        self.data_dir = data_dir
        self.stack = stack
        self.program: NodeProcess | None = None
        self.programs: list[NodeProcess] = []  # every incarnation's
        self.lock = trio.Lock()
        self.starts = 0

    @property
    def up(self) -> bool:
        return self.program is not None

    async def start(self) -> None:
        """Start the node program (asking again while a killed incarnation holds the name),
        the chat in it, and wait until the chat answers over HTTP."""
        with trio.fail_after(CLUSTER_TIMEOUT * 4 + 60):
            while True:
                program = await self.stack.enter_async_context(
                    start_node(
                        self.redis,
                        self.name,
                        heartbeat=HEARTBEAT,
                        timeout=CLUSTER_TIMEOUT,
                        expect_ready=False,
                    )
                )
                self.programs.append(program)
                try:
                    await program.expect("ready", timeout=30)
                    break
                except RuntimeError:  # it exited: refused while the name is still taken
                    if not program.seen("refused"):
                        raise
                    await trio.sleep(0.2)
            answer = await program.call(
                "run",
                fn=f"{STEPS}:start_chat",
                args={
                    "port": self.port,
                    "database": self.database,
                    "data_dir": str(self.data_dir),
                },
            )
            assert answer["result"] is True
            request = b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            with trio.move_on_after(60) as waited:
                while True:
                    with contextlib.suppress(OSError):
                        if (await http(self.port, request))[0] == 200:
                            break
                    await trio.sleep(0.1)
            if waited.cancelled_caught:
                await program.drain()
                raise AssertionError(f"the chat on {self.name} does not answer: {self.logs()}")
        self.program = program
        self.starts += 1

    async def run(self, fn: str, **args: Any) -> Any:
        """Run the node-side step *fn* of this module with *args*; its result."""
        async with self.lock:
            assert self.program is not None, f"{self.name} is down"
            answer = await self.program.call("run", fn=f"{STEPS}:{fn}", args=args)
        return answer["result"]

    async def sigkill(self) -> None:
        """SIGKILL the node program (nothing is said to anyone) and mark the node down."""
        async with self.lock:
            assert self.program is not None
            self.program.process.kill()
            self.program = None

    async def drain(self) -> None:
        """Read what the node reported so far (its stdout must not fill up)."""
        async with self.lock:
            if self.program is not None:
                await self.program.drain()

    def logs(self) -> list[dict[str, Any]]:
        """The warnings and errors every incarnation of this node reported."""
        return [
            event
            for program in self.programs
            for event in program.seen("log")
            if event.get("level") in ("WARNING", "ERROR", "CRITICAL")
        ]


# -- test side: the clients ----------------------------------------------------------------


class _Lost(Exception):
    """The connection went away (or stopped answering)."""


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
        except (wsclient.Closed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.lost.set()
            for _, _, done in self.waiting.values():
                done.set()

    async def call(self, frame: list[Any]) -> dict[str, Any]:
        """Send *frame* (``[join_ref, ref, topic, event, payload]``) and wait for its reply;
        :class:`_Lost` if the connection goes or it takes longer than :data:`REPLY_TIMEOUT`."""
        join_ref, ref, topic = frame[0], frame[1], frame[2]
        done = trio.Event()
        self.waiting[ref] = (topic, join_ref, done)
        try:
            await self.client.send(json.dumps(frame))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            raise _Lost() from error
        with trio.move_on_after(REPLY_TIMEOUT):
            await done.wait()
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
        self.slowest = 0.0
        self.sent = 0
        self.node: str | None = None
        self.connections: Counter[str] = Counter()
        self.recoveries = 0
        self.rejoins = 0
        self.overflows = 0
        self.sending = True
        self.settled = trio.Event()

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
        elif event in ("phx_error", "phx_close") and join_ref == self.join_refs[topic]:
            self.join_refs[topic] = None
            self.tracked[topic] = False

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
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(link.read)
                        with contextlib.suppress(_Lost):
                            await self._session(link)
                        nursery.cancel_scope.cancel()
            except (wsclient.Closed, trio.TooSlowError, OSError, trio.BrokenResourceError):
                pass
            except wsclient.Rejected as refused:
                if refused.status < 500:
                    raise  # refused for a reason (a 403): that is a failure
            self.node = None
            self._forget_joins()
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
                self.seen[topic].add(client_id)
                self.slowest = max(self.slowest, trio.current_time() - self.pending_since)
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
            except (
                wsclient.Closed,
                trio.TooSlowError,
                OSError,
                trio.BrokenResourceError,
                ServerError,
            ):
                pass
            except wsclient.Rejected as refused:
                if refused.status < 500:
                    raise
            attempt = 0 if connected else attempt + 1
            await trio.sleep(0.05)

    async def _dead_render(self, port: int) -> tuple[str, str, str]:
        request = f"GET / HTTP/1.1\r\nhost: x\r\ncookie: {self.cookie}\r\n"
        status, _, body = await http(port, (request + "connection: close\r\n\r\n").encode())
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
                # Supervisors allow 10 restarts in 5 s: a database actor or the tracker at
                # most every 1.5 s per node keeps each tree well inside that.
                allowed = now - self._last_restart.get(node.name, -10.0) > 1.5
                found = await node.run(
                    "kill_one", seed=self.rng.getrandbits(32), restart_allowed=allowed
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
    counts = await node.run("presence_counts", topics=topics)
    return {
        topic: Counter({key: n for key, n in counts[topic].items() if key in names})
        for topic in topics
    }


async def settle_presence(
    nodes: list[ChatNode], bots: list[Bot], topics: list[str], deadline: float
) -> float:
    """Wait until every node of *nodes* shows each bot exactly once in each room it is in,
    with every bot connected and joined; the time that took. Fails at *deadline*."""
    names = {bot.name for bot in bots}
    want = {topic: Counter(bot.name for bot in bots if topic in bot.topics) for topic in topics}
    seen: dict[str, Any] = {}
    start = trio.current_time()
    with trio.move_on_at(deadline):
        while True:
            everyone = expected_presence(bots, topics)
            ok = everyone == want
            for node in nodes:
                seen[node.name] = await presence_of_bots(node, topics, names)
                ok = ok and seen[node.name] == want
            if ok:
                return trio.current_time() - start
            await trio.sleep(0.1)
    missing = {
        node: {t: dict((want[t] - c[t]) + (c[t] - want[t])) for t, c in counts.items()}
        for node, counts in seen.items()
    }
    not_joined = [b.name for b in bots if b.node is None or not all(b.tracked.values())]
    raise AssertionError(
        f"presence did not settle: differences by node {missing}, bots not joined {not_joined}"
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
    with (
        trio.fail_after(seconds + 240),
        redis_server() as redis,
        fresh_database() as database,
    ):
        async with contextlib.AsyncExitStack() as stack:
            nodes = [ChatNode(f"chat{i}", redis.url, database, tmp_path, stack) for i in (1, 2)]
            for node in nodes:  # one after the other: the first migrates and seeds
                await node.start()
            names = [f"bot{i:02d}" for i in range(BOTS)]
            rooms = await nodes[0].run("seed", bots=names, password=PASSWORD)
            topics = [f"room:{rooms[name]}" for name in ROOMS]
            bots: list[Bot] = []
            for i, name in enumerate(names):
                home = nodes[i % 2]
                token = (await socket_token(home.port, name, PASSWORD))["token"]
                mine = [topics[i % len(topics)], topics[(i + 1) % len(topics)]]
                order = [home, *(n for n in nodes if n is not home)]
                bots.append(Bot(name, token, order, mine, rng.getrandbits(32)))
            watchers = [
                Watcher(
                    user,
                    [home, *(n for n in nodes if n is not home)],
                    await sign_in(home.port, user),
                )
                for user, home in zip(("alice", "bob"), nodes, strict=True)
            ]
            chaos_loop = Chaos(nodes, rng.getrandbits(32))
            victim = rng.choice(nodes)
            survivor = next(node for node in nodes if node is not victim)
            figures: dict[str, float] = {}

            async def drain_nodes() -> None:
                while True:
                    for node in nodes:
                        await node.drain()
                    await trio.sleep(0.3)

            async def kill_a_node() -> None:
                await trio.sleep(seconds * 0.4)
                await chaos_loop.pause()  # a quiet survivor, to see presence settle
                await victim.sigkill()
                killed = trio.current_time()
                deadline = killed + DOWN_PERIOD + BROADCAST_PERIOD + SLACK
                figures["presence"] = await settle_presence([survivor], bots, topics, deadline)
                chaos_loop.resume()
                await victim.start()
                figures["restart"] = trio.current_time() - killed

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain_nodes)
                for bot in bots:
                    nursery.start_soon(bot.run)
                for watcher in watchers:
                    nursery.start_soon(watcher.run)
                nursery.start_soon(chaos_loop.run)
                with trio.fail_after(seconds + 90):
                    async with trio.open_nursery() as scenario:
                        scenario.start_soon(kill_a_node)
                        await trio.sleep(seconds)
                    # the node is back: stop the kills, let every bot finish its last send
                    await chaos_loop.pause()
                    for bot in bots:
                        bot.sending = False
                    for bot in bots:
                        await bot.settled.wait()
                # Presence: both nodes show each bot once in each of its rooms.
                quiet = trio.current_time()
                deadline = quiet + DOWN_PERIOD + BROADCAST_PERIOD + SLACK
                figures["final presence"] = await settle_presence(nodes, bots, topics, deadline)

                # Every acknowledged message is stored exactly once, and nothing else is.
                rows = await query(
                    database,
                    "SELECT m.room_id::text, m.author_name, m.client_id FROM chat_messages m",
                )
                stored = Counter((f"room:{room}", author, cid) for room, author, cid in rows)
                twice = [key for key, n in stored.items() if n > 1]
                assert not twice, twice[:5]
                acked = [(topic, bot.name, cid) for bot in bots for topic, cid in bot.acked]
                assert len(acked) == len(set(acked))
                assert set(acked) == set(stored), (
                    sorted(set(acked) - set(stored))[:5],
                    sorted(set(stored) - set(acked))[:5],
                )

                # Every bot saw every message of its rooms.
                by_room: dict[str, set[str]] = {topic: set() for topic in topics}
                for topic, _, cid in stored:
                    by_room[topic].add(cid)
                for bot in bots:
                    for topic in bot.topics:
                        missed = by_room[topic] - bot.seen[topic]
                        assert not missed, (
                            f"{bot.name} never saw {len(missed)} messages of {topic} "
                            f"(e.g. {sorted(missed)[:3]}); history overflows: {bot.overflows}"
                        )
                        assert bot.seen[topic] <= by_room[topic], bot.name

                # A join on either node pushes the latest messages as the database has them.
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
                for i, bot in enumerate(bots):
                    await check_history(bot, nodes[i % 2], latest)
                    await check_history(bot, nodes[(i + 1) % 2], latest)

                # Both nodes and their trees are alive; the chaos happened on both.
                for node in nodes:
                    assert await node.run("alive") is True, node.name
                nursery.cancel_scope.cancel()

            kills = chaos_loop.kills
            for node in nodes:
                assert sum(n for (where, _), n in kills.items() if where == node.name) >= 1
            assert sum(kills.values()) > seconds  # the chaos really happened
            assert victim.starts == 2
            moved = [b.name for b in bots if b.nodes[0] is victim and b.connections[survivor.name]]
            assert moved, "no bot of the killed node reconnected to the survivor"
            for watcher in watchers:
                assert watcher.mounts >= 1
            warnings = {node.name: len(node.logs()) for node in nodes}
            print(
                f"\ncluster chaos {seconds:.0f} s (seed {seed}): {len(acked)} acked, "
                f"{len(stored)} stored, killed {victim.name} (presence settled on "
                f"{survivor.name} in {figures['presence']:.2f} s, bound "
                f"{DOWN_PERIOD + BROADCAST_PERIOD:.1f} s; back after {figures['restart']:.1f} s), "
                f"final presence {figures['final presence']:.2f} s, "
                f"kills {dict(sorted(kills.items()))}, "
                f"recoveries {sum(b.recoveries for b in bots)}, "
                f"rejoins {sum(b.rejoins for b in bots)}, moved {len(moved)}, "
                f"slowest ack {max(b.slowest for b in bots):.2f} s, "
                f"page mounts {[w.mounts for w in watchers]}, warnings {warnings}"
            )
