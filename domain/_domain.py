"""The Domain: a facade that groups resources, holds each node's data layer, and hands every
call to the module that does the work.

* the data layer (``domain/_data.py``): :meth:`Domain.start_link` builds one from a URL
  (or takes one) and keeps it per node; :meth:`Domain.repo` finds it;
* reads (``domain/_query.py``, ``_read.py``, ``_load.py``): :meth:`Domain.read`,
  :meth:`Domain.page` and :meth:`Domain.get` build a frozen ``Query`` and run it;
* writes (``domain/_write.py``, ``_dispatch.py``): :meth:`Domain.create`, ``update``,
  ``destroy``, the bulk actions and :meth:`Domain.can` prepare changesets and run them
  through the write pipeline (Ash's lifecycle, notifications after the commit);
* the code interface (``domain/_interface.py``): ``define``/``define_read`` attributes of a
  subclass become callable functions, each with a ``can_<name>`` companion::

    class Chat(Domain):
        resources = (User, Message)
        send_message = define(Message, "send")

    await Chat.start_link("sqlite:///data/chat.db")
    await Chat.send_message(content="hi", room_id=room.id, actor=alice)
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa

import beam
from supervisors import ChildSpec

from ._actions import find_action
from ._attributes import snake_case
from ._data import DataLayer, Tx
from ._data_layer import data_layer, database_url
from ._dispatch import broadcast_counter, counter_values, dispatch
from ._errors import NotFound
from ._interface import CanInterface, Interface
from ._load import run_read
from ._notifiers import Counter
from ._query import Page, Query
from ._resource import NAMING_CONVENTION, Relationship, Resource
from ._write import can, prepare, run_writes, write_in_tx

__all__ = ["Domain"]

R = TypeVar("R", bound=Resource)


class Domain:
    """Groups resources, starts their repo and runs their actions. Subclass it::

        class Chat(Domain):
            resources = (User, Room, Message)
            send_message = define(Message, "send")
            list_messages = define_read(Message, "read")

        async def main():
            await Chat.start_link()          # DATABASE_URL, else SQLite under data/
            await Chat.create_tables()
            msg = await Chat.send_message(content="hi", room_id=room.id, actor=user)

    Every call takes ``actor=``; ``authorize=False`` skips policies (for trusted code).
    """

    resources: ClassVar[Sequence[type[Resource]]] = ()
    _repos: ClassVar[weakref.WeakKeyDictionary[Any, DataLayer]]
    _interfaces: ClassVar[dict[str, Interface[Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._repos = weakref.WeakKeyDictionary()
        cls._interfaces = {}
        for resource in cls.resources:
            for rel in resource.__relationships__.values():
                _finish_relationship(resource, rel)
        for name, value in list(vars(cls).items()):
            if isinstance(value, Interface):
                value.name = name
                cls._interfaces[name] = value
                can = CanInterface(value)
                setattr(cls, f"can_{name}", can)

    # -- the repo ------------------------------------------------------------------------------

    @classmethod
    def metadata(cls) -> sa.MetaData:
        """A MetaData holding exactly this domain's tables (for Alembic)."""
        md = sa.MetaData(naming_convention=NAMING_CONVENTION)
        for resource in cls.resources:
            resource.__table__.to_metadata(md)
        return md

    @classmethod
    def tables(cls) -> list[sa.Table]:
        """This domain's tables, in the global resource MetaData."""
        return [r.__table__ for r in cls.resources]

    @classmethod
    def repo_for(
        cls, url: str | None = None, *, pool_size: int | None = None, schema: str | None = None
    ) -> DataLayer:
        """The data layer this domain would start for *url* (``database_url()`` when None):
        ``Chat.repo_for("sqlite://").dialect == "sqlite"``."""
        return data_layer(
            url or database_url(), pool_size=pool_size, schema=schema, name=f"{cls.__name__}.repo"
        )

    @classmethod
    async def start_link(
        cls,
        url: str | DataLayer | None = None,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
    ) -> beam.Pid:
        """Start the data layer (linked to the caller) for this node: the one for *url*
        (see :meth:`repo_for`), or *url* itself when it is a :class:`DataLayer` you built::

            await Chat.start_link("sqlite:///data/chat.db")
        """
        repo = (
            cls.repo_for(url, pool_size=pool_size, schema=schema)
            if (url is None or isinstance(url, str))
            else url
        )
        pid = await repo.start_link()
        cls._repos[beam.current_node()] = repo
        return pid

    @classmethod
    def child_spec(
        cls,
        url: str | DataLayer | None = None,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
    ) -> ChildSpec:
        """The data layer as a child of your supervision tree (see :meth:`start_link`):
        ``Supervisor.start_link([Chat.child_spec(), ...])``."""

        async def start() -> beam.Pid:
            return await cls.start_link(url, pool_size=pool_size, schema=schema)

        return ChildSpec(
            id=f"{cls.__name__}.repo", start=start, type="supervisor", shutdown="infinity"
        )

    @classmethod
    def repo(cls) -> DataLayer:
        """The running data layer of this node's domain: ``await Chat.repo().run(unit)``."""
        repo = cls._repos.get(beam.current_node())
        if repo is None:
            raise RuntimeError(
                f"{cls.__name__} is not started on this node; call await "
                f"{cls.__name__}.start_link() first (or add {cls.__name__}.child_spec() to a tree)"
            )
        return repo

    @classmethod
    async def create_tables(cls) -> None:
        """Create the domain's tables (tests and prototypes; use migrations in production)."""
        tables = cls.tables()
        await cls.repo().run(lambda tx: tables[0].metadata.create_all(tx.conn, tables=tables))

    @classmethod
    async def drop_tables(cls) -> None:
        """Drop the domain's tables."""
        tables = cls.tables()
        await cls.repo().run(lambda tx: tables[0].metadata.drop_all(tx.conn, tables=tables))

    @classmethod
    @asynccontextmanager
    async def transaction(cls) -> AsyncIterator[None]:
        """Run every call of the calling process inside the block in one transaction, on one
        connection: it commits when the block ends and rolls back if the block raises; the
        notifications of its actions go out after the commit. Each action inside runs in a
        savepoint of its own (one that fails is rolled back alone; catch its error and the
        block goes on); a nested block is a savepoint too::

            async with Chat.transaction():
                room = await Chat.open_room(name="ops", actor=alice)
                await Chat.send_message(content="hello", room_id=room.id, actor=alice)
        """
        repo = cls.repo()
        async with repo.transaction() as outbox:
            yield
        if outbox:
            await dispatch(repo, outbox)

    # -- actions -------------------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        resource: type[R],
        action: str | None = None,
        input: Mapping[str, Any] | None = None,  # noqa: A002
        *,
        actor: Any = None,
        authorize: bool = True,
    ) -> R:
        """Run a create action; returns the record. Raises Invalid or Forbidden."""
        return await cls._write(resource, action, "create", input, actor, None, authorize)

    @classmethod
    async def update(
        cls,
        record: R,
        action: str | None = None,
        input: Mapping[str, Any] | None = None,  # noqa: A002
        *,
        actor: Any = None,
        authorize: bool = True,
    ) -> R:
        """Run an update action on *record*; returns the updated record."""
        return await cls._write(type(record), action, "update", input, actor, record, authorize)

    @classmethod
    async def destroy(
        cls,
        record: R,
        action: str | None = None,
        input: Mapping[str, Any] | None = None,  # noqa: A002
        *,
        actor: Any = None,
        authorize: bool = True,
    ) -> R:
        """Run a destroy action on *record*; returns the destroyed record."""
        return await cls._write(type(record), action, "destroy", input, actor, record, authorize)

    @classmethod
    async def _write(
        cls,
        resource: type[R],
        action: str | None,
        type_: str,
        input_: Mapping[str, Any] | None,
        actor: Any,
        record: Resource | None,
        authorize: bool,
    ) -> R:
        act = find_action(resource, action, type_)
        prepared = prepare(resource, act, dict(input_ or {}), actor, record, authorize)
        return (await run_writes(cls.repo(), [prepared]))[0]

    @classmethod
    async def can(
        cls,
        resource: type[Resource],
        action: str | None = None,
        input: Mapping[str, Any] | None = None,  # noqa: A002
        *,
        actor: Any = None,
        record: Resource | None = None,
    ) -> bool:
        """Whether *actor* may run the action, without doing it. Row-dependent policies are
        checked in a transaction that is always rolled back; reads answer whether any row
        could be visible. Invalid input still raises :class:`Invalid`."""
        act = find_action(resource, action, None)
        return await can(cls.repo(), resource, act, dict(input or {}), actor, record)

    @classmethod
    async def counter_values(
        cls, resource: type[Resource], c: Counter, users: Iterable[Any]
    ) -> dict[Any, int]:
        """Recompute counter *c* for *users*: ``{user_id: count}``::

        await Chat.counter_values(Notice, unread, [alice.id])   # {alice.id: 3}
        """
        return await counter_values(cls.repo(), resource, c, users)

    @classmethod
    async def broadcast_counter(
        cls, resource: type[Resource], c: Counter, users: Iterable[Any]
    ) -> None:
        """Recompute *c* for *users* and broadcast it to each one's topic (``c.topic``,
        ``user:<id>`` by default) as ``c.event`` (``counter_updated``)::

            await Chat.broadcast_counter(Notice, unread, [alice.id])
        """
        await broadcast_counter(cls.repo(), resource, c, users)

    # -- reads ---------------------------------------------------------------------------------

    @classmethod
    async def read(
        cls,
        resource: type[R],
        action: str | None = None,
        *,
        actor: Any = None,
        filter: Any = None,  # noqa: A002 - Ash's option name
        sort: Sequence[str] = (),
        limit: int | None = None,
        offset: int | None = None,
        load: Sequence[str] = (),
        arguments: Mapping[str, Any] | None = None,
        authorize: bool = True,
    ) -> list[R]:
        """Run a read action. *filter* is a SQL condition (``Message.room_id == rid``) or a
        mapping of attribute to value; the read policy is added as a WHERE (forbidden rows
        are simply absent). *load* names relationships, aggregates and calculations."""
        query = Query(
            resource, action, actor=actor, filter=filter, sort=tuple(sort), limit=limit,
            offset=offset, load=tuple(load), arguments=arguments or {}, authorize=authorize,
        )  # fmt: skip
        return (await run_read(cls.repo(), query))[0]

    @classmethod
    async def page(
        cls,
        resource: type[R],
        action: str | None = None,
        *,
        limit: int,
        after: str | None = None,
        actor: Any = None,
        filter: Any = None,  # noqa: A002
        sort: Sequence[str] = (),
        load: Sequence[str] = (),
        arguments: Mapping[str, Any] | None = None,
        authorize: bool = True,
    ) -> Page[R]:
        """Keyset pagination: the first *limit* records after the cursor *after*."""
        query = Query(
            resource, action, actor=actor, filter=filter, sort=tuple(sort), limit=limit,
            after=after or "", load=tuple(load), arguments=arguments or {}, authorize=authorize,
        )  # fmt: skip
        results, more = await run_read(cls.repo(), query)
        last = results[-1].__metadata__["keyset"] if results else None
        return Page(results, last, more)

    @classmethod
    async def get(
        cls,
        resource: type[R],
        key: Any = None,
        *,
        actor: Any = None,
        load: Sequence[str] = (),
        authorize: bool = True,
        **identity: Any,
    ) -> R:
        """One record by primary key (or by identity fields as keywords); :class:`NotFound`
        when missing or not visible to *actor*."""
        if key is not None:
            values = key if isinstance(key, tuple) else (key,)
            if len(values) != len(resource.__primary_key__):
                raise TypeError(
                    f"{resource.__name__}'s primary key is {resource.__primary_key__}; "
                    f"get() got {key!r}"
                )
            cond: dict[str, Any] = dict(zip(resource.__primary_key__, values, strict=True))
            what = f"{resource.__name__} {key}"
        elif identity:
            cond = identity
            what = f"{resource.__name__} with {identity}"
        else:
            raise TypeError("get() needs a primary key or identity keywords")
        query = Query(
            resource, actor=actor, filter=cond, limit=2, load=tuple(load), authorize=authorize
        )
        results, _ = await run_read(cls.repo(), query)
        if not results:
            raise NotFound(what, resource=resource.__name__)
        return results[0]

    # -- bulk ----------------------------------------------------------------------------------

    @classmethod
    async def bulk_create(
        cls,
        resource: type[R],
        action: str | None,
        inputs: Iterable[Mapping[str, Any]],
        *,
        actor: Any = None,
        authorize: bool = True,
    ) -> list[R]:
        """Create many records in one transaction through the same pipeline as one create;
        any error rolls back all of them. Notifications go out after the commit."""
        act = find_action(resource, action, "create")
        prepared = [prepare(resource, act, dict(i), actor, None, authorize) for i in inputs]
        return await run_writes(cls.repo(), prepared)

    @classmethod
    async def bulk_update(
        cls,
        resource: type[R],
        action: str | None,
        input: Mapping[str, Any] | None = None,  # noqa: A002
        *,
        filter: Any = None,  # noqa: A002
        actor: Any = None,
        authorize: bool = True,
    ) -> list[R]:
        """Update every record *filter* selects (as *actor* may read them) in one transaction."""
        act = find_action(resource, action, "update")
        records = await cls.read(resource, actor=actor, filter=filter, authorize=authorize)
        prepared = [prepare(resource, act, dict(input or {}), actor, r, authorize) for r in records]
        return await run_writes(cls.repo(), prepared)

    @classmethod
    async def bulk_destroy(
        cls,
        resource: type[R],
        action: str | None = None,
        *,
        filter: Any = None,  # noqa: A002
        actor: Any = None,
        authorize: bool = True,
    ) -> list[R]:
        """Destroy every record *filter* selects (as *actor* may read them) in one transaction."""
        act = find_action(resource, action, "destroy")
        records = await cls.read(resource, actor=actor, filter=filter, authorize=authorize)
        prepared = [prepare(resource, act, {}, actor, r, authorize) for r in records]
        return await run_writes(cls.repo(), prepared)

    # -- nested actions inside a transaction (for hooks) ---------------------------------------

    @staticmethod
    def create_in(
        tx: Tx,
        resource: type[R],
        action: str | None = None,
        input: Mapping[str, Any] | None = None,  # noqa: A002
        *,
        actor: Any = None,
        authorize: bool = True,
    ) -> R:
        """Run a create inside *tx* (from a hook): joins the transaction and its outbox."""
        act = find_action(resource, action, "create")
        cs, verdict = prepare(resource, act, dict(input or {}), actor, None, authorize)
        return write_in_tx(tx, cs, verdict)


def _finish_relationship(resource: type[Resource], rel: Relationship) -> None:
    dest = rel.target()
    if rel.kind == "belongs_to":
        assert rel.source_attribute is not None
        table = resource.__table__
        col = table.c[rel.source_attribute]
        if not col.foreign_keys:
            dest_pk = dest.__table__.c[dest.__primary_key__[0]]
            table.append_constraint(
                sa.ForeignKeyConstraint([col.name], [dest_pk], ondelete="CASCADE")
            )
    elif rel.kind == "many_to_many":
        rel.join_resource()
        if rel.destination_attribute_on_join is None:
            rel.destination_attribute_on_join = f"{snake_case(dest.__name__)}_id"
