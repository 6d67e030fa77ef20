"""Rate limits by scope: a token bucket per (scope, key), and growing delays after failures.

One :class:`RateLimiter` process (a GenServer, supervised with the rest of the application)
holds every counter of the node. Each *scope* is either a :class:`Limit` (at most ``count``
hits per ``seconds``: a token bucket, a burst of ``count`` refilled evenly) or a
:class:`Backoff` (free failures, then a delay that doubles with every further failure, until
a success resets it or the failures are forgotten). Keys are whatever the caller counts by: a
user id, a client address (``"ip:127.0.0.1"``), an account name::

    from supervisors import Application, child_spec

    SCOPES = {
        "message": web.Limit(60, 60.0, "messages"),
        "login": web.Limit(20, 60.0, "sign-in attempts"),
        "login_failures": web.Backoff(free=5),
    }
    app = Application("app.sup", [child_spec(web.RateLimiter, SCOPES, name=web.RATE_LIMITER)])

    async def send(user_id, text):
        await web.rate_limit("message", user_id)       # raises web.RateLimited when over
        ...

    async def sign_in(address, username, password):
        await web.rate_limit("login_failures", f"ip:{address}")   # still held back?
        if not await check(username, password):
            await web.record_failure("login_failures", f"ip:{address}")
            ...
        await web.reset_limit("login_failures", f"user:{username}")

The counters are soft: a restarted limiter starts empty (at worst it forgives a burst). By
default each node counts apart; to count once for a cluster, start the limiter on every node
with ``(scopes, Shared(global_name))`` and ask it with ``server=Shared(global_name)``: one
of them holds the global name and counts for every node, the others stand by and one takes
over (starting empty) when it dies or its node goes down (the cluster tells a node killed
outright within a few tenths of a second: calls waiting on its holder end then, and a
standby takes the name over); a node whose calls cannot reach the holder counts on its own
limiter meanwhile, and a holder that did not answer in time (a node hung, not dead) is not
asked again by that node for a few seconds. Time is ``trio.current_time()``, so tests drive
it with ``trio.testing.MockClock``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import trio

import beam

__all__ = [
    "RATE_LIMITER",
    "Backoff",
    "Limit",
    "RateLimited",
    "RateLimiter",
    "Shared",
    "rate_limit",
    "record_failure",
    "reset_limit",
]

#: The name :func:`rate_limit` asks by default.
RATE_LIMITER: Final = "web.rate_limiter"
#: How often stale entries (a full bucket, forgotten failures) are dropped.
_SWEEP_SECONDS: Final = 60.0
_MAX_KEY: Final = 200
#: How long a call to a shared limiter on another node may take before this node counts.
_REMOTE_TIMEOUT: Final = 0.5
_LOCAL_TIMEOUT: Final = 5.0  # beam.call's default
#: After a holder on another node failed to answer, how long this node counts on its own
#: limiter without asking that holder again (a dead node is declared down in a few tenths of
#: a second and the name moves on; a hung one within the cluster's timeout, 5 s by default).
_SUSPECT_SECONDS: Final = 5.0
#: Per node: the holders on other nodes that did not answer it, and until when that node
#: does not ask them.
_suspects: weakref.WeakKeyDictionary[beam.Node, dict[beam.Pid, float]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Limit:
    """At most *count* hits per *seconds* for each key (*what* names them in the refusal).

    >>> web.Limit(60, 60.0, "messages")
    Limit(count=60, seconds=60.0, what='messages')
    """

    count: int
    seconds: float
    what: str = "requests"

    def __post_init__(self) -> None:
        if self.count < 1 or not self.seconds > 0:
            raise ValueError(
                f"a Limit allows at least 1 hit per a positive number of seconds, got "
                f"count={self.count!r}, seconds={self.seconds!r}"
            )


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays after failures: *free* failures cost nothing, then each one holds the key back
    ``base * 2**(failures - free)`` seconds (at most *cap*) from the last failure; a key with
    no failure for *forget* seconds starts over, and :func:`reset_limit` forgets at once.

    >>> web.Backoff(free=5, base=1.0, cap=900.0)
    Backoff(free=5, base=1.0, cap=900.0, forget=3600.0, what='failed attempts')
    """

    free: int = 5
    base: float = 1.0
    cap: float = 900.0
    forget: float = 3600.0
    what: str = "failed attempts"

    def __post_init__(self) -> None:
        if self.free < 0 or not self.base > 0 or self.cap < self.base or not self.forget > 0:
            raise ValueError(
                f"a Backoff needs free >= 0, base > 0, cap >= base and forget > 0, got {self!r}"
            )

    def delay(self, failures: int) -> float:
        """How long the key waits after its latest failure, with *failures* counted.

        >>> web.Backoff(free=5).delay(5), web.Backoff(free=5).delay(7)
        (1.0, 4.0)
        """
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - self.free, 64))


