"""The read query as a value (Ash's ``Ash.Query``): what to read, for whom, and how.

A :class:`Query` says everything a read needs and does nothing: the resource, the read
action (its primary one when ``None``), the ``actor`` and whether to ``authorize`` as them,
a ``filter`` (a SQL condition on the resource's columns, or a mapping of attribute to
value), a ``sort`` (attribute names, ``"-name"`` descending), ``limit`` and ``offset``, the
keyset cursor ``after`` (``""`` asks for the first keyset page, ``None`` for no keyset
paging), what to ``load`` (relationships, aggregates, calculations) and the action's
``arguments``. It is frozen, so a query can be kept, shared between processes and refined
with :func:`dataclasses.replace`::

    recent = Query(Message, actor=alice, filter={"room_id": room.id}, sort=("-inserted_at",))
    first = dataclasses.replace(recent, limit=50, after="")

``domain/_read.py`` compiles a query (with the actor's policy verdicts) into a statement and
a load plan; ``domain/_load.py`` runs that plan in one read-only unit of work. A
:class:`Page` is what a keyset read returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._resource import Resource

__all__ = ["Page", "Query"]

R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class Query(Generic[R]):
    """A read of *resource* (see the module docstring for each field)::

    Query(Message, "in_room", actor=alice, arguments={"room_id": rid}, limit=20, after="")
    """

    resource: type[R]
    action: str | None = None
    actor: Any = None
    filter: Any = None
    sort: tuple[str, ...] = ()
    limit: int | None = None
    offset: int | None = None
    after: str | None = None
    load: tuple[str, ...] = ()
    arguments: Mapping[str, Any] = field(default_factory=dict)
    authorize: bool = True

    @property
    def keyset(self) -> bool:
        """Whether this is a keyset read (``after`` is a cursor, ``""`` for the first page)."""
        return self.after is not None


@dataclass
class Page(Generic[R]):
    """A keyset page: ``results``, ``after`` (cursor of the last one, for the next page) and
    ``more`` (whether another page follows)::

        page = await Chat.page(Message, limit=50)
        older = await Chat.page(Message, limit=50, after=page.after) if page.more else None
    """

    results: list[R]
    after: str | None
    more: bool
