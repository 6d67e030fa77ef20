"""A small Redis client for the cluster transport: hiredis's C reply parser over trio sockets.

The cluster's traffic is PUBLISH commands in pipelined batches and one subscription per node
that must keep up with them. This client does exactly that, with the least Python per
message: commands are packed by ``hiredis.pack_command``, replies parsed by
``hiredis.Reader`` (both C, sans-I/O), and the socket read in big chunks, each fed to the
reader and drained of every complete reply at once::

    async with await connect("redis://127.0.0.1:6379/0") as redis:
        await redis.execute("SET", "greeting", "hello")            # b'OK'
        await redis.pipeline([("PUBLISH", "chat", b"hi"), ("PUBLISH", "chat", b"ho")])  # [1, 1]

    async with await subscribe("redis://127.0.0.1:6379/0", ["chat"]) as subscription:
        async for batch in subscription.batches():                 # [(b'chat', b'hi'), ...]
            ...

URLs are ``redis://[[user]:password@]host[:port][/db]``, or ``rediss://`` for TLS (the
default SSL context, or the ``ssl_context`` given). The password never appears in a repr,
an error message or ``str(address)``.

Replies are RESP2 values as hiredis builds them: ``bytes`` for strings (status replies such as
``OK`` included), ``int``, ``None`` for a nil, ``list`` for arrays; an error reply is a
:class:`RedisError`. Failures are of two kinds: :class:`RedisError`, the server's answer to
one command (the connection is fine), and :class:`RedisConnectionError` (an ``OSError``):
the connection could not be made or was lost, or the server spoke something else than RESP.

No background tasks: a connection does something only while a caller awaits it, and belongs
to one task at a time (another task using it meanwhile gets ``trio.BusyResourceError``).
There is no built-in command timeout and no reconnection: wrap calls in ``trio.fail_after``,
and connect again after a :class:`RedisConnectionError`. A call that does not complete (the
connection is lost, or a timeout or another cancellation interrupts it between sending and
reading the replies) closes the connection, since its replies could no longer be matched to
commands; every later call raises :class:`RedisConnectionError` saying why. Only the wait
of a subscription for its next messages can be cancelled without harm.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeAlias
from urllib.parse import unquote, urlsplit

import hiredis
import trio

__all__ = [
    "DEFAULT_PORT",
    "Arg",
    "RedisAddress",
    "RedisConnection",
    "RedisConnectionError",
    "RedisError",
    "Subscription",
    "connect",
    "parse_url",
    "subscribe",
]

#: The port of a URL that names none.
DEFAULT_PORT: Final = 6379

#: The most bytes read from the socket at once (each read is fed whole to the parser).
_CHUNK: Final = 65536

#: What ``Reader.gets`` returns while no complete reply is buffered (a ``None`` is a nil).
_INCOMPLETE: Final = object()

_URL_FORM: Final = "redis://[[user]:password@]host[:port][/db] (or rediss:// for TLS)"

#: A command's argument, as ``hiredis.pack_command`` takes it (``str`` is sent as UTF-8).
Arg: TypeAlias = str | bytes | int | float


class RedisError(Exception):
    """An error reply from Redis: ``str(error)`` is its text, :attr:`code` its first word.

    The connection is fine after it. Raised by :meth:`RedisConnection.execute`, and by
    :meth:`RedisConnection.pipeline` unless ``raise_on_error=False`` (then returned in the
    failed command's place).

    >>> async def main():
    ...     async with await connect("redis://127.0.0.1:6379/0") as redis:
    ...         try:
    ...             await redis.execute("INCR", "greeting")       # holds b"hello"
    ...         except RedisError as error:
    ...             print(error.code, error)    # ERR ERR value is not an integer or out of range
    """

    @property
    def code(self) -> str:
        """The error's kind, as Redis spells it first: ``"ERR"``, ``"WRONGTYPE"``, ``"NOAUTH"``.

        >>> RedisError("WRONGPASS invalid username-password pair").code
        'WRONGPASS'
        """
        word = str(self).partition(" ")[0]
        return word if word.isupper() else ""


class RedisConnectionError(ConnectionError):
    """The connection to Redis could not be made, was lost, or broke (an ``OSError``).

    Connect again to go on; a :class:`RedisConnection` or :class:`Subscription` that raised
    it stays closed.

    >>> async def main():
    ...     try:
    ...         await connect("redis://127.0.0.1:1/0")
    ...     except RedisConnectionError as error:
    ...         print(error)    # could not connect to Redis at redis://127.0.0.1:1/0: ...
    """


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where a Redis server is and how to log in: what a ``redis://`` URL says.

    ``str(address)`` is the URL back with the password masked; the repr leaves it out.

    >>> address = parse_url("redis://ann:secret@cache.local:6380/2")
    >>> address.host, address.port, address.db, address.username
    ('cache.local', 6380, 2, 'ann')
    >>> str(address)
    'redis://ann:***@cache.local:6380/2'
    """

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        login = ""
        if self.password is not None:
            login = f"{self.username or ''}:***@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{login}{host}:{self.port}/{self.db}"


def parse_url(url: str) -> RedisAddress:
    """Read a ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` URL.

    The user and password may be percent-encoded (``%40`` for ``@``). Anything else (another
    scheme, no host, a bad port or database number, a user without a password, a query
    string) raises ``ValueError`` naming the URL, its password masked, and the fix.

    >>> parse_url("redis://:secret@127.0.0.1/1")
    RedisAddress(host='127.0.0.1', port=6379, db=1, username=None, tls=False)
    >>> parse_url("http://127.0.0.1:6379")
    Traceback (most recent call last):
    ValueError: http://127.0.0.1:6379 is not a Redis URL: write redis://[[user]:password@]...
    """
    if not isinstance(url, str):
        raise TypeError(f"a Redis URL is a str such as redis://127.0.0.1:6379/0, not {url!r}")
    shown = _redact(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss") or not url.lower().startswith(f"{scheme}://"):
        raise ValueError(f"{shown} is not a Redis URL: write {_URL_FORM}")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"{shown}: options after '?' or '#' are not supported; write {_URL_FORM}")
    if "@" in parts.path:
        raise ValueError(
            f"{shown}: a '/' in the user or password ends the host part; write the login "
            "percent-encoded (%2F for '/', %40 for '@', %3F for '?', %23 for '#')"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"{shown} names no host: write {_URL_FORM}, e.g. redis://127.0.0.1/0")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is None:
        port = DEFAULT_PORT
    elif not 0 < port < 65536:
        raise ValueError(f"{shown} has a bad port: a port is a number from 1 to 65535")
    path = parts.path.strip("/")
    if not path:
        db = 0
    elif path.isascii() and path.isdigit():
        db = int(path)
    else:
        raise ValueError(
            f"{shown} has a bad database {path!r}: the path is the database number, "
            f"e.g. {scheme}://{_host_port(host, port)}/0"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if username is not None and password is None:
        raise ValueError(
            f"{shown} names a user but no password: write redis://user:password@host, "
            "or redis://:password@host for a password alone"
        )
    return RedisAddress(host, port, db, username, password, scheme == "rediss")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _redact(url: str) -> str:
    """*url* as it may be shown: the password (all the login when unsure) and query masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        login, _, rest = rest.rpartition("@")
        user, colon, _ = login.partition(":")
        if colon and not any(c in user for c in "/?#"):
            rest = f"{user}:***@{rest}"
        else:
            rest = f"***@{rest}"
    if "?" in rest:
        rest = rest.partition("?")[0] + "?..."
    return f"{scheme}{sep}{rest}"


def _reader() -> hiredis.Reader:
    return hiredis.Reader(replyError=RedisError, notEnoughData=_INCOMPLETE)


def _pack(commands: Iterable[Sequence[Arg]]) -> tuple[bytes, int]:
    """The commands in RESP, and how many they are."""
    chunks: list[bytes] = []
    for command in commands:
        if not command:
            raise ValueError("a Redis command needs at least its name, got an empty one")
        try:
            # hiredis's stub types the argument as a 1-tuple; it takes a tuple of any length.
            chunks.append(hiredis.pack_command(tuple(command)))  # type: ignore[arg-type]
        except TypeError:
            kinds = ", ".join(type(arg).__name__ for arg in command)
            raise TypeError(
                f"the arguments of a Redis command are str, bytes, int or float, "
                f"not ({kinds}) in {_name(command)}"
            ) from None
    return b"".join(chunks), len(chunks)


def _name(command: Sequence[Arg]) -> str:
    """The command's name, to show (never its arguments: they may hold a password)."""
    name = command[0]
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return str(name).upper()


def _explain(error: RedisError, command: Sequence[Arg]) -> RedisError:
    error.add_note(f"(the reply to {_name(command)})")
    if error.code == "NOAUTH":
        error.add_note(
            "this Redis needs a password: put it in the URL, redis://:password@host:port/db"
        )
    return error


class RedisConnection:
    """One connection to Redis, made by :func:`connect`: commands, alone or pipelined.

    Use it from one task at a time, and close it with :meth:`aclose` (or ``async with``).

    >>> async def main():
    ...     async with await connect("redis://127.0.0.1:6379/0") as redis:
    ...         await redis.execute("PING")                          # b'PONG'
    """

    def __init__(
        self, stream: trio.abc.Stream, socket: trio.SocketStream, address: RedisAddress
    ) -> None:
        self.address = address
        self._stream = stream
        self._socket = socket
        self._reader = _reader()
        self._busy = False
        self._closed = False
        #: Why the connection was closed by a failure (None: open, or closed by aclose).
        self._broken: str | None = None
        self._subscription: Subscription | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "subscribed" if self._subscription else "open"
        return f"<RedisConnection {self.address} {state}>"

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by :meth:`aclose`, or after a failure).

        >>> redis.closed
        False
        """
        return self._closed

    async def execute(self, *command: Arg) -> Any:
        """Send one command and return its reply (one round trip).

        An error reply raises :class:`RedisError`; a lost connection raises
        :class:`RedisConnectionError`.

        >>> await redis.execute("SET", "k", b"v", "PX", 5000)
        b'OK'
        >>> await redis.execute("GET", "k")
        b'v'
        """
        if not command:
            raise ValueError("execute() needs a command, e.g. execute('PING')")
        data, _ = _pack((command,))
        (reply,) = await self._exchange(data, 1)
        if type(reply) is RedisError:
            raise _explain(reply, command)
        return reply

    async def pipeline(
        self, commands: Sequence[Sequence[Arg]], *, raise_on_error: bool = True
    ) -> list[Any]:
        """Send every command at once, then read every reply: one round trip for all.

        Returns the replies in the commands' order. Redis runs each command on its own (a
        pipeline is not a transaction): with ``raise_on_error`` (the default) the first
        error reply is raised as :class:`RedisError` once all the replies are read, so the
        connection stays usable; with ``raise_on_error=False`` each error reply is returned
        in its command's place.

        >>> await redis.pipeline([("SET", "k", "1"), ("INCR", "k"), ("PUBLISH", "c", b"hi")])
        [b'OK', 2, 0]
        """
        if not commands:
            await trio.lowlevel.checkpoint()
            return []
        data, count = _pack(commands)
        replies = await self._exchange(data, count)
        if raise_on_error:
            for command, reply in zip(commands, replies, strict=True):
                if type(reply) is RedisError:
                    raise _explain(reply, command)
        return replies

    async def subscribe(self, channels: Sequence[str | bytes]) -> Subscription:
        """Subscribe this connection to *channels*; return once Redis confirmed them all.

        The connection then belongs to the returned :class:`Subscription` (Redis takes no
        other commands on it): read messages from that, and close either to close both.

        >>> subscription = await redis.subscribe(["chat", "news"])
        >>> async for channel, data in subscription:
        ...     print(channel, data)                                # b'chat' b'hi'
        """
        if isinstance(channels, str | bytes) or not channels:
            raise ValueError(f"subscribe() needs a list of channel names, got {channels!r}")
        names = [c.encode() if isinstance(c, str) else c for c in channels]
        data, _ = _pack((("SUBSCRIBE", *names),))
        self._enter()
        subscription = Subscription(self, tuple(names))
        try:
            await self._stream.send_all(data)
            self._subscription = subscription
            while not subscription._confirmed.issuperset(names):
                subscription._drain()
                if not subscription._confirmed.issuperset(names):
                    await self._receive()
        except BaseException as error:
            self._raise_instead(error)
            raise
        finally:
            self._busy = False
        return subscription

    async def aclose(self) -> None:
        """Close the connection (at once: nothing is waited for). Closing twice is fine.

        >>> await redis.aclose()
        """
        self._closed = True
        await self._stream.aclose()

    async def __aenter__(self) -> RedisConnection:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------------

    def _enter(self) -> None:
        """Refuse to start an exchange on a busy, closed or subscribed connection."""
        if self._busy:
            raise trio.BusyResourceError(
                f"another task is using this connection to Redis at {self.address}; "
                "give each task a connection of its own"
            )
        if self._closed:
            if self._broken is not None:
                raise RedisConnectionError(
                    f"the connection to Redis at {self.address} was closed after a failure "
                    f"({self._broken}); connect again"
                )
            raise trio.ClosedResourceError(f"the connection to Redis at {self.address} is closed")
        if self._subscription is not None:
            raise RuntimeError(
                f"this connection to Redis at {self.address} is subscribed (Redis takes no "
                "other commands on it); use another connection for commands"
            )
        self._busy = True

    async def _exchange(self, data: bytes, count: int) -> list[Any]:
        """Send *data* (*count* commands), then read and return *count* replies."""
        self._enter()
        try:
            await self._stream.send_all(data)
            replies: list[Any] = []
            gets = self._reader.gets
            while True:
                for reply in iter(gets, _INCOMPLETE):
                    replies.append(reply)
                    if len(replies) == count:
                        return replies
                await self._receive()
        except BaseException as error:
            self._raise_instead(error)
            raise
        finally:
            self._busy = False

    async def _receive(self) -> None:
        """Read one chunk from the socket into the reply parser."""
        chunk = await self._stream.receive_some(_CHUNK)
        if not chunk:
            raise _Eof
        self._reader.feed(chunk)  # type: ignore[arg-type]  # any buffer; the stub says bytes

    def _raise_instead(self, error: BaseException) -> None:
        """Close the connection after *error* broke an exchange; raise what the caller sees.

        Whatever interrupted an exchange (a cancellation too) leaves replies unread, so the
        connection cannot be used again. A failure of the connection is raised as
        RedisConnectionError; the method returns for any other *error*, to be re-raised.
        """
        if self._closed and self._broken is None:  # aclose() while we waited
            if isinstance(error, trio.ClosedResourceError):
                return
            raise trio.ClosedResourceError(
                f"the connection to Redis at {self.address} is closed"
            ) from error
        if isinstance(error, _Eof):
            reason = "Redis closed the connection"
        elif isinstance(error, hiredis.ProtocolError):
            reason = f"Redis sent something that is not RESP ({error})"
        elif isinstance(error, OSError | trio.BrokenResourceError | trio.ClosedResourceError):
            reason = _describe(error)
        elif isinstance(error, trio.Cancelled):
            reason = "an exchange was cancelled before all its replies were read"
        else:
            reason = f"{type(error).__name__} in an exchange"
        self._close_now(reason)
        if isinstance(error, _Eof | hiredis.ProtocolError | OSError | trio.BrokenResourceError):
            raise RedisConnectionError(
                f"lost the connection to Redis at {self.address}: {reason}"
            ) from error

    def _close_now(self, reason: str) -> None:
        """Close the socket without waiting (safe where awaiting is not: when cancelled)."""
        if not self._closed:
            self._closed = True
            self._broken = reason
            self._socket.socket.close()


class _Eof(Exception):
    """The server closed the connection (a read returned no bytes)."""


def _describe(error: BaseException) -> str:
    cause = error.__cause__ if isinstance(error, trio.BrokenResourceError) else None
    if cause is not None:  # SSLStream wraps the ssl module's error
        return f"{type(cause).__name__}: {cause}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Subscription:
    """The messages of the channels a connection subscribed to, in the order Redis sent them.

    ``async for channel, data in subscription`` yields one ``(channel, data)`` pair of bytes
    at a time; ``async for batch in subscription.batches()`` yields lists of them, every
    message that arrived at once (the cheaper way to keep up with a busy channel). Both read
    the socket only when no message is waiting, so a loop over a busy channel checkpoints
    once per chunk of up to 64 KiB, not once per message.

    The iteration ends only by an exception: :class:`RedisConnectionError` when the
    connection is lost, ``trio.ClosedResourceError`` after :meth:`aclose`. Cancelling the
    wait for the next messages (a timeout around ``anext``) loses nothing: the subscription
    can be read again.

    >>> async with await subscribe("redis://127.0.0.1:6379/0", ["chat"]) as subscription:
    ...     async for channel, data in subscription:
    ...         print(channel, data)                                # b'chat' b'hi'
    """

    def __init__(self, connection: RedisConnection, channels: tuple[bytes, ...]) -> None:
        #: The channels subscribed to, as bytes.
        self.channels = channels
        self._connection = connection
        self._confirmed: set[bytes] = set()
        self._pending: list[tuple[bytes, bytes]] = []
        self._next = 0  # the index in _pending of the next message __anext__ returns

    def __repr__(self) -> str:
        return f"<Subscription {self._connection.address} {list(self.channels)}>"

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[bytes, bytes]:
        if self._next >= len(self._pending):
            await self._fill()
        message = self._pending[self._next]
        self._next += 1
        return message

    def batches(self) -> _Batches:
        """Iterate over the messages a list at a time: all those read in one go, in order.

        >>> async for batch in subscription.batches():
        ...     for channel, data in batch:
        ...         print(channel, data)                            # b'chat' b'hi'
        """
        return _Batches(self)

    async def next_batch(self) -> list[tuple[bytes, bytes]]:
        """Wait for messages; return every one received and not yet returned (never empty).

        >>> with trio.move_on_after(5):                             # no message in 5 s:
        ...     batch = await subscription.next_batch()             # the subscription is fine
        """
        if self._next >= len(self._pending):
            await self._fill()
        batch = self._pending
        if self._next:
            batch = batch[self._next :]
        self._pending = []
        self._next = 0
        return batch

    async def aclose(self) -> None:
        """Close the subscription and its connection.

        >>> await subscription.aclose()
        """
        await self._connection.aclose()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _fill(self) -> None:
        """Read from the socket until at least one message is pending."""
        connection = self._connection
        if connection._closed or connection._busy:
            connection._enter()  # raises the reason
        connection._busy = True
        try:
            self._pending.clear()
            self._next = 0
            self._drain()
            while not self._pending:
                await connection._receive()
                self._drain()
        except trio.Cancelled:
            raise  # a cancelled read lost nothing: the subscription can go on
        except BaseException as error:
            connection._raise_instead(error)
            raise
        finally:
            connection._busy = False

    def _drain(self) -> None:
        """Move every complete reply the parser holds to the pending messages."""
        append = self._pending.append
        for reply in iter(self._connection._reader.gets, _INCOMPLETE):
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                append((reply[1], reply[2]))
            elif type(reply) is RedisError:
                raise _explain(reply, ("SUBSCRIBE",))
            elif type(reply) is list and reply and reply[0] == b"subscribe":
                self._confirmed.add(reply[1])
            # Anything else (an unsubscribe or pong confirmation) says nothing to the reader.


class _Batches:
    """The iterator of :meth:`Subscription.batches`."""

    __slots__ = ("_subscription",)

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __aiter__(self) -> _Batches:
        return self

    async def __anext__(self) -> list[tuple[bytes, bytes]]:
        return await self._subscription.next_batch()


async def connect(
    url: str | RedisAddress,
    *,
    connect_timeout: float = 2.0,
    ssl_context: ssl.SSLContext | None = None,
) -> RedisConnection:
    """Connect to the Redis at *url*, log in (AUTH) and select its database (SELECT).

    All of it within *connect_timeout* seconds, else :class:`RedisConnectionError`, as for
    a refused connection or a failed TLS handshake. A ``rediss://`` URL connects with TLS,
    through the default SSL context (the system's CAs, the host name checked) or
    *ssl_context*. A refused password raises :class:`RedisError` (``WRONGPASS``); a bad URL
    ``ValueError`` (see :func:`parse_url`). ``SELECT`` is sent only for a database other
    than 0, and AUTH and SELECT share one round trip.

    >>> async def main():
    ...     async with await connect("redis://:secret@127.0.0.1:6379/1") as redis:
    ...         await redis.execute("PING")                          # b'PONG'
    """
    address = url if isinstance(url, RedisAddress) else parse_url(url)
    if ssl_context is not None and not address.tls:
        raise ValueError(
            f"an ssl_context was given for {address}, which does not use TLS: "
            "write rediss:// to connect with TLS"
        )
    with trio.move_on_after(connect_timeout) as scope:
        return await _open(address, ssl_context)
    assert scope.cancelled_caught
    raise RedisConnectionError(
        f"could not connect to Redis at {address} within {connect_timeout} s"
    )


async def subscribe(
    url: str | RedisAddress,
    channels: Sequence[str | bytes],
    *,
    connect_timeout: float = 2.0,
    ssl_context: ssl.SSLContext | None = None,
) -> Subscription:
    """Connect to the Redis at *url* (as :func:`connect`) and subscribe to *channels*.

    Returns once Redis has confirmed every channel, all within *connect_timeout* seconds
    (else :class:`RedisConnectionError`).

    >>> async def main():
    ...     async with await subscribe("redis://127.0.0.1:6379/0", ["chat"]) as subscription:
    ...         async for batch in subscription.batches():
    ...             print(batch)                                  # [(b'chat', b'hi')]
    """
    address = url if isinstance(url, RedisAddress) else parse_url(url)
    with trio.move_on_after(connect_timeout) as scope:
        connection = await connect(
            address, connect_timeout=connect_timeout, ssl_context=ssl_context
        )
        try:
            return await connection.subscribe(channels)
        except BaseException:
            connection._close_now("subscribing failed")
            raise
    assert scope.cancelled_caught
    raise RedisConnectionError(f"could not subscribe at Redis {address} within {connect_timeout} s")


async def _open(address: RedisAddress, ssl_context: ssl.SSLContext | None) -> RedisConnection:
    try:
        socket = await trio.open_tcp_stream(address.host, address.port)
    except OSError as error:
        raise RedisConnectionError(
            f"could not connect to Redis at {address}: {_describe(error)}"
        ) from error
    try:
        stream: trio.abc.Stream = socket
        if address.tls:
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            tls = trio.SSLStream(
                socket, context, server_hostname=address.host, https_compatible=True
            )
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as error:
                raise RedisConnectionError(
                    f"the TLS handshake with Redis at {address} failed: {_describe(error)}"
                ) from error
            stream = tls
        connection = RedisConnection(stream, socket, address)
        await _log_in(connection, address)
    except BaseException:
        socket.socket.close()
        raise
    return connection


async def _log_in(connection: RedisConnection, address: RedisAddress) -> None:
    """AUTH and SELECT as the address says, in one round trip."""
    commands: list[tuple[Arg, ...]] = []
    if address.password is not None:
        if address.username is not None:
            commands.append(("AUTH", address.username, address.password))
        else:
            commands.append(("AUTH", address.password))
    if address.db:
        commands.append(("SELECT", address.db))
    if not commands:
        return
    replies = await connection.pipeline(commands, raise_on_error=False)
    if address.password is not None and type(replies[0]) is RedisError:
        raise RedisError(
            f"{replies[0]} (Redis at {address} refused the login: check the user and "
            "password in the URL)"
        )
    if type(replies[-1]) is RedisError:
        raise RedisError(
            f"{replies[-1]} (Redis at {address} refused database {address.db}: the URL's "
            "path is the database number, 0 to 15 unless Redis is configured otherwise)"
        )
