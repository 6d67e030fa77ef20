"""Nothing is lost under crashes: bots chat while processes are killed at random.

Twenty bots send messages with client ids to one room over Channels and wait for each ack,
while two chat pages stay open over LiveView; meanwhile a seeded chaos loop kills, at random,
room channel processes, LiveView processes, connection transport processes, the domain's
database connection actors, PubSub topic processes and the presence tracker (whose heir
keeps the presences while it restarts, so the channels it tracks live on, unlike Phoenix's,
which die with it and rejoin). A bot
whose send fails (a crashed channel, a lost connection, a killed database actor) reconnects
or rejoins and sends the same client id again; a page whose view dies rejoins, as the
official client does. Afterwards:

* every acknowledged message is stored exactly once (and nothing is stored twice);
* every bot's history after a resync equals the database;
* every page mounted again after each crash of its view;
* the presence list settles to the connected bots;
* the node is alive and its memory is back near where it started.

It runs ``BEAM_CHAOS_SECONDS`` seconds (10 by default; CI runs a minute).
"""

from __future__ import annotations

import gc
import json
import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio

import beam
import presence
import web
from examples.chat import chaos
from examples.chat.accounts import hash_password
from examples.chat.model import Chat, Message, Room, User

from ..support import wsclient
from ..support.chat import chat_server, sign_in, socket_token
from ..support.http import http

BOTS = 20
PASSWORD = "chaos-password"


class Bot:
    """One chatty client: sends, waits for the ack, and recovers from whatever happens."""

    def __init__(self, name: str, port: int, topic: str, token: str) -> None:
        self.name = name
        self.token = token
        self.port = port
        self.topic = topic
        self.acked: list[str] = []
        self.sent = 0
        self.recoveries = 0
        self._refs = 0

    def _ref(self) -> str:
        self._refs += 1
        return str(self._refs)

    async def run(self, stop: trio.Event) -> None:
        pending: str | None = None
        while not stop.is_set():
            try:
                path = f"/socket/websocket?vsn=2.0.0&token={self.token}"
                async with wsclient.connect(self.port, path) as client:
                    join_ref = await self._join(client)
                    while not stop.is_set():
                        if pending is None:
                            pending = f"{self.name}-{self.sent}"
                            self.sent += 1
                        payload = {"content": f"message {pending}", "client_id": pending}
                        reply = await self._call(client, join_ref, "new_message", payload)
                        if reply["status"] == "ok":
                            self.acked.append(pending)
                            pending = None
                        else:  # the channel crashed or the database failed: rejoin, resend
                            self.recoveries += 1
                            join_ref = await self._join(client)
            except (wsclient.Closed, trio.TooSlowError, OSError):
                self.recoveries += 1  # the connection went away: connect again, resend
                await trio.sleep(0.02)
            except wsclient.Rejected as refused:
                if refused.status < 500:
                    raise  # refused for a reason (a 403): that is a failure
                # connect's session lookup met a killed database connection: as phoenix.js
                # does, connect again
                self.recoveries += 1
                await trio.sleep(0.02)

    async def _join(self, client: wsclient.Client) -> str:
        while True:
            ref = self._ref()
            frame = [ref, ref, self.topic, "phx_join", {}]
            await client.send(json.dumps(frame))
            reply = await self._reply(client, ref)
            if reply["status"] == "ok":
                return ref
            await trio.sleep(0.02)

    async def _call(
        self, client: wsclient.Client, join_ref: str, event: str, payload: Any
    ) -> dict[str, Any]:
        ref = self._ref()
        await client.send(json.dumps([join_ref, ref, self.topic, event, payload]))
        return await self._reply(client, ref)

    async def _reply(self, client: wsclient.Client, ref: str) -> dict[str, Any]:
        with trio.fail_after(5):
            while True:
                frame = json.loads(await client.receive())
                if frame[3] == "phx_reply" and frame[1] == ref:
                    reply: dict[str, Any] = frame[4]
                    return reply


class ServerError(Exception):
    """A 5xx while a process the request needed was being killed: a person would reload."""


class Watcher:
    """An open chat page: the LiveView protocol as the official client speaks it, rejoining
    (with the same signed session) whenever its view process dies."""

    def __init__(self, name: str, port: int, cookie: str) -> None:
        self.name = name
        self.port = port
        self.cookie = cookie
        self.mounts = 0
        self.crashes = 0
        self._refs = 0

    async def run(self, stop: trio.Event) -> None:
        while not stop.is_set():
            try:
                csrf, element, session = await self._dead_render()
                path = f"/live/websocket?_csrf_token={quote(csrf)}&vsn=2.0.0"
                cookie = [(b"cookie", self.cookie.encode())]
                async with wsclient.connect(self.port, path, headers=cookie) as client:
                    topic = f"lv:{element}"
                    while not stop.is_set():
                        await self._mount(client, topic, session)
                        await self._until_crash(client, topic, stop)
            except (wsclient.Closed, trio.TooSlowError, OSError, ServerError):
                await trio.sleep(0.02)  # the connection went away: load the page again

    async def _dead_render(self) -> tuple[str, str, str]:
        request = f"GET / HTTP/1.1\r\nhost: x\r\ncookie: {self.cookie}\r\n"
        status, _, body = await http(self.port, (request + "connection: close\r\n\r\n").encode())
        if status >= 500:  # the guard's session lookup met a killed database connection
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
            self._refs += 1
            ref = str(self._refs)
            join = {"url": "http://x/", "session": session, "params": {}}
            await client.send(json.dumps([ref, ref, topic, "phx_join", join]))
            with trio.fail_after(5):
                while True:
                    frame = json.loads(await client.receive())
                    if frame[3] == "phx_reply" and frame[1] == ref:
                        break
            if frame[4]["status"] == "ok":
                self.mounts += 1
                return
            await trio.sleep(0.02)  # e.g. the database was being restarted: try again

    async def _until_crash(self, client: wsclient.Client, topic: str, stop: trio.Event) -> None:
        while not stop.is_set():
            with trio.move_on_after(0.2):
                frame = json.loads(await client.receive())
                if frame[2] == topic and frame[3] in ("phx_error", "phx_close"):
                    self.crashes += 1
                    return


