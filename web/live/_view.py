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

    web.LiveRouter(endpoint).live("/counter", Counter)

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

    router = web.LiveRouter(endpoint)
    router.live("/", Chat, session=signed_in)
    router.live("/settings", Settings, session=signed_in)      # one live session with "/"
    ...
    web.disconnect(f"users_sessions:{user.id}")                 # on sign-out

The ``/live`` socket accepts a connection only with a CSRF token that matches the browser's
``_csrf`` cookie (:class:`~web.CsrfProtection`; the page sets the cookie), and a form event
has at most 1,000 fields nested at most 32 levels deep (else it is refused with an error).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import jinja2

import beam

from ._stream import Stream, default_dom_id
from ._template import LiveTemplate, live_environment
from ._upload import UploadConfig, UploadEntry

__all__ = [
    "LIVEVIEW_VERSION",
    "NO_EFFECTS",
    "AsyncResult",
    "Effects",
    "LiveSocket",
    "LiveView",
    "Loaded",
    "Navigation",
    "async_result",
    "component_names",
]

logger = logging.getLogger("web.live")

#: The phoenix_live_view client version this server speaks (reported in join replies).
LIVEVIEW_VERSION: Final = "1.2.12"


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
class Loaded:
    """Loader process -> view process: what ``assign_async`` loaded (or why it failed)."""

    ref: beam.Ref
    names: tuple[str, ...]
    values: tuple[Any, ...] | None
    failed: str | None


def async_result(message: Loaded) -> AsyncResult:
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
        beam.send(view, Loaded(ref, names, None, f"{type(exc).__name__}: {exc}"))
        return
    if len(names) == 1:
        values: tuple[Any, ...] = (loaded,)
    elif not isinstance(loaded, Mapping) or set(loaded) != set(names):
        got = sorted(loaded) if isinstance(loaded, Mapping) else type(loaded).__name__
        why = f"the loader for {list(names)} must return a mapping with those keys, got {got}"
        beam.send(view, Loaded(ref, names, None, why))
        return
    else:
        values = tuple(loaded[name] for name in names)
    beam.send(view, Loaded(ref, names, values, None))


@dataclass(frozen=True, slots=True)
class Navigation:
    """Where ``push_patch`` or ``push_navigate`` sends the client, and whether the new URL
    replaces the browser's history entry instead of pushing one.

    >>> Navigation("/rooms?page=2", replace=True)
    Navigation(to='/rooms?page=2', replace=True)
    """

    to: str
    replace: bool = False


@dataclass(frozen=True, slots=True)
class Effects:
    """What a view's callbacks asked of the page, besides assigns, since the socket's effects
    were last taken (:meth:`LiveSocket.take_effects`): events pushed to its JS hooks, in order
    (name and a copy of the payload), and where to send the client. Title and flash are assigns
    (``page_title``, ``flash``) and stream operations belong to their stream: they are rendered
    with the other assigns.

    >>> socket.push_event("highlight", {"id": 7}); socket.push_patch("/rooms?page=2")
    >>> effects = socket.take_effects()
    >>> effects.events, effects.patch
    ((('highlight', {'id': 7}),), Navigation(to='/rooms?page=2', replace=False))
    """

    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: ``push_patch``: a new URL within the view.
    patch: Navigation | None = None
    #: ``push_navigate``: another LiveView over the same connection.
    navigate: Navigation | None = None
    #: ``redirect``: the URL to load in full.
    redirect: str | None = None


#: No effects: what :meth:`LiveSocket.take_effects` returns when nothing is pending (shared).
NO_EFFECTS: Final = Effects()


