"""Sockets: authenticate a WebSocket connection and route its topics to channels.

A :class:`Socket` subclass is what Phoenix calls a socket handler: it says which channel
serves which topics, and ``connect`` decides, before the WebSocket upgrade, whether the client
may connect and what the connection's *assigns* are (who the user is)::

    class UserSocket(web.Socket):
        channels = {"room:*": RoomChannel}

        async def connect(self, params, connect_info):
            try:
                user_id = web.Token.verify(SECRET, "user socket", params.get("token", ""))
            except web.InvalidToken:
                return None                     # refused: HTTP 403
            return {"user_id": user_id}

        def id(self, assigns):
            return f"user_socket:{assigns['user_id']}"   # web.disconnect(...) closes them

    endpoint.socket("/socket", UserSocket())    # clients connect to /socket/websocket

Each connection is a *transport process*. It answers heartbeats, starts one channel process per
joined topic (linked to it), forwards the client's messages to them, and turns their exits
into ``phx_error`` (a crash: phoenix.js rejoins) or nothing more (they already sent
``phx_close``). When the connection ends, the transport exits and its channels stop with
``("shutdown", "closed")``.

Limits, each with a clear error reply or close reason, and a log line: ``max_channels`` joined
topics per connection, ``rate_limit`` messages per window (over it, pushes are answered
``{"reason": "rate limit exceeded ..."}``), ``idle_timeout`` without any frame (heartbeats
count), ``check_origin`` for browsers, plus the endpoint's frame size and backlog limits.

Connection caps refuse the upgrade itself (before the ``101``), with a body that names the cap
and the attribute that raises it: ``max_connections`` per socket handler (``503``),
``max_connections_per_address`` per client IP and ``max_connections_per_id`` per socket
``id`` (one user; ``429``). A connection counts from the moment ``connect`` starts until its
transport exits, whatever the exit (a close, a crash, a kill). The per-address and per-id
counts are entries of the transports themselves in a node-wide duplicate
:class:`beam.Registry` (``"web.sockets"``), which vanish with the process; the per-handler
count is one integer, given back in the transport's ``finally``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import trio

import beam
from supervisors import ChildSpec

from ..http import Request, Response, SocketHandler
from ._channel import Channel
from ._pools import TRANSPORTS, start_detached, tree_spec
from ._protocol import Broadcast, ProtocolError, serializer_for
from ._transport import ConnectInfo, Connection, transport

__all__ = ["ConnectInfo", "Socket", "disconnect"]

logger = logging.getLogger("web.socket")

_BEARER: Final = "base64url.bearer.phx."


#: Numbers the connections, to spread their transports over the pool's partitions.
_connections = itertools.count()


class Socket:
    """Subclass it: declare ``channels``, override ``connect`` and ``id`` as needed.

    ``channels`` maps topic patterns to channel classes: an exact topic (``"lobby"``) or a
    prefix ending in ``*`` (``"room:*"``). The first matching pattern wins.

    >>> class UserSocket(web.Socket):
    ...     channels = {"room:*": RoomChannel}
    """

    channels: ClassVar[Mapping[str, type[Channel]]] = {}
    #: ``True``: a browser's Origin must name the host it connected to; ``False``: any;
    #: or a list of allowed origins (``"https://example.com"``, or ``"//example.com"`` for
    #: any scheme and port).
    check_origin: ClassVar[bool | Sequence[str]] = True
    #: Topics one connection may join at once (Phoenix's ``max_channels_per_transport``).
    max_channels: ClassVar[int] = 100
    #: ``(messages, seconds)``: how many client messages a connection may send per window;
    #: ``None`` for no limit. Heartbeats do not count.
    rate_limit: ClassVar[tuple[int, float] | None] = (200, 1.0)
    #: Seconds without any frame from the client before the connection is closed.
    idle_timeout: ClassVar[float] = 60.0
    #: Connections this socket handler serves at once (those still in ``connect`` too); over
    #: it the upgrade is answered ``503``. ``None``: no cap.
    max_connections: ClassVar[int | None] = 10_000
    #: Connections from one client IP address; over it the upgrade is answered ``429``.
    #: Behind a reverse proxy every client has the proxy's address: raise it, or ``None``.
    max_connections_per_address: ClassVar[int | None] = 100
    #: Connections with one socket ``id`` (one user, many tabs); over it the upgrade is
    #: answered ``429`` (``connect`` runs before the upgrade is accepted). Connections
    #: without an id are not counted. ``None``: no cap.
    max_connections_per_id: ClassVar[int | None] = 50

    async def connect(
        self, params: Mapping[str, str], connect_info: ConnectInfo
    ) -> Mapping[str, Any] | None:
        """Accept the connection by returning its assigns, or refuse it with ``None`` (the
        client gets HTTP 403). Runs in the connection's transport process, so it may call
        other processes. The default accepts everyone with no assigns."""
        return {}

    def id(self, assigns: Mapping[str, Any]) -> str | None:
        """A name shared by all of one user's connections, so that
        ``web.disconnect(name)`` closes them all; ``None`` (the default) for no name."""
        return None

    # -- the Upgrader protocol of Endpoint -------------------------------------------------

    def child_spec(self) -> ChildSpec:
        """What the endpoint's supervision tree runs for this socket: the node's
        ``web.socket_sup`` pools, started before the listener (as Phoenix's endpoint starts
        each socket's child spec before its server)."""
        return tree_spec()

    async def accept(self, request: Request) -> SocketHandler | Response:
        """Decide on a WebSocket upgrade (called by the server, not by users)."""
        params = {key: values[-1] for key, values in request.query.items()}
        try:
            serializer = serializer_for(params.get("vsn"))
        except ProtocolError as exc:
            return _refuse(request, 403, f"{exc}")
        origin = request.header("origin")
        if not self._origin_allowed(origin, request.header("host")):
            return _refuse(
                request,
                403,
                f"origin {origin!r} is not allowed (set check_origin on {type(self).__name__})",
            )
        info = ConnectInfo(
            request.client, request.headers, origin, _auth_token(request), request.path
        )
        connection = Connection(self, serializer)
        # Under the transports' pool (see _pools), from this task, which is not a process.
        pid = await start_detached(
            TRANSPORTS, next(_connections), transport, (self, connection, params, info), type(self)
        )
        connection.pid = pid
        # A transport killed before it first ran never decides: look every half second.
        while not connection.decided.is_set():
            with trio.move_on_after(0.5):
                await connection.decided.wait()
            if not connection.decided.is_set() and not beam.is_alive(pid):
                return _refuse(request, 500, "the connection's process exited before deciding")
        if connection.refusal is not None:
            return connection.refusal
        return connection.session

    def _origin_allowed(self, origin: str | None, host: str | None) -> bool:
        check = self.check_origin
        if check is False or origin is None:  # not a browser: there is no origin to check
            return True
        parts = urlsplit(origin)
        if check is True:
            return host is not None and parts.netloc.lower() == host.lower()
        for allowed in check:
            want = urlsplit(allowed)
            if want.scheme and want.scheme != parts.scheme:
                continue
            if want.hostname == parts.hostname and (want.port is None or want.port == parts.port):
                return True
        return False


def disconnect(socket_id: str) -> None:
    """Close every connection whose socket ``id`` is *socket_id* (phoenix.js reconnects, and
    ``connect`` decides again: use it after logging a user out or revoking a token).

    >>> async def log_out(user_id):
    ...     web.disconnect(f"user_socket:{user_id}")
    """
    beam.broadcast(socket_id, Broadcast(socket_id, "disconnect", {}))


def _refuse(request: Request, status: int, why: str) -> Response:
    logger.info("refused WebSocket on %s from %s: %s", request.path, request.client, why)
    return Response(status, f"{why}\n".encode())


def _auth_token(request: Request) -> str | None:
    offered = request.header("sec-websocket-protocol") or ""
    for protocol in (p.strip() for p in offered.split(",")):
        if protocol.startswith(_BEARER):
            encoded = protocol[len(_BEARER) :]
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return raw.decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None
