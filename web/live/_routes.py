"""LiveView routes: which view serves which path, their guards and live sessions, and the
signed session token a page hands its client.

A route's guard (``session=``) runs on every mount: the page over HTTP and every connected
join, with a :class:`~web.Request` rebuilt from the WebSocket upgrade (its cookies), so a view
never mounts with a session its guard would not give now. Routes form *live sessions*; live
navigation stays within one::

    routes = LiveRoutes(secret_key)
    routes.add("/", Chat, session=signed_in)
    routes.add("/settings", Settings, session=signed_in)    # one live session with "/"
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import beam

from ..channels import (
    InvalidToken,
    Token,
)
from ..http import CsrfProtection, Request, Response
from ._view import LiveView

__all__ = [
    "UPGRADE_ONLY",
    "LiveRoute",
    "LiveRoutes",
    "SessionFn",
    "Upgrade",
    "guard_request",
    "location_of",
    "run_guard",
]

_SESSION_SALT: Final = "live view session"
_SESSION_MAX_AGE: Final = 14 * 86_400
#: Headers of the WebSocket upgrade a route guard has no use for (kept out of its Request).
UPGRADE_ONLY: Final = frozenset(
    {
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)

#: A route guard, ``session(request)``: the session a view mounts with, or a
#: :class:`Response` (say a redirect to sign in) instead. Sync or async. It runs on every
#: mount: for the page over HTTP, and for every connected join (see :class:`LiveRoutes`).
SessionFn = Callable[
    [Request], Mapping[str, Any] | Response | Awaitable[Mapping[str, Any] | Response]
]


@dataclass(frozen=True, slots=True)
class LiveRoute:
    """One ``router.live(...)`` route: its view, its guard and its live session's name.

    >>> routes.add("/admin", Admin, session=require_admin).live_session
    'guard:require_admin#0'
    """

    path: str
    view: type[LiveView]
    guard: SessionFn | None
    live_session: str


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What the ``/live`` socket keeps of its WebSocket upgrade request, so that route guards
    can run at join (the connection's assigns): the headers (cookies...) and the peer."""

    headers: tuple[tuple[str, str], ...]
    client: tuple[str, int] | None


class LiveRoutes:
    """The LiveView routes of one endpoint and the secret their tokens are signed with.

    Routes form *live sessions* (Phoenix's ``live_session``): the client may navigate live
    (``push_navigate``, ``data-phx-link="redirect"``) only between routes of one live session;
    into another, it is told to load the page in full. Routes given the same
    ``live_session`` name share one; unnamed routes share one when they have the same
    ``session`` guard (the same function object), and routes without a guard share one.
    Whatever the live session, the target route's guard runs on every mount.
    """

    def __init__(self, secret_key: str, *, secure_cookies: bool = False) -> None:
        self.secret_key = secret_key
        #: The CSRF cookie and tokens of LiveView pages and the ``/live`` socket (shared
        #: with plain form posts: the same key and cookie).
        self.csrf = CsrfProtection(secret_key, secure=secure_cookies)
        self.routes: dict[str, LiveRoute] = {}
        #: Names of the live sessions made for unnamed guards, by guard identity (the guard
        #: is kept too, so that its id is not reused).
        self._by_guard: dict[int, tuple[SessionFn, str]] = {}

    def add(
        self,
        path: str,
        view: type[LiveView],
        *,
        session: SessionFn | None = None,
        live_session: str | None = None,
    ) -> LiveRoute:
        """Route *path* to *view*, guarded by *session*, in the live session *live_session*
        (by default, the one of every route with the same guard).

        >>> routes.add("/admin", Admin, session=require_admin)
        """
        if live_session is not None:
            name = "name:" + live_session
        elif session is None:
            name = "unguarded"
        else:
            known = self._by_guard.get(id(session))
            if known is None:
                label = getattr(session, "__qualname__", type(session).__name__)
                known = self._by_guard[id(session)] = (
                    session,
                    f"guard:{label}#{len(self._by_guard)}",
                )
            name = known[1]
        route = self.routes[path] = LiveRoute(path, view, session, name)
        return route

    def sign_session(self, route: LiveRoute, element_id: str, session: Mapping[str, Any]) -> str:
        """The ``data-phx-session`` token: which route, for which container element, in which
        live session, and the session the view mounts with when the route has no guard."""
        data = {
            "path": route.path,
            "id": element_id,
            "live_session": route.live_session,
            "session": dict(session),
        }
        return Token.sign(self.secret_key, _SESSION_SALT, data)

    def resolve(
        self, session_token: Any, topic: str
    ) -> tuple[LiveRoute, dict[str, Any], str] | None:
        """The route, session and live session a join's session token names, if it is
        genuine and meant for this topic."""
        if not isinstance(session_token, str):
            return None
        try:
            data = Token.verify(
                self.secret_key, _SESSION_SALT, session_token, max_age=_SESSION_MAX_AGE
            )
        except InvalidToken:
            return None
        if not isinstance(data, dict) or topic != "lv:" + str(data.get("id")):
            return None
        route = self.routes.get(str(data.get("path")))
        session = data.get("session")
        if route is None:
            return None
        return route, session if isinstance(session, dict) else {}, str(data.get("live_session"))


async def run_guard(guard: SessionFn, request: Request) -> Mapping[str, Any] | Response:
    """What *guard* says for *request* (awaited if it is async), checked.

    >>> session = await run_guard(require_user, request)
    """
    result: Any = guard(request)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, Mapping | Response):
        name = getattr(guard, "__qualname__", repr(guard))
        raise beam.BadReturnValue(
            f"the LiveView session guard {name}", result, "a mapping (the session) or a Response"
        )
    return result


def guard_request(upgrade: Upgrade | None, path: str, url: str) -> Request:
    """The :class:`Request` a route guard sees on a connected join: the WebSocket upgrade's
    headers and peer, the route's *path* and the query of the page's *url*.

    >>> guard_request(None, "/rooms", "http://x/rooms?id=7").query
    {'id': ['7']}
    """
    query = urlsplit(url).query
    headers = () if upgrade is None else upgrade.headers
    client = None if upgrade is None else upgrade.client
    return Request("GET", path, parse_qs(query), headers, b"", client, query)


def location_of(response: Response) -> str | None:
    return next((value for key, value in response.headers if key.lower() == "location"), None)
