"""PostgreSQL connections owned by supervised processes, lent to the processes that need them.

Each connection has an *owner*: a beam process (``"<repo>.conn.<i>"``, a child of the repo's
supervisor) that opens it, hands it to the pool, takes it back when it needs care, and
closes it when it dies. A caller (any process) *checks out* a connection, runs its unit of
work on it in its own task, on trio (``domain/_pg_link.py``), and checks it in. The pool
itself is a table the callers use directly, as Erlang processes use an ETS table: checking
out and in costs no message and no scheduler pass; callers that find no connection free
queue in FIFO order and each gets the next one checked in.

What happens when things go wrong:

* a caller cancelled or killed mid-query: its wait cancels the query on the server first
  (``domain/_pg_conn.py``); the connection goes to its owner, which replaces it;
* a caller that dies holding a connection between statements (inside
  ``Domain.transaction``): the connection goes to its owner, which rolls it back;
* a connection lost (the server went away, ``pg_terminate_backend``): the caller gets an
  error the data layer turns into :class:`~domain.ConnectionLost`; the owner reconnects,
  with backoff while the server stays away; an idle connection found lost at checkout is
  replaced the same way and the caller takes another;
* an owner killed (or the pool stopped): it cancels what runs on its connection and closes
  it; a caller using it gets :class:`~domain.ConnectionLost`; the supervisor starts a fresh
  owner, which connects anew.

:meth:`Pool.stats` is the pool's state for dashboards (``PostgresRepo.stats()``)::

    pool = Pool("App.repo", 10, "host=127.0.0.1 dbname=app", options="")
    link = await pool.checkout()
    try:
        ...
    finally:
        pool.checkin(link)
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import outcome
import psycopg
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

import beam

from ._data import PoolStats
from ._pg_conn import TrioConnection
from ._pg_link import Link

__all__ = ["Pool", "start_owner", "start_watchdog"]

#: How long an owner waits between attempts to reconnect, at first and at most (seconds).
BACKOFF = (0.05, 2.0)
#: How long an owner's recovery (a rollback) may take before the connection is replaced.
RECOVERY_TIMEOUT = 5.0
#: How long a dying owner lets its connection's running query be cancelled on the server.
CANCEL_ON_EXIT = 1.0


@dataclass(frozen=True)
class _Started:
    pid: beam.Pid
    error: BaseException | None


@dataclass(frozen=True)
class _Care:
    """To an owner: a connection came back needing care (rollback, or a new connection)."""

    link: Link


class _Waiter:
    __slots__ = ("task",)

    def __init__(self, task: Task) -> None:
        self.task = task


class Pool:
    """The connection table of one repo (see the module docstring)."""

    def __init__(self, name: str, size: int, conninfo: str, *, options: str) -> None:
        self.name = name
        self.size = size
        self.conninfo = conninfo
        self.options = options
        self.names = [f"{name}.conn.{i}" for i in range(size)]
        self.links: set[Link] = set()
        self.idle: list[Link] = []
        self.waiters: deque[_Waiter] = deque()
        self.in_use = 0
        self.timeouts = 0
        self.replaced = 0
        self._retired_queries = 0
        self._retired_errors = 0

    # -- connections ---------------------------------------------------------------------------

    async def connect(self, index: int) -> Link:
        """A new connection for owner *index* (the calling process)."""
        conn: TrioConnection[Any] = await TrioConnection.connect(
            self.conninfo,
            autocommit=True,
            prepare_threshold=None,
            application_name=self.names[index],
            options=self.options,
        )
        return Link(conn, beam.self(), self.names[index])

    def add(self, link: Link) -> None:
        """A connection joins (or rejoins) the pool: to the longest waiting caller, or idle."""
        self.links.add(link)
        self._give(link)

    def retire(self, link: Link) -> None:
        """Take *link* out of the pool for good (its owner closes it)."""
        if link in self.links:
            self.links.discard(link)
            self._retired_queries += link.queries
            self._retired_errors += link.errors
        if link in self.idle:
            self.idle.remove(link)

    def _give(self, link: Link) -> None:
        if self.waiters:
            waiter = self.waiters.popleft()
            self.in_use += 1
            reschedule(waiter.task, outcome.Value(link))
        else:
            self.idle.append(link)

    # -- lending -------------------------------------------------------------------------------

    def take(self) -> Link | None:
        """An idle, healthy connection now, or ``None``."""
        idle = self.idle
        while idle:
            link = idle.pop()
            self.in_use += 1
            if link.healthy_when_idle():
                return link
            self.in_use -= 1
            self.links.discard(link)
            link.dead = True  # its owner replaces it
            beam.send(link.owner, _Care(link))
        return None

    async def checkout(self) -> Link:
        """A connection for the calling task, waiting in line while none is free (cancel
        the wait, e.g. with a deadline, to give up)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        link = self.take()
        if link is not None:
            return link
        waiter = _Waiter(current_task())
        self.waiters.append(waiter)

        def abort(_: Any) -> Abort:
            self.waiters.remove(waiter)
            return Abort.SUCCEEDED

        found: Link = await wait_task_rescheduled(abort)  # handed over (in use) by _give
        return found

    def checkin(self, link: Link) -> None:
        """Give *link* back: to the next caller, or idle; to its owner when it needs care."""
        self.in_use -= 1
        if link.depth == 0 and not link.busy and not link.broken and link in self.links:
            self._give(link)
        elif link in self.links:
            self.links.discard(link)
            beam.send(link.owner, _Care(link))

    def stats(self) -> PoolStats:
        """The pool's :class:`PoolStats` now."""
        links = self.links
        return PoolStats(
            size=self.size,
            connected=len(links),
            idle=len(self.idle),
            in_use=self.in_use,
            waiting=len(self.waiters),
            queries=self._retired_queries + sum(link.queries for link in links),
            errors=self._retired_errors + sum(link.errors for link in links),
            timeouts=self.timeouts,
            replaced=self.replaced,
        )


