"""The HTTP side of LiveView: the router that puts views on an endpoint, the page layout of
the dead render, and the JavaScript assets.

LiveView extends the endpoint from outside, as Phoenix LiveView extends Phoenix's router: a
:class:`LiveRouter` mounts the ``/live`` socket and serves the official clients from the npm
packages (``node_modules``, installed at set-up) under ``/assets``, and ``router.live(path,
View)`` answers ``GET path`` with the full page: the layout around the view's first render, in
a container carrying the signed session the client joins with. The page's CSRF token (its
``csrf-token`` meta tag, which the client sends when it connects) is bound to the browser's
``_csrf`` cookie, set with the page when the browser has none.
"""

from __future__ import annotations

import html
import os
import secrets
from pathlib import Path
from typing import Any, Final

from ..http import Endpoint, Request, Response
from ._channel import LiveChannel, LiveSocketHandler, dead_render
from ._routes import LiveRoutes, SessionFn, run_guard
from ._upload import UploadChannel
from ._view import LiveView

__all__ = ["DEFAULT_LAYOUT", "LiveRouter"]

#: The page around a LiveView; ``{csrf_token}``, ``{title}``, ``{head}`` and ``{container}``
#: are filled in (a layout of your own must keep the csrf meta tag and the app.js script).
DEFAULT_LAYOUT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf_token}">
<title>{title}</title>
{head}<script type="module" src="/assets/live/app.js"></script>
</head>
<body>
{container}
</body>
</html>
"""

_APP_JS = Path(__file__).with_name("static") / "live.js"


def _node_modules() -> Path:
    candidates = [os.environ.get("WEB_NODE_MODULES"), Path.cwd() / "node_modules"]
    candidates.append(Path(__file__).resolve().parents[1] / "node_modules")
    for candidate in candidates:
        if candidate and (Path(candidate) / "phoenix_live_view" / "package.json").is_file():
            return Path(candidate)
    raise RuntimeError(
        "the phoenix_live_view client is not installed (looked in $WEB_NODE_MODULES, "
        "./node_modules and beside the web package); run `npm ci` (scripts/_setup.sh does)"
    )


#: The ``web.Socket`` limits a :class:`LiveRouter` may set on its ``/live`` socket.
_SOCKET_OPTIONS: Final = frozenset(
    {
        "check_origin",
        "idle_timeout",
        "max_channels",
        "max_connections",
        "max_connections_per_address",
        "max_connections_per_id",
        "rate_limit",
    }
)
_SOCKET_PATH: Final = "/live"


class LiveRouter:
    """LiveView on an :class:`~web.Endpoint`: the ``/live`` socket, the client's assets, and
    the live routes, as Phoenix's ``live "/path", View`` in a router.

    The first router made for an endpoint mounts the socket and the assets; another made for
    the same endpoint adds its routes to the same live routes. *socket_options* set the
    ``/live`` socket's limits, with the meaning they have on :class:`~web.Socket`
    (``rate_limit``, ``max_connections_per_address``, ``idle_timeout``...).

    >>> router = LiveRouter(endpoint)
    >>> router.live("/counter", Counter)
    """

    def __init__(self, endpoint: Endpoint, **socket_options: Any) -> None:
        unknown = sorted(set(socket_options) - _SOCKET_OPTIONS)
        if unknown:
            allowed = ", ".join(sorted(_SOCKET_OPTIONS))
            raise TypeError(
                f"LiveRouter takes the /live socket's limits ({allowed}), not {', '.join(unknown)}"
            )
        self.endpoint = endpoint
        mounted = endpoint.upgrader(_SOCKET_PATH + "/websocket")
        if isinstance(mounted, LiveSocketHandler):
            if socket_options:
                raise ValueError(
                    "this endpoint's /live socket is mounted already (by an earlier "
                    "LiveRouter): give the socket options to the first one"
                )
            self.routes = mounted.routes
            return
        if mounted is not None:
            raise ValueError(
                f"{_SOCKET_PATH}/websocket is taken by {mounted!r:.80} on this endpoint; "
                "LiveView needs it for its socket"
            )
        self.routes = LiveRoutes(endpoint.secret_key, secure_cookies=endpoint.secure_cookies)
        channel = type("LiveChannel", (LiveChannel,), {"routes": self.routes})
        uploads = type("UploadChannel", (UploadChannel,), {"secret_key": self.routes.secret_key})
        handler = type(
            "LiveSocketHandler",
            (LiveSocketHandler,),
            {
                "routes": self.routes,
                "channels": {"lv:*": channel, "lvu:*": uploads},
                **socket_options,
            },
        )
        endpoint.socket(_SOCKET_PATH, handler())
        modules = _node_modules()
        endpoint.static("/assets/phoenix", modules / "phoenix" / "priv" / "static")
        endpoint.static(
            "/assets/phoenix_live_view", modules / "phoenix_live_view" / "priv" / "static"
        )
        app_js = _APP_JS.read_bytes()
        endpoint.get(
            "/assets/live/app.js",
            lambda request: Response(200, app_js, (("content-type", "text/javascript"),)),
        )

    def live(
        self,
        path: str,
        view: type[LiveView],
        *,
        layout: str = DEFAULT_LAYOUT,
        head: str = "",
        session: SessionFn | None = None,
        live_session: str | None = None,
    ) -> None:
        """Serve *view* at *path*: the full page over HTTP, then live over the socket.

        *layout* is the page around the view (:data:`DEFAULT_LAYOUT`; yours must keep its
        csrf meta tag and app.js script); *head* is extra markup for its ``<head>``
        (styles). ``session(request)`` (sync or async) guards the route on every mount: the
        page over HTTP, and every connected join, with the WebSocket's upgrade request (its
        cookies). It returns the session the view mounts with, or a :class:`~web.Response`
        (a redirect) that the page request gets instead, and that a join turns into a
        redirect of the client. Live navigation stays within a *live_session* (routes named
        alike; unnamed routes with the same guard share one); into another, the client loads
        the page in full.

        >>> router.live("/admin", Admin, session=require_admin)
        """
        if not (isinstance(view, type) and issubclass(view, LiveView)):
            raise TypeError(f"LiveRouter.live expects a LiveView subclass, got {view!r:.80}")
        view.compiled()  # template errors show now, not on the first request
        routes = self.routes
        route = routes.add(path, view, session=session, live_session=live_session)

        async def page(request: Request) -> Response:
            url = f"http://{request.header('host') or 'localhost'}{request.path}"
            if request.query_string:
                url += "?" + request.query_string
            data = {} if session is None else await run_guard(session, request)
            if isinstance(data, Response):
                return data  # e.g. a redirect to the sign-in page
            rendered = await dead_render(view, url, data)
            if isinstance(rendered, Response):
                return rendered  # mount or handle_params redirected: 302, nothing rendered
            inner, title = rendered
            element_id = "phx-" + secrets.token_urlsafe(9)
            # A guarded route's views get the guard's fresh answer at join: the page carries
            # no session of its own then.
            token = routes.sign_session(route, element_id, {} if session is not None else data)
            container = (
                f'<div id="{element_id}" data-phx-main data-phx-session="{html.escape(token)}" '
                f'data-phx-static="">{inner}</div>'
            )
            csrf_token, cookie = routes.csrf.token(request)
            body = layout.format(
                csrf_token=html.escape(csrf_token),
                title=html.escape(title),
                head=head,
                container=container,
            )
            html_type = ("content-type", "text/html; charset=utf-8")
            headers = routes.csrf.headers(cookie, (html_type,))
            return Response(200, body.encode(), headers)

        self.endpoint.get(path, page)
