"""The HTTP side of LiveView: routes, the page layout of the dead render, and the JS assets.

``endpoint.live(path, View)`` answers ``GET path`` with the full page: the layout around the
view's first render, in a container carrying the signed session the client joins with. The
first live route also mounts the ``/live`` socket and serves the official clients from the
npm packages (``node_modules``, installed at set-up) under ``/assets``. The page's CSRF token
(its ``csrf-token`` meta tag, which the client sends when it connects) is bound to the
browser's ``_csrf`` cookie, set with the page when the browser has none.
"""

from __future__ import annotations

import html
import os
import secrets
from pathlib import Path

from ._live import (
    LiveChannel,
    LiveRoutes,
    LiveSocketHandler,
    LiveView,
    SessionFn,
    dead_render,
    run_guard,
)
from ._server import Endpoint, Request, Response

__all__ = ["DEFAULT_LAYOUT", "mount_live"]

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


def _routes(endpoint: Endpoint) -> LiveRoutes:
    routes: LiveRoutes | None = endpoint._live
    if routes is not None:
        return routes
    routes = endpoint._live = LiveRoutes(
        endpoint.secret_key, secure_cookies=endpoint.secure_cookies
    )
    channel = type("LiveChannel", (LiveChannel,), {"routes": routes})
    handler = type(
        "LiveSocketHandler",
        (LiveSocketHandler,),
        {"routes": routes, "channels": {"lv:*": channel}},
    )
    endpoint.socket("/live", handler())
    modules = _node_modules()
    endpoint.static("/assets/phoenix", modules / "phoenix" / "priv" / "static")
    endpoint.static("/assets/phoenix_live_view", modules / "phoenix_live_view" / "priv" / "static")
    app_js = _APP_JS.read_bytes()
    endpoint.get(
        "/assets/live/app.js",
        lambda request: Response(200, app_js, (("content-type", "text/javascript"),)),
    )
    return routes


def mount_live(
    endpoint: Endpoint,
    path: str,
    view: type[LiveView],
    *,
    layout: str = DEFAULT_LAYOUT,
    head: str = "",
    session: SessionFn | None = None,
    live_session: str | None = None,
) -> None:
    """Serve *view* at *path* (see :meth:`Endpoint.live`).

    ``session(request)`` (sync or async) guards the route on every mount: the page over HTTP,
    and every connected join, with the WebSocket's upgrade request (its cookies). It returns
    the session the view mounts with, or a :class:`Response` (a redirect) that the page
    request gets instead, and that a join turns into a redirect of the client. Live
    navigation stays within a *live_session* (see :class:`web._live.LiveRoutes`).

    >>> mount_live(endpoint, "/admin", Admin, session=require_admin)
    """
    if not (isinstance(view, type) and issubclass(view, LiveView)):
        raise TypeError(f"endpoint.live expects a LiveView subclass, got {view!r:.80}")
    view.compiled()  # template errors show now, not on the first request
    routes = _routes(endpoint)
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
        # A guarded route's views get the guard's fresh answer at join: the page carries no
        # session of its own then.
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
        headers = routes.csrf.headers(cookie, (("content-type", "text/html; charset=utf-8"),))
        return Response(200, body.encode(), headers)

    endpoint.get(path, page)
