"""Live components: stateful parts of a LiveView page, with their own events.

A component is rendered from a view's template with ``{{ live_component(Card, id="c1",
title=t) }}``. Each ``(class, id)`` pair is one instance, kept across renders: ``mount`` runs
once, ``update(assigns)`` whenever the parent passes new assigns, and events sent with
``phx-target="{{ myself }}"`` reach its ``handle_event``. On the wire a component is a number
(its *cid*) in the parent's tree and its own tree under ``"c"``; only what changed in it
travels. Its template must have a single root element (the client marks that root)::

    class Card(web.LiveComponent):
        template = '<div id="card-{{ id }}"><b>{{ title }}</b> {{ likes }}'
                   '<button phx-click="like" phx-target="{{ myself }}">+1</button></div>'

        def mount(self, socket):
            socket.assign(likes=0)

        async def handle_event(self, event, value, socket):
            socket.assign(likes=socket.assigns["likes"] + 1)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ._template import COMPONENTS, LiveTemplate, TemplateError
from ._wire import ROOT

if TYPE_CHECKING:
    from ._view import LiveSocket

__all__ = ["ComponentTable", "LiveComponent"]

logger = logging.getLogger("web.live")


class LiveComponent:
    """Subclass it: set ``template`` and override the callbacks you need. ``mount`` and
    ``update`` run while the parent renders, so they are plain (not async) methods.

    >>> class Card(web.LiveComponent):       # {{ live_component(Card, id="c1", title=t) }}
    ...     template = '<div id="card-{{ id }}"><b>{{ title }}</b> {{ likes }}</div>'
    ...     def mount(self, socket):
    ...         socket.assign(likes=0)
    """

    template: ClassVar[str] = ""
    _compiled: ClassVar[LiveTemplate | None] = None

    def mount(self, socket: LiveSocket) -> None:
        """Once, before the first ``update``. Default: nothing."""

    def update(self, assigns: dict[str, Any], socket: LiveSocket) -> None:
        """New assigns from the parent's template. Default: assign them all."""
        socket.assign(**assigns)

    async def handle_event(self, event: str, value: Any, socket: LiveSocket) -> None:
        """An event sent with ``phx-target="{{ myself }}"``. Default: log it as unexpected."""
        logger.warning("%s got an unexpected event %r", type(self).__name__, event)

    @classmethod
    def compiled(cls) -> LiveTemplate:
        """The component's template, compiled once per class."""
        template = cls.__dict__.get("_compiled")
        if template is None:
            template = LiveTemplate(cls.template, name=cls.__qualname__)
            cls._compiled = template
        return template


@dataclass
class _Instance:
    cid: int
    component: LiveComponent
    socket: LiveSocket
    state: list[Any]


class ComponentTable:
    """The live components of one view: renders them for its templates and keeps them until
    the client says they are gone (``cids_destroyed``)."""

    def __init__(self, socket_factory: Any, names: Mapping[str, Any] | None = None) -> None:
        self._new_socket = socket_factory
        #: Component classes by the name templates call them with.
        self.names = dict(names or {})
        self._by_key: dict[tuple[type[LiveComponent], Any], _Instance] = {}
        self._by_cid: dict[int, _Instance] = {}
        self._next = 1
        self._out: dict[str, Any] = {}

    def render(self, component: Any, assigns: dict[str, Any]) -> int:
        """Render or update the instance ``(component, assigns["id"])``; return its cid."""
        if not (isinstance(component, type) and issubclass(component, LiveComponent)):
            raise TemplateError(
                f"live_component expects a LiveComponent class, got {component!r:.80}"
            )
        key = (component, assigns["id"])
        instance = self._by_key.get(key)
        if instance is None:
            cid, self._next = self._next, self._next + 1
            socket = self._new_socket()
            socket.assigns["myself"] = cid
            created = component()
            created.mount(socket)
            created.update(assigns, socket)
            tree, state = component.compiled().render(self.scope(socket.assigns))
            socket.changed.clear()
            tree[ROOT] = 1
            instance = _Instance(cid, created, socket, state)
            self._by_key[key] = self._by_cid[cid] = instance
            self._out[str(cid)] = tree
            return cid
        instance.component.update(assigns, instance.socket)
        self._rerender(instance)
        return instance.cid

    def scope(self, assigns: dict[str, Any]) -> dict[str, Any]:
        """*assigns* plus this table (and the component classes by name), as a template's
        scope."""
        return {**self.names, **assigns, COMPONENTS: self}

    async def handle_event(self, cid: int, event: str, value: Any) -> bool:
        """Run the event on component *cid*; ``False`` if there is no such component."""
        instance = self._by_cid.get(cid)
        if instance is None:
            return False
        await instance.component.handle_event(event, value, instance.socket)
        self._rerender(instance)
        return True

    def _rerender(self, instance: _Instance) -> None:
        socket = instance.socket
        if not socket.changed:
            return
        template = type(instance.component).compiled()
        diff, instance.state = template.diff(
            self.scope(socket.assigns), instance.state, socket.changed
        )
        socket.changed.clear()
        if diff:
            self._out[str(instance.cid)] = diff

    def take(self) -> dict[str, Any]:
        """The component trees and diffs rendered since the last call (the ``"c"`` entry)."""
        out, self._out = self._out, {}
        return out

    def destroy(self, cids: list[Any]) -> list[int]:
        """Forget the components *cids*; returns the ones that existed."""
        gone = []
        for cid in cids:
            instance = self._by_cid.pop(cid, None) if isinstance(cid, int) else None
            if instance is not None:
                del self._by_key[(type(instance.component), instance.socket.assigns.get("id"))]
                gone.append(cid)
        return gone
