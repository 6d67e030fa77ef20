r"""web: the HTTP/WebSocket endpoint and Phoenix Channels, on our own trio server.

One server (:func:`serve`, on httptools (llhttp) and the ``websockets`` sans-I/O protocol)
serves an :class:`Endpoint`: HTTP routes, a mounted ASGI app for everything else
(:meth:`Endpoint.mount`), and Channels sockets that the official ``phoenix`` JavaScript client
speaks to unmodified::

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

The package has three layers, each a sub-package that only builds on those below it:
:mod:`web.http` (the server, requests, static files, cookies, CSRF, rate limits),
:mod:`web.channels` (sockets, transports, channels, the wire protocol, tokens) and
:mod:`web.live` (LiveView: templates, rendered trees, components, streams, pages). This module
exports the public names of all three; :mod:`web.api` (a JSON API derived from a domain's
resources) builds on them.
"""

import beam

from . import api as api
from . import testing as testing
from .channels import HEARTBEAT as HEARTBEAT
from .channels import PHOENIX_TOPIC as PHOENIX_TOPIC
from .channels import PHX_CLOSE as PHX_CLOSE
from .channels import PHX_ERROR as PHX_ERROR
from .channels import PHX_JOIN as PHX_JOIN
from .channels import PHX_LEAVE as PHX_LEAVE
from .channels import PHX_REPLY as PHX_REPLY
from .channels import V1 as V1
from .channels import V2 as V2
from .channels import Broadcast as Broadcast
from .channels import Channel as Channel
from .channels import ChannelReply as ChannelReply
from .channels import ChannelSocket as ChannelSocket
from .channels import ConnectInfo as ConnectInfo
from .channels import InvalidToken as InvalidToken
from .channels import Message as Message
from .channels import ProtocolError as ProtocolError
from .channels import Reply as Reply
from .channels import Serializer as Serializer
from .channels import Socket as Socket
from .channels import Stop as Stop
from .channels import Token as Token
from .channels import TokenExpired as TokenExpired
from .channels import broadcast as broadcast
from .channels import broadcast_from as broadcast_from
from .channels import disconnect as disconnect
from .channels import error as error
from .channels import ok as ok
from .channels import serializer_for as serializer_for
from .http import RATE_LIMITER as RATE_LIMITER
from .http import SECURITY_HEADERS as SECURITY_HEADERS
from .http import Backoff as Backoff
from .http import CsrfProtection as CsrfProtection
from .http import Endpoint as Endpoint
from .http import HTTPError as HTTPError
from .http import Limit as Limit
from .http import RateLimited as RateLimited
from .http import RateLimiter as RateLimiter
from .http import Request as Request
from .http import Response as Response
from .http import Shared as Shared
from .http import Upgrader as Upgrader
from .http import WebSocket as WebSocket
from .http import WebSocketClosed as WebSocketClosed
from .http import parse_cookies as parse_cookies
from .http import rate_limit as rate_limit
from .http import record_failure as record_failure
from .http import reset_limit as reset_limit
from .http import serve as serve
from .http import set_cookie as set_cookie
from .live import LIVEVIEW_VERSION as LIVEVIEW_VERSION
from .live import AsyncResult as AsyncResult
from .live import FormData as FormData
from .live import FormField as FormField
from .live import LiveComponent as LiveComponent
from .live import LiveRouter as LiveRouter
from .live import LiveSocket as LiveSocket
from .live import LiveView as LiveView
from .live import UploadConfig as UploadConfig
from .live import UploadEntry as UploadEntry
from .live import form_errors as form_errors
from .live import form_field as form_field
from .live import form_input as form_input
from .live import live_file_input as live_file_input
from .live import store_in as store_in
from .live import upload_errors as upload_errors

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
    "FormData",
    "FormField",
    "HTTPError",
    "InvalidToken",
    "Limit",
    "LiveComponent",
    "LiveRouter",
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
    "Shared",
    "Socket",
    "Stop",
    "Token",
    "TokenExpired",
    "Upgrader",
    "UploadConfig",
    "UploadEntry",
    "WebSocket",
    "WebSocketClosed",
    "api",
    "broadcast",
    "broadcast_from",
    "disconnect",
    "error",
    "form_errors",
    "form_field",
    "form_input",
    "live_file_input",
    "ok",
    "parse_cookies",
    "rate_limit",
    "record_failure",
    "reset_limit",
    "serializer_for",
    "serve",
    "set_cookie",
    "store_in",
    "testing",
    "upload_errors",
)


beam.lowlevel.fixup_module_metadata(__name__, globals())
