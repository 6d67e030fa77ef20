"""The LiveView side of a connection: the ``/live`` socket, the channel that runs one view
per ``lv:<id>`` topic in its own process, and the dead render of a page over HTTP.

The client joins ``lv:<id>`` with the page's signed session token; the channel resolves the
route, runs its guard, mounts the view, and answers with the rendered tree. Every event,
patch and message then comes back as a diff of what changed.
"""

from __future__ import annotations

import inspect
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Final
from urllib.parse import urljoin, urlsplit

import beam

from ..channels import (
    Broadcast,
    Channel,
    ChannelReply,
    ChannelSocket,
    ConnectInfo,
    Socket,
    Stop,
    error,
    ok,
)
from ..http import Request, Response
from ._component import ComponentTable
from ._forms import FormError, form_params, url_params
from ._rendered import to_html
from ._routes import UPGRADE_ONLY, LiveRoutes, Upgrade, guard_request, location_of, run_guard
from ._template import LiveTemplate
from ._upload import CHUNK_TIMEOUT_MS, UploadConfig, UploadEntry, sign_entry
from ._view import (
    LIVEVIEW_VERSION,
    Effects,
    LiveSocket,
    LiveView,
    Loaded,
    Navigation,
    async_result,
    component_names,
)
from ._wire import (
    ALLOW_UPLOAD,
    CIDS,
    CIDS_DESTROYED,
    CIDS_WILL_DESTROY,
    COMPONENTS,
    DIFF,
    EVENT,
    EVENTS,
    LIVE_PATCH,
    LIVE_REDIRECT,
    PROGRESS,
    REDIRECT,
    RENDERED,
    TITLE,
    VERSION,
)

__all__ = ["LiveChannel", "LiveSocketHandler", "dead_render"]

logger = logging.getLogger("web.live")

