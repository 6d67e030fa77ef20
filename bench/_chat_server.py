"""The chat server of the ``chat`` suite, run in its own interpreter.

``python -m bench._chat_server CRASHES_PER_S ROOMS BOTS`` runs the example chat
(:func:`examples.chat.app.build`) on a fresh SQLite file in a temporary directory, with a rate
limit too high to matter, creates the users ``bot000``... (password :data:`PASSWORD`) and ROOMS
rooms, and prints ``ROOM <id>`` for each room, then ``PORT <n>`` once listening.

With CRASHES_PER_S > 0 a task of the node kills one process chosen at random every
1/CRASHES_PER_S seconds, picked by :func:`examples.chat.chaos.pick` as in the chaos test: a
room channel process, a socket's transport process, a PubSub topic janitor, one of the
domain's database connection actors, or the presence tracker (whose heir keeps the
presences while it restarts: the channels it tracks live on). Supervisors allow 10
restarts in 5 s, so a database actor or the tracker is picked at most every 1.5 s.

An optional fourth argument, kinds separated by commas (``transport,channel``), limits the
victims to those kinds (to measure what each kind of crash costs).

A line ``REPORT`` on stdin stops the killing and makes the server print ``STORED <json>``
(``rows``: the messages stored in all rooms, read as ``bot000``, who opened every room and so
is a member of each; ``distinct``: the distinct (author, client id) pairs among them;
``client_ids``: those client ids), ``KILLS <json>`` (kills per kind) and ``KILLED <json>``
(each kill's ``time.perf_counter()`` and kind). It runs until killed.

``python -m bench._chat_server setup ROOMS BOTS`` prepares the database of a chat served by
several nodes (``python -m web examples.chat.serve:endpoint``, configured by the same
environment: ``DATABASE_URL``, ``CHAT_DATA_DIR``...): it starts the chat alone in a node of its
own (which migrates the database and writes the secret key), creates the same users and rooms,
prints ``ROOM <id>`` for each room, and exits. See :mod:`bench._chat_nodes`.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Final

PASSWORD: Final = "bench-soak-password"
#: Restarts of a supervised child (a database actor, the tracker) at most this often.
_RESTART_EVERY: Final = 1.5


def say(*words: object) -> None:
    print(*words, flush=True)


def bot_name(index: int) -> str:
    """The username of bot *index*."""
    return f"bot{index:03d}"


async def _chaos(
    crashes_per_s: float,
    kills: Counter[str],
    stopped: list[bool],
    kinds: tuple[str, ...],
    log: list[tuple[float, str]],
) -> None:
    import time

    import trio

    import beam
    from examples.chat import chaos

    rng = random.Random(7)
    interval = 1.0 / crashes_per_s
    start = trio.current_time()
    last_restart = -_RESTART_EVERY
    tick = 0
    while not stopped:
        tick += 1
        await trio.sleep_until(start + tick * interval)
        now = trio.current_time()
        found = chaos.pick(
            rng,
            restart_allowed=now - last_restart >= _RESTART_EVERY,
            kinds=kinds or chaos.DEFAULT_KINDS,
        )
        if found is None or stopped:
            continue
        kind, pid = found
        if kind in chaos.SUPERVISED:
            last_restart = now
        kills[kind] += 1
        log.append((time.perf_counter(), kind))  # CLOCK_MONOTONIC: the bots' clock too
        beam.exit(pid, "kill")


async def _report(kills: Counter[str], log: list[tuple[float, str]]) -> None:
    import trio

    from examples.chat.model import Chat, Message, User

    for _ in range(50):  # a killed database actor may still be restarting
        try:
            reader = (await Chat.read(User, filter={"username": bot_name(0)}, limit=1))[0]
            stored = await Chat.read(Message, actor=reader)
            break
        except Exception:  # any failure here is the restart: try again
            await trio.sleep(0.1)
    else:
        raise RuntimeError("the chat's database did not answer")
    pairs = Counter((m.author_name, m.client_id) for m in stored)
    client_ids = sorted(client_id for _, client_id in pairs)
    say(
        "STORED",
        json.dumps({"rows": len(stored), "distinct": len(pairs), "client_ids": client_ids}),
    )
    say("KILLS", json.dumps(dict(kills)))
    say("KILLED", json.dumps(log))


async def create_bots_and_rooms(rooms: int, bots: int) -> list[str]:
    """Register the users ``bot000``... (password :data:`PASSWORD`) and open *rooms* rooms
    owned by ``bot000``; the rooms' ids.

    >>> room_ids = await create_bots_and_rooms(4, 40)  # in a node running the chat
    """
    from examples.chat.accounts import hash_password
    from examples.chat.model import Chat, Room, User

    password_hash = hash_password(PASSWORD)  # one scrypt for all: the users differ by name
    for index in range(bots):
        await Chat.register(bot_name(index), password_hash)
    owner = (await Chat.read(User, filter={"username": bot_name(0)}, limit=1))[0]
    opened: list[Room] = [await Chat.open_room(f"soak-{i}", actor=owner) for i in range(rooms)]
    return [str(room.id) for room in opened]


def serve(crashes_per_s: float, rooms: int, bots: int, kinds: tuple[str, ...] = ()) -> None:
    """Run the chat until killed (see the module's docstring)."""
    import trio

    import beam
    import web
    from examples.chat.app import build

    async def main(data_dir: Path) -> None:
        database = f"sqlite:///{data_dir / 'chat.db'}"
        endpoint = await build(data_dir, database=database, messages_per_minute=10**9)
        for room_id in await create_bots_and_rooms(rooms, bots):
            say("ROOM", room_id)
        kills: Counter[str] = Counter()
        log: list[tuple[float, str]] = []
        stopped: list[bool] = []
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            if crashes_per_s > 0:
                nursery.start_soon(_chaos, crashes_per_s, kills, stopped, kinds, log)
            say("PORT", port)
            while line := await trio.to_thread.run_sync(sys.stdin.readline):
                if line.strip() == "REPORT":
                    stopped.append(True)
                    await _report(kills, log)

    with tempfile.TemporaryDirectory(prefix="bench-chat-") as data_dir:
        beam.run(main, Path(data_dir))


def setup(rooms: int, bots: int) -> None:
    """Prepare the database the environment names, then exit (see the module's docstring).

    >>> setup(4, 40)  # DATABASE_URL=postgresql://... CHAT_DATA_DIR=... CHAT_DEMO=1
    """
    import beam
    from examples.chat.serve import endpoint

    async def main() -> None:
        await endpoint()  # the chat as every node starts it: migrations, key, seeding
        for room_id in await create_bots_and_rooms(rooms, bots):
            say("ROOM", room_id)

    beam.run(main)


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(int(sys.argv[2]), int(sys.argv[3]))
    else:
        crashes, room_count, bot_count = sys.argv[1:4]
        only = tuple(k for k in (sys.argv[4] if len(sys.argv) > 4 else "").split(",") if k)
        serve(float(crashes), int(room_count), int(bot_count), only)
