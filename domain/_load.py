"""Running a read: a compiled :class:`~domain._read.ReadPlan` in one read-only unit of work.

:func:`run_read` is the whole read of a :class:`~domain._query.Query`: find the action, fold
the read policies, compile (``domain/_read.py``), then hand one unit to the data layer, so
the main rows and everything loaded with them come from one transaction, one snapshot.
Inside the unit (:func:`run_plan`) the main statement runs first; then each relationship is
loaded with one more statement for all the records at once (``WHERE key IN (...)``, on
PostgreSQL ``key = ANY(...)``, under the destination's read verdict), and list aggregates
are loaded the same way and reduced to one field::

    records, more = await run_read(Chat.repo(), Query(Message, actor=alice, load=("author",)))
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ._actions import find_action
from ._data import DataLayer, Tx
from ._query import Query
from ._read import (
    ListLoad,
    ReadPlan,
    RelationshipLoad,
    compile_read,
    encode_cursor,
    order_by,
    read_verdicts,
    sort_clause,
)
from ._records import from_rows
from ._resource import Resource
from ._statements import part, part_values, shaped, template

__all__ = ["load_list", "load_relationship", "run_plan", "run_read"]


async def run_read(layer: DataLayer, query: Query[Any]) -> tuple[list[Any], bool]:
    """The records *query* reads on *layer*, and whether a keyset read has more after them::

    records, more = await run_read(Chat.repo(), Query(Message, limit=20, after=""))
    """
    action = find_action(query.resource, query.action, "read")
    plan = compile_read(query, action, read_verdicts(query, action))
    if plan.empty:
        return [], False
    (records, more), _ = await layer.run(partial(run_plan, plan), read_only=True)
    return records, more


def run_plan(plan: ReadPlan, tx: Tx) -> tuple[list[Any], bool]:
    """Run *plan* inside *tx* (on the data layer's connection): ``(records, more)``::

    records, more = run_plan(compile_read(query, action, verdicts), tx)
    """
    final = not (plan.relationships or plan.lists)  # nothing else to load: end with it
    rows = tx.execute(plan.statement, plan.params, final=final)
    more = False
    limit = plan.limit
    if plan.keyset and limit is not None and len(rows.rows) > limit:
        rows.rows, more = rows.rows[:limit], True
    resource = plan.resource
    records = from_rows(resource, rows, plan.extra)
    if plan.keyset:
        names = [col.name for col, _ in plan.order]
        for rec in records:
            rec.__metadata__["keyset"] = encode_cursor([rec.__dict__[n] for n in names])
    for load in plan.relationships:
        load_relationship(tx, resource, records, load)
    for lst in plan.lists:
        load_list(tx, resource, records, lst)
    return records, more


def _keys_in(column: Any, dialect: str) -> Any:
    """``column IN (:__keys...)`` (a list bound as one parameter); on PostgreSQL
    ``column = ANY(:__keys)``, one statement text whatever the number of keys."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam("__keys", type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam("__keys", expanding=True))


def _relationship_statement(
    resource: type[Resource], load: RelationshipLoad, dialect: str
) -> tuple[Any, dict[str, Any]]:
    """The statement loading *load* for records of *resource* (keys bound as ``__keys``),
    built once per shape, and its parameters but the keys."""
    rel, dest, verdict, where = load.relationship, load.destination, load.verdict, load.where
    conditions = [part(c) for c in (verdict, where) if c is not None and c is not True]
    params: dict[str, Any] = {}
    for slot, p in enumerate(conditions):
        params.update(part_values(p, f"r{slot}"))
    key = (
        None
        if any(p.key is None for p in conditions)
        else ("load", resource, rel.name, dialect, tuple(p.key for p in conditions))
    )

    def build() -> Any:
        dt_ = dest.__table__
        if rel.kind == "belongs_to":
            stmt = sa.select(dt_).where(_keys_in(dt_.c[dest.__primary_key__[0]], dialect))
        elif rel.kind in ("has_many", "has_one"):
            assert rel.destination_attribute is not None
            key_col = dt_.c[rel.destination_attribute]
            stmt = sa.select(dt_, key_col.label("__key")).where(_keys_in(key_col, dialect))
        else:
            jt = rel.join_resource().__table__
            assert rel.source_attribute_on_join is not None
            assert rel.destination_attribute_on_join is not None
            key_col = jt.c[rel.source_attribute_on_join]
            stmt = (
                sa.select(dt_, key_col.label("__key"))
                .join(jt, jt.c[rel.destination_attribute_on_join] == dt_.c[dest.__primary_key__[0]])
                .where(_keys_in(key_col, dialect))
            )
        for slot, p in enumerate(conditions):
            stmt = stmt.where(template(p, f"r{slot}"))
        if rel.kind != "belongs_to":
            stmt = stmt.order_by(*order_by(sort_clause(dest, [])))
        return stmt

    return shaped(key, build), params


def load_relationship(
    tx: Tx, resource: type[Resource], records: list[Any], load: RelationshipLoad
) -> None:
    """Set ``load.relationship`` on each of *records* (of *resource*): the related record or
    ``None`` for belongs_to and has_one, a list for has_many and many_to_many; one
    statement for all of them::

        load_relationship(tx, Message, messages, RelationshipLoad(rel, User, True))
    """
    if not records:
        return
    rel, dest, verdict = load.relationship, load.destination, load.verdict
    pk = resource.__primary_key__[0]
    if verdict is False:
        for rec in records:
            rec.__dict__[rel.name] = None if rel.kind in ("belongs_to", "has_one") else []
        return
    stmt, params = _relationship_statement(resource, load, tx.dialect)
    if rel.kind == "belongs_to":
        assert rel.source_attribute is not None
        source = rel.source_attribute
        params["__keys"] = list({r.__dict__[source] for r in records} - {None})
        dest_pk = dest.__primary_key__[0]
        found = {rec.__dict__[dest_pk]: rec for rec in from_rows(dest, tx.execute(stmt, params))}
        for rec in records:
            rec.__dict__[rel.name] = found.get(rec.__dict__[source])
        return
    ids = [r.__dict__[pk] for r in records]
    params["__keys"] = ids
    groups: dict[Any, list[Any]] = {i: [] for i in ids}
    rows = tx.execute(stmt, params)
    at = rows.names.index("__key")
    for row, related in zip(rows.rows, from_rows(dest, rows), strict=True):
        groups[row[at]].append(related)
    for rec in records:
        got = groups[rec.__dict__[pk]]
        rec.__dict__[rel.name] = (got[0] if got else None) if rel.kind == "has_one" else got


def load_list(tx: Tx, resource: type[Resource], records: list[Any], load: ListLoad) -> None:
    """Set the list aggregate ``load.aggregate`` on each of *records*: its field of every
    related row the actor may read, in the aggregate's sort::

        load_list(tx, Room, rooms, plan.lists[0])
    """
    agg, rel = load.aggregate, load.rows.relationship
    load_relationship(tx, resource, records, load.rows)
    assert agg.field is not None
    for rec in records:
        related = rec.__dict__.pop(rel.name)
        related = related if isinstance(related, list) else [related] if related else []
        if agg.sort:
            key = agg.sort.lstrip("-")
            related.sort(key=lambda r: r.__dict__[key], reverse=agg.sort.startswith("-"))
        rec.__dict__[agg.name] = [r.__dict__[agg.field] for r in related]
