"""The app the ``channels`` suite serves with ``python -m web`` (one node, or several on one port).

``python -m web bench._channels_app:endpoint --port P`` serves it from one node;
``python -m web bench._channels_app:endpoint --port P --nodes 2 --cluster URL`` from two node
processes sharing the port (``SO_REUSEPORT``) and a cluster. Its socket (``/socket``) has two
channels:

* :data:`bench._channels_server.TOPIC`, which the measured clients join; the join's reply
  names the node that took the connection (``{"node": "bench1"}``);
* :data:`CONTROL`, joined by the load generator's control client: a push of ``go`` with
  ``{"count": n, "interval": s}`` makes the node that holds the control socket broadcast
  ``tick`` to :data:`~bench._channels_server.TOPIC` *n* times on a fixed schedule (one every
  *s* seconds, each payload of the same width, see :func:`bench._channels_server.payload`),
  and answers once the last one is sent. The broadcasts reach the sockets of every node of
  the cluster through beam's PubSub.

Nothing here measures: the load generator (:mod:`bench._channels_nodes`) counts the bytes its
clients receive and reads the nodes' CPU time from ``/proc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

import trio

import beam
import web

from ._channels_server import EVENT, TOPIC, payload

__all__ = ["CONTROL", "endpoint"]

#: The topic of the load generator's control client.
CONTROL: Final = "bench:control"


class _FanoutChannel(web.Channel):
    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        return web.ok({"node": beam.node()})


class _ControlChannel(web.Channel):
    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        return web.ok({"node": beam.node()})

    async def handle_in(
        self, event: str, payload_: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        if event != "go":
            return web.error({"reason": f"unknown event {event!r}"})
        count, interval = int(payload_["count"]), float(payload_["interval"])
        start = trio.current_time()
        for seq in range(count):
            web.broadcast(TOPIC, EVENT, payload(seq))
            await trio.sleep_until(start + (seq + 1) * interval)
        return web.ok({"sent": count, "node": beam.node()})


class _BenchSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {
        TOPIC: _FanoutChannel,
        CONTROL: _ControlChannel,
    }
    check_origin = False
    rate_limit = None
    idle_timeout = 3600.0
    # Every load-generator socket comes from 127.0.0.1: no per-address or global cap.
    max_connections = None
    max_connections_per_address = None


def endpoint() -> web.Endpoint:
    """The endpoint ``python -m web`` serves (see the module's docstring).

    >>> # python -m web bench._channels_app:endpoint --port 4000
    """
    served = web.Endpoint()
    served.socket("/socket", _BenchSocket())
    return served
