"""The channel and socket the Channels tests serve: ``room:*`` topics on a :class:`UserSocket`.

:class:`Room` answers ``echo``, ``refuse``, ``shout``, ``whisper``, ``censor`` (intercepted:
``handle_out`` stars the text), ``boom``, ``bye``, ``die``, ``later`` and ``binary``; some
topics refuse (``room:secret``), crash (``room:crash``) or hang (``room:stuck``) the join.
Server-side observations (``terminate`` calls) go to the process registered as
``"observer"``. :class:`UserSocket` verifies a :data:`SECRET`-signed token when one is given.

>>> endpoint.socket("/socket", UserSocket())
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import trio

import beam
import presence
import web

SECRET = "test-secret-key-of-enough-length"


def observe(*message: Any) -> None:
    beam.send("observer", message)


class Room(web.Channel):
    intercept: ClassVar[frozenset[str] | tuple[str, ...]] = ("censored",)

    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        if topic == "room:secret":
            return web.error({"reason": "unauthorized"})
        if topic == "room:crash":
            raise RuntimeError("join went wrong")
        if topic == "room:early":
            socket.push("too_soon", {})
        if topic == "room:stuck":  # killed by the test while it waits here
            beam.send("observer", ("joining", beam.self()))
            await trio.sleep_forever()
        if params.get("track"):
            beam.send(beam.self(), ("track", params["track"]))
        return web.ok({"user": socket.assigns.get("user_id")})

    async def handle_in(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | web.Stop | None:
        if event == "echo":
            return web.ok({"echo": payload})
        if event == "refuse":
            return web.error({"reason": "no"})
        if event == "shout":
            socket.broadcast("shout", payload)
            return None
        if event == "whisper":
            socket.broadcast_from("whisper", payload)
            return web.ok()
        if event == "censor":
            socket.broadcast("censored", payload)
            return None
        if event == "boom":
            raise RuntimeError("handle_in went wrong")
        if event == "bye":
            return web.Stop("normal", reply=web.ok({"bye": True}))
        if event == "die":
            return web.Stop("fatal")
        if event == "later":
            beam.send(beam.self(), ("later", payload))
            return None
        if event == "binary":
            assert isinstance(payload, bytes)
            return web.ok(payload[::-1])
        return None

    async def handle_out(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.Stop | None:
        socket.push(event, {"text": "*" * len(payload["text"])})
        return None

    async def handle_info(self, message: Any, socket: web.ChannelSocket) -> web.Stop | None:
        if message[0] == "later":
            socket.push("later", message[1])
        elif message[0] == "track":
            await presence.track(beam.self(), socket.topic, message[1], {"status": "here"})
            socket.push("presence_state", presence.list(socket.topic))
        return None

    async def terminate(self, reason: Any, socket: web.ChannelSocket) -> None:
        if beam.whereis("observer") is not None:
            observe("terminate", socket.topic, reason)


class UserSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Room}
    rate_limit = (50, 60.0)

    async def connect(
        self, params: Mapping[str, str], connect_info: web.ConnectInfo
    ) -> Mapping[str, Any] | None:
        token = params.get("token") or connect_info.auth_token
        if token is None:
            return {}
        try:
            return {"user_id": web.Token.verify(SECRET, "user socket", token, max_age=60)}
        except web.InvalidToken:
            return None

    def id(self, assigns: Mapping[str, Any]) -> str | None:
        user = assigns.get("user_id")
        return None if user is None else f"user_socket:{user}"
