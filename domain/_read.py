"""Compiling a read (Ash's ``lib/ash/actions/read``): a query and the policy verdicts become
a SQL statement and a load plan, with no database and no I/O.

Reading is two steps. First :func:`compile_read` turns a :class:`~domain._query.Query` into a
:class:`ReadPlan`: the main ``SELECT`` (the action's filter, the caller's filter, the read
policy as a WHERE, the sort with the primary key as a tie-breaker, the keyset condition,
limit and offset, aggregates and calculations as labelled columns), and what to load after
it (relationships and list aggregates, each with its destination's read verdict). Then
``domain/_load.py`` runs the plan in one read-only transaction. Compiling is a pure function
of the query and of *verdicts*, the function that says, for each resource the read touches,
what the actor may see (``True``, ``False`` or a SQL condition; :func:`read_verdicts`
builds it from the resources' policies)::

    plan = compile_read(query, action, read_verdicts(query, action))
    print(plan.statement)      # SELECT ... FROM messages WHERE ... ORDER BY ...

Keyset paging lives here too: a page's cursor is the sort key of its last record, encoded by
:func:`encode_cursor` (JSON, then URL-safe base64); the next page's condition compares the
sort columns with it lexicographically (``(a, b) > (x, y)`` spelled as ``a > x OR (a = x AND
b > y)``, each column in its own direction).

A statement is built once per *shape* (``domain/_statements.py``): the policy's condition,
the action's filter, a filter expression and loaded columns are parts whose literals become
parameters, so the next read of the same shape, as any actor, only binds its values:
building a statement costs more than a local round trip.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ._actions import Action, find_action
from ._errors import Invalid
from ._policy import PolicyContext, Verdict, authorize
from ._query import Query
from ._resource import Aggregate, Relationship, Resource
from ._statements import Part, part, part_values, shaped, template

__all__ = [
    "ListLoad",
    "ReadPlan",
    "RelationshipLoad",
    "Verdicts",
    "compile_read",
    "decode_cursor",
    "encode_cursor",
    "order_by",
    "read_verdicts",
    "sort_clause",
]

#: For each resource a read touches: what the actor may see of it.
Verdicts = Callable[[type[Resource]], Verdict]

#: ``(column, descending)`` pairs.
Order = tuple[tuple[Any, bool], ...]


@dataclass(frozen=True)
class RelationshipLoad:
    """Load ``relationship`` (to ``destination``, read under ``verdict``) into each record;
    ``where`` narrows the related rows further (a list aggregate's condition)."""

    relationship: Relationship
    destination: type[Resource]
    verdict: Verdict
    where: Any = None


@dataclass(frozen=True)
class ListLoad:
    """A list aggregate: its related rows loaded by ``rows``, then kept as a list of one field."""

    aggregate: Aggregate
    rows: RelationshipLoad


@dataclass(frozen=True)
class ReadPlan:
    """A compiled read: run ``statement`` with ``params``; each row is a record of
    ``resource`` plus the ``extra`` labelled columns; with ``keyset``, one row beyond
    ``limit`` was asked for (it says whether more follow) and each record gets its cursor
    from the ``order`` columns; then the ``relationships`` and ``lists`` are loaded.
    ``empty`` plans (the actor may see nothing) run no statement."""

    resource: type[Resource]
    statement: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    order: Order = ()
    limit: int | None = None
    keyset: bool = False
    relationships: tuple[RelationshipLoad, ...] = ()
    lists: tuple[ListLoad, ...] = ()
    empty: bool = False


def read_verdicts(query: Query[Any], action: Action) -> Verdicts:
    """What ``query.actor`` may see of each resource, folded from its policies once per
    resource (the queried one through *action*, others through their primary read); all
    ``True`` when ``query.authorize`` is false::

        verdicts = read_verdicts(query, action)
        verdicts(Message)        # True, False, or a SQL condition
    """
    if not query.authorize:
        return lambda _resource: True
    resource, actor = query.resource, query.actor
    cache: dict[type[Resource], Verdict] = {}

    def verdict(res: type[Resource]) -> Verdict:
        if res not in cache:
            if res is resource:
                ctx = PolicyContext(actor, res, action, dict(query.arguments))
            else:
                ctx = PolicyContext(actor, res, find_action(res, None, "read"), {})
            cache[res] = authorize(res, ctx)[0]
        return cache[res]

    return verdict


def compile_read(query: Query[Any], action: Action, verdicts: Verdicts) -> ReadPlan:
    """The :class:`ReadPlan` of *query* run through *action*, as *verdicts* allow; raises
    :class:`Invalid` for an unknown sort, filter or load name, or a cursor that does not
    fit::

        plan = compile_read(Query(Message, filter={"room_id": rid}), action, verdicts)
    """
    resource = query.resource
    verdict = verdicts(resource)
    if verdict is False:
        return ReadPlan(resource, empty=True)
    filter_ = query.filter
    simple = (
        verdict is True
        and action.filter is None
        and not query.load
        and (filter_ is None or type(filter_) is dict)
    )
    if simple:
        # Nothing of the actor, the action or the caller's SQL in it: the shape is a few
        # names, and the statement and its order are kept by them.
        equal = tuple((k, v is None) for k, v in filter_.items()) if filter_ else ()
        simple_key = (
            resource,
            query.sort or action.sort,
            equal,
            bool(query.after),
            query.limit is not None,
            bool(query.offset),
        )
        hit = _simple.get(simple_key)
        if hit is not None:
            return _simple_plan(query, hit[0], hit[1])
    table = resource.__table__
    columns, extra, relationships, lists = _loads(resource, query.load, verdicts)
    if isinstance(filter_, Mapping):
        for k in filter_:
            if k not in resource.__attributes__:
                raise Invalid({"filter": [f"{k!r} is not an attribute"]})
    order = tuple(sort_clause(resource, query.sort or action.sort))
    keyset, limit, offset = query.keyset, query.limit, query.offset
    # Every part that changes from call to call is a Part: the statement is built once per
    # shape (domain/_statements.py) and each call binds its values.
    conditions: list[Part] = []
    if verdict is not True:
        conditions.append(part(verdict))
    if action.filter is not None:
        ctx = PolicyContext(query.actor, resource, action, dict(query.arguments))
        conditions.append(part(action.filter(ctx)))
    equal = ()
    params: dict[str, Any] = {}
    if isinstance(filter_, Mapping):
        equal = tuple((k, v is None) for k, v in filter_.items())
        params.update((f"__f_{k}", v) for k, v in filter_.items() if v is not None)
    elif filter_ is not None:
        conditions.append(part(filter_))
    labelled = [part(column) for column in columns]
    after = decode_cursor(query.after) if query.after else None
    if after is not None:
        if len(after) != len(order):
            raise Invalid({"after": ["does not match this sort"]})
        params.update((f"__a_{i}", value) for i, value in enumerate(after))
    for slot, p in enumerate(conditions):
        params.update(part_values(p, f"w{slot}"))
    for slot, p in enumerate(labelled):
        params.update(part_values(p, f"c{slot}"))
    if limit is not None:
        params["__limit"] = limit + keyset
    if offset:
        params["__offset"] = offset
    parts = (*conditions, *labelled)
    key = (
        None
        if any(p.key is None for p in parts)
        else (
            table,
            tuple(p.key for p in conditions),
            tuple(p.key for p in labelled),
            equal,
            tuple((col.name, desc) for col, desc in order),
            after is not None,
            limit is not None,
            bool(offset),
        )
    )

    def build() -> Any:
        stmt = sa.select(table, *(template(p, f"c{slot}") for slot, p in enumerate(labelled)))
        for slot, p in enumerate(conditions):
            stmt = stmt.where(template(p, f"w{slot}"))
        for k, is_none in equal:
            column = table.c[k]
            stmt = stmt.where(column.is_(None) if is_none else column == sa.bindparam(f"__f_{k}"))
        if after is not None:
            values = [sa.bindparam(f"__a_{i}", type_=col.type) for i, (col, _) in enumerate(order)]
            stmt = stmt.where(_after(order, values))
        stmt = stmt.order_by(*order_by(order))
        if limit is not None:
            stmt = stmt.limit(sa.bindparam("__limit", type_=sa.Integer()))
        if offset:
            stmt = stmt.offset(sa.bindparam("__offset", type_=sa.Integer()))
        return stmt

    stmt = shaped(key, build)
    if simple:
        if len(_simple) >= _MAX_SIMPLE:
            _simple.clear()
        _simple[simple_key] = (stmt, order)
    return ReadPlan(
        resource, stmt, params, extra, order, limit, keyset, tuple(relationships), tuple(lists)
    )


#: Statements and orders of the simplest reads, by (resource, sort, filter names, cursor,
#: limit, offset): see compile_read.
_simple: dict[Any, tuple[Any, Order]] = {}
_MAX_SIMPLE = 1024


def _simple_plan(query: Query[Any], stmt: Any, order: Order) -> ReadPlan:
    """The plan of a read of the simplest shape, from its kept statement."""
    filter_ = query.filter
    params = {f"__f_{k}": v for k, v in filter_.items() if v is not None} if filter_ else {}
    limit, keyset = query.limit, query.keyset
    if query.after:
        after = decode_cursor(query.after)
        if len(after) != len(order):
            raise Invalid({"after": ["does not match this sort"]})
        params.update((f"__a_{i}", value) for i, value in enumerate(after))
    if limit is not None:
        params["__limit"] = limit + keyset
    if query.offset:
        params["__offset"] = query.offset
    return ReadPlan(query.resource, stmt, params, (), order, limit, keyset)


def _loads(
    resource: type[Resource], load: Sequence[str], verdicts: Verdicts
) -> tuple[list[Any], tuple[str, ...], list[RelationshipLoad], list[ListLoad]]:
    """What *load* names: (labelled columns, their names, relationships, list aggregates)."""
    columns: list[Any] = []
    names: list[str] = []
    relationships: list[RelationshipLoad] = []
    lists: list[ListLoad] = []
    for name in load:
        if name in resource.__aggregates__:
            agg = resource.__aggregates__[name]
            if agg.kind == "list":
                rel = resource.__relationships__[agg.relationship]
                where = agg.where() if agg.where is not None else None
                dest = rel.target()
                lists.append(ListLoad(agg, RelationshipLoad(rel, dest, verdicts(dest), where)))
                continue
            columns.append(_aggregate_column(resource, agg, verdicts).label(name))
        elif name in resource.__calculations__:
            columns.append(resource.__calculations__[name].expression().label(name))
        elif name in resource.__relationships__:
            rel = resource.__relationships__[name]
            relationships.append(RelationshipLoad(rel, rel.target(), verdicts(rel.target())))
            continue
        else:
            raise Invalid(
                {
                    "load": [
                        f"{name!r} is not a relationship, aggregate or "
                        f"calculation of {resource.__name__}"
                    ]
                }
            )
        names.append(name)
    return columns, tuple(names), relationships, lists


def sort_clause(resource: type[Resource], keys: Sequence[str]) -> list[tuple[Any, bool]]:
    """``(column, descending)`` pairs for the sort *keys* (``"-inserted_at"``), ending with
    the primary key columns (ascending) so that the order is total::

        sort_clause(Message, ["-inserted_at"])   # [(inserted_at, True), (id, False)]
    """
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


def order_by(order: Sequence[tuple[Any, bool]]) -> list[Any]:
    """The ORDER BY terms of ``(column, descending)`` pairs:
    ``stmt.order_by(*order_by(sort_clause(Message, ["-inserted_at"])))``."""
    return [col.desc() if desc else col.asc() for col, desc in order]


def _aggregate_column(resource: type[Resource], agg: Aggregate, verdicts: Verdicts) -> Any:
    """A scalar subquery computing *agg* per row, over the related rows the actor may read."""
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
    verdict = verdicts(dest)
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
        stmt = stmt.order_by(*order_by(sort_clause(dest, [agg.sort])))
    return stmt.limit(1).scalar_subquery()


# -- keyset paging ------------------------------------------------------------------------------


def _after(order: Order, values: list[Any]) -> Any:
    """Rows strictly after *values* in *order*: ``a > x OR (a = x AND b > y) OR ...``."""
    if len(values) != len(order):
        raise Invalid({"after": ["does not match this sort"]})
    ors = []
    for i, (col, desc) in enumerate(order):
        eqs = [order[j][0] == values[j] for j in range(i)]
        cmp = col < values[i] if desc else col > values[i]
        ors.append(sa.and_(*eqs, cmp))
    return sa.or_(*ors)


def encode_cursor(values: Sequence[Any]) -> str:
    """A keyset cursor for a record whose sort key is *values* (UUIDs, datetimes and decimals
    kept as such): ``encode_cursor([msg.inserted_at, msg.id])``."""
    # Every record of a keyset page gets one: the usual key types are written by hand
    # (json.dumps, a new encoder per call, cost 3x as much), the same text as json.dumps.
    if len(values) == 1 and type(values[0]) is uuid.UUID:  # the primary key alone
        raw = f'[{{"u":"{values[0]}"}}]'
        return binascii.b2a_base64(raw.encode(), newline=False).translate(_URLSAFE).decode()
    parts = []
    for v in values:
        kind = type(v)
        if kind is uuid.UUID:
            parts.append(f'{{"u":"{v}"}}')
        elif kind is dt.datetime:
            parts.append(f'{{"d":"{v.isoformat()}"}}')
        elif kind is int:
            parts.append(int.__repr__(v))
        elif kind is str:
            parts.append(_json_string(v))
        else:
            parts.append(_CURSOR_JSON.encode(_cursor_value(v)))
    raw = "[" + ",".join(parts) + "]"
    return binascii.b2a_base64(raw.encode(), newline=False).translate(_URLSAFE).decode()


def _cursor_value(v: Any) -> Any:
    if isinstance(v, uuid.UUID):
        return {"u": str(v)}
    if isinstance(v, dt.datetime):
        return {"d": v.isoformat()}
    if isinstance(v, decimal.Decimal):
        return {"n": str(v)}
    return v


_CURSOR_JSON = json.JSONEncoder(separators=(",", ":"))
#: base64 to its URL-safe alphabet (what base64.urlsafe_b64encode does, without two calls).
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_json_string = json.encoder.encode_basestring_ascii


def decode_cursor(cursor: str) -> list[Any]:
    """The sort key a cursor holds; :class:`Invalid` (on ``after``) for anything that is not
    one: ``decode_cursor(page.after)``."""

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
