"""After the commit: notifiers, then counters (Ash's notifications, AshDispatch's counters).

A write's unit of work only *queues* notifications (``tx.outbox``); nothing is published
while the transaction could still roll back. Once the data layer has committed, the write
pipeline hands the outbox to :func:`dispatch`, in the caller's process:

1. every notifier of the written resource gets each notification (a :func:`domain.pubsub`
   notifier broadcasts it to its topic);
2. every counter whose ``trigger_on`` names the action collects the audience members of the
   written records, and is recomputed once per counter for all of them, with one grouped
   ``COUNT(*)`` in a read-only unit (:func:`counter_values`), then broadcast to each member's
   topic (:func:`broadcast_counter`)::

       await dispatch(Chat.repo(), outbox)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import beam

from ._data import DataLayer
from ._notifiers import Counter, Notification
from ._resource import Resource
from ._statements import part, part_values, shaped, template

__all__ = ["broadcast_counter", "counter_values", "dispatch"]


async def dispatch(layer: DataLayer, outbox: list[Notification]) -> None:
    """Run the notifiers of every committed notification in *outbox*, then recompute and
    broadcast each counter they trigger, once for all its audience members::

        await dispatch(Chat.repo(), outbox)
    """
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
    for (resource, c), members in counters.items():
        await broadcast_counter(layer, resource, c, members)


async def counter_values(
    layer: DataLayer, resource: type[Resource], c: Counter, members: Iterable[Any]
) -> dict[Any, int]:
    """Counter *c* of *resource* for each of *members*, in one read-only unit:
    ``await counter_values(Chat.repo(), Notice, unread, [alice.id])`` -> ``{alice.id: 3}``."""
    members = list(members)
    table = resource.__table__
    col = table.c[c.audience]
    where = None if c.where is None else part(c.where())
    dialect = layer.dialect
    params: dict[str, Any] = {"__members": members}
    if where is not None:
        params.update(part_values(where, "w"))
    key = (
        None
        if where is not None and where.key is None
        else ("counter", table, c.name, dialect, None if where is None else where.key)
    )

    def build() -> Any:
        if dialect == "postgresql":
            among = col == sa.any_(sa.bindparam("__members", type_=postgresql.ARRAY(col.type)))
        else:
            among = col.in_(sa.bindparam("__members", expanding=True))
        stmt = sa.select(col, sa.func.count()).where(among).group_by(col)
        return stmt if where is None else stmt.where(template(where, "w"))

    stmt = shaped(key, build)
    rows, _ = await layer.run(lambda tx: tx.execute(stmt, params, final=True).rows, read_only=True)
    values = dict.fromkeys(members, 0)
    values.update({row[0]: row[1] for row in rows})
    return values


async def broadcast_counter(
    layer: DataLayer, resource: type[Resource], c: Counter, members: Iterable[Any]
) -> None:
    """Recompute *c* for *members* and broadcast ``(c.event, {"counter": c.name, "value":
    n})`` to each member's ``c.topic`` (``user:<id>`` and ``counter_updated`` by default)::

        await broadcast_counter(Chat.repo(), Notice, unread, [alice.id])
    """
    for member, value in (await counter_values(layer, resource, c, members)).items():
        beam.broadcast(c.topic_for(member), (c.event, {"counter": c.name, "value": value}))
