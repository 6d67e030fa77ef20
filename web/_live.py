"""LiveView: server-rendered pages whose state lives in a process, patched over a WebSocket.

A :class:`LiveView` subclass holds a template (Jinja2 syntax) and callbacks. Opening the page
renders it over plain HTTP (the "dead" render); the official ``phoenix_live_view`` client
then joins ``lv:<id>`` over ``/live/websocket`` and the view runs again in its own process,
linked to the connection: every event changes its assigns, and only the changed parts of the
page travel back::

    class Counter(web.LiveView):
        template = '<button phx-click="inc">{{ count }}</button>'

        async def mount(self, params, session, socket):
            socket.assign(count=0)

        async def handle_event(self, event, value, socket):
            if event == "inc":
                socket.assign(count=socket.assigns["count"] + 1)

    endpoint.live("/counter", Counter)

``mount`` runs twice: for the dead render (``socket.connected`` is false; this is not a
process, so subscribe and start timers only when connected) and in the view's process. A
crash in the view's process shows the client an error briefly; the client rejoins and the view
mounts afresh. A redirect from ``mount`` or ``handle_params`` on the dead render answers 302
and renders nothing.

Security: a route's ``session=`` guard runs on *every* mount, the page over HTTP and each
connected join (with the WebSocket upgrade's cookies), so a view never mounts with a session
its guard would not give now. Live navigation stays within a *live session* (routes sharing a
``live_session`` name, or the same guard); into another, the client loads the page in full.
When the guard's session holds ``"live_socket_id"``, ``web.disconnect(that id)`` closes the
user's LiveView connections (after sign-out): the client reconnects and the guard decides
again::

    async def signed_in(request):
        user = await Sessions.user_for(request.cookie("session"))
        if user is None:
            return web.Response(302, b"", (("location", "/login"),))
        return {"user_id": user.id, "live_socket_id": f"users_sessions:{user.id}"}

    endpoint.live("/", Chat, session=signed_in)
    endpoint.live("/settings", Settings, session=signed_in)    # one live session with "/"
    ...
    web.disconnect(f"users_sessions:{user.id}")                 # on sign-out

The ``/live`` socket accepts a connection only with a CSRF token that matches the browser's
``_csrf`` cookie (:class:`~web.CsrfProtection`; the page sets the cookie), and a form event
has at most 1,000 fields nested at most 32 levels deep (else it is refused with an error).
"""

from __future__ import annotations

import copy
import inspect
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, parse_qsl, urlsplit

import jinja2

import beam

from ._channel import Channel, ChannelReply, ChannelSocket, Stop, error, ok
from ._csrf import CsrfProtection
from ._live_component import ComponentTable
from ._protocol import Broadcast
from ._rendered import to_html
from ._server import Request, Response
from ._socket import ConnectInfo, Socket, disconnect
from ._stream import Stream, default_dom_id
from ._template import LiveTemplate
from ._token import InvalidToken, Token

__all__ = ["LIVEVIEW_VERSION", "AsyncResult", "LiveSocket", "LiveView", "SessionFn"]

logger = logging.getLogger("web.live")

