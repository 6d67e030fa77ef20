"""web.http: the HTTP/1.1 and WebSocket server, the bottom layer of ``web``.

One trio listener, our sans-I/O HTTP/1.1 layer on httptools (llhttp, in C) for HTTP and the
``websockets`` library's sans-I/O protocol for WebSockets, no ASGI in the way: an
:class:`Endpoint` routes exact paths to handlers (``Request`` in, ``Response`` out, each
request in a process of its own), serves static directories, mounts an ASGI application for
the rest, and accepts WebSocket upgrades through :class:`Upgrader` objects. Cookies, CSRF
protection, rate limiting and the WebSocket :class:`Outbox` (frames written without waiting,
the fast lane of broadcasts) live here too, for every layer above to use::

    import web.http as http

    endpoint = http.Endpoint()
    endpoint.get("/", lambda request: http.Response(200, b"hello"))

    async def main():
        await http.serve(endpoint, "127.0.0.1", 4000)

This layer knows nothing of Channels (:mod:`web.channels`) or LiveView (:mod:`web.live`):
they plug in through :meth:`Endpoint.upgrade`, :meth:`Endpoint.route` and
:meth:`Endpoint.static`. Everything here is also exported by :mod:`web` itself.
"""

from ._cookies import parse_cookies as parse_cookies
from ._cookies import set_cookie as set_cookie
from ._csrf import CsrfProtection as CsrfProtection
from ._endpoint import SECURITY_HEADERS as SECURITY_HEADERS
from ._endpoint import Endpoint as Endpoint
from ._errors import HTTPError as HTTPError
from ._outbox import Outbox as Outbox
from ._outbox import frame as frame
from ._ratelimit import RATE_LIMITER as RATE_LIMITER
from ._ratelimit import Backoff as Backoff
from ._ratelimit import Limit as Limit
from ._ratelimit import RateLimited as RateLimited
from ._ratelimit import RateLimiter as RateLimiter
from ._ratelimit import Shared as Shared
from ._ratelimit import rate_limit as rate_limit
from ._ratelimit import record_failure as record_failure
from ._ratelimit import reset_limit as reset_limit
from ._request import Request as Request
from ._request import Response as Response
from ._server import serve as serve
from ._websocket import SocketHandler as SocketHandler
from ._websocket import Upgrader as Upgrader
from ._websocket import WebSocket as WebSocket
from ._websocket import WebSocketClosed as WebSocketClosed

__all__ = (
    "RATE_LIMITER",
    "SECURITY_HEADERS",
    "Backoff",
    "CsrfProtection",
    "Endpoint",
    "HTTPError",
    "Limit",
    "Outbox",
    "RateLimited",
    "RateLimiter",
    "Request",
    "Response",
    "Shared",
    "SocketHandler",
    "Upgrader",
    "WebSocket",
    "WebSocketClosed",
    "frame",
    "parse_cookies",
    "rate_limit",
    "record_failure",
    "reset_limit",
    "serve",
    "set_cookie",
)
