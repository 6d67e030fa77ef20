"""psycopg 3 driven by trio: an ``AsyncConnection`` whose waits are trio's, no thread.

psycopg does all its protocol work in generators (``psycopg.generators``) that yield what
they wait for (the socket readable, writable, or either); ``AsyncConnection`` consumes them
through one method, :meth:`~psycopg.AsyncConnection.wait`, and serialises them with one
lock, ``self.lock``. Out of the box both are asyncio's. :class:`TrioConnection` replaces
them: :meth:`TrioConnection.wait` parks the task with ``trio.lowlevel.wait_readable`` /
``wait_writable`` on the connection's socket, and ``lock`` is a :class:`TaskLock`. So every
query, transaction, ``LISTEN``/``NOTIFY`` wait and cancellation of psycopg's async API runs
on the trio loop, and the loop never blocks on the database::

    conn = await TrioConnection.connect("postgresql://postgres@127.0.0.1/test")
    cur = await conn.execute("SELECT %s::int + 1", (41,))
    assert await cur.fetchone() == (42,)
    await conn.close()

Interruption: a task cancelled (or a process killed) while a query runs on the server
cannot just walk away, or the connection would stay busy with a half-read reply. The wait
sends a cancel request to the server (libpq's non-blocking cancel), reads the reply to its
end, then lets the cancellation go on; the connection is usable again (its transaction, if
any, is aborted and must be rolled back). If that does not finish within
:data:`CANCEL_GRACE` seconds the connection is closed instead.

psycopg has no official trio support: this relies on private names of psycopg 3.3
(``_connect_gen``, ``_get_connection_params``, ``_cancel_gen``, ``lock``, the generators'
``Wait``/``Ready`` protocol); ``tests/domain/test_pg_conn.py`` pins each one, so an upgrade
that changes them fails loudly, and ``pyproject.toml`` pins the minor version.
"""

from __future__ import annotations

import math
import select
import socket
from types import TracebackType
from typing import Any, cast

import psycopg
import trio
from psycopg import errors as e
from psycopg import pq
from psycopg._conninfo_utils import get_param, get_param_def, is_ip_address, split_attempts
from psycopg.abc import ConnDict, PQGen, PQGenConn
from psycopg.conninfo import make_conninfo, timeout_from_conninfo
from psycopg.rows import AsyncRowFactory, Row, tuple_row
from psycopg.waiting import Ready, Wait

__all__ = ["CANCEL_GRACE", "DeadlineExceeded", "TaskLock", "TrioConnection"]

#: Seconds an interrupted query gets to be cancelled on the server and drained before the
#: connection is closed instead.
CANCEL_GRACE = 5.0

_WAIT_R = Wait.R
_WAIT_W = Wait.W
_READY_R = Ready.R
_READY_W = Ready.W
_ACTIVE = pq.TransactionStatus.ACTIVE
_TUPLE_ROW: Any = tuple_row


class DeadlineExceeded(e.OperationalError):
    """A wait passed the connection's deadline; what ran was cancelled on the server::

    conn.deadline = trio.current_time() + 5.0
    """


class TaskLock:
    """A lock for trio tasks that costs nothing when free: acquiring it does not pass
    through the scheduler (``trio.Lock`` always does), since the database wait that follows
    is the checkpoint. A second task waits its turn in FIFO order::

        lock = TaskLock()
        async with lock:
            ...
    """

    __slots__ = ("_lot", "_owner")

    def __init__(self) -> None:
        self._owner: trio.lowlevel.Task | None = None
        self._lot = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        """Whether a task holds the lock: ``lock.locked()``."""
        return self._owner is not None

    async def acquire(self) -> None:
        """Take the lock, waiting (cancellably) while another task holds it:
        ``await lock.acquire()``."""
        task = trio.lowlevel.current_task()
        if self._owner is None:
            self._owner = task
            return
        if self._owner is task:
            raise RuntimeError("TaskLock is not re-entrant: this task already holds it")
        await self._lot.park()
        # release() handed the lock to this task before waking it.

    def release(self) -> None:
        """Give the lock to the longest waiting task, if any: ``lock.release()``."""
        if self._owner is not trio.lowlevel.current_task():
            raise RuntimeError("TaskLock released by a task that does not hold it")
        if self._lot:
            (task,) = self._lot.unpark(count=1)
            self._owner = task
        else:
            self._owner = None

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _poll(fd: int, want: int) -> int:
    """What of *want* (``Wait`` bits) the socket *fd* is ready for right now (``Ready`` bits)."""
    events = (select.POLLIN if want & _WAIT_R else 0) | (select.POLLOUT if want & _WAIT_W else 0)
    poller = select.poll()
    poller.register(fd, events)
    ready = 0
    for _, revents in poller.poll(0):
        if revents & (select.POLLIN | select.POLLERR | select.POLLHUP):
            ready |= _READY_R
        if revents & (select.POLLOUT | select.POLLERR | select.POLLHUP):
            ready |= _READY_W
    return ready


