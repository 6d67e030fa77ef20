"""Connection caps of a Channels socket handler: how many connections it serves at once, how
many come from one client address, and how many share one socket ``id`` (one user).

A transport process takes its places by registering itself in the node's duplicate
:class:`beam.Registry` ``"web.sockets"`` under one key per cap, so every place is given back
when the process exits, whatever the exit (a close, a crash, a kill), and counting a key is
constant time. Over a cap the upgrade is refused before the ``101``, with a body that names
the cap and the attribute that raises it::

    refusal = admit(socket, ("10.0.0.7", 50123))     # in the new transport process
    if refusal is not None:
        ...                                          # answer the upgrade with it
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import Final, Protocol

import beam

from ..http import Response

__all__ = ["Capped", "admit", "admit_id"]

logger = logging.getLogger("web.socket")

_REGISTRY: Final = "web.sockets"
#: Seconds between two log lines about refusals by the same cap of the same handler.
_REFUSAL_LOG_EVERY: Final = 60.0
#: (handler, cap) -> (when a refusal was last logged, refusals not logged since): log
#: throttling only, as the logging module keeps state of its own.
_LOGGED: dict[tuple[int, str], tuple[float, int]] = {}


class Capped(Protocol):
    """What the caps read of a socket handler (``web.Socket`` declares them)."""

    @property
    def max_connections(self) -> int | None: ...
    @property
    def max_connections_per_address(self) -> int | None: ...
    @property
    def max_connections_per_id(self) -> int | None: ...


def _connections() -> beam.Registry:
    """The node's registry of live Channels connections (duplicate keys)."""
    try:
        return beam.Registry.named(_REGISTRY)
    except LookupError:
        return beam.Registry("duplicate", name=_REGISTRY)


def _take(registry: beam.Registry, key: Hashable, cap: int | None) -> bool:
    """Register the calling process under *key*, unless *cap* places are taken."""
    if cap is not None and registry.count_key(key) >= cap:
        return False
    registry.register(key)
    return True


def _refusal(socket: Capped, cap: str, status: int, why: str) -> Response:
    """The response that refuses an upgrade over *cap*; logged once a minute per cap."""
    name = type(socket).__name__
    text = f"{why} (raise {name}.{cap} to allow more)"
    now = time.monotonic()
    key = (id(socket), cap)
    last, quiet = _LOGGED.get(key, (-_REFUSAL_LOG_EVERY, 0))
    if now - last >= _REFUSAL_LOG_EVERY:
        more = f"; {quiet} more refused since the last report" if quiet else ""
        logger.warning("refusing WebSocket connections to %s: %s%s", name, text, more)
        _LOGGED[key] = (now, 0)
    else:
        _LOGGED[key] = (last, quiet + 1)
    headers = (("content-type", "text/plain; charset=utf-8"), ("retry-after", "10"))
    return Response(status, f"{text}\n".encode(), headers)


def admit(socket: Capped, peer: tuple[str, int] | None) -> Response | None:
    """In a new transport process: take a place under the handler's cap and its client
    address's cap (kept until the process exits), or the response refusing the upgrade.

    >>> refusal = admit(socket, info.peer)
    """
    registry = _connections()
    cap = socket.max_connections
    if not _take(registry, (id(socket), "all"), cap):
        why = f"too many connections: {type(socket).__name__} serves at most {cap} at once"
        return _refusal(socket, "max_connections", 503, why)
    if peer is not None:
        per_address = socket.max_connections_per_address
        if not _take(registry, (id(socket), "address", peer[0]), per_address):
            registry.unregister((id(socket), "all"))
            why = f"too many connections from {peer[0]}: at most {per_address} per client address"
            return _refusal(socket, "max_connections_per_address", 429, why)
    return None


def admit_id(socket: Capped, socket_id: str) -> Response | None:
    """After ``connect``: take a place under the cap of *socket_id*, or refuse.

    >>> refusal = admit_id(socket, "user_socket:42")
    """
    cap = socket.max_connections_per_id
    if not _take(_connections(), (id(socket), "id", socket_id), cap):
        why = f"too many connections for socket id {socket_id!r}: at most {cap} per id"
        return _refusal(socket, "max_connections_per_id", 429, why)
    return None
