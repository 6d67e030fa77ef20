"""The Domain: groups resources, owns the repo, runs actions, and exposes the code interface.

Lifecycle of a create/update/destroy (Ash's order): cast input and run the steps in declared
order (building the changeset), authorize, ``before_transaction``, then in one transaction on
a connection thread ``before_action``, the write, the policy check against the written or
original row, ``after_action``, commit; then ``after_transaction`` and last the notifications
(notifiers, then counters), only after the outermost commit.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import sqlalchemy as sa

import beam
from supervisors import ChildSpec

from ._actions import Action
from ._changeset import Changeset, build_changeset
from ._data import DataLayer, Tx
from ._data_layer import data_layer, database_url
from ._errors import Forbidden, Invalid, NotFound
from ._notifiers import Counter, Notification
from ._policy import PolicyContext, Verdict, authorize
from ._resource import NAMING_CONVENTION, Aggregate, Relationship, Resource
from ._statements import (
    bound_values,
    delete_returning,
    insert_returning,
    pk_params,
    select_where_equal,
    update_returning,
)

__all__ = ["Domain", "Interface", "Page", "ReadInterface", "define", "define_read"]

R = TypeVar("R", bound=Resource)


@dataclass
class Page(Generic[R]):
    """A keyset page: ``results``, ``after`` (cursor of the last one, for the next page) and
    ``more`` (whether another page follows)."""

    results: list[R]
    after: str | None
    more: bool


def _encode(values: Sequence[Any]) -> str:
    def enc(v: Any) -> Any:
        if isinstance(v, uuid.UUID):
            return {"u": str(v)}
        if isinstance(v, dt.datetime):
            return {"d": v.isoformat()}
        if isinstance(v, decimal.Decimal):
            return {"n": str(v)}
        return v

    raw = json.dumps([enc(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode(cursor: str) -> list[Any]:
    def dec(v: Any) -> Any:
        if isinstance(v, dict):
            if "u" in v:
                return uuid.UUID(v["u"])
            if "d" in v:
                return dt.datetime.fromisoformat(v["d"])
            if "n" in v:
                return decimal.Decimal(v["n"])
        return v

    try:
        return [dec(v) for v in json.loads(base64.urlsafe_b64decode(cursor.encode()))]
    except (ValueError, TypeError) as exc:
        raise Invalid({"after": ["is not a valid keyset cursor"]}) from exc


def _record(resource: type[R], row: Any, extra: Iterable[str] = ()) -> R:
    rec = resource.__new__(resource)
    d = rec.__dict__
    attributes = resource.__attributes__
    for name, value in zip(row._fields, row, strict=True):
        if name in attributes:
            d[name] = value
    if extra:
        mapping = row._mapping
        for name in extra:
            d[name] = mapping[name]
    d["__metadata__"] = {}
    return rec


def _pk_condition(resource: type[Resource], values: Sequence[Any]) -> Any:
    table = resource.__table__
    return sa.and_(
        *(table.c[n] == v for n, v in zip(resource.__primary_key__, values, strict=True))
    )


def _sort_clause(resource: type[Resource], keys: Sequence[str]) -> list[tuple[Any, bool]]:
    out: list[tuple[Any, bool]] = []
    for key in keys:
        desc = key.startswith("-")
        name = key.lstrip("-+")
        if name not in resource.__attributes__:
            raise Invalid({"sort": [f"{name!r} is not an attribute of {resource.__name__}"]})
        out.append((resource.__table__.c[name], desc))
    for name in resource.__primary_key__:
        col = resource.__table__.c[name]
        if all(c is not col for c, _ in out):
            out.append((col, False))
    return out


def _aggregate_column(resource: type[Resource], agg: Aggregate, read_verdicts: Any) -> Any:
    rel = resource.__relationships__[agg.relationship]
    dest = rel.target()
    dt_ = dest.__table__
    src = resource.__table__
    if rel.kind in ("has_many", "has_one"):
        assert rel.destination_attribute is not None
        cond = dt_.c[rel.destination_attribute] == src.c[resource.__primary_key__[0]]
    elif rel.kind == "belongs_to":
        assert rel.source_attribute is not None
        cond = dt_.c[dest.__primary_key__[0]] == src.c[rel.source_attribute]
    else:
        jt = rel.join_resource().__table__
        assert rel.source_attribute_on_join is not None
        dest_key = rel.destination_attribute_on_join or f"{dest.__name__.lower()}_id"
        cond = dt_.c[dest.__primary_key__[0]].in_(
            sa.select(jt.c[dest_key]).where(
                jt.c[rel.source_attribute_on_join] == src.c[resource.__primary_key__[0]]
            )
        )
    if agg.where is not None:
        cond = sa.and_(cond, agg.where())
    verdict = read_verdicts(dest)
    if verdict is False:
        cond = sa.false()
    elif verdict is not True:
        cond = sa.and_(cond, verdict)
    if agg.kind == "count":
        return sa.select(sa.func.count()).select_from(dt_).where(cond).scalar_subquery()
    if agg.kind == "exists":
        return sa.exists(sa.select(sa.literal(1)).select_from(dt_).where(cond))
    assert agg.field is not None
    column = dt_.c[agg.field]
    if agg.kind == "sum":
        return sa.select(sa.func.coalesce(sa.func.sum(column), 0)).where(cond).scalar_subquery()
    stmt = sa.select(column).where(cond)
    if agg.sort:
        for col, desc in _sort_clause(dest, [agg.sort]):
            stmt = stmt.order_by(col.desc() if desc else col.asc())
    return stmt.limit(1).scalar_subquery()


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
                can = _CanInterface(value)
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
        act = _action(resource, action, "create")
        return await cls._write(resource, act, dict(input or {}), actor, None, authorize)

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
        resource = type(record)
        act = _action(resource, action, "update")
        return await cls._write(resource, act, dict(input or {}), actor, record, authorize)

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
        resource = type(record)
        act = _action(resource, action, "destroy")
        return await cls._write(resource, act, dict(input or {}), actor, record, authorize)

    @classmethod
    async def _write(
        cls,
        resource: type[R],
        action: Action,
        input_: dict[str, Any],
        actor: Any,
        data: Resource | None,
        do_authorize: bool,
        dry_run: bool = False,
    ) -> R:
        cs, verdict = _prepare(resource, action, input_, actor, data, do_authorize)
        for hook in cs.all_hooks("before_transaction"):
            hook(cs)

        def unit(tx: Tx) -> Any:
            record = write_in_tx(tx, cs, verdict)
            if dry_run:
                raise _DryRun(record)
            return record

        try:
            record, outbox = await cls.repo().run(unit)
        except BaseException as exc:
            for hook in cs.all_hooks("after_transaction"):
                hook(cs, exc)
            raise
        for hook in cs.all_hooks("after_transaction"):
            hook(cs, record)
        await cls._dispatch(outbox)
        return record

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
        act = _action(resource, action, None)
        ctx = PolicyContext(actor, resource, act, dict(input or {}))
        verdict, _ = authorize(resource, ctx)
        if verdict is False:
            return False
        if verdict is True or act.type == "read":
            return True
        try:
            await cls._write(resource, act, dict(input or {}), actor, record, True, dry_run=True)
        except _DryRun:
            return True
        except Forbidden:
            return False
        return True  # pragma: no cover - a dry run always raises

    @classmethod
    async def _dispatch(cls, outbox: list[Notification]) -> None:
        if not outbox:
            return
        counters: dict[tuple[type[Resource], Counter], set[Any]] = {}
        for n in outbox:
            for notifier in n.resource.notifiers:
                notifier.notify(n)
            for c in n.resource.counters:
                if n.action in c.trigger_on:
                    who = n.data.__dict__.get(c.audience)
                    if who is not None:
                        counters.setdefault((n.resource, c), set()).add(who)
        for (resource, c), users in counters.items():
            await cls.broadcast_counter(resource, c, users)

    @classmethod
    async def counter_values(
        cls, resource: type[Resource], c: Counter, users: Iterable[Any]
    ) -> dict[Any, int]:
        """Recompute counter *c* for *users*: ``{user_id: count}``."""
        users = list(users)
        table = resource.__table__
        col = table.c[c.audience]
        stmt = sa.select(col, sa.func.count()).where(col.in_(users)).group_by(col)
        if c.where is not None:
            stmt = stmt.where(c.where())
        rows, _ = await cls.repo().run(lambda tx: tx.conn.execute(stmt).all(), read_only=True)
        values = dict.fromkeys(users, 0)
        values.update({row[0]: row[1] for row in rows})
        return values

    @classmethod
    async def broadcast_counter(
        cls, resource: type[Resource], c: Counter, users: Iterable[Any]
    ) -> None:
        """Recompute *c* for *users* and broadcast ``counter_updated`` to ``user:<id>``."""
        for user_id, value in (await cls.counter_values(resource, c, users)).items():
            beam.broadcast(
                f"user:{user_id}", ("counter_updated", {"counter": c.name, "value": value})
            )

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
        results, _ = await cls._read(
            resource, action, actor, filter, sort, limit, offset, None, load, arguments, authorize
        )
        return results

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
        results, more = await cls._read(
            resource,
            action,
            actor,
            filter,
            sort,
            limit,
            None,
            after or "",
            load,
            arguments,
            authorize,
        )
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
        results, _ = await cls._read(
            resource, None, actor, cond, (), 2, None, None, load, None, authorize
        )
        if not results:
            raise NotFound(what, resource=resource.__name__)
        return results[0]

    @classmethod
    async def _read(
        cls,
        resource: type[R],
        action_name: str | None,
        actor: Any,
        filter_: Any,
        sort: Sequence[str],
        limit: int | None,
        offset: int | None,
        after: str | None,
        load: Sequence[str],
        arguments: Mapping[str, Any] | None,
        do_authorize: bool,
    ) -> tuple[list[R], bool]:
        action = _action(resource, action_name, "read")
        args = dict(arguments or {})
        ctx = PolicyContext(actor, resource, action, args)
        cache: dict[type[Resource], Verdict] = {}

        def read_verdict(res: type[Resource]) -> Verdict:
            if not do_authorize:
                return True
            if res not in cache:
                rctx = PolicyContext(actor, res, _action(res, None, "read"), {})
                cache[res] = authorize(res, rctx if res is not resource else ctx)[0]
            return cache[res]

        verdict = read_verdict(resource)
        if verdict is False:
            return [], False
        table = resource.__table__
        extra: list[Any] = []
        extra_names: list[str] = []
        rel_loads: list[Relationship] = []
        list_aggs: list[Aggregate] = []
        for name in load:
            if name in resource.__aggregates__:
                agg = resource.__aggregates__[name]
                if agg.kind == "list":
                    list_aggs.append(agg)
                else:
                    extra.append(_aggregate_column(resource, agg, read_verdict).label(name))
                    extra_names.append(name)
            elif name in resource.__calculations__:
                extra.append(resource.__calculations__[name].expression().label(name))
                extra_names.append(name)
            elif name in resource.__relationships__:
                rel_loads.append(resource.__relationships__[name])
            else:
                raise Invalid(
                    {
                        "load": [
                            f"{name!r} is not a relationship, aggregate or "
                            f"calculation of {resource.__name__}"
                        ]
                    }
                )
        if isinstance(filter_, Mapping):
            for k in filter_:
                if k not in resource.__attributes__:
                    raise Invalid({"filter": [f"{k!r} is not an attribute"]})
        order = _sort_clause(resource, list(sort) or list(action.sort))
        keyset = after is not None
        params: dict[str, Any] = {}
        if (
            verdict is True
            and action.filter is None
            and not extra
            and not after
            and (filter_ is None or (isinstance(filter_, Mapping) and None not in filter_.values()))
        ):
            # The common shape (equality filters, none of them IS NULL, no policy
            # condition): a statement built once, with the values bound.
            stmt = select_where_equal(
                table,
                tuple(filter_ or ()),
                tuple((col.name, desc) for col, desc in order),
                limit is not None,
                bool(offset),
            )
            params = bound_values(filter_ or {}, None if limit is None else limit + keyset, offset)
        else:
            stmt = sa.select(table, *extra)
            if verdict is not True:
                stmt = stmt.where(verdict)
            if action.filter is not None:
                stmt = stmt.where(action.filter(ctx))
            if isinstance(filter_, Mapping):
                for k, v in filter_.items():
                    stmt = stmt.where(table.c[k] == v)
            elif filter_ is not None:
                stmt = stmt.where(filter_)
            if after:
                values = _decode(after)
                if len(values) != len(order):
                    raise Invalid({"after": ["does not match this sort"]})
                ors = []
                for i, (col, desc) in enumerate(order):
                    eqs = [order[j][0] == values[j] for j in range(i)]
                    cmp = col < values[i] if desc else col > values[i]
                    ors.append(sa.and_(*eqs, cmp))
                stmt = stmt.where(sa.or_(*ors))
            stmt = stmt.order_by(*(col.desc() if desc else col.asc() for col, desc in order))
            if limit is not None:
                stmt = stmt.limit(limit + 1 if keyset else limit)
            if offset:
                stmt = stmt.offset(offset)
        rel_plans = [(rel, rel.target(), read_verdict(rel.target())) for rel in rel_loads]

        def unit(tx: Tx) -> tuple[list[R], bool]:
            rows = tx.conn.execute(stmt, params).all()
            more = False
            if keyset and limit is not None and len(rows) > limit:
                rows, more = rows[:limit], True
            records = [_record(resource, row, extra_names) for row in rows]
            if keyset:
                for rec in records:
                    rec.__metadata__["keyset"] = _encode(
                        [rec.__dict__[col.name] for col, _ in order]
                    )
            for rel, dest, dverdict in rel_plans:
                _load_relationship(tx, resource, records, rel, dest, dverdict)
            for agg in list_aggs:
                _load_list(tx, resource, records, agg, read_verdict)
            return records, more

        (records, more), _ = await cls.repo().run(unit, read_only=True)
        return records, more

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
        act = _action(resource, action, "create")
        prepared = [_prepare(resource, act, dict(i), actor, None, authorize) for i in inputs]
        return await cls._bulk(prepared)

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
        act = _action(resource, action, "update")
        records = await cls.read(resource, actor=actor, filter=filter, authorize=authorize)
        prepared = [
            _prepare(resource, act, dict(input or {}), actor, r, authorize) for r in records
        ]
        return await cls._bulk(prepared)

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
        act = _action(resource, action, "destroy")
        records = await cls.read(resource, actor=actor, filter=filter, authorize=authorize)
        prepared = [_prepare(resource, act, {}, actor, r, authorize) for r in records]
        return await cls._bulk(prepared)

    @classmethod
    async def _bulk(cls, prepared: list[tuple[Changeset, Verdict]]) -> list[Any]:
        if not prepared:
            return []
        for cs, _ in prepared:
            for hook in cs.all_hooks("before_transaction"):
                hook(cs)
        results, outbox = await cls.repo().run(
            lambda tx: [write_in_tx(tx, cs, verdict) for cs, verdict in prepared]
        )
        for (cs, _), rec in zip(prepared, results, strict=True):
            for hook in cs.all_hooks("after_transaction"):
                hook(cs, rec)
        await cls._dispatch(outbox)
        return results

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
        act = _action(resource, action, "create")
        cs, verdict = _prepare(resource, act, dict(input or {}), actor, None, authorize)
        return write_in_tx(tx, cs, verdict)


class _DryRun(Exception):
    pass


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
            from ._resource import _snake

            rel.destination_attribute_on_join = f"{_snake(dest.__name__)}_id"


def _action(resource: type[Resource], name: str | None, type_: str | None) -> Action:
    actions = resource.__actions__
    if name is None:
        for a in actions.values():
            if a.type == type_ and a.primary:
                return a
        if type_ == "read":  # every resource can be read by the default read
            return Action("read", "read", (), (), (), True)
        raise KeyError(
            f"{resource.__name__} has no primary {type_} action; declare {type_}(...) in "
            f"{resource.__name__}.actions or name the action"
        )
    found = actions.get(name)
    if found is None or (type_ is not None and found.type != type_):
        raise KeyError(
            f"{resource.__name__} has no {type_ or ''} action {name!r}; actions are "
            f"{sorted(actions)}"
        )
    return found


def _prepare(
    resource: type[Resource],
    action: Action,
    input_: dict[str, Any],
    actor: Any,
    data: Resource | None,
    do_authorize: bool,
) -> tuple[Changeset, Verdict]:
    invalid: Invalid | None = None
    cs: Changeset | None = None
    try:
        cs = build_changeset(resource, action, input_, actor, data)
    except Invalid as exc:
        invalid = exc
    verdict: Verdict = True
    if do_authorize:
        args = cs.arguments if cs is not None else {}
        verdict, reason = authorize(resource, PolicyContext(actor, resource, action, args))
        if verdict is False:
            raise Forbidden(reason, resource=resource.__name__, action=action.name)
    if invalid is not None:
        raise invalid
    assert cs is not None
    return cs, verdict


def write_in_tx(tx: Tx, cs: Changeset, verdict: Verdict) -> Any:
    """The in-transaction half of a write: before_action, write, policy check, after_action."""
    resource, action = cs.resource, cs.action
    table = resource.__table__
    for hook in cs.all_hooks("before_action"):
        hook(tx, cs)
    cs.raise_if_invalid()
    attrs = resource.__attributes__
    values = {k: v for k, v in cs.attributes.items() if k in attrs}
    conn = tx.conn
    if action.type == "create":
        if action.upsert_identity is not None:
            ident = next(i for i in resource.identities if i.name == action.upsert_identity)
            fields = action.upsert_fields or tuple(
                f for f in (action.accept or ()) if f in values and f not in ident.fields
            )
            from sqlalchemy.dialects import postgresql, sqlite

            dialect_insert: Any = postgresql.insert if tx.dialect == "postgresql" else sqlite.insert
            ins = dialect_insert(table).values(values)
            upsert_set = {f: ins.excluded[f] for f in fields} or {
                ident.fields[0]: ins.excluded[ident.fields[0]]
            }
            stmt: Any = ins.on_conflict_do_update(
                index_elements=list(ident.fields), set_=upsert_set
            )
            row = conn.execute(stmt.returning(*table.c)).one()
        else:
            row = conn.execute(insert_returning(table), values).one()
        record = _record(resource, row)
        if verdict is not True:
            seen = conn.execute(
                sa.select(sa.literal(1)).where(_pk_condition(resource, record.pk_values()), verdict)
            ).first()
            if seen is None:
                raise Forbidden(
                    "the created record does not satisfy the policy (rolled back)",
                    resource=resource.__name__,
                    action=action.name,
                )
    else:
        assert cs.data is not None
        pk = _pk_condition(resource, cs.data.pk_values())
        if verdict is not True:
            seen = conn.execute(sa.select(sa.literal(1)).where(pk, verdict)).first()
            if seen is None:
                exists = conn.execute(sa.select(sa.literal(1)).where(pk)).first()
                if exists is None:
                    raise NotFound(
                        f"{resource.__name__} {cs.data.pk_values()}",
                        resource=resource.__name__,
                        action=action.name,
                    )
                raise Forbidden(
                    "the policy does not allow this record",
                    resource=resource.__name__,
                    action=action.name,
                )
        key = resource.__primary_key__
        params = pk_params(cs.data.pk_values())
        if action.type == "update":
            # Nothing to set still touches the row (RETURNING it, firing its triggers).
            params.update(values or {key[0]: cs.data.pk_values()[0]})
            stmt = update_returning(table, key)
        else:
            stmt = delete_returning(table, key)
        maybe = conn.execute(stmt, params).one_or_none()
        if maybe is None:
            raise NotFound(
                f"{resource.__name__} {cs.data.pk_values()}",
                resource=resource.__name__,
                action=action.name,
            )
        record = _record(resource, maybe)
    for hook in cs.all_hooks("after_action"):
        changed = hook(tx, cs, record)
        if changed is not None:
            record = changed
    tx.outbox.append(Notification(resource, action.name, cs.actor, record, cs))
    return record


def _load_relationship(
    tx: Tx,
    resource: type[Resource],
    records: list[Any],
    rel: Relationship,
    dest: type[Resource],
    verdict: Verdict,
    where: Any = None,
) -> None:
    if not records:
        return
    dt_ = dest.__table__
    pk = resource.__primary_key__[0]
    if verdict is False:
        for rec in records:
            rec.__dict__[rel.name] = None if rel.kind in ("belongs_to", "has_one") else []
        return
    if rel.kind == "belongs_to":
        assert rel.source_attribute is not None
        keys = {r.__dict__[rel.source_attribute] for r in records} - {None}
        stmt = sa.select(dt_).where(dt_.c[dest.__primary_key__[0]].in_(keys))
        if verdict is not True:
            stmt = stmt.where(verdict)
        if where is not None:
            stmt = stmt.where(where)
        found = {
            row._mapping[dest.__primary_key__[0]]: _record(dest, row)
            for row in tx.conn.execute(stmt)
        }
        for rec in records:
            rec.__dict__[rel.name] = found.get(rec.__dict__[rel.source_attribute])
        return
    ids = [r.__dict__[pk] for r in records]
    groups: dict[Any, list[Any]] = {i: [] for i in ids}
    if rel.kind in ("has_many", "has_one"):
        assert rel.destination_attribute is not None
        key_col = dt_.c[rel.destination_attribute]
        stmt = sa.select(dt_, key_col.label("__key")).where(key_col.in_(ids))
    else:
        jt = rel.join_resource().__table__
        assert rel.source_attribute_on_join is not None
        assert rel.destination_attribute_on_join is not None
        key_col = jt.c[rel.source_attribute_on_join]
        stmt = (
            sa.select(dt_, key_col.label("__key"))
            .join(jt, jt.c[rel.destination_attribute_on_join] == dt_.c[dest.__primary_key__[0]])
            .where(key_col.in_(ids))
        )
    if verdict is not True:
        stmt = stmt.where(verdict)
    if where is not None:
        stmt = stmt.where(where)
    for col, desc in _sort_clause(dest, []):
        stmt = stmt.order_by(col.desc() if desc else col.asc())
    for row in tx.conn.execute(stmt):
        groups[row._mapping["__key"]].append(_record(dest, row))
    for rec in records:
        got = groups[rec.__dict__[pk]]
        rec.__dict__[rel.name] = (got[0] if got else None) if rel.kind == "has_one" else got


def _load_list(
    tx: Tx,
    resource: type[Resource],
    records: list[Any],
    agg: Aggregate,
    read_verdict: Callable[[type[Resource]], Verdict],
) -> None:
    rel = resource.__relationships__[agg.relationship]
    dest = rel.target()
    where = agg.where() if agg.where is not None else None
    _load_relationship(tx, resource, records, rel, dest, read_verdict(dest), where)
    assert agg.field is not None
    for rec in records:
        related = rec.__dict__.pop(rel.name)
        related = related if isinstance(related, list) else [related] if related else []
        if agg.sort:
            key = agg.sort.lstrip("-")
            related.sort(key=lambda r: r.__dict__[key], reverse=agg.sort.startswith("-"))
        rec.__dict__[agg.name] = [r.__dict__[agg.field] for r in related]


# -- code interface ----------------------------------------------------------------------------


class Interface(Generic[R]):
    """A code-interface function on a domain: ``send_message = define(Message, "send")``.

    Call it as ``await Chat.send_message(*args, actor=user, **input)``; positional *args*
    fill the names given to :func:`define`. For update and destroy actions the first
    positional argument is the record. ``Chat.can_send_message(actor=..., **input)`` (and
    ``Chat.send_message.can(...)``) answers without doing it.
    """

    def __init__(self, resource: type[R], action: str, args: Sequence[str]) -> None:
        self.resource = resource
        self.action = action
        self.args = tuple(args)
        self.name = action
        self.domain: type[Domain] | None = None
        act = resource.__actions__.get(action)
        if act is None:
            raise KeyError(
                f"define({resource.__name__}, {action!r}): no such action; actions are "
                f"{sorted(resource.__actions__)}"
            )
        self.type = act.type

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.domain = owner

    def __get__(self, obj: Any, owner: type) -> Self:
        if self.domain is not owner and isinstance(owner, type) and issubclass(owner, Domain):
            self.domain = owner
        return self

    def _input(self, args: tuple[Any, ...], input_: dict[str, Any]) -> dict[str, Any]:
        if len(args) > len(self.args):
            raise TypeError(
                f"{self.name}() takes {len(self.args)} positional input(s) "
                f"{self.args}, got {len(args)}"
            )
        return {**dict(zip(self.args, args, strict=False)), **input_}

    async def __call__(
        self,
        *args: Any,
        actor: Any = None,
        authorize: bool = True,
        **input: Any,  # noqa: A002
    ) -> R:
        """Run the action; returns the created, updated or destroyed record."""
        domain = self._domain()
        if self.type in ("update", "destroy"):
            if not args:
                raise TypeError(f"{self.name}() needs the record as its first argument")
            record, rest = args[0], args[1:]
            fn = domain.update if self.type == "update" else domain.destroy
            return await fn(
                record, self.action, self._input(rest, input), actor=actor, authorize=authorize
            )
        if self.type == "read":
            results = await domain.read(
                self.resource,
                self.action,
                actor=actor,
                arguments=self._input(args, input),
                authorize=authorize,
            )
            if not results:
                raise NotFound(self.resource.__name__, resource=self.resource.__name__)
            return results[0]
        return await domain.create(
            self.resource, self.action, self._input(args, input), actor=actor, authorize=authorize
        )

    async def can(self, *args: Any, actor: Any = None, **input: Any) -> bool:  # noqa: A002
        """Whether *actor* may run this action (see :meth:`Domain.can`)."""
        domain = self._domain()
        record = None
        if self.type in ("update", "destroy") and args:
            record, args = args[0], args[1:]
        return await domain.can(
            self.resource, self.action, self._input(args, input), actor=actor, record=record
        )

    def _domain(self) -> type[Domain]:
        if self.domain is None:
            raise RuntimeError(f"{self.name} is not defined on a Domain subclass")
        return self.domain


class ReadInterface(Interface[R]):
    """A read code interface: ``list_messages = define_read(Message, "read")``; returns a list
    and takes ``filter``, ``sort``, ``limit``, ``offset``, ``load``."""

    async def __call__(  # type: ignore[override]
        self,
        *args: Any,
        actor: Any = None,
        authorize: bool = True,
        filter: Any = None,  # noqa: A002
        sort: Sequence[str] = (),
        limit: int | None = None,
        offset: int | None = None,
        load: Sequence[str] = (),
        **arguments: Any,
    ) -> list[R]:
        """Run the read; returns the records the actor may see."""
        return await self._domain().read(
            self.resource,
            self.action,
            actor=actor,
            filter=filter,
            sort=sort,
            limit=limit,
            offset=offset,
            load=load,
            arguments=self._input(args, arguments),
            authorize=authorize,
        )


class _CanInterface:
    def __init__(self, interface: Interface[Any]) -> None:
        self.interface = interface

    async def __call__(self, *args: Any, actor: Any = None, **input: Any) -> bool:  # noqa: A002
        return await self.interface.can(*args, actor=actor, **input)


def define(resource: type[R], action: str, *, args: Sequence[str] = ()) -> Interface[R]:
    """Define a code-interface function for a create, update, destroy (or one-record read)."""
    return Interface(resource, action, args)


def define_read(
    resource: type[R], action: str = "read", *, args: Sequence[str] = ()
) -> ReadInterface[R]:
    """Define a code-interface function for a read action (returns a list)."""
    return ReadInterface(resource, action, args)
