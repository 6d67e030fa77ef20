r"""web: the HTTP/WebSocket endpoint and Phoenix Channels, on our own trio server.

One server (:func:`serve`, on h11 and wsproto) serves an :class:`Endpoint`: HTTP routes, a
mounted ASGI app for everything else (:meth:`Endpoint.mount`), and Channels sockets that the
official ``phoenix`` JavaScript client speaks to unmodified::

    import beam
    import web

    class RoomChannel(web.Channel):
        async def join(self, topic, params, socket):
            return web.ok()

        async def handle_in(self, event, payload, socket):
            if event == "new_msg":
                socket.broadcast("new_msg", payload)      # to every client in the room
                return web.ok()
            return web.error({"reason": f"unknown event {event}"})

    class UserSocket(web.Socket):
        channels = {"room:*": RoomChannel}

    endpoint = web.Endpoint()
    endpoint.socket("/socket", UserSocket())              # new Socket("/socket") in JS

    async def main():
        await web.serve(endpoint, "127.0.0.1", 4000)

    beam.run(main)                                        # or: python -m web app:endpoint

Each connection is a transport process and each joined channel a process linked to it: a
crash in one channel reaches its client as ``phx_error`` (phoenix.js rejoins) and nothing
else. Broadcasts are encoded once and written to every socket without waking the channel
processes. Sockets authenticate with signed, expiring :class:`Token` values; the wire
protocol itself (:data:`V2`, :data:`V1`) is sans I/O; :mod:`web.testing` drives channels in
tests without a server.
"""

import beam

from . import testing as testing
from ._channel import Channel as Channel
from ._channel import ChannelReply as ChannelReply
from ._channel import ChannelSocket as ChannelSocket
from ._channel import Stop as Stop
from ._channel import broadcast as broadcast
from ._channel import broadcast_from as broadcast_from
from ._channel import error as error
from ._channel import ok as ok
from ._cookies import parse_cookies as parse_cookies
from ._cookies import set_cookie as set_cookie
from ._csrf import CsrfProtection as CsrfProtection
from ._errors import HTTPError as HTTPError
from ._live import LIVEVIEW_VERSION as LIVEVIEW_VERSION
from ._live import AsyncResult as AsyncResult
from ._live import LiveSocket as LiveSocket
from ._live import LiveView as LiveView
from ._live_component import LiveComponent as LiveComponent
from ._protocol import HEARTBEAT as HEARTBEAT
from ._protocol import PHOENIX_TOPIC as PHOENIX_TOPIC
from ._protocol import PHX_CLOSE as PHX_CLOSE
from ._protocol import PHX_ERROR as PHX_ERROR
from ._protocol import PHX_JOIN as PHX_JOIN
from ._protocol import PHX_LEAVE as PHX_LEAVE
from ._protocol import PHX_REPLY as PHX_REPLY
from ._protocol import V1 as V1
from ._protocol import V2 as V2
from ._protocol import Broadcast as Broadcast
from ._protocol import Message as Message
from ._protocol import ProtocolError as ProtocolError
from ._protocol import Reply as Reply
from ._protocol import Serializer as Serializer
from ._protocol import serializer_for as serializer_for
from ._ratelimit import RATE_LIMITER as RATE_LIMITER
from ._ratelimit import Backoff as Backoff
from ._ratelimit import Limit as Limit
from ._ratelimit import RateLimited as RateLimited
from ._ratelimit import RateLimiter as RateLimiter
from ._ratelimit import rate_limit as rate_limit
from ._ratelimit import record_failure as record_failure
from ._ratelimit import reset_limit as reset_limit
from ._server import SECURITY_HEADERS as SECURITY_HEADERS
from ._server import Endpoint as Endpoint
from ._server import Request as Request
from ._server import Response as Response
from ._server import Upgrader as Upgrader
from ._server import WebSocket as WebSocket
from ._server import WebSocketClosed as WebSocketClosed
from ._server import serve as serve
from ._socket import ConnectInfo as ConnectInfo
from ._socket import Socket as Socket
from ._socket import disconnect as disconnect
from ._token import InvalidToken as InvalidToken
from ._token import Token as Token
from ._token import TokenExpired as TokenExpired

__all__ = (
    "HEARTBEAT",
    "LIVEVIEW_VERSION",
    "PHOENIX_TOPIC",
    "PHX_CLOSE",
    "PHX_ERROR",
    "PHX_JOIN",
    "PHX_LEAVE",
    "PHX_REPLY",
    "RATE_LIMITER",
    "SECURITY_HEADERS",
    "V1",
    "V2",
    "AsyncResult",
    "Backoff",
    "Broadcast",
    "Channel",
    "ChannelReply",
    "ChannelSocket",
    "ConnectInfo",
    "CsrfProtection",
    "Endpoint",
    "HTTPError",
    "InvalidToken",
    "Limit",
    "LiveComponent",
    "LiveSocket",
    "LiveView",
    "Message",
    "ProtocolError",
    "RateLimited",
    "RateLimiter",
    "Reply",
    "Request",
    "Response",
    "Serializer",
    "Socket",
    "Stop",
    "Token",
    "TokenExpired",
    "Upgrader",
    "WebSocket",
    "WebSocketClosed",
    "broadcast",
    "broadcast_from",
    "disconnect",
    "error",
    "ok",
    "parse_cookies",
    "rate_limit",
    "record_failure",
    "reset_limit",
    "serializer_for",
    "serve",
    "set_cookie",
    "testing",
)


beam.lowlevel.fixup_module_metadata(__name__, globals())