async def _chaos(stop: trio.Event, seed: int, kills: Counter[str]) -> None:
    rng = random.Random(seed)
    last_restart = 0.0
    while not stop.is_set():
        await trio.sleep(rng.uniform(0.05, 0.25))
        now = trio.current_time()
        # Supervisors allow 10 restarts in 5 s: a database actor or the tracker at most
        # every 1.5 s keeps their trees well inside that.
        found = chaos.pick(rng, restart_allowed=now - last_restart > 1.5)
        if found is None:
            continue
        kind, victim = found
        if kind in chaos.SUPERVISED:
            last_restart = now
        kills[kind] += 1
        beam.exit(victim, "kill")


def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_nothing_is_lost_while_processes_are_killed(tmp_path: Path) -> None:
    seconds = float(os.environ.get("BEAM_CHAOS_SECONDS", "10"))
    seed = int(os.environ.get("BEAM_CHAOS_SEED", "7"))
    generous = {"api": web.Limit(1000, 60.0, "API requests")}  # 20 bots on one address
    async with chat_server(tmp_path, per_minute=1_000_000, limits=generous) as port:
        names = [f"bot{i:02d}" for i in range(BOTS)]
        for name in names:
            await Chat.register(name, hash_password(PASSWORD))
        alice = (await Chat.read(User, filter={"username": "alice"}))[0]
        lobby = (await Chat.read(Room, actor=alice, filter={"name": "lobby"}))[0]
        topic = f"room:{lobby.id}"
        bots = [
            Bot(name, port, topic, (await socket_token(port, name, PASSWORD))["token"])
            for name in names
        ]
        watchers = [Watcher(name, port, await sign_in(port, name)) for name in ("alice", "bob")]
        kills: Counter[str] = Counter()
        rss_before = _rss()

        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for bot in bots:
                nursery.start_soon(bot.run, stop)
            for watcher in watchers:
                nursery.start_soon(watcher.run, stop)
            nursery.start_soon(_chaos, stop, seed, kills)
            await trio.sleep(seconds)
            stop.set()

        # Every acknowledged message is stored exactly once; nothing is stored twice.
        stored = await Chat.read(Message, actor=alice, filter={"room_id": lobby.id})
        counts = Counter((m.author_name, m.client_id) for m in stored)
        assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:5]
        stored_ids = {client_id for _, client_id in counts}
        acked = [client_id for bot in bots for client_id in bot.acked]
        assert len(acked) == len(set(acked))
        assert set(acked) <= stored_ids, sorted(set(acked) - stored_ids)[:5]
        assert sum(kills.values()) > seconds  # the chaos really happened
        assert kills["db"] >= 1
        assert kills["tracker"] >= 1
        assert kills["liveview"] >= 1
        for watcher in watchers:  # each view crash was followed by a fresh mount
            assert watcher.mounts >= watcher.crashes >= 0
            assert watcher.mounts >= 1

        # Resync: every bot's history equals the database's latest messages.
        latest = sorted(stored, key=lambda m: m.inserted_at)[-50:]
        expected = [m.client_id for m in latest]
        async with trio.open_nursery() as nursery:
            for bot in bots:
                nursery.start_soon(_check_history, bot, expected)

        # Presence settles to the bots still connected (here: the last one, holding on).
        path = f"/socket/websocket?vsn=2.0.0&token={bots[0].token}"
        async with wsclient.connect(port, path) as client:
            await client.send(json.dumps(["1", "1", topic, "phx_join", {}]))
            await _settle(topic, {"bot00"})
        await _settle(topic, set())

        rss_after = _rss()
        assert beam.whereis("chat.sup") is not None  # the node and its tree are alive
        assert rss_after < rss_before * 1.5 + 64 * 1024 * 1024, (rss_before, rss_after)
        print(
            f"\nchaos {seconds:.0f} s: {len(acked)} acked, {len(stored)} stored, "
            f"kills {dict(kills)}, recoveries {sum(b.recoveries for b in bots)}, "
            f"page mounts {[w.mounts for w in watchers]}, "
            f"rss {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB"
        )


async def _settle(topic: str, names: set[str]) -> None:
    with trio.fail_after(10):
        while set(presence.list(topic)) != names:  # noqa: ASYNC110 - polls the tracker's table
            await trio.sleep(0.05)


async def _check_history(bot: Bot, expected: list[str]) -> None:
    path = f"/socket/websocket?vsn=2.0.0&token={bot.token}"
    async with wsclient.connect(bot.port, path) as client:
        await client.send(json.dumps(["1", "1", bot.topic, "phx_join", {}]))
        with trio.fail_after(10):
            while True:
                frame = json.loads(await client.receive())
                if frame[3] == "history":
                    got = [m["client_id"] for m in frame[4]["messages"]]
                    assert got == expected, bot.name
                    return