@dataclass(frozen=True, slots=True)
class Shared:
    """A limiter shared by the cluster: the process registered globally as *global_name*,
    else (no holder yet, or the holder cannot be reached) this node's *local_name*.

    >>> web.Shared("chat.ratelimit", local_name="chat.ratelimit")
    Shared(global_name='chat.ratelimit', local_name='chat.ratelimit')
    """

    global_name: str
    local_name: str = RATE_LIMITER


# A shared limiter answers callers of other nodes with these.
beam.cluster.register(Limit, "web.Limit")
beam.cluster.register(Backoff, "web.Backoff")

#: What the functions below ask: a limiter's registered name or pid, or a :class:`Shared`.
Server = str | beam.Pid | Shared


class RateLimited(Exception):
    """Over a limit: ``scope``, ``retry_after`` (seconds), and a message that says how long
    to wait (``"slow down: at most 3 messages per minute; try again in 20 s"``).

    >>> try:
    ...     await web.rate_limit("message", user_id)
    ... except web.RateLimited as exc:
    ...     reply = {"reason": str(exc), "retry_after": exc.retry_after}
    """

    def __init__(self, scope: str, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.scope = scope
        self.retry_after = retry_after


def _period(seconds: float) -> str:
    named = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86_400.0: "day"}
    return named.get(float(seconds)) or f"{seconds:g} s"


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


