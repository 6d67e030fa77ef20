"""The load generator of the ``chat`` suite (run in a fresh interpreter per repetition).

:func:`soak` starts the chat (:mod:`bench._chat_server`) in another interpreter, gets each bot
a socket token as any client does (``POST /api/token``), then runs the bots on trio with
``trio_websocket``: bot *i* joins ``room:<id>`` of room ``i % rooms`` and sends on a fixed
schedule (the bots' sends interleaved, *rate* messages per second in all), each message with a
client id of its own and its send time in the content (``time.perf_counter`` of this process:
one clock for every bot). A bot waits for the ack before its next send; when the send fails
(an error reply, its channel's ``phx_error``, a lost connection, no reply in 5 s) it joins or
connects again and sends the same client id again, with the same send time. It reconnects
after phoenix.js's ``reconnectAfterMs`` delays (10 ms, then longer while connecting fails);
it rejoins as soon as its channel crashes (``phx_error``), between sends too (phoenix.js
waits ``rejoinAfterMs``, 1 s, first); an error reply while its channel lives (the server's
database connection restarting) is sent again 10 ms later, without a rejoin.

Every bot notes when it first sees each message of another member of its room, from a
``new_message`` broadcast or from the ``history`` pushed after a (re)join. A message's latency
is the time until the last of the other members has seen it; messages some member never saw
(within a grace period after the last ack) are counted as unseen. The server then reports what
it stored, from which follow the lost messages (acked but not stored) and the duplicated ones
(stored rows beyond one per (author, client id)).

:func:`soak_nodes` runs the same bots against the chat on several nodes
(:class:`bench._chat_nodes.ChatNodes`: ``python -m web examples.chat.serve:endpoint`` per
node, one PostgreSQL database, one Redis), each bot given every node's port, its own node's
first. Halfway through, one node may be SIGKILLed: its bots' connections close, a connection
to its port is refused, and they move to the next port (a survivor), join again (the
``history`` brings what they missed) and resend what was not acked; the database then says
what it stored.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket

from examples.chat.chaos import DEFAULT_KINDS

from ._chat_nodes import ChatNodes
from ._chat_server import PASSWORD, bot_name
from ._measure import Sample, report_and_exit

_REPO: Final = Path(__file__).resolve().parent.parent
_REPLY_TIMEOUT: Final = 5.0
_GRACE: Final = 5.0
#: What makes a bot connect again (a lost connection, a server that stopped answering).
_LOST: Final = (ConnectionClosed, HandshakeError, OSError, trio.TooSlowError)


#: Seconds before each reconnection attempt (the last repeats): phoenix.js's
#: ``reconnectAfterMs``, as the chat's own client (``examples.chat.client``) uses them.
RECONNECT_AFTER: Final = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0)
#: A kill this many seconds before a message was sent may still be what delayed it.
_BLAME_BEFORE: Final = 1.0
#: Seconds before sending again a message the server answered with an error while the
#: channel lives (its database connection restarting, say).
_RESEND_AFTER: Final = 0.01


def _reason(reply: dict[str, Any]) -> Any:
    response = reply.get("response")
    return response.get("reason") if isinstance(response, dict) else None


class _ChannelDown(Exception):
    """The bot's channel crashed (``phx_error``) while a reply was awaited."""