async def _ready(fd: int, want: int) -> int:
    """Park until *fd* is ready for something of *want* (``Wait`` bits): the ``Ready`` bits."""
    if want == _WAIT_R:
        await trio.lowlevel.wait_readable(fd)
        return _READY_R
    if want == _WAIT_W:
        await trio.lowlevel.wait_writable(fd)
        return _READY_W
    # Either (libpq flushing a large message while the server may answer): trio parks a task
    # on one direction at a time, so wait to write in short slices and look at both.
    while True:
        ready = _poll(fd, want)
        if ready:
            return ready
        with trio.move_on_after(0.002):
            await trio.lowlevel.wait_writable(fd)


async def _wait_conn(gen: PQGenConn[Any], timeout: float | None) -> Any:
    """Run a connection generator (it names the socket with every wait) to its end."""
    with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
        try:
            fd, want = next(gen)
            while True:
                try:
                    ready = await _ready(fd, want)
                except trio.ClosedResourceError as exc:
                    raise e.OperationalError("connection socket closed") from exc
                fd, want = gen.send(ready)
        except StopIteration as done:
            return done.value
    assert scope.cancelled_caught
    gen.close()
    raise e._WaitTimeout("wait timeout expired")


async def _resolve(params: ConnDict) -> list[ConnDict]:
    """The connection attempts for one host: as psycopg's own resolution, on trio's
    resolver (no lookup for an IP address, a socket path or a given ``hostaddr``)."""
    host = get_param(params, "host")
    if not host or host.startswith("/") or host[1:2] == ":" or get_param(params, "hostaddr"):
        return [params]
    if is_ip_address(host):
        return [{**params, "hostaddr": host}]
    port = get_param(params, "port")
    if not port:
        default = get_param_def("port")
        port = (default.compiled if default else None) or "5432"
    found = await trio.socket.getaddrinfo(
        host, port, proto=socket.IPPROTO_TCP, type=socket.SOCK_STREAM
    )
    return [{**params, "hostaddr": str(item[4][0])} for item in found]


async def _attempts(params: ConnDict) -> list[ConnDict]:
    attempts: list[ConnDict] = []
    failure: Exception | None = None
    for attempt in split_attempts(params):
        try:
            attempts.extend(await _resolve(attempt))
        except OSError as exc:
            failure = e.OperationalError(f"failed to resolve host {attempt.get('host')!r}: {exc}")
    if not attempts:
        assert failure is not None
        raise failure
    return attempts