#: The phoenix_live_view client version this server speaks (reported in join replies).
LIVEVIEW_VERSION: Final = "1.2.12"
_SESSION_SALT: Final = "live view session"
_SESSION_MAX_AGE: Final = 14 * 86_400
#: A LiveView form event may have at most this many fields (as Django's default) ...
MAX_FORM_FIELDS: Final = 1000
#: ... and keys nested at most this deep (``a[b][c]`` is 3 levels).
MAX_FORM_DEPTH: Final = 32
#: The ``/live`` socket's assigns: what it kept of the upgrade, and the connection's socket id.
_UPGRADE_KEY: Final = "_live_upgrade"
_CONNECTION_KEY: Final = "_live_connection"
#: Headers of the WebSocket upgrade a route guard has no use for (kept out of its Request).
_UPGRADE_ONLY: Final = frozenset(
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
class AsyncResult:
    """The state of an assign loaded by :meth:`LiveSocket.assign_async`: ``loading`` until
    the loader returns, then ``ok`` with ``result``, or ``failed`` with the error's text.

    >>> AsyncResult.pending().loading
    True
    """

    loading: bool = False
    ok: bool = False
    result: Any = None
    failed: str | None = None

    @classmethod
    def pending(cls) -> AsyncResult:
        """The state while the loader runs."""
        return cls(loading=True)


@dataclass(frozen=True, slots=True)
class _Loaded:
    """Loader process -> view process: what ``assign_async`` loaded (or why it failed)."""

    ref: beam.Ref
    names: tuple[str, ...]
    values: tuple[Any, ...] | None
    failed: str | None


def _result(message: _Loaded) -> AsyncResult:
    """The result of a one-name load (failed, or ok with its value)."""
    if message.values is None:
        return AsyncResult(failed=message.failed)
    return AsyncResult(ok=True, result=message.values[0])


async def _load(
    view: beam.Pid, ref: beam.Ref, names: tuple[str, ...], loader: Callable[[], Awaitable[Any]]
) -> None:
    try:
        loaded = await loader()
    except Exception as exc:
        logger.warning("async work %s of a LiveView failed: %r", ", ".join(names), exc)
        beam.send(view, _Loaded(ref, names, None, f"{type(exc).__name__}: {exc}"))
        return
    if len(names) == 1:
        values: tuple[Any, ...] = (loaded,)
    elif not isinstance(loaded, Mapping) or set(loaded) != set(names):
        got = sorted(loaded) if isinstance(loaded, Mapping) else type(loaded).__name__
        why = f"the loader for {list(names)} must return a mapping with those keys, got {got}"
        beam.send(view, _Loaded(ref, names, None, why))
        return
    else:
        values = tuple(loaded[name] for name in names)
    beam.send(view, _Loaded(ref, names, values, None))


class LiveSocket:
    """A LiveView's state as its callbacks see it: assigns (with change tracking) and the
    page-level effects to send with the next update."""

    __slots__ = (
        "_events",
        "_loads",
        "_navigate",
        "_patch",
        "_redirect",
        "_streams",
        "_tasks",
        "assigns",
        "changed",
        "connected",
    )

    def __init__(self, *, connected: bool) -> None:
        #: Read it freely; change it only through :meth:`assign`.
        self.assigns: dict[str, Any] = {}
        #: Names assigned a different value since the last render.
        self.changed: set[str] = set()
        #: False during the dead render over HTTP, true in the view's process.
        self.connected = connected
        self._events: list[list[Any]] = []
        self._patch: dict[str, Any] | None = None
        self._navigate: dict[str, Any] | None = None
        self._redirect: dict[str, Any] | None = None
        self._loads: dict[beam.Ref, tuple[str, ...]] = {}
        #: The work started by start_async, by name (its result goes to handle_async).
        self._tasks: dict[beam.Ref, str] = {}
        self._streams: dict[str, Stream] = {}

    def assign(self, **values: Any) -> None:
        """Set assigns; those whose value really changed are re-rendered.

        >>> socket.assign(count=socket.assigns["count"] + 1, title="Counter")
        """
        assigns = self.assigns
        for name, value in values.items():
            if name not in assigns or not _same(assigns[name], value):
                self.changed.add(name)
            assigns[name] = value

    def assign_async(
        self, names: str | Sequence[str], loader: Callable[[], Awaitable[Any]]
    ) -> None:
        """Assign ``AsyncResult.pending()`` to *names* now, and what ``await loader()``
        returns once it does (several names: the loader returns a mapping of them). The loader
        runs in a process of its own, linked to the view; if it raises, the assigns become
        failed results and the view lives on. Only when connected: the dead render shows the
        loading state.

        >>> socket.assign_async("rooms", lambda: Chat.list_rooms(actor=user))
        """
        keys = (names,) if isinstance(names, str) else tuple(names)
        self.assign(**{name: AsyncResult.pending() for name in keys})
        if not self.connected:
            return
        ref = beam.make_ref()
        self._loads[ref] = keys
        beam.spawn_link(_load, beam.self(), ref, keys, loader)

    def start_async(self, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``await work()`` in a process of its own, linked to the view, and hand what it
        returns (or why it failed) to :meth:`LiveView.handle_async` as an :class:`AsyncResult`.
        Unlike :meth:`assign_async` nothing is assigned: the view decides, e.g. to stream the
        result. A newer ``start_async`` of the same *name* supersedes a running one (its
        result is dropped). Only when connected.

        >>> socket.assign(loading_older=True)
        >>> socket.start_async("older", lambda: Chat.page(Message, limit=50, after=cursor))
        """
        if not self.connected:
            return
        tasks = self._tasks
        for superseded in [ref for ref, running in tasks.items() if running == name]:
            del tasks[superseded]
        ref = beam.make_ref()
        tasks[ref] = name
        beam.spawn_link(_load, beam.self(), ref, (name,), work)

    def stream(
        self,
        name: str,
        items: Iterable[Any] = (),
        *,
        at: int = -1,
        reset: bool = False,
        limit: int | None = None,
        dom_id: Callable[[Any], str] | None = None,
    ) -> None:
        """Declare (or reset) the stream *name* and insert *items*: the template iterates it
        as ``(dom_id, item)`` pairs (see :mod:`web._stream`). *limit* keeps at most that
        many children in the client's DOM (negative: the last ones).

        >>> socket.stream("messages", recent, limit=-200)
        """
        stream = self._streams.get(name)
        if stream is None:
            ref = str(len(self._streams))
            stream = self._streams[name] = Stream(name, ref, dom_id or default_dom_id(name))
        stream.reset = stream.reset or reset
        for item in items:
            stream.insert(item, at=at, limit=limit)
        self.assigns[name] = stream
        self.changed.add(name)

    def stream_insert(
        self, name: str, item: Any, *, at: int = -1, limit: int | None = None
    ) -> None:
        """Insert *item* into the stream *name* (-1 appends, 0 prepends); an item already
        there (same DOM id) is updated in place.

        >>> socket.stream_insert("messages", message, limit=-200)
        """
        self._stream(name).insert(item, at=at, limit=limit)
        self.changed.add(name)

    def stream_delete(self, name: str, item: Any) -> None:
        """Remove *item* (or the DOM id given as a string) from the stream *name*.

        >>> socket.stream_delete("messages", message)
        """
        self._stream(name).delete(item)
        self.changed.add(name)

    def _stream(self, name: str) -> Stream:
        stream = self._streams.get(name)
        if stream is None:
            raise ValueError(
                f"no stream {name!r}: declare it with socket.stream({name!r}, ...) in mount"
            )
        return stream

    def _streams_sent(self) -> None:
        for stream in self._streams.values():
            stream.sent()

    def put_flash(self, kind: str, message: str) -> None:
        """Show *message* as the ``flash[kind]`` assign (``"info"``, ``"error"``...) until
        the page clears it (the client's ``lv:clear-flash`` event) or :meth:`clear_flash`.

        >>> socket.put_flash("info", "Saved")
        """
        self.assign(flash={**self.assigns.get("flash", {}), kind: message})

    def clear_flash(self, kind: str | None = None) -> None:
        """Remove the flash of *kind*, or every flash.

        >>> socket.clear_flash("info")
        """
        flash = dict(self.assigns.get("flash", {}))
        if kind is None:
            flash.clear()
        else:
            flash.pop(kind, None)
        self.assign(flash=flash)

    def push_event(self, name: str, payload: Mapping[str, Any]) -> None:
        """Send an event to the page's JS hooks (``handleEvent``) and ``phx:<name>`` listeners.

        >>> socket.push_event("highlight", {"id": 7})
        """
        self._events.append([name, dict(payload)])

    def push_patch(self, to: str, *, replace: bool = False) -> None:
        """Change the URL without leaving the view (``handle_params`` runs with the new one).

        >>> socket.push_patch("/rooms?page=2")
        """
        self._patch = {"to": to, "kind": "replace" if replace else "push"}

    def redirect(self, to: str) -> None:
        """Leave for *to* with a full page load (another site, or a plain HTTP page).

        >>> socket.redirect("/login")
        """
        self._redirect = {"to": to}

    def push_navigate(self, to: str, *, replace: bool = False) -> None:
        """Navigate to another LiveView page over the same connection.

        >>> socket.push_navigate("/rooms/7")
        """
        self._navigate = {"to": to, "kind": "replace" if replace else "push"}


def _same(old: Any, new: Any) -> bool:
    if old is new:
        return True
    try:
        return bool(old == new)
    except Exception:
        return False


class LiveView:
    """Subclass it: set ``template`` (Jinja2 source) or ``template_file`` (a path relative to
    the subclass's module), and override the callbacks you need."""

    template: ClassVar[str] = ""
    template_file: ClassVar[str | None] = None
    #: Assigns reset to these values after every render (their old values are not kept).
    temporary_assigns: ClassVar[Mapping[str, Any]] = {}
    #: The live components its template renders, by the name it calls them with:
    #: ``components = (Card,)`` makes ``{{ live_component(Card, id=...) }}`` work.
    components: ClassVar[Sequence[type[Any]]] = ()
    #: The page title (the ``<title>`` of the dead render).
    title: ClassVar[str] = ""
    _compiled: ClassVar[LiveTemplate | None] = None

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: LiveSocket
    ) -> None:
        """Set the initial assigns. Default: none."""

    async def handle_params(self, params: Mapping[str, Any], url: str, socket: LiveSocket) -> None:
        """The URL's params, after mount and after every ``push_patch``. Default: nothing."""

    async def handle_event(self, event: str, value: Any, socket: LiveSocket) -> None:
        """A ``phx-*`` event from the page. Default: log it as unexpected."""
        logger.warning("%s got an unexpected event %r", type(self).__name__, event)

    async def handle_info(self, message: Any, socket: LiveSocket) -> None:
        """A message sent to the view's process (a PubSub broadcast, a timer). Default: log."""
        logger.warning(
            "%s got an unexpected message: %s", type(self).__name__, beam.bounded_repr(message)
        )

    async def handle_async(self, name: str, result: AsyncResult, socket: LiveSocket) -> None:
        """What the work of ``socket.start_async(name, ...)`` returned (``result.ok``,
        ``result.result``) or why it failed (``result.failed``). Default: log it.

        >>> async def handle_async(self, name, result, socket):
        ...     if result.ok:
        ...         for item in result.result:
        ...             socket.stream_insert("messages", item, at=0)
        """
        logger.warning("%s got an unexpected async result %r", type(self).__name__, name)

    async def terminate(self, reason: Any, socket: LiveSocket) -> None:
        """The view is stopping. Default: nothing."""

    @classmethod
    def compiled(cls) -> LiveTemplate:
        """The view's template, compiled once per class."""
        template = cls.__dict__.get("_compiled")
        if template is None:
            source = cls.template
            environment = jinja2.Environment(autoescape=True)
            if cls.template_file is not None:
                module = sys.modules[cls.__module__]
                path = Path(module.__file__ or ".").parent / cls.template_file
                source = path.read_text()
                # {% include %} finds the other templates beside it.
                environment = jinja2.Environment(
                    autoescape=True, loader=jinja2.FileSystemLoader(path.parent)
                )
            template = LiveTemplate(source, name=cls.__qualname__, environment=environment)
            cls._compiled = template
        return template


def _component_names(view: type[LiveView]) -> dict[str, Any]:
    return {component.__name__: component for component in view.components}


@dataclass(frozen=True, slots=True)
class LiveRoute:
    """One ``endpoint.live(...)`` route: its view, its guard and its live session's name.

    >>> routes.add("/admin", Admin, session=require_admin).live_session
    'guard:require_admin#0'
    """

    path: str
    view: type[LiveView]
    guard: SessionFn | None
    live_session: str


@dataclass(frozen=True, slots=True)
class _Upgrade:
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


def guard_request(upgrade: _Upgrade | None, path: str, url: str) -> Request:
    """The :class:`Request` a route guard sees on a connected join: the WebSocket upgrade's
    headers and peer, the route's *path* and the query of the page's *url*.

    >>> guard_request(None, "/rooms", "http://x/rooms?id=7").query
    {'id': ['7']}
    """
    query = urlsplit(url).query
    headers = () if upgrade is None else upgrade.headers
    client = None if upgrade is None else upgrade.client
    return Request("GET", path, parse_qs(query), headers, b"", client, query)


def _location(response: Response) -> str | None:
    return next((value for key, value in response.headers if key.lower() == "location"), None)


def url_params(url: str) -> dict[str, Any]:
    """The query parameters of *url* (the last value wins for repeated names)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


class FormError(ValueError):
    """A form event over the limits of :func:`form_params` (the event is refused).

    >>> form_params("&".join(["x=1"] * 1001))
    Traceback (most recent call last):
    FormError: form refused: more than 1000 fields ...
    """


def form_params(
    encoded: str, *, max_fields: int = MAX_FORM_FIELDS, max_depth: int = MAX_FORM_DEPTH
) -> dict[str, Any]:
    """A URL-encoded form as nested dicts, Plug-style: ``user[name]=Jo`` -> ``{"user":
    {"name": "Jo"}}``, ``tags[]=a&tags[]=b`` -> ``{"tags": ["a", "b"]}``.

    Raises :class:`FormError` for more than *max_fields* fields or a key nested deeper than
    *max_depth* levels. Keys that clash (``a=1&a[b]=2``) keep what came first.

    >>> form_params("user%5Bname%5D=Jo&tags%5B%5D=a&tags%5B%5D=b")
    {'user': {'name': 'Jo'}, 'tags': ['a', 'b']}
    """
    try:
        pairs = parse_qsl(encoded, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:
        raise FormError(
            f"form refused: more than {max_fields} fields (split the form, or send the data "
            "another way)"
        ) from None
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key.count("[") >= max_depth:
            raise FormError(
                f"form refused: the key {key[:40]!r}... is nested deeper than {max_depth} levels"
            )
        head, _, rest = key.partition("[")
        path = [head] + [part.rstrip("]") for part in rest.split("[")] if rest else [head]
        target: Any = result
        for index, part in enumerate(path):
            if index == len(path) - 1:
                if part == "" and isinstance(target, list):
                    target.append(value)
                elif isinstance(target, dict):
                    target[part] = value
            elif isinstance(target, dict):
                default: Any = [] if path[index + 1] == "" else {}
                target = target.setdefault(part, default)
            else:
                break  # a[][b] shapes, or a key clashing with a value: keep what we have
    return result


class LiveChannel(Channel):
    """The channel behind every ``lv:<id>`` topic: runs one LiveView in its process."""

    routes: ClassVar[LiveRoutes]

    def __init__(self) -> None:
        self.view: LiveView | None = None
        self.live = LiveSocket(connected=True)
        self.template: LiveTemplate | None = None
        self.state: list[Any] = []
        self.components = ComponentTable(lambda: LiveSocket(connected=True))
        #: The session's ``live_socket_id``: ``web.disconnect`` of it closes this view.
        self.live_socket_id: str | None = None

    async def join(
        self, topic: str, params: Mapping[str, Any], socket: ChannelSocket
    ) -> ChannelReply | None:
        found = self.routes.resolve(params.get("session"), topic)
        if found is None:
            return error({"reason": "stale"})
        route, session, live_session = found
        redirect = params.get("redirect")
        if isinstance(redirect, str):  # live navigation: the same element joins another view
            target = self.routes.routes.get(urlsplit(redirect).path)
            if target is None:
                return error({"reason": "stale"})  # not a live route: the client reloads
            if target.live_session != live_session:
                # Another live session: the client loads the page in full (its guard runs).
                logger.info("live navigation from %s to %s refused", route.path, target.path)
                return error({"reason": "unauthorized"})
            route = target
        url = str(params.get("url") or redirect or "")
        if route.guard is not None:
            upgrade = socket.assigns.get(_UPGRADE_KEY)
            request = guard_request(upgrade if type(upgrade) is _Upgrade else None, route.path, url)
            guarded = await run_guard(route.guard, request)
            if isinstance(guarded, Response):
                location = _location(guarded)
                if location is None:
                    return error({"reason": "unauthorized"})  # a page load shows the answer
                return error({"redirect": {"to": location}})
            session = dict(guarded)
        query = url_params(url)
        view_class = route.view
        view = self.view = view_class()
        self.template = view_class.compiled()
        self.components.names = _component_names(view_class)
        self.live.assigns["flash"] = {}
        await view.mount(query, session, self.live)
        if (refusal := self._leaving()) is not None:  # mount sends the client elsewhere
            return refusal
        await view.handle_params(query, url, self.live)
        if (refusal := self._leaving()) is not None:
            return refusal
        live_socket_id = session.get("live_socket_id")
        if isinstance(live_socket_id, str):
            self.live_socket_id = live_socket_id
            beam.subscribe(live_socket_id)
        tree, self.state = self.template.render(self.components.scope(self.live.assigns))
        self.live._streams_sent()
        self.live.assigns.update(copy.deepcopy(dict(view_class.temporary_assigns)))
        components = self.components.take()
        if components:
            tree["c"] = components
        if "page_title" in self.live.assigns:
            tree["t"] = str(self.live.assigns["page_title"])
        self.live.changed.clear()
        reply: dict[str, Any] = {"rendered": tree, "liveview_version": LIVEVIEW_VERSION}
        return ok(reply)

    def _leaving(self) -> ChannelReply | None:
        """The join's answer when mount or handle_params redirected, else ``None``."""
        if self.live._redirect is not None:
            return error({"redirect": self.live._redirect})
        if self.live._navigate is not None:
            return error({"live_redirect": self.live._navigate})
        return None

    async def handle_in(
        self, event: str, payload: Any, socket: ChannelSocket
    ) -> ChannelReply | Stop | None:
        view = self.view
        assert view is not None
        if event == "event":
            kind = payload.get("type")
            value = payload.get("value")
            if kind == "form" and isinstance(value, str):
                try:
                    value = form_params(value)
                except FormError as exc:
                    logger.warning("%s: %s", type(view).__name__, exc)
                    return error({"reason": str(exc)})
                meta = payload.get("meta")
                if isinstance(meta, dict):
                    value.update(meta)
            name = str(payload.get("event"))
            cid = payload.get("cid")
            if isinstance(cid, int) and not isinstance(cid, bool):
                await self.components.handle_event(cid, name, value)  # unknown cid: nothing
            elif name == "lv:clear-flash":
                key = value.get("key") if isinstance(value, dict) else None
                self.live.clear_flash(key if isinstance(key, str) else None)
            else:
                await view.handle_event(name, value, self.live)
            return ok(self._update())
        if event == "live_patch":
            url = str(payload.get("url", ""))
            await view.handle_params(url_params(url), url, self.live)
            return ok(self._update())
        if event == "cids_will_destroy":
            return ok()
        if event == "cids_destroyed":
            cids = payload.get("cids", [])
            return ok({"cids": self.components.destroy(cids if isinstance(cids, list) else [])})
        return ok()  # every push is answered, or the client reloads the page after 30 s

    async def handle_info(self, message: Any, socket: ChannelSocket) -> Stop | None:
        view = self.view
        assert view is not None
        if (
            type(message) is Broadcast
            and message.topic == self.live_socket_id
            and message.event == "disconnect"
        ):
            return self._disconnect(socket)
        if type(message) is _Loaded:
            name = self.live._tasks.pop(message.ref, None)
            if name is not None:
                await view.handle_async(name, _result(message), self.live)
            else:
                self._loaded(message)
        else:
            await view.handle_info(message, self.live)
        update = self._update()
        if "diff" in update:
            socket.push("diff", update["diff"])
        for kind in ("live_patch", "live_redirect", "redirect"):
            if kind in update:
                socket.push(kind, update[kind])
        return None

    def _disconnect(self, socket: ChannelSocket) -> Stop | None:
        """``web.disconnect(live_socket_id)``: close the whole connection, as Phoenix does;
        the client reconnects (with the browser's cookies as they are now) and rejoins,
        and the route's guard decides again. Without a connection (``web.testing``): stop."""
        logger.info("LiveView of %r disconnected", self.live_socket_id)
        if socket.id is None:
            return Stop(("shutdown", "disconnected"))
        disconnect(socket.id)
        return None

    async def terminate(self, reason: Any, socket: ChannelSocket) -> None:
        if self.view is not None:
            await self.view.terminate(reason, self.live)

    def _loaded(self, message: _Loaded) -> None:
        if self.live._loads.pop(message.ref, None) is None:
            return  # superseded by newer work of the same name (assign_async, start_async)
        if message.values is None:
            self.live.assign(**dict.fromkeys(message.names, _result(message)))
        else:
            done = {
                n: AsyncResult(ok=True, result=v)
                for n, v in zip(message.names, message.values, strict=True)
            }
            self.live.assign(**done)

    def _update(self) -> dict[str, Any]:
        """The reply (or push) carrying what changed: ``{"diff": ...}`` and navigation."""
        live = self.live
        assert self.template is not None
        diff: dict[str, Any] = {}
        if live.changed:
            scope = self.components.scope(live.assigns)
            diff, self.state = self.template.diff(scope, self.state, live.changed)
            live._streams_sent()
            assert self.view is not None
            live.assigns.update(copy.deepcopy(dict(type(self.view).temporary_assigns)))
            if "page_title" in live.changed:
                diff["t"] = str(live.assigns["page_title"])
            live.changed.clear()
        components = self.components.take()
        if components:
            diff["c"] = components
        if live._events:
            diff["e"] = live._events
            live._events = []
        update: dict[str, Any] = {}
        if diff:
            update["diff"] = diff
        if live._patch is not None:
            update["live_patch"], live._patch = live._patch, None
        if live._navigate is not None:
            update["live_redirect"], live._navigate = live._navigate, None
        if live._redirect is not None:
            update["redirect"], live._redirect = live._redirect, None
        return update


class LiveSocketHandler(Socket):
    """The ``/live`` socket: a client may connect with a CSRF token issued for the CSRF cookie
    its upgrade request carries (so a token is useless in another browser); each view's
    session token, and its route's guard, are checked when it joins.

    Each connection has a unique socket id: a view closes its own connection with it when the
    user's ``live_socket_id`` is disconnected (:meth:`LiveChannel._disconnect`).
    """

    check_origin = True
    routes: ClassVar[LiveRoutes]

    async def connect(
        self, params: Mapping[str, str], connect_info: ConnectInfo
    ) -> Mapping[str, Any] | None:
        headers = tuple((k, v) for k, v in connect_info.headers if k not in _UPGRADE_ONLY)
        request = Request("GET", connect_info.path, {}, headers, b"", connect_info.peer)
        if not self.routes.csrf.verify(request, params.get("_csrf_token")):
            return None
        return {
            _UPGRADE_KEY: _Upgrade(headers, connect_info.peer),
            _CONNECTION_KEY: "live_connection:" + secrets.token_urlsafe(12),
        }

    def id(self, assigns: Mapping[str, Any]) -> str | None:
        connection = assigns.get(_CONNECTION_KEY)
        return connection if isinstance(connection, str) else None


async def dead_render(
    view_class: type[LiveView], url: str, session: Mapping[str, Any]
) -> tuple[str, str] | Response:
    """Mount and render *view_class* for plain HTTP; returns ``(inner_html, title)``, or a
    302 :class:`Response` when ``mount`` or ``handle_params`` redirected (nothing rendered,
    as Phoenix does)."""
    view = view_class()
    live = LiveSocket(connected=False)
    live.assigns["flash"] = {}
    query = url_params(url)
    await view.mount(query, session, live)
    if (moved := _moved(live)) is not None:
        return moved
    await view.handle_params(query, url, live)
    if (moved := _moved(live)) is not None:
        return moved
    components = ComponentTable(lambda: LiveSocket(connected=False), _component_names(view_class))
    tree, _ = view_class.compiled().render(components.scope(live.assigns))
    tree["c"] = components.take()
    return to_html(tree), str(live.assigns.get("page_title", view_class.title))


def _moved(live: LiveSocket) -> Response | None:
    """A 302 to where a dead render was sent (redirect, push_navigate or push_patch)."""
    for effect in (live._redirect, live._navigate, live._patch):
        if effect is not None:
            to = str(effect["to"])
            body = f"redirected to {to}\n".encode()
            return Response(302, body, (("location", to), ("content-type", "text/plain")))
    return None
