"""Fault injection for the chat: which of its processes to kill, by kind.

The chaos test and the chat soak benchmark kill processes at random while bots chat; they
pick their victims here, so both kill the same things. Kinds: ``channel`` (a room channel),
``liveview`` (a chat page's view), ``transport`` (a socket connection's process),
``pubsub`` (a PubSub topic process), ``db`` (a database connection actor), ``tracker``
(the presence tracker: its heir keeps the presences while it restarts, so the channels it
tracks live on, see :mod:`presence._heir`) and ``ratelimit``
(the rate limiter: on several nodes one of them holds the cluster's global name and counts
for all, and another takes over when it dies). The last three are children of supervisors
that allow 10 restarts in 5 s, so callers pass ``restart_allowed=False`` to spare them when
one was killed recently. :func:`pick` leaves ``ratelimit`` out unless asked (the
single-node chaos test and the soak benchmark pick among the other six)::

    rng = random.Random(7)
    found = pick(rng, restart_allowed=True)
    if found is not None:
        kind, pid = found
        beam.exit(pid, "kill")
"""

from __future__ import annotations

import random
from collections.abc import Collection

import beam

from .ratelimit import NAME as RATE_LIMITER

#: Every kind :func:`victims` knows.
KINDS = ("channel", "liveview", "transport", "pubsub", "db", "tracker", "ratelimit")
#: The kinds :func:`pick` chooses among unless told otherwise.
DEFAULT_KINDS = KINDS[:-1]
#: The kinds whose processes a supervisor restarts (their restarts count against it).
SUPERVISED = ("db", "tracker", "ratelimit")


def victims() -> dict[str, list[beam.Pid]]:
    """The chat's killable processes on this node, by kind.

    >>> len(victims()["channel"])    # room channel processes right now
    20
    """
    found: dict[str, list[beam.Pid]] = {kind: [] for kind in KINDS}
    for pid in beam.processes():
        info = beam.process_info(pid)
        if info is None:
            continue
        call, name = info.initial_call, info.registered_name or ""
        if call.endswith("RoomChannel"):
            found["channel"].append(pid)
        elif call.endswith("LiveChannel"):
            found["liveview"].append(pid)
        elif call.endswith("ChatSocket"):
            found["transport"].append(pid)
        elif "_janitor" in call:
            found["pubsub"].append(pid)
        elif name.startswith("Chat.repo.conn."):
            found["db"].append(pid)
        elif name == "presence":
            found["tracker"].append(pid)
        elif name == RATE_LIMITER:
            found["ratelimit"].append(pid)
    return found


def pick(
    rng: random.Random, *, restart_allowed: bool, kinds: Collection[str] = DEFAULT_KINDS
) -> tuple[str, beam.Pid] | None:
    """A random kind among *kinds* that has processes now, then a random process of it;
    supervised kinds only when *restart_allowed*. ``None`` when nothing qualifies."""
    found = victims()
    choices = [
        kind
        for kind in KINDS
        if kind in kinds and found[kind] and (restart_allowed or kind not in SUPERVISED)
    ]
    if not choices:
        return None
    kind = rng.choice(choices)
    return kind, rng.choice(found[kind])
