"""The endpoint: routes, limits and the secret of one site, as Phoenix's Endpoint and Router.

An :class:`Endpoint` maps exact paths to HTTP handlers and WebSocket upgraders, serves static
directories, hands what no route answers to a mounted ASGI application, and holds the limits
:func:`~web.serve` enforces::

    endpoint = Endpoint(max_headers=50)
    endpoint.get("/", lambda request: Response(200, b"hello"))
    endpoint.static("/assets", "priv/static")
    endpoint.socket("/socket", UserSocket())      # a Channels socket (web.channels)

Upper layers extend it from outside (LiveView's :class:`~web.LiveRouter` adds its routes and
socket through these same methods); this module knows nothing of them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

from supervisors import ChildSpec

from ._asgi import call_asgi
from ._h1 import encode_header
from ._request import HttpHandler
from ._static import StaticFiles
from ._websocket import Always, SocketHandler, Upgrader

__all__ = ["SECURITY_HEADERS", "Endpoint"]

#: Headers added to every HTTP response that does not set them itself, as Phoenix's
#: ``put_secure_browser_headers``: no MIME sniffing, no framing by other sites, no full
#: referrer to other origins, no Flash/PDF cross-domain policies.
SECURITY_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("content-security-policy", "base-uri 'self'; frame-ancestors 'self'"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-permitted-cross-domain-policies", "none"),
)


#: The environment variable :class:`Endpoint` takes its default ``secret_key`` from.
SECRET_KEY_ENV = "WEB_SECRET_KEY"


def default_secret_key() -> str:
    """``WEB_SECRET_KEY`` when set, else a new random key (good for this process only).

    >>> len(default_secret_key()) >= 32
    True
    """
    return os.environ.get(SECRET_KEY_ENV) or secrets.token_urlsafe(32)


@dataclass
class Endpoint:
    """Routes and limits: exact-path HTTP handlers and WebSocket handlers.

    >>> endpoint = Endpoint(max_headers=50, head_timeout=5.0, security_headers=())
    """

    #: Bytes of a request body; over it, 413.
    max_request_bytes: int = 1_048_576
    max_frame_bytes: int = 1_048_576
    #: Bytes a WebSocket may have waiting for a peer that does not read before it is dropped.
    max_backlog_bytes: int = 4 * 1_048_576
    #: Seconds an idle connection waits for the first byte of its next request.
    keep_alive_timeout: float = 60.0
    #: Bytes of a request head (request line and headers); over it, 431.
    max_head_bytes: int = 16_384
    #: Header fields in a request head; over it, 431.
    max_headers: int = 100
    #: Fields :meth:`Request.form` decodes (and fields of a query string); over it, 400.
    max_form_fields: int = 1_000
    #: Seconds from the first byte of a request to the end of its head; over it, 408.
    head_timeout: float = 10.0
    #: Seconds from the end of a request's head to the end of its body; over it, 408.
    body_timeout: float = 60.0
    #: Seconds a response may wait for the peer to take its next 64 KiB (a client that
    #: reads slowly or not at all); over it, the connection closes.
    send_timeout: float = 60.0
    #: Added to every HTTP response that does not set them itself (a handler's own header
    #: of the same name wins: a page's own content-security-policy replaces ours whole);
    #: ``()`` adds none.
    security_headers: tuple[tuple[str, str], ...] = SECURITY_HEADERS
    _http: dict[tuple[str, str], HttpHandler] = field(default_factory=dict)
    _sockets: dict[str, Upgrader] = field(default_factory=dict)
    _fallback: HttpHandler | None = None
    _forwards: list[tuple[str, HttpHandler]] = field(default_factory=list)
    _static: list[StaticFiles] = field(default_factory=list)
    _children: list[ChildSpec] = field(default_factory=list)
    #: Signs the site's tokens (CSRF, LiveView sessions), as Phoenix's ``secret_key_base``.
    #: By default ``WEB_SECRET_KEY`` from the environment (``python -m web --nodes N`` gives
    #: its nodes one), else random per process: set it (the same on every node) so that
    #: pages survive a restart without a reload and connect to any node.
    secret_key: str = field(default_factory=lambda: default_secret_key())
    #: Mark the cookies the framework sets (the CSRF cookie of LiveView pages) ``Secure``, so
    #: browsers send them over TLS only: set it when the site is served over HTTPS.
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        try:
            for name, value in self.security_headers:
                encode_header(name, value)
            self.security_headers = tuple((k.lower(), v) for k, v in self.security_headers)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"security_headers must be (name, value) pairs of valid HTTP headers: {exc} "
                f"in {self.security_headers!r:.200}"
            ) from None

    def get(self, path: str, handler: HttpHandler) -> None:
        """Answer ``GET path`` with ``handler(request)`` (sync or async)."""
        self.route("GET", path, handler)

    def route(self, method: str, path: str, handler: HttpHandler) -> None:
        """Answer ``method path`` with ``handler(request)`` (sync or async)."""
        if not path.startswith("/"):
            raise ValueError(f"a route path starts with '/', got {path!r}")
        self._http[(method.upper(), path)] = handler

    def static(self, prefix: str, directory: str | os.PathLike[str]) -> None:
        """Serve the files under *directory* at *prefix* (``GET <prefix>/<file path>``).

        >>> endpoint.static("/assets", "priv/static")
        """
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(
                f"a static prefix starts with '/' and does not end with one: {prefix!r}"
            )
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(
                f"static directory {str(root)!r} does not exist (or is not a directory)"
            )
        self._static.append(StaticFiles(prefix, root.resolve()))

    def forward(self, prefix: str, handler: HttpHandler) -> None:
        """Hand every request under *prefix* (``prefix`` itself and ``prefix/...``, any
        method) that no exact route answers to ``handler(request)``, as Phoenix's
        ``forward``: a sub-application routing its own paths (a JSON API, say).

        >>> endpoint.forward("/api", api_handler)
        """
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(
                f"a forward prefix starts with '/' and does not end with one: {prefix!r}"
            )
        self._forwards.append((prefix, handler))

    def mount(self, app: Any) -> None:
        """Send every HTTP request no route of ours answers to the ASGI application *app*
        (Starlette, FastAPI...), so users keep their usual HTTP routes.

        >>> endpoint.mount(Starlette(routes=[Route("/health", health)]))
        """
        self._fallback = partial(call_asgi, app)

    def websocket(self, path: str, handler: SocketHandler) -> None:
        """Accept WebSocket upgrades on *path* and run ``await handler(ws)`` for each."""
        self.upgrade(path, Always(handler))

    def upgrade(self, path: str, upgrader: Upgrader) -> None:
        """Let *upgrader* accept or refuse each WebSocket upgrade on *path*.

        An upgrader with a ``child_spec()`` method (a Channels socket has one: its pools of
        transports and channels) gets that child run under the endpoint's supervision tree
        (see :meth:`supervise`).
        """
        if not path.startswith("/"):
            raise ValueError(f"a WebSocket path starts with '/', got {path!r}")
        self._sockets[path] = upgrader
        child_spec = getattr(upgrader, "child_spec", None)
        if callable(child_spec):
            spec = child_spec()
            if spec is not None:
                self.supervise(spec)

    def supervise(self, spec: ChildSpec) -> None:
        """Run *spec* under the endpoint's supervision tree, which :func:`~web.serve` starts
        in a node (``web.endpoint``): children in the order given, then the listener. So
        they run before the first connection is accepted, and stop only after the listener
        has stopped accepting. A spec whose id is there already is not added again (two
        Channels sockets share the node's one pool).

        >>> endpoint.supervise(child_spec(Cache, name="cache"))
        """
        if not isinstance(spec, ChildSpec):
            raise TypeError(
                f"Endpoint.supervise takes a supervisors.ChildSpec, got {spec!r:.100} "
                "(make one with supervisors.child_spec or supervisors.worker)"
            )
        if all(child.id != spec.id for child in self._children):
            self._children.append(spec)

    def children(self) -> tuple[ChildSpec, ...]:
        """The child specs :meth:`supervise` was given, in order.

        >>> [spec.id for spec in endpoint.children()]
        ['web.socket_sup']
        """
        return tuple(self._children)

    def upgrader(self, path: str) -> Upgrader | None:
        """The upgrader that accepts WebSocket upgrades on *path*, if any.

        >>> endpoint.upgrader("/socket/websocket")
        """
        return self._sockets.get(path)

    def resolve(self, method: str, path: str) -> HttpHandler | None:
        """The handler that answers *method* on *path*, or ``None`` (the server answers 405
        or 404, see :meth:`allowed_methods`). In order: the route of that method (a ``HEAD``
        takes the ``GET`` route: the server sends no body), a static directory owning the
        path, a :meth:`forward` prefix, the mounted ASGI application.

        >>> endpoint.resolve("GET", "/") is not None
        True
        """
        handler = self._http.get((method, path))
        if handler is None and method == "HEAD":
            handler = self._http.get(("GET", path))
        if handler is None:
            handler = next((s for s in self._static if s.owns(path)), None)
        if handler is None and self._forwards:
            handler = next(
                (h for p, h in self._forwards if path == p or path.startswith(p + "/")), None
            )
        if handler is None:
            handler = self._fallback
        return handler

    def allowed_methods(self, path: str) -> frozenset[str]:
        """The methods routed on *path* (``HEAD`` too where ``GET`` is), for a 405's
        ``allow`` header; empty when no route has this path.

        >>> sorted(endpoint.allowed_methods("/"))
        ['GET', 'HEAD']
        """
        allowed = {method for method, routed in self._http if routed == path}
        if "GET" in allowed:
            allowed.add("HEAD")
        return frozenset(allowed)

    def socket(self, path: str, socket: Upgrader) -> None:
        """Mount a Channels :class:`~web.Socket` at *path*, as Phoenix's ``socket "/socket"``:
        clients connect to ``<path>/websocket`` (``new Socket("/socket")`` in phoenix.js).

        >>> endpoint.socket("/socket", UserSocket())
        """
        self.upgrade(path.rstrip("/") + "/websocket", socket)