# -- deadlines ------------------------------------------------------------------------------------


async def start_watchdog(pool: Pool, interval: float) -> beam.Pid:
    """Start the process that enforces the deadlines of lent connections, linked to the
    caller (the pool's supervisor), registered as ``"<pool>.watchdog"``::

        ChildSpec(id="App.repo.watchdog", start=start_watchdog, args=(pool, 1.0))
    """
    return beam.spawn_link(_watchdog, pool, interval)


async def _watchdog(pool: Pool, interval: float) -> None:
    """Every *interval* seconds, wake the caller of each lent connection whose deadline has
    passed while it waits on the database (it then cancels its query on the server and
    raises; see ``TrioConnection.deadline``). A deadline so costs a call nothing: no cancel
    scope per call or per wait; it is kept within *interval*."""
    beam.register(f"{pool.name}.watchdog", beam.self())
    while True:
        await trio.sleep(interval)
        now = trio.current_time()
        for link in list(pool.links):
            if link.busy and link.conn.deadline <= now and not link.broken:
                trio.lowlevel.notify_closing(link.pgconn.socket)


# -- owners ---------------------------------------------------------------------------------------


async def start_owner(pool: Pool, index: int) -> beam.Pid:
    """Start the owner of connection *index*, linked to the caller (the pool's supervisor),
    once it has connected; :class:`beam.StartError` if it cannot::

        ChildSpec(id=pool.names[0], start=start_owner, args=(pool, 0))
    """
    me = beam.self()
    pid = beam.spawn_link(_owner, pool, index, me)
    ref = beam.monitor(pid)
    try:
        message = await beam.receive(
            lambda m: (
                (type(m) is _Started and m.pid == pid) or (type(m) is beam.Down and m.ref == ref)
            )
        )
    finally:
        beam.demonitor(ref, flush=True)
    if type(message) is beam.Down:
        raise beam.StartError(message.reason)
    if message.error is not None:
        raise beam.StartError(message.error)
    return pid


async def _owner(pool: Pool, index: int, starter: beam.Pid) -> None:
    me = beam.self()
    beam.register(pool.names[index], me)
    link: Link | None = None
    try:
        try:
            link = await pool.connect(index)
        except (psycopg.Error, OSError) as exc:
            beam.send(starter, _Started(me, exc))
            return
        pool.add(link)
        beam.send(starter, _Started(me, None))
        while True:
            message = await beam.receive()
            if type(message) is _Care and message.link is link:
                link = await _care(pool, index, link)
    finally:
        if link is not None:
            await _close(pool, link)


async def _care(pool: Pool, index: int, link: Link) -> Link:
    """Make *link* fit for the next caller, or replace it; returns what joined the pool."""
    if not link.busy and not link.broken:
        with trio.move_on_after(RECOVERY_TIMEOUT):
            try:
                await link.rollback_now()
            except psycopg.Error:
                pass
            else:
                if not link.broken:
                    pool.add(link)
                    return link
    await _close(pool, link)
    pool.replaced += 1
    backoff = BACKOFF[0]
    while True:
        try:
            fresh = await pool.connect(index)
        except (psycopg.Error, OSError):
            await trio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF[1])
            continue
        pool.add(fresh)
        return fresh


async def _close(pool: Pool, link: Link) -> None:
    """Retire and close *link*; if a query runs on it, have the server cancel it first."""
    pool.retire(link)
    busy = link.busy and not link.broken
    link.dead = True  # a caller using it now sees it lost, whatever the server answers
    if busy:
        deadline = trio.current_time() + CANCEL_ON_EXIT
        with trio.CancelScope(shield=True, deadline=deadline), contextlib.suppress(psycopg.Error):
            await link.conn.cancel_safe(timeout=CANCEL_ON_EXIT)
    link.close()