class LiveSocket:
    """A LiveView's state as its callbacks see it: assigns (with change tracking) and the
    page-level effects to send with the next update. Owned by the view's process: the
    channel running the view takes the effects (:meth:`take_effects`) and marks renders
    (:meth:`rendered`) through its methods.

    >>> socket.assign(count=socket.assigns["count"] + 1)
    >>> socket.push_patch("/rooms?page=2")
    """

    __slots__ = (
        "_events",
        "_loads",
        "_navigate",
        "_patch",
        "_pending",
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
        #: Whether an effect is pending (the common event has none: take_effects is free).
        self._pending = False
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._patch: Navigation | None = None
        self._navigate: Navigation | None = None
        self._redirect: str | None = None
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

    # -- uploads (see web/live/_upload.py) ---------------------------------------------------

    def allow_upload(
        self,
        name: str,
        *,
        accept: Sequence[str] | str,
        max_entries: int = 1,
        max_file_size: int = 8_000_000,
        chunk_size: int = 64_000,
        auto_upload: bool = False,
        progress: Callable[[str, UploadEntry, LiveSocket], Any] | None = None,
    ) -> None:
        """Allow the upload *name*: files of the types in *accept* (extensions such as
        ``".png"``, MIME types such as ``"image/*"``, or ``"*"``), at most *max_entries* of
        them, each at most *max_file_size* bytes (enforced on the server as the bytes
        arrive), sent in *chunk_size* pieces, at once when picked with *auto_upload*. The
        template reads it as ``uploads.<name>``. *progress* (sync or async), if given, is
        called with ``(name, entry, socket)`` as an entry progresses, instead of the view's
        :meth:`~LiveView.handle_progress`.

        >>> socket.allow_upload("avatar", accept=(".png", ".jpg"), max_file_size=2_000_000)
        """
        uploads = dict(self.assigns.get("uploads") or {})
        uploads[name] = UploadConfig.new(
            name,
            accept=accept,
            max_entries=max_entries,
            max_file_size=max_file_size,
            chunk_size=chunk_size,
            auto_upload=auto_upload,
            progress=progress,
        )
        self.assign(uploads=uploads)

    def upload(self, name: str) -> UploadConfig:
        """The upload *name* as it is now (its entries, their progress and errors).

        >>> [entry.name for entry in socket.upload("avatar").entries]
        ['cat.png']
        """
        uploads = self.assigns.get("uploads") or {}
        if name not in uploads:
            raise ValueError(f"no upload {name!r}: allow it with socket.allow_upload({name!r})")
        config: UploadConfig = uploads[name]
        return config

    def put_upload(self, config: UploadConfig) -> None:
        """Replace the upload of *config*'s name with *config* (the view's channel does, as
        the client reports)."""
        self.assign(uploads={**(self.assigns.get("uploads") or {}), config.name: config})

    def cancel_upload(self, name: str, ref: str) -> None:
        """Drop the entry *ref* of the upload *name* (its bytes, if any, are deleted; the
        client stops sending it).

        >>> socket.cancel_upload("avatar", value["ref"])
        """
        self.put_upload(self.upload(name).without(ref))

    def consume_uploaded_entries(
        self, name: str, sink: Callable[[str, UploadEntry], Any]
    ) -> list[Any]:
        """Hand each finished file of the upload *name* to ``sink(path, entry)`` (store it
        where it belongs: the file at *path* is deleted afterwards) and forget those
        entries; returns what *sink* returned, in order. A file whose size on disk is not
        the one declared (a client that lied) is dropped.

        >>> urls = socket.consume_uploaded_entries("avatar", lambda path, e: store(path, e))
        """
        config = self.upload(name)
        results = []
        for entry in config.entries:
            if not (entry.done and entry.valid and entry.path):
                continue
            try:
                intact = os.path.getsize(entry.path) == entry.size
            except OSError:
                intact = False
            if intact:
                results.append(sink(entry.path, entry))
            config = config.without(entry.ref)
        self.put_upload(config)
        return results

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
        as ``(dom_id, item)`` pairs (see the module ``_stream.py``). *limit* keeps at most that
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

    def rendered(self, temporary_assigns: Mapping[str, Any]) -> set[str]:
        """The changed assigns were rendered (and sent): each stream forgets the operations
        sent, *temporary_assigns* are reset to (copies of) these values, and :attr:`changed`
        starts afresh. Returns the names that had changed.

        >>> changed = socket.rendered(type(view).temporary_assigns)
        """
        for stream in self._streams.values():
            stream.sent()
        if temporary_assigns:
            self.assigns.update(copy.deepcopy(dict(temporary_assigns)))
        changed, self.changed = self.changed, set()
        return changed

    @property
    def pending_effects(self) -> Effects:
        """The effects asked for since they were last taken, without taking them.

        >>> socket.pending_effects.redirect
        '/login'
        """
        if not self._pending:
            return NO_EFFECTS
        return Effects(tuple(self._events), self._patch, self._navigate, self._redirect)

    def take_effects(self) -> Effects:
        """The effects asked for since they were last taken (one immutable value), leaving
        none pending. Nothing pending: the shared :data:`NO_EFFECTS`, at no cost.

        >>> socket.push_event("highlight", {"id": 7})
        >>> socket.take_effects().events, socket.take_effects() is NO_EFFECTS
        ((('highlight', {'id': 7}),), True)
        """
        if not self._pending:
            return NO_EFFECTS
        effects = Effects(tuple(self._events), self._patch, self._navigate, self._redirect)
        self._events = []
        self._patch = self._navigate = None
        self._redirect = None
        self._pending = False
        return effects

    def finished(self, ref: beam.Ref) -> str | None:
        """The name of the :meth:`start_async` work *ref*, which just finished (its result
        goes to :meth:`LiveView.handle_async`); ``None`` if *ref* is not such work, or was
        superseded by newer work of the same name.

        >>> name = socket.finished(message.ref)
        """
        return self._tasks.pop(ref, None)

    def loaded(self, message: Loaded) -> None:
        """Assign what an :meth:`assign_async` loader sent: its values as ok results, or the
        failure to each of its names. Work the socket is not waiting for is dropped.

        >>> socket.loaded(Loaded(ref, ("rooms",), (rooms,), None))
        """
        if self._loads.pop(message.ref, None) is None:
            return
        if message.values is None:
            self.assign(**dict.fromkeys(message.names, async_result(message)))
        else:
            done = {
                n: AsyncResult(ok=True, result=v)
                for n, v in zip(message.names, message.values, strict=True)
            }
            self.assign(**done)

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
        self._events.append((name, dict(payload)))
        self._pending = True

    def push_patch(self, to: str, *, replace: bool = False) -> None:
        """Change the URL without leaving the view (``handle_params`` runs with the new one).

        >>> socket.push_patch("/rooms?page=2")
        """
        self._patch = Navigation(to, replace)
        self._pending = True

    def redirect(self, to: str) -> None:
        """Leave for *to* with a full page load (another site, or a plain HTTP page).

        >>> socket.redirect("/login")
        """
        self._redirect = to
        self._pending = True

    def push_navigate(self, to: str, *, replace: bool = False) -> None:
        """Navigate to another LiveView page over the same connection.

        >>> socket.push_navigate("/rooms/7")
        """
        self._navigate = Navigation(to, replace)
        self._pending = True


def _same(old: Any, new: Any) -> bool:
    if old is new:
        return True
    try:
        return bool(old == new)
    except Exception:
        return False


class LiveView:
    """Subclass it: set ``template`` (Jinja2 source) or ``template_file`` (a path relative to
    the subclass's module), and override the callbacks you need.

    >>> class Counter(web.LiveView):
    ...     template = '<h1>{{ count }}</h1><button phx-click="inc">+1</button>'
    ...     async def mount(self, params, session, socket):
    ...         socket.assign(count=int(params.get("start", 0)))
    """

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

    async def handle_progress(self, name: str, entry: UploadEntry, socket: LiveSocket) -> None:
        """An entry of the upload *name* progressed (``entry.progress``, ``entry.done``) or
        failed (``entry.errors``). Default: nothing. With ``auto_upload``, a view consumes an
        entry here once it is done.

        >>> async def handle_progress(self, name, entry, socket):
        ...     if entry.done:
        ...         socket.consume_uploaded_entries(name, web.store_in("media"))
        """

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
            environment = live_environment()
            if cls.template_file is not None:
                module = sys.modules[cls.__module__]
                path = Path(module.__file__ or ".").parent / cls.template_file
                source = path.read_text()
                # {% include %} finds the other templates beside it.
                environment = live_environment(jinja2.FileSystemLoader(path.parent))
            template = LiveTemplate(source, name=cls.__qualname__, environment=environment)
            cls._compiled = template
        return template


def component_names(view: type[LiveView]) -> dict[str, Any]:
    return {component.__name__: component for component in view.components}