@dataclass
class _Table:
    """Every scope's entries, sans I/O: each method takes the time *now*."""

    scopes: Mapping[str, Limit | Backoff]
    max_keys: int = 100_000
    entries: dict[str, dict[str, _Bucket | _Failures]] = field(default_factory=dict)
    #: Shared by the cluster: its names, and the monitor on the holder this one stands by for.
    shared: Shared | None = None
    watch: beam.Ref | None = None

    def scope(self, name: str) -> Limit | Backoff:
        try:
            return self.scopes[name]
        except KeyError:
            raise ValueError(
                f"no rate-limit scope {name!r}; the limiter knows {sorted(self.scopes)} "
                "(add it to the scopes the RateLimiter is started with)"
            ) from None

    def _entries(self, scope: str) -> dict[str, _Bucket | _Failures]:
        table = self.entries.setdefault(scope, {})
        if len(table) >= self.max_keys:  # full: the oldest entry goes first
            del table[next(iter(table))]
        return table

    def hit(self, scope: str, key: str, now: float) -> tuple[str, float]:
        """``("ok", 0)`` and one hit counted, or ``("wait", seconds)`` (nothing counted)."""
        limit = self.scope(scope)
        if isinstance(limit, Backoff):
            return self._held(limit, self.entries.get(scope, {}).get(key), now)
        table = self.entries.get(scope)
        bucket = table.get(key) if table is not None else None
        rate = limit.count / limit.seconds
        if not isinstance(bucket, _Bucket):
            bucket = _Bucket(float(limit.count), now)
            self._entries(scope)[key] = bucket
        bucket.tokens = min(float(limit.count), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0 - 1e-9:  # the wait named earlier suffices, rounding aside
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return ("ok", 0.0)
        return ("wait", (1.0 - bucket.tokens) / rate)

    def _held(self, backoff: Backoff, entry: Any, now: float) -> tuple[str, float]:
        if not isinstance(entry, _Failures) or now - entry.last >= backoff.forget:
            return ("ok", 0.0)
        remaining = entry.last + backoff.delay(entry.count) - now
        return ("wait", remaining) if remaining > 0 else ("ok", 0.0)

    def fail(self, scope: str, key: str, now: float) -> float:
        """Count a failure of *key*; the delay now in force (0: still free)."""
        backoff = self.scope(scope)
        if not isinstance(backoff, Backoff):
            raise ValueError(
                f"scope {scope!r} is a Limit, not a Backoff: record_failure needs a Backoff scope"
            )
        entry = self.entries.get(scope, {}).get(key)
        if not isinstance(entry, _Failures) or now - entry.last >= backoff.forget:
            entry = _Failures(0, now)
            self._entries(scope)[key] = entry
        entry.count += 1
        entry.last = now
        return backoff.delay(entry.count)

    def reset(self, scope: str, key: str) -> None:
        """Forget *key* in *scope* (a success)."""
        self.scope(scope)
        self.entries.get(scope, {}).pop(key, None)

    def sweep(self, now: float) -> None:
        """Drop entries that say nothing any more: a full bucket, forgotten failures."""
        for name, table in self.entries.items():
            limit = self.scopes[name]
            for key in list(table):
                entry = table[key]
                if isinstance(entry, _Failures):
                    stale = not isinstance(limit, Backoff) or now - entry.last >= limit.forget
                elif isinstance(limit, Limit):
                    refill = (now - entry.at) * limit.count / limit.seconds
                    stale = entry.tokens + refill >= limit.count
                else:
                    stale = True
                if stale:
                    del table[key]


class RateLimiter(beam.GenServer[_Table]):
    """The node's rate limits (see the module documentation); start it with the scopes::

        child_spec(web.RateLimiter, {"message": web.Limit(60, 60.0, "messages")},
                   name=web.RATE_LIMITER)

    Calls: ``("hit", scope, key)`` answers ``("ok", 0.0)`` or ``("wait", seconds)``;
    ``("fail", scope, key)`` answers ``("ok", delay now in force)``; ``("reset", scope,
    key)`` answers ``("ok", 0.0)``; ``("scope", scope)`` answers ``("ok", the scope's
    Limit or Backoff)``; a bad request (an unknown scope, say) answers ``("error", why)``.
    Use :func:`rate_limit`, :func:`record_failure` and :func:`reset_limit`.
    """

    async def init(
        self, arg: Mapping[str, Limit | Backoff] | tuple[Mapping[str, Limit | Backoff], Shared]
    ) -> beam.Ok[_Table]:
        scopes, shared = arg if isinstance(arg, tuple) else (arg, None)
        for name, limit in scopes.items():
            if not isinstance(limit, Limit | Backoff):
                raise TypeError(
                    f"scope {name!r}: expected a web.Limit or web.Backoff, got {limit!r}"
                )
        beam.send_after(beam.self(), "sweep", _SWEEP_SECONDS)
        table = _Table(dict(scopes))
        if shared is not None:
            table.shared = shared
            await _lead(table)
        return beam.Ok(table)

    async def handle_call(
        self, request: Any, from_: beam.From, state: _Table
    ) -> beam.Reply[_Table]:
        now = trio.current_time()
        try:  # a caller's mistake is answered, not a crash of everyone's limits
            match request:
                case ("hit", str(scope), str(key)):
                    return beam.Reply(state.hit(scope, key[:_MAX_KEY], now), state)
                case ("fail", str(scope), str(key)):
                    return beam.Reply(("ok", state.fail(scope, key[:_MAX_KEY], now)), state)
                case ("reset", str(scope), str(key)):
                    state.reset(scope, key[:_MAX_KEY])
                    return beam.Reply(("ok", 0.0), state)
                case ("scope", str(scope)):
                    return beam.Reply(("ok", state.scope(scope)), state)
            raise ValueError(f"RateLimiter: unknown request {request!r:.100}")
        except ValueError as exc:
            return beam.Reply(("error", str(exc)), state)

    async def handle_info(self, message: Any, state: _Table) -> beam.NoReply[_Table]:
        if message == "sweep":
            state.sweep(trio.current_time())
            beam.send_after(beam.self(), "sweep", _SWEEP_SECONDS)
        elif message == "lead" or (type(message) is beam.Down and message.ref == state.watch):
            # The holder is gone: take over, or watch the new one. Claiming the name takes a
            # trip to Redis: a helper makes it, and this limiter goes on answering (callers
            # whose holder just died count here meanwhile).
            state.watch = None
            me, shared = beam.self(), state.shared
            assert shared is not None
            beam.spawn(_claim, me, shared)
        elif type(message) is tuple and len(message) == 2 and message[0] == "led":
            _follow(state, message[1])
        return beam.NoReply(state)


async def _lead(table: _Table) -> None:
    """Take the shared limiter's global name, or watch whoever holds it (to take over when
    it goes); retried every second while neither works (Redis away, say)."""
    shared = table.shared
    assert shared is not None
    table.watch = None
    try:
        won = await beam.register_global(shared.global_name, beam.self())
    except ConnectionError:
        won = False
    _follow(table, won)


async def _claim(limiter: beam.Pid, shared: Shared) -> None:
    """Claim the shared limiter's global name for *limiter*; tell it ``("led", won)``."""
    try:
        won = await beam.register_global(shared.global_name, limiter)
    except ConnectionError:
        won = False
    beam.send(limiter, ("led", won))


def _follow(table: _Table, won: bool) -> None:
    """After a claim of the global name: nothing more if it is this limiter's, else watch
    whoever holds it, else (nobody: Redis away, say) try again in a second."""
    shared = table.shared
    if won or shared is None or table.watch is not None:
        return
    holder = beam.whereis_global(shared.global_name)
    if holder == beam.self():
        return  # held already (a claim made twice)
    if holder is None:
        beam.send_after(beam.self(), "lead", 1.0)
        return
    table.watch = beam.monitor(holder)


async def rate_limit(scope: str, key: str, *, server: Server = RATE_LIMITER) -> None:
    """Count one hit of *key* in the :class:`Limit` *scope*, or, for a :class:`Backoff`
    scope, check that *key* is not held back; raise :class:`RateLimited` otherwise.

    >>> await web.rate_limit("message", str(user.id))
    """
    seconds = await _ask(server, ("hit", scope, key))
    if seconds is None:
        return
    limit = await _ask(server, ("scope", scope))
    wait = _whole(seconds)
    if isinstance(limit, Backoff):
        message = f"too many {limit.what}: try again in {wait} s"
    else:
        message = (
            f"slow down: at most {limit.count} {limit.what} per {_period(limit.seconds)}; "
            f"try again in {wait} s"
        )
    raise RateLimited(scope, seconds, message)


async def record_failure(scope: str, key: str, *, server: Server = RATE_LIMITER) -> float:
    """Count a failure of *key* in the :class:`Backoff` *scope*; returns the delay (seconds)
    the key is now held back from its next attempt (0 while failures are still free).

    >>> await web.record_failure("login_failures", f"user:{username}")
    0.0
    """
    delay: float = await _ask(server, ("fail", scope, key))
    return delay


async def reset_limit(scope: str, key: str, *, server: Server = RATE_LIMITER) -> None:
    """Forget *key* in *scope* (after a successful sign-in, say).

    >>> await web.reset_limit("login_failures", f"user:{username}")
    """
    await _ask(server, ("reset", scope, key))


async def _ask(server: Server, request: tuple[str, ...]) -> Any:
    """The limiter's answer; ``None`` for a hit that went through, the wait for one that did
    not; :class:`ValueError` for a request it refused (an unknown scope)."""
    if isinstance(server, Shared):
        holder = beam.whereis_global(server.global_name)
        remote = holder is not None and holder.node is not None
        suspects = _suspects.get(beam.current_node("web.rate_limit"))
        if (
            holder is not None
            and remote
            and suspects
            and suspects.get(holder, 0.0) > trio.current_time()
        ):
            holder, remote = None, False  # it did not answer a moment ago: count here
        try:
            # A holder on another node answers in a round trip. If its node dies, the call
            # ends when the cluster tells (a few tenths of a second for a node killed
            # outright); one that hangs would hold the caller: count here after a while.
            timeout = _REMOTE_TIMEOUT if remote else _LOCAL_TIMEOUT
            verdict, value = await beam.call(holder or server.local_name, request, timeout=timeout)
        except beam.ProcessExit:
            if holder is None or holder.node is None:
                raise
            # The holder's node went down, or it died mid-call: count here meanwhile, and
            # do not make the next callers wait on it too.
            now = trio.current_time()
            node = beam.current_node("web.rate_limit")
            suspects = _suspects.get(node)
            if suspects is None:
                suspects = _suspects[node] = {}
            for stale in [pid for pid, until in suspects.items() if until <= now]:
                del suspects[stale]
            suspects[holder] = now + _SUSPECT_SECONDS
            verdict, value = await beam.call(server.local_name, request)
    else:
        verdict, value = await beam.call(server, request)
    if verdict == "error":
        raise ValueError(value)
    if verdict == "wait":
        return value
    return None if request[0] == "hit" else value