@dataclass
class _Server:
    """The chat server's interpreter: its port, its rooms, and its report."""

    process: subprocess.Popen[str]
    port: int = 0
    rooms: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, crashes_per_s: float, rooms: int, bots: int, kinds: str = "") -> _Server:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        # Not the demo: an admin from the environment, as a deployment has one; every bot
        # gets its token from this one address, so the token limit is lifted.
        env.update(
            CHAT_ADMIN_USERNAME="bench_admin",
            CHAT_ADMIN_PASSWORD="bench-admin-password",
            CHAT_RATE_LIMITS="api=1000000/60,login=1000000/60",
        )
        env.pop("CHAT_DEMO", None)
        command = [sys.executable, "-m", "bench._chat_server", str(crashes_per_s), str(rooms)]
        process = subprocess.Popen(
            [*command, str(bots), kinds],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_REPO,
            env=env,
        )
        server = cls(process)
        while not server.port:
            word, value = server._line()
            if word == "ROOM":
                server.rooms.append(value)
            elif word == "PORT":
                server.port = int(value)
        return server

    def _line(self) -> tuple[str, str]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the chat server exited with {self.process.wait()}")
        word, _, value = line.strip().partition(" ")
        return word, value

    def report(self) -> tuple[dict[str, Any], dict[str, int], list[tuple[float, str]]]:
        """Stop the crashes; what the server stored, the kills per kind, and each kill's
        time (``time.perf_counter``, the bots' clock) and kind."""
        assert self.process.stdin is not None
        self.process.stdin.write("REPORT\n")
        self.process.stdin.flush()
        found: dict[str, Any] = {}
        while len(found) < 3:
            word, value = self._line()
            if word in ("STORED", "KILLS", "KILLED"):
                found[word] = json.loads(value)
        return found["STORED"], found["KILLS"], [(t, k) for t, k in found["KILLED"]]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def _token(port: int, name: str) -> str:
    """A socket token for *name*, from ``POST /api/token``; asked again, as a client would,
    when the server answers 5xx (a crash injected into its database connection, say)."""
    for _ in range(20):
        try:
            return await _token_once(port, name)
        except _ServerError:
            await trio.sleep(0.05)
    return await _token_once(port, name)


class _ServerError(RuntimeError):
    """The server answered 5xx."""