#: The ``/live`` socket's assigns: what it kept of the upgrade request (for the route guards).
_UPGRADE_KEY: Final = "_live_upgrade"
#: How many ``push_patch`` in a row (each from the ``handle_params`` the last one ran) a
#: callback may chain before the rest are not followed.
_MAX_PATCHES: Final = 8


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
        #: Where this view's uploads are written (made at the first upload).
        self.upload_dir: str | None = None
        #: The page's URL as the view last saw it (join, ``live_patch``, ``push_patch``).
        self.url = ""

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
            request = guard_request(upgrade if type(upgrade) is Upgrade else None, route.path, url)
            guarded = await run_guard(route.guard, request)
            if isinstance(guarded, Response):
                location = location_of(guarded)
                if location is None:
                    return error({"reason": "unauthorized"})  # a page load shows the answer
                return error({"redirect": {"to": location}})
            session = dict(guarded)
        query = url_params(url)
        self.url = url
        view_class = route.view
        view = self.view = view_class()
        self.template = view_class.compiled()
        self.components.names = component_names(view_class)
        self.live.assigns["flash"] = {}
        await view.mount(query, session, self.live)
        if (refusal := _leaving(self.live.pending_effects)) is not None:  # sent elsewhere
            return refusal
        await view.handle_params(query, url, self.live)
        if (refusal := _leaving(self.live.pending_effects)) is not None:
            return refusal
        live_socket_id = session.get("live_socket_id")
        if isinstance(live_socket_id, str):
            self.live_socket_id = live_socket_id
            beam.subscribe(live_socket_id)
        tree, self.state = self.template.render(self.components.scope(self.live.assigns))
        self.live.rendered(view_class.temporary_assigns)
        components = self.components.take()
        if components:
            tree[COMPONENTS] = components
        if "page_title" in self.live.assigns:
            tree[TITLE] = str(self.live.assigns["page_title"])
        # Effects of mount and handle_params other than leaving go with the next update.
        reply: dict[str, Any] = {RENDERED: tree, VERSION: LIVEVIEW_VERSION}
        return ok(reply)

    async def handle_in(
        self, event: str, payload: Any, socket: ChannelSocket
    ) -> ChannelReply | Stop | None:
        view = self.view
        assert view is not None
        if event == EVENT:
            uploads = payload.get("uploads")
            if isinstance(uploads, dict) and uploads:
                self._listed(uploads)
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
            await self._follow_patch()
            return ok(self._update())
        if event == LIVE_PATCH:
            url = self.url = str(payload.get("url", ""))
            await view.handle_params(url_params(url), url, self.live)
            await self._follow_patch()
            return ok(self._update())
        if event == ALLOW_UPLOAD:
            return ok(self._allow_upload(payload))
        if event == PROGRESS:
            progressed = self._progress(payload)
            if progressed is not None:
                name, entry = progressed
                callback = self.live.upload(name).progress  # the upload's own, if it has one
                if callback is None:
                    await view.handle_progress(name, entry, self.live)
                elif inspect.isawaitable(answer := callback(name, entry, self.live)):
                    await answer
            await self._follow_patch()
            return ok(self._update())
        if event == CIDS_WILL_DESTROY:
            return ok()
        if event == CIDS_DESTROYED:
            cids = payload.get(CIDS, [])
            return ok({CIDS: self.components.destroy(cids if isinstance(cids, list) else [])})
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
        if type(message) is Loaded:
            name = self.live.finished(message.ref)
            if name is not None:
                await view.handle_async(name, async_result(message), self.live)
            else:
                self.live.loaded(message)
        else:
            await view.handle_info(message, self.live)
        await self._follow_patch()
        update = self._update()
        if DIFF in update:
            socket.push(DIFF, update[DIFF])
        for kind in _NAVIGATION:
            if kind in update:
                socket.push(kind, update[kind])
        return None

    async def _follow_patch(self) -> None:
        """A callback asked for ``push_patch``: run ``handle_params`` with the new URL now, as
        Phoenix does (the client only puts the URL in its address bar and sends nothing back),
        so the reply renders the patched page. ``handle_params`` may patch again: followed up
        to :data:`_MAX_PATCHES` times; the client gets the last URL."""
        followed = None
        for _ in range(_MAX_PATCHES):
            patch = self.live.pending_effects.patch
            if patch is None or patch is followed:
                return
            followed = patch
            url = self.url = urljoin(self.url, patch.to)
            assert self.view is not None
            await self.view.handle_params(url_params(url), url, self.live)
        logger.warning(
            "%s: handle_params patched the URL %d times in a row; the last is not followed",
            type(self.view).__name__,
            _MAX_PATCHES,
        )

    def _disconnect(self, socket: ChannelSocket) -> Stop | None:
        """``web.disconnect(live_socket_id)``: close the whole connection, as Phoenix does;
        the client reconnects (with the browser's cookies as they are now) and rejoins,
        and the route's guard decides again. Without a connection (``web.testing``): stop."""
        logger.info("LiveView of %r disconnected", self.live_socket_id)
        if socket.assigns.get(_UPGRADE_KEY) is None:  # no connection: web.testing's client
            return Stop(("shutdown", "disconnected"))
        socket.close_connection("disconnected")
        return None

    async def terminate(self, reason: Any, socket: ChannelSocket) -> None:
        try:
            if self.view is not None:
                await self.view.terminate(reason, self.live)
        finally:
            if self.upload_dir is not None:
                shutil.rmtree(self.upload_dir, ignore_errors=True)

    # -- uploads (web/live/_upload.py) -----------------------------------------------------------

    def _configs(self) -> dict[str, UploadConfig]:
        """The view's uploads by their ref (what the client names them by)."""
        uploads = self.live.assigns.get("uploads") or {}
        return {c.ref: c for c in uploads.values() if isinstance(c, UploadConfig)}

    def _listed(self, uploads: dict[str, Any]) -> None:
        """A form event listed the files picked in upload inputs: check them."""
        configs = self._configs()
        for ref, entries in uploads.items():
            config = configs.get(ref)
            if config is not None and isinstance(entries, list):
                for gone in {e.ref for e in config.entries} - {
                    e.get("ref") for e in entries if isinstance(e, dict)
                }:
                    config = config.without(gone)
                self.live.put_upload(config.listed(entries))

    def _allow_upload(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The preflight: the entries checked again, then a token for each (where its bytes
        go, how many may come); or, if any entry (or their number) is refused, the errors
        (an auto upload still sends the entries that passed)."""
        ref = payload.get("ref")
        config = self._configs().get(ref) if isinstance(ref, str) else None
        entries = payload.get("entries")
        if config is None or not isinstance(entries, list):
            return {"ref": ref, "error": [[None, "unknown upload"]]}
        config = config.listed(entries)
        refused = [[e.ref, e.errors[0]] for e in config.entries if e.errors]
        refused += [[e.ref, config.errors[0]] for e in config.entries if config.errors]
        # An auto upload sends the entries that passed and leaves out the refused ones (the
        # client cancels an entry without a token, and the page shows why); otherwise one
        # refused entry stops them all, as the client then cancels every entry.
        partial = config.auto_upload and not config.errors and len(refused) < len(config.entries)
        if refused and not partial:
            self.live.put_upload(config)
            return {**self._update(), "ref": ref, "error": refused}
        if self.upload_dir is None:
            self.upload_dir = tempfile.mkdtemp(prefix="live-upload-")
            # However the view ends (a crash, a kill), its linked sweeper removes the files.
            beam.spawn_link(_sweep, self.upload_dir)
        tokens = {}
        for entry in config.entries:
            if entry.preflighted or entry.errors:
                continue
            path = os.path.join(self.upload_dir, secrets.token_hex(16))
            tokens[entry.ref] = sign_entry(
                self.routes.secret_key, path, entry, config.max_file_size
            )
            config = config.with_entry(replace(entry, preflighted=True, path=path))
        self.live.put_upload(config)
        answer = {
            "ref": ref,
            "config": {
                "chunk_size": config.chunk_size,
                "chunk_timeout": CHUNK_TIMEOUT_MS,
                "max_entries": config.max_entries,
                "max_file_size": config.max_file_size,
            },
            "entries": tokens,
            "errors": {},
        }
        return {**self._update(), **answer}

    def _progress(self, payload: Mapping[str, Any]) -> tuple[str, UploadEntry] | None:
        """The client reports an entry's progress (0-100), or why it failed: the upload's
        name and the entry as it is now (``None``: no such entry)."""
        ref, entry_ref = payload.get("ref"), payload.get("entry_ref")
        config = self._configs().get(ref) if isinstance(ref, str) else None
        if config is None or not isinstance(entry_ref, str):
            return None
        entry = config.entry(entry_ref)
        if entry is None:
            return None
        progress = payload.get("progress")
        if isinstance(progress, int) and not isinstance(progress, bool):
            done = progress >= 100
            entry = replace(entry, progress=max(0, min(progress, 100)), done=done)
        elif isinstance(progress, dict):
            reason = str(progress.get("error") or "external_client_failure")[:80]
            entry = replace(entry, errors=(*entry.errors, reason))
        self.live.put_upload(config.with_entry(entry))
        return config.name, entry

    def _update(self) -> dict[str, Any]:
        """The reply (or push) carrying what changed: ``{"diff": ...}`` and navigation."""
        live = self.live
        assert self.template is not None
        diff: dict[str, Any] = {}
        if live.changed:
            scope = self.components.scope(live.assigns)
            diff, self.state = self.template.diff(scope, self.state, live.changed)
            assert self.view is not None
            changed = live.rendered(type(self.view).temporary_assigns)
            if "page_title" in changed:
                diff[TITLE] = str(live.assigns["page_title"])
        components = self.components.take()
        if components:
            diff[COMPONENTS] = components
        effects = live.take_effects()
        if effects.events:
            diff[EVENTS] = [[name, payload] for name, payload in effects.events]
        update: dict[str, Any] = {}
        if diff:
            update[DIFF] = diff
        if effects.patch is not None:
            update[LIVE_PATCH] = _navigation(effects.patch)
        if effects.navigate is not None:
            update[LIVE_REDIRECT] = _navigation(effects.navigate)
        if effects.redirect is not None:
            update[REDIRECT] = {"to": effects.redirect}
        return update


async def _sweep(directory: str) -> None:
    """Linked to a view: remove its upload directory when the view exits, whatever the
    reason (a view that crashes or is killed never runs its ``terminate``)."""
    beam.trap_exit(True)
    await beam.receive(lambda message: type(message) is beam.Exit)
    shutil.rmtree(directory, ignore_errors=True)


#: The navigation an update may carry, in the order the client is sent them.
_NAVIGATION: Final = (LIVE_PATCH, LIVE_REDIRECT, REDIRECT)


def _navigation(to: Navigation) -> dict[str, str]:
    """A ``live_patch`` or ``live_redirect`` payload."""
    return {"to": to.to, "kind": "replace" if to.replace else "push"}


def _leaving(effects: Effects) -> ChannelReply | None:
    """The join's answer when mount or handle_params redirected, else ``None``."""
    if effects.redirect is not None:
        return error({REDIRECT: {"to": effects.redirect}})
    if effects.navigate is not None:
        return error({LIVE_REDIRECT: _navigation(effects.navigate)})
    return None


class LiveSocketHandler(Socket):
    """The ``/live`` socket: a client may connect with a CSRF token issued for the CSRF cookie
    its upgrade request carries (so a token is useless in another browser); each view's
    session token, and its route's guard, are checked when it joins.

    A view closes its own connection (:meth:`~web.ChannelSocket.close_connection`) when the
    user's ``live_socket_id`` is disconnected (:meth:`LiveChannel._disconnect`).
    """

    check_origin = True
    routes: ClassVar[LiveRoutes]

    async def connect(
        self, params: Mapping[str, str], connect_info: ConnectInfo
    ) -> Mapping[str, Any] | None:
        headers = tuple((k, v) for k, v in connect_info.headers if k not in UPGRADE_ONLY)
        request = Request("GET", connect_info.path, {}, headers, b"", connect_info.peer)
        if not self.routes.csrf.verify(request, params.get("_csrf_token")):
            return None
        return {_UPGRADE_KEY: Upgrade(headers, connect_info.peer)}


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
    if (moved := _moved(live.take_effects())) is not None:
        return moved
    await view.handle_params(query, url, live)
    if (moved := _moved(live.take_effects())) is not None:
        return moved
    components = ComponentTable(lambda: LiveSocket(connected=False), component_names(view_class))
    tree, _ = view_class.compiled().render(components.scope(live.assigns))
    tree[COMPONENTS] = components.take()
    return to_html(tree), str(live.assigns.get("page_title", view_class.title))


def _moved(effects: Effects) -> Response | None:
    """A 302 to where a dead render was sent (redirect, push_navigate or push_patch)."""
    if effects.redirect is not None:
        to = effects.redirect
    elif effects.navigate is not None:
        to = effects.navigate.to
    elif effects.patch is not None:
        to = effects.patch.to
    else:
        return None
    body = f"redirected to {to}\n".encode()
    return Response(302, body, (("location", to), ("content-type", "text/plain")))
