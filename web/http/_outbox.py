"""What a WebSocket writes goes through its :class:`Outbox`: written at once, queued only when
the socket's kernel buffer is full.

``write_nowait(data)`` is an ordinary (non-async) call: when nothing is queued it hands the
bytes straight to the kernel with one non-blocking ``write``, so a broadcaster can put the same
frame on two thousand sockets without a single task switch. Only a socket whose kernel buffer
is full gets a backlog, which a writer task drains as the socket becomes writable. A backlog
larger than ``max_backlog`` means the peer is not reading: the outbox gives up on it (a slow
consumer must not make the server's memory grow without bound), logs why, and tells the
connection's owner to end it.

Frames that are the same for every client (server frames are never masked) are made once with
:func:`frame`::

    data = frame('[null,null,"room:lobby","new_msg",{"body":"hi"}]')
    for outbox in outboxes:
        outbox.write_nowait(data)
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable

import trio
from websockets.frames import Frame, Opcode

__all__ = ["Outbox", "frame"]

logger = logging.getLogger("web.server")

def frame(message: str | bytes) -> bytes:
    """The WebSocket frame (text for ``str``, binary for ``bytes``) that carries *message*:
    a server frame, unmasked and with no extension (we never negotiate one), so its bytes do
    not depend on the connection.

    >>> frame("hi")
    b'\\x81\\x02hi'
    """
    if isinstance(message, str):
        return Frame(Opcode.TEXT, message.encode()).serialize(mask=False)
    return Frame(Opcode.BINARY, message).serialize(mask=False)


class Outbox:
    """The write side of one socket: immediate non-blocking writes, a bounded backlog.

    When a backlog appears, a writer task is started in *nursery* to drain it and ends once it
    is drained, so an idle connection costs no task. On a failure (the peer vanished, or its
    backlog passed ``max_backlog``) the outbox calls *on_failure*, whose job is to end the
    connection. The owner calls :meth:`close` just before closing the socket, so that no write
    can ever reach a file descriptor number the kernel has handed to another connection.

    >>> data = frame('[null,null,"room:lobby","new_msg",{"body":"hi"}]')
    >>> ws.outbox.write_nowait(data)      # never blocks: queued if the kernel buffer is full
    """

    __slots__ = (
        "_backlog",
        "_drained",
        "_fd",
        "_nursery",
        "_on_failure",
        "_pending",
        "_sock",
        "_writing",
        "closed",
        "failed",
        "max_backlog",
        "written",
    )

    def __init__(
        self,
        sock: trio.socket.SocketType,
        nursery: trio.Nursery,
        *,
        max_backlog: int = 4 * 1_048_576,
        on_failure: Callable[[], object] | None = None,
    ) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._nursery = nursery
        self.max_backlog = max_backlog
        self._on_failure = on_failure
        # Made only when needed: an empty deque and an Event cost more than the rest.
        self._backlog: deque[bytes | memoryview] | None = None
        self._pending = 0
        self._writing = False
        self._drained: trio.Event | None = None
        #: Set when the outbox gave up: the peer vanished or stopped reading.
        self.failed: str | None = None
        self.closed = False
        self.written = 0

    @property
    def backlog(self) -> int:
        """Bytes accepted but not yet handed to the kernel."""
        return self._pending

    def write_nowait(self, data: bytes) -> None:
        """Write *data* now if the socket takes it, else queue it; never blocks.

        Writes after :meth:`close` or a failure are dropped (the connection is going away).
        """
        if self.closed or self.failed is not None:
            return
        if self._backlog:
            self._queue(data)
            return
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except (BrokenPipeError, ConnectionResetError):
            self._fail("the peer is gone", quiet=True)
            return
        except OSError as exc:
            self._fail(f"socket write failed: {exc}")
            return
        self.written += sent
        if sent < len(data):
            self._queue(memoryview(data)[sent:])

    async def drain(self) -> None:
        """Wait until everything written so far has reached the kernel (or the outbox failed)."""
        while self._backlog and self.failed is None and not self.closed:
            if not self._writing:
                await trio.lowlevel.wait_writable(self._sock)
                self._flush()
                continue
            if self._drained is None:
                self._drained = trio.Event()
            await self._drained.wait()

    def close(self) -> None:
        """Stop writing: later writes are dropped and the writer task ends."""
        self.closed = True
        self._backlog = None
        self._pending = 0
        self._wake_drainers()

    def _queue(self, data: bytes | memoryview) -> None:
        if self._backlog is None:
            self._backlog = deque()
        self._backlog.append(data)
        self._pending += len(data)
        if self._pending > self.max_backlog:
            self._fail(
                f"slow consumer: {self._pending} bytes waiting to be sent, over the limit of "
                f"{self.max_backlog} (raise max_backlog if such bursts are expected)"
            )
        elif not self._writing:
            self._writing = True
            self._nursery.start_soon(self._write_backlog, name="web.outbox")

    async def _write_backlog(self) -> None:
        try:
            while self._backlog and not self.closed and self.failed is None:
                await trio.lowlevel.wait_writable(self._sock)
                self._flush()
        except (trio.ClosedResourceError, OSError):
            pass  # the connection closed its socket while this task waited: nothing to write to
        finally:
            self._writing = False
            self._wake_drainers()

    def _flush(self) -> None:
        backlog = self._backlog
        while backlog:
            data = backlog[0]
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError):
                self._fail("the peer is gone", quiet=True)
                return
            except OSError as exc:
                self._fail(f"socket write failed: {exc}")
                return
            self.written += sent
            self._pending -= sent
            if sent < len(data):
                backlog[0] = memoryview(data)[sent:]
                return
            backlog.popleft()

    def _fail(self, why: str, *, quiet: bool = False) -> None:
        if self.failed is None:
            self.failed = why
            # A peer that went away is ordinary; a slow consumer or an odd error is news.
            log = logger.debug if quiet else logger.warning
            log("dropping WebSocket connection: %s", why)
            if self._on_failure is not None:
                self._on_failure()
        self._backlog = None
        self._pending = 0
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None