async def _token_once(port: int, name: str) -> str:
    body = f"username={name}&password={PASSWORD}".encode()
    head = (
        "POST /api/token HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        "content-type: application/x-www-form-urlencoded\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(head.encode() + body)
        response = b""
        while chunk := await stream.receive_some(65_536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    if status_line.split(b" ")[1:2] and status_line.split(b" ")[1].startswith(b"5"):
        raise _ServerError(f"POST /api/token for {name}: {status_line.decode()}")
    if b" 200 " not in status_line:
        raise RuntimeError(f"POST /api/token for {name}: {status_line.decode()}")
    token: str = json.loads(rest.partition(b"\r\n\r\n")[2])["token"]
    return token


@dataclass
class _Schedule:
    """When the bots send: *count* messages each, bot *i* at ``start + offset_i + k * every``."""

    start: float
    every: float
    count: int
    stagger: float


class Bot:
    """One member of one room: sends on its schedule, acks before the next, and recovers."""

    def __init__(self, index: int, ports: list[int], topic: str, token: str) -> None:
        self.index = index
        self.name = bot_name(index)
        #: Where it connects: the first port, else (when a connection cannot be made) the
        #: next one, as a client given the addresses of several nodes does.
        self.ports = ports
        self.topic = topic
        self.token = token
        self.sent_at: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.recoveries = 0
        #: Times it moved to another node's port.
        self.moves = 0
        self._at = 0
        self._refs = 0
        self._join_ref = ""
        self._pending: str | None = None
        self._down = trio.Event()
        self._waiting: dict[str, tuple[trio.Event, list[dict[str, Any]]]] = {}
        #: Failed connection attempts in a row (the reconnection backoff's position).
        self._failures = 0

    def _ref(self) -> str:
        self._refs += 1
        return str(self._refs)

    async def run(self, schedule: _Schedule, finished: trio.Event) -> None:
        """Send this bot's messages, then keep listening until *finished*."""
        path = f"/socket/websocket?vsn=2.0.0&token={self.token}"
        while not finished.is_set():
            connected = False
            try:
                async with (
                    open_websocket("127.0.0.1", self.ports[self._at], path, use_ssl=False) as ws,
                    trio.open_nursery() as nursery,
                ):
                    connected = True
                    nursery.start_soon(self._read, ws)
                    await self._join(ws)
                    await self._send_all(ws, schedule)
                    while not finished.is_set():
                        await self._rejoin_if_down(ws, until=finished)
                    nursery.cancel_scope.cancel()
            except* _LOST:
                self.recoveries += 1  # the connection went away: connect again, resend
                if not connected and len(self.ports) > 1:  # that node is gone: the next one
                    self._at = (self._at + 1) % len(self.ports)
                    self.moves += 1
                if connected or self._at == 0:  # a pause, unless trying another node first
                    # phoenix.js's reconnectAfterMs: 10 ms, then longer while it fails.
                    await trio.sleep(RECONNECT_AFTER[min(self._failures, len(RECONNECT_AFTER) - 1)])
                    self._failures += 1
            else:
                self._failures = 0

    async def _send_all(self, ws: WebSocketConnection, schedule: _Schedule) -> None:
        """Send the rest of the schedule; a message not yet acked (``self._pending``, kept
        across reconnections) is sent again with the same client id and send time."""
        while len(self.acked) < schedule.count:
            if self._pending is None:
                seq = len(self.acked)
                offset = self.index * schedule.stagger + seq * schedule.every
                if await self._rejoin_if_down(ws, at=schedule.start + offset):
                    continue
                self._pending = f"{self.name}-{seq}"
                self.sent_at[self._pending] = time.perf_counter()
            client_id = self._pending
            payload = {"content": f"t={self.sent_at[client_id]:.6f}", "client_id": client_id}
            try:
                reply = await self._call(ws, "new_message", payload)
            except _ChannelDown:
                reply = {"status": "error"}
            if reply["status"] == "ok":
                self.acked[client_id] = time.perf_counter()
                self._pending = None
                self._failures = 0
            elif self._down.is_set() or _reason(reply) == "unmatched topic":
                self.recoveries += 1  # the channel crashed: rejoin, resend
                await self._join(ws)
            else:  # the server failed the send (its database restarting): the channel lives
                self.recoveries += 1
                await trio.sleep(_RESEND_AFTER)

    async def _rejoin_if_down(
        self, ws: WebSocketConnection, *, at: float = math.inf, until: trio.Event | None = None
    ) -> bool:
        """Wait until *at* or *until*, or rejoin at once if the channel crashes meanwhile (as
        phoenix.js does on ``phx_error``); whether it rejoined."""
        with trio.move_on_at(at):
            async with trio.open_nursery() as nursery:
                if until is not None:
                    nursery.start_soon(_cancel_when_set, until, nursery.cancel_scope)
                await self._down.wait()
                nursery.cancel_scope.cancel()
        if not self._down.is_set():
            return False
        self.recoveries += 1
        await self._join(ws)
        return True

    async def _join(self, ws: WebSocketConnection) -> None:
        self._down = trio.Event()
        while True:
            ref = self._ref()
            self._join_ref = ref
            try:
                reply = await self._call(ws, "phx_join", {}, ref=ref)
            except _ChannelDown:
                continue
            if reply["status"] == "ok":
                return
            await trio.sleep(0.02)

    async def _call(
        self, ws: WebSocketConnection, event: str, payload: Any, ref: str | None = None
    ) -> dict[str, Any]:
        ref = ref or self._ref()
        done, box = self._waiting[ref] = (trio.Event(), [])
        try:
            await ws.send_message(json.dumps([self._join_ref, ref, self.topic, event, payload]))
            with trio.fail_after(_REPLY_TIMEOUT):
                await done.wait()
        finally:
            del self._waiting[ref]
        if not box:
            raise _ChannelDown
        return box[0]

    async def _read(self, ws: WebSocketConnection) -> None:
        while True:
            join_ref, ref, topic, event, payload = json.loads(await ws.get_message())
            now = time.perf_counter()
            if event == "phx_reply" and ref in self._waiting:
                done, box = self._waiting[ref]
                box.append(payload)
                done.set()
            elif topic != self.topic:
                continue
            elif event in ("phx_error", "phx_close") and join_ref == self._join_ref:
                self._down.set()
                for done, _ in self._waiting.values():
                    done.set()  # an empty box: the channel is down
            elif event == "new_message":
                self._saw(payload, now)
            elif event == "history":
                for message in payload["messages"]:
                    self._saw(message, now)

    def _saw(self, message: dict[str, Any], now: float) -> None:
        if message["author"] != self.name:
            self.seen.setdefault(message["client_id"], now)


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _latencies(bots: list[Bot]) -> tuple[list[float], int]:
    """Each acked message's time until every other member of its room saw it, and the
    number of messages some member never saw."""
    members: dict[str, list[Bot]] = {}
    for bot in bots:
        members.setdefault(bot.topic, []).append(bot)
    latencies: list[float] = []
    unseen = 0
    for bot in bots:
        others = [other for other in members[bot.topic] if other is not bot]
        for client_id in bot.acked:
            seen = [other.seen.get(client_id) for other in others]
            if None in seen:
                unseen += 1
            else:
                latencies.append(max(s for s in seen if s is not None) - bot.sent_at[client_id])
    return latencies, unseen


def _all_seen(bots: list[Bot], count: int) -> bool:
    if any(len(bot.acked) < count for bot in bots):
        return False
    return not _latencies(bots)[1]


async def _drive(
    bots: list[Bot], schedule: _Schedule, meanwhile: Callable[[], Awaitable[object]] | None = None
) -> float:
    """Run the bots (and *meanwhile*) until every message is acked and seen (or the grace
    period is over); returns the time of the last ack."""
    finished = trio.Event()
    async with trio.open_nursery() as nursery:
        for bot in bots:
            nursery.start_soon(bot.run, schedule, finished)
        if meanwhile is not None:
            nursery.start_soon(meanwhile)
        while any(len(bot.acked) < schedule.count for bot in bots):  # noqa: ASYNC110 - polls
            await trio.sleep(0.05)
        deadline = trio.current_time() + _GRACE
        while not _all_seen(bots, schedule.count) and trio.current_time() < deadline:  # noqa: ASYNC110
            await trio.sleep(0.05)
        finished.set()
    return max(t for bot in bots for t in bot.acked.values())


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[int(fraction * (len(sorted_values) - 1))]


def soak(
    crashes_per_s: float, bots: int, rooms: int, rate: float, seconds: float, kinds: str = ""
) -> None:
    """Run *bots* bots across *rooms* rooms sending *rate* messages per second in all for
    *seconds*, against a server that kills *crashes_per_s* processes a second (of the
    *kinds* given, comma-separated; by default any of :data:`examples.chat.chaos.DEFAULT_KINDS`);
    report the latency percentiles, the acked messages per second, the lost and duplicated
    messages, and for each kind of victim the share of the slowest 1% of messages during
    which one of its kind was killed (``slowest_<kind>``)."""
    server = _Server.start(crashes_per_s, rooms, bots, kinds)
    try:

        async def main() -> tuple[list[Bot], float, float]:
            tokens = [await _token(server.port, bot_name(i)) for i in range(bots)]
            topics = [f"room:{server.rooms[i % rooms]}" for i in range(bots)]
            crew = [Bot(i, [server.port], topics[i], tokens[i]) for i in range(bots)]
            every = bots / rate
            start = trio.current_time() + 0.2
            schedule = _Schedule(start, every, max(1, round(seconds / every)), 1 / rate)
            began = time.perf_counter() + 0.2
            last_ack = await _drive(crew, schedule)
            return crew, began, last_ack

        crew, began, last_ack = trio.run(main)
        stored, kills, killed = server.report()
    finally:
        server.stop()
    report_and_exit(
        {
            **_outcome(crew, began, last_ack, rate, stored["client_ids"]),
            "duplicated": float(stored["rows"] - stored["distinct"]),
            "kills": float(sum(kills.values())),
            **(_blame(crew, killed) if crashes_per_s > 0 else {}),
        }
    )


def _blame(crew: list[Bot], killed: list[tuple[float, str]]) -> Sample:
    """For each kind of victim killed, the share of the slowest 1% of messages (those at or
    over p99) that had one of its kind killed between :data:`_BLAME_BEFORE` seconds before
    their send and their last sighting (what a kill sets off, a reconnection or a restarted
    process's first work, outlasts it): which kills make the tail. Every kind the chaos
    picks among has its key (0 when none of it was killed), so that every soak with crashes
    reports the same keys."""
    blame: Sample = {f"slowest_{kind}": 0.0 for kind in DEFAULT_KINDS}
    members: dict[str, list[Bot]] = {}
    for bot in crew:
        members.setdefault(bot.topic, []).append(bot)
    spans: list[tuple[float, float, float]] = []  # latency, sent, last seen
    for bot in crew:
        others = [other for other in members[bot.topic] if other is not bot]
        for client_id in bot.acked:
            seen = [other.seen.get(client_id) for other in others]
            if others and None not in seen:
                last = max(s for s in seen if s is not None)
                sent = bot.sent_at[client_id]
                spans.append((last - sent, sent, last))
    if not spans:
        return blame
    spans.sort()
    slowest = spans[int(0.99 * (len(spans) - 1)) :]
    for kind in sorted({kind for _, kind in killed}):
        times = [t for t, k in killed if k == kind]
        hit = sum(
            1 for _, sent, last in slowest if any(sent - _BLAME_BEFORE <= t <= last for t in times)
        )
        blame[f"slowest_{kind}"] = hit / len(slowest)
    return blame


def _outcome(
    crew: list[Bot], began: float, last_ack: float, rate: float, stored_ids: list[str]
) -> Sample:
    """What every soak reports: latency percentiles, acked messages per second, and the
    messages lost, unseen, and the bots' recoveries."""
    latencies, unseen = _latencies(crew)
    latencies.sort()
    acked = {client_id for bot in crew for client_id in bot.acked}
    return {
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * _percentile(latencies, 0.99) if latencies else 0.0,
        "max_ms": 1000 * latencies[-1] if latencies else 0.0,
        # n messages sent on time span n intervals: the last one's send starts the last
        "per_s": len(acked) / (last_ack - began + 1 / rate),
        "acked": float(len(acked)),
        "lost": float(len(acked - set(stored_ids))),
        "unseen": float(unseen),
        "recoveries": float(sum(bot.recoveries for bot in crew)),
    }


def soak_nodes(victim: int, nodes: int, bots: int, rooms: int, rate: float, seconds: float) -> None:
    """The soak of :func:`soak` against the chat on *nodes* nodes (:class:`ChatNodes`), the
    bots spread over them (every room has members on several nodes). Node *victim* (0: the
    first started, which holds the cluster's global names; -1: none) is SIGKILLed halfway
    through; its bots connect to the next node and send again what was not acked. Reports
    as :func:`soak`, plus the bots' moves to another node and the kill's time into the
    soak.

    >>> run_fresh(soak_nodes, victim=1, nodes=2, bots=20, rooms=4, rate=20, seconds=8)
    """
    with ChatNodes(nodes, rooms, bots) as chat:
        # Bot i: room i % rooms, node (i // rooms) % nodes, so each room spans the nodes.
        homes = [(i // rooms) % nodes for i in range(bots)]
        killed: list[float] = []

        async def main() -> tuple[list[Bot], float, float]:
            tokens = [await _token(chat.ports[homes[i]], bot_name(i)) for i in range(bots)]
            crew = [
                Bot(
                    i,
                    [*chat.ports[homes[i] :], *chat.ports[: homes[i]]],
                    f"room:{chat.rooms[i % rooms]}",
                    tokens[i],
                )
                for i in range(bots)
            ]
            every = bots / rate
            start = trio.current_time() + 0.2
            schedule = _Schedule(start, every, max(1, round(seconds / every)), 1 / rate)
            began = time.perf_counter() + 0.2

            async def kill_halfway() -> None:
                await trio.sleep_until(start + seconds / 2)
                killed.append(chat.kill(victim))

            last_ack = await _drive(crew, schedule, kill_halfway if victim >= 0 else None)
            return crew, began, last_ack

        crew, began, last_ack = trio.run(main)
        rows, distinct, client_ids = chat.stored()
    report_and_exit(
        {
            **_outcome(crew, began, last_ack, rate, client_ids),
            "duplicated": float(rows - distinct),
            "moves": float(sum(bot.moves for bot in crew)),
            "killed_at_s": killed[0] - began if killed else 0.0,
        }
    )
