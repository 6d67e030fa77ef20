"""web.channels: Phoenix Channels over the HTTP layer's WebSockets.

A :class:`Socket` authenticates a connection and routes its topics to :class:`Channel`
classes; each connection is a transport process and each joined topic a channel process
linked to it. The wire protocol (:data:`V1`, :data:`V2`) is sans I/O, tokens are signed and
expiring, and :mod:`web.channels.testing` drives channels without a server::

    class RoomChannel(web.Channel):
        async def join(self, topic, params, socket):
            return web.ok()

    class UserSocket(web.Socket):
        channels = {"room:*": RoomChannel}

    endpoint.socket("/socket", UserSocket())

This layer builds on :mod:`web.http` only; LiveView (:mod:`web.live`) builds on it. Everything
here is also exported by :mod:`web` itself.
"""

from ._channel import Channel as Channel
from ._channel import ChannelReply as ChannelReply
from ._channel import ChannelSocket as ChannelSocket
from ._channel import Stop as Stop
from ._channel import broadcast as broadcast
from ._channel import broadcast_from as broadcast_from
from ._channel import error as error
from ._channel import ok as ok
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
from ._socket import ConnectInfo as ConnectInfo
from ._socket import Socket as Socket
from ._socket import disconnect as disconnect
from ._token import InvalidToken as InvalidToken
from ._token import Token as Token
from ._token import TokenExpired as TokenExpired

__all__ = (
    "HEARTBEAT",
    "PHOENIX_TOPIC",
    "PHX_CLOSE",
    "PHX_ERROR",
    "PHX_JOIN",
    "PHX_LEAVE",
    "PHX_REPLY",
    "V1",
    "V2",
    "Broadcast",
    "Channel",
    "ChannelReply",
    "ChannelSocket",
    "ConnectInfo",
    "InvalidToken",
    "Message",
    "ProtocolError",
    "Reply",
    "Serializer",
    "Socket",
    "Stop",
    "Token",
    "TokenExpired",
    "broadcast",
    "broadcast_from",
    "disconnect",
    "error",
    "ok",
    "serializer_for",
)
