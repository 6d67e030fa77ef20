"""The app ``python -m web --nodes N`` serves in tests/web/test_serve_nodes.py.

Every answer names the node that gave it: ``GET /node``; ``GET /broadcast?topic=T&text=X``
(``web.broadcast(T, "news", {"text": X})``); ``GET /disconnect?id=I`` (``web.disconnect(I)``);
the join reply of a ``room:*`` topic on ``/socket`` (connect with ``?user=U``: socket id
``user:U``); and the LiveView at ``/where``, in its dead render and in its connected one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import beam
import web

#: The same on every node: a page rendered by one node connects to another.
SECRET_KEY = "the nodes test app's secret key, shared by every node"


class Room(web.Channel):
    async def join(
        self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        return web.ok({"node": beam.node()})


class UserSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Room}

    async def connect(
        self, params: Mapping[str, str], connect_info: web.ConnectInfo
    ) -> Mapping[str, Any] | None:
        return {"user": params.get("user")}

    def id(self, assigns: Mapping[str, Any]) -> str | None:
        user = assigns.get("user")
        return None if user is None else f"user:{user}"


class Where(web.LiveView):
    template = '<p id="node">{{ node }}</p><p id="connected">{{ connected }}</p>'

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(node=beam.node(), connected=socket.connected)


def _param(request: web.Request, name: str) -> str:
    return request.query.get(name, [""])[-1]


def _node(request: web.Request) -> web.Response:
    return web.Response(200, beam.node().encode())


def _broadcast(request: web.Request) -> web.Response:
    web.broadcast(_param(request, "topic"), "news", {"text": _param(request, "text")})
    return web.Response(200, beam.node().encode())


def _disconnect(request: web.Request) -> web.Response:
    web.disconnect(_param(request, "id"))
    return web.Response(200, beam.node().encode())


def make() -> web.Endpoint:
    """The endpoint, built in each node."""
    return _endpoint(SECRET_KEY)


def make_unshared() -> web.Endpoint:
    """The same endpoint with a key of each node's own (the parent warns about it)."""
    return _endpoint(f"a secret key that node {beam.node()} alone has")


def _endpoint(secret_key: str) -> web.Endpoint:
    endpoint = web.Endpoint(secret_key=secret_key)
    endpoint.get("/node", _node)
    endpoint.get("/broadcast", _broadcast)
    endpoint.get("/disconnect", _disconnect)
    endpoint.socket("/socket", UserSocket())
    web.LiveRouter(endpoint).live("/where", Where)
    return endpoint


def broken() -> web.Endpoint:
    """A factory that fails in every node (the parent restarts them, then gives up)."""
    raise RuntimeError("this app cannot start")