class TrioConnection(psycopg.AsyncConnection[Row]):
    """A psycopg ``AsyncConnection`` that runs on trio (see the module docstring): every
    method of psycopg's async API works, awaited from a trio task::

        conn = await TrioConnection.connect("dbname=test", autocommit=True)
        await conn.execute("LISTEN jobs")
        async for note in conn.notifies(timeout=1.0):
            print(note.channel, note.payload)
    """

    #: When the work on this connection is due (``trio.current_time()`` units). It costs a
    #: wait nothing: whoever watches deadlines wakes an overdue waiter with
    #: :func:`trio.lowlevel.notify_closing` on the socket, and the wait then cancels the
    #: query on the server and raises :class:`DeadlineExceeded`.
    deadline: float = math.inf

    def __init__(self, pgconn: Any, row_factory: AsyncRowFactory[Row] = _TUPLE_ROW) -> None:
        super().__init__(pgconn, row_factory)
        self.lock = cast("Any", TaskLock())

    @classmethod
    async def connect(
        cls,
        conninfo: str = "",
        *,
        autocommit: bool = False,
        prepare_threshold: int | None = 5,
        row_factory: AsyncRowFactory[Row] | None = None,
        **kwargs: Any,
    ) -> TrioConnection[Row]:
        """Connect (trio-natively, honouring ``connect_timeout``) and return the connection::

        conn = await TrioConnection.connect("host=127.0.0.1 dbname=test user=postgres")
        """
        params = await cls._get_connection_params(conninfo, **kwargs)
        timeout = timeout_from_conninfo(params)
        failures: list[tuple[e.Error, str]] = []
        conn: TrioConnection[Row] | None = None
        for attempt in await _attempts(params):
            where = f"host: {attempt.get('host')!r}, port: {attempt.get('port')!r}"
            try:
                conn = await _wait_conn(cls._connect_gen(make_conninfo("", **attempt)), timeout)
            except e._WaitTimeout:
                failures.append((e.ConnectionTimeout("connection timeout expired"), where))
            except e.Error as exc:
                failures.append((exc, where))
            else:
                break
        if conn is None:
            last = failures[-1][0]
            if len(failures) > 1:
                lines = [str(last), "Multiple connection attempts failed. All failures were:"]
                lines += [f"- {where}: {exc}" for exc, where in failures]
                last = type(last)("\n".join(lines))
            raise last.with_traceback(None)
        conn._autocommit = bool(autocommit)
        if row_factory is not None:
            conn.row_factory = row_factory
        conn.prepare_threshold = prepare_threshold
        return conn

    async def wait(
        self, gen: PQGen[Any], interval: float | None = None, timeout: float | None = None
    ) -> Any:
        """Run a psycopg generator on this connection's socket to its end, parking the task
        on trio while the socket is not ready. With *timeout*, psycopg's ``_WaitTimeout``
        when it is not done by then (what ``notifies(timeout=...)`` expects). A wait woken
        with :func:`trio.lowlevel.notify_closing` past the connection's :attr:`deadline`
        raises :class:`DeadlineExceeded` (the query was cancelled on the server first)."""
        fd = self.pgconn.socket
        try:
            want = next(gen)
        except StopIteration as done:
            return done.value
        try:
            if timeout is not None:  # psycopg's own timeouts (notifies): a scope, rare
                deadline = trio.current_time() + timeout
                while True:
                    with trio.CancelScope(deadline=deadline) as scope:
                        ready = await self._ready(gen, fd, want)
                    if scope.cancelled_caught:
                        gen.close()
                        raise e._WaitTimeout("wait timeout expired")
                    want = gen.send(ready)
            while True:
                want = gen.send(await self._ready(gen, fd, want))
        except StopIteration as done:
            return done.value

    async def _ready(self, gen: PQGen[Any], fd: int, want: int) -> int:
        """Wait for *fd*; if the wait is interrupted mid-query, cancel the query on the
        server and drain its reply before the interruption goes on."""
        try:
            return await _ready(fd, want)
        except trio.ClosedResourceError as exc:
            if self.closed or trio.current_time() < self.deadline:
                raise e.OperationalError("the connection was closed") from exc
            # Woken by whoever watches the deadline (domain/_pg_pool.py): past it.
            if self.pgconn.transaction_status == _ACTIVE:
                await self._abandon(gen, want)
            raise DeadlineExceeded("the deadline passed while waiting on the database") from None
        except BaseException:
            if self.pgconn.transaction_status == _ACTIVE:
                await self._abandon(gen, want)
            raise

    async def _abandon(self, gen: PQGen[Any], want: int) -> None:
        """A wait was interrupted mid-query: cancel the query on the server and read its
        reply to the end (shielded, at most :data:`CANCEL_GRACE` s), else close."""
        fd = self.pgconn.socket
        with trio.CancelScope(shield=True, deadline=trio.current_time() + CANCEL_GRACE) as scope:
            try:
                await self._cancel_on_server()
                while True:
                    want = gen.send(await _ready(fd, want))
            except StopIteration:
                return
            except e.QueryCanceled:
                return
            except Exception:
                pass
        del scope
        self._finish()

    async def _cancel_on_server(self) -> None:
        """Ask the server to cancel what runs on this connection (a cancel request on a
        connection of its own, driven on trio)."""
        if not self.closed:
            await _wait_conn(self._cancel_gen(), CANCEL_GRACE)

    async def cancel_safe(self, *, timeout: float = 30.0) -> None:
        """Cancel the current operation on the server, without blocking the loop::

        await conn.cancel_safe()
        """
        if not self._should_cancel():
            return
        try:
            await _wait_conn(self._cancel_gen(), timeout or None)
        except e._WaitTimeout:
            raise e.CancellationTimeout("cancellation timeout expired") from None

    def _finish(self) -> None:
        """Close now: wake any task parked on the socket (it sees the connection closed),
        then close the socket. Safe to call twice."""
        if self.closed:
            return
        self._closed = True
        try:
            fd = self.pgconn.socket
        except e.OperationalError:  # libpq has no socket any more
            fd = -1
        if fd >= 0:
            trio.lowlevel.notify_closing(fd)
        self.pgconn.finish()

    async def close(self) -> None:
        """Close the connection (an open transaction is rolled back by the server)::

        await conn.close()
        """
        self._finish()
