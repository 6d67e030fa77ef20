"""The write pipeline (Ash's ``lib/ash/actions/{create,update,destroy}`` and bulk actions).

One create, update or destroy goes through these steps, in Ash's order:

1. :func:`prepare`: cast the input against the action and run its validations and changes
   in declared order, building the :class:`~domain.Changeset` (no database); fold the
   policies into a verdict (``True``, ``False`` or a SQL condition). A ``False`` verdict is
   :class:`Forbidden` before anything else, even invalid input.
2. ``before_transaction`` hooks, in the caller's process.
3. One unit of work on the data layer's writer (:func:`write_in_tx`): ``before_action``
   hooks, the ``INSERT``/``UPDATE``/``DELETE ... RETURNING``, the policy condition checked
   against the written row (a create) or the original row (update, destroy; a row the actor
   may not see at all is :class:`NotFound`), ``after_action`` hooks, and the notification
   queued in ``tx.outbox``. Any error rolls the whole unit back.
4. ``after_transaction`` hooks, with the record or the error.
5. Only now, after the commit: the notifications (``domain/_dispatch.py``).

Bulk actions (:func:`run_writes` with many prepared writes) run every write in one unit:
one transaction, all or nothing, and the notifications of all of them after its commit.
:func:`can` answers whether an actor may run an action by running it to the end of step 3
and rolling it back::

    prepared = prepare(Message, find_action(Message, "send", "create"), {"content": "hi"},
                       alice, None, True)
    [message] = await run_writes(Chat.repo(), [prepared])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ._actions import Action
from ._changeset import Changeset, build_changeset
from ._data import DataLayer, Tx
from ._dispatch import dispatch
from ._errors import Forbidden, Invalid, NotFound
from ._notifiers import Notification
from ._policy import PolicyContext, Verdict, authorize
from ._records import from_row
from ._resource import Resource
from ._statements import (
    delete_returning,
    insert_returning,
    part,
    part_values,
    pk_params,
    pk_where,
    shaped,
    template,
    update_returning,
)

__all__ = ["DryRun", "Prepared", "can", "prepare", "run_writes", "write_in_tx"]

#: A write ready to run: its changeset and the policy verdict to check in the transaction.
Prepared = tuple[Changeset, Verdict]


class DryRun(Exception):
    """Raised inside a dry run's unit, after the write, to roll it back: ``exc.args[0]`` is
    the record it would have written (``except DryRun as done: done.args[0]``)."""


def prepare(
    resource: type[Resource],
    action: Action,
    input_: dict[str, Any],
    actor: Any,
    data: Resource | None,
    do_authorize: bool,
) -> Prepared:
    """Step 1: the changeset of *action* on *input_* (and the original *data* for updates
    and destroys) and the policy verdict; raises :class:`Forbidden` (first) or
    :class:`Invalid`::

        cs, verdict = prepare(Message, send, {"content": "hi"}, alice, None, True)
    """
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


async def run_writes(
    layer: DataLayer, prepared: Sequence[Prepared], *, dry_run: bool = False
) -> list[Any]:
    """Steps 2 to 5 for every prepared write, all in one transaction on *layer*: the written
    records, in order. With *dry_run* the unit raises :class:`DryRun` after the writes, so
    nothing is committed or notified::

        records = await run_writes(Chat.repo(), [prepare(...), prepare(...)])
    """
    if not prepared:
        return []
    for cs, _ in prepared:
        for hook in cs.all_hooks("before_transaction"):
            hook(cs)

    # One write and no dry run: nothing follows the write, the transaction may end with it.
    final = len(prepared) == 1 and not dry_run

    def unit(tx: Tx) -> list[Any]:
        records = [write_in_tx(tx, cs, verdict, final=final) for cs, verdict in prepared]
        if dry_run:
            raise DryRun(records[0])
        return records

    try:
        records, outbox = await layer.run(unit)
    except BaseException as exc:
        for cs, _ in prepared:
            for hook in cs.all_hooks("after_transaction"):
                hook(cs, exc)
        raise
    for (cs, _), rec in zip(prepared, records, strict=True):
        for hook in cs.all_hooks("after_transaction"):
            hook(cs, rec)
    await dispatch(layer, outbox)
    return records


async def can(
    layer: DataLayer,
    resource: type[Resource],
    action: Action,
    input_: dict[str, Any],
    actor: Any,
    record: Resource | None,
) -> bool:
    """Whether *actor* may run *action*: decided from the policies alone when they can be
    (reads: whether any row could be visible), else by a dry run on *layer* that is always
    rolled back. Invalid input still raises :class:`Invalid`::

        allowed = await can(Chat.repo(), Message, edit, {"content": "x"}, bob, message)
    """
    verdict, _ = authorize(resource, PolicyContext(actor, resource, action, input_))
    if verdict is False:
        return False
    if verdict is True or action.type == "read":
        return True
    try:
        await run_writes(
            layer, [prepare(resource, action, input_, actor, record, True)], dry_run=True
        )
    except DryRun:
        return True
    except Forbidden:
        return False
    return True  # pragma: no cover - a dry run always raises


def write_in_tx(tx: Tx, cs: Changeset, verdict: Verdict, *, final: bool = False) -> Any:
    """Step 3, inside *tx*: ``before_action``, the write, the policy check, ``after_action``,
    and the notification queued; returns the written record. *final*: the unit runs no
    statement after this write (its transaction may end with the write's statement)::

        record = write_in_tx(tx, *prepare(Notice, create, {"title": "hi"}, None, None, False))
    """
    resource, action = cs.resource, cs.action
    for hook in cs.all_hooks("before_action"):
        hook(tx, cs)
    cs.raise_if_invalid()
    attrs = resource.__attributes__
    values = {k: v for k, v in cs.attributes.items() if k in attrs}
    final = final and not cs.all_hooks("after_action")
    if action.type == "create":
        record = _insert(tx, cs, values, verdict, final and verdict is True)
    else:
        record = _update_or_delete(tx, cs, values, verdict, final)
    for hook in cs.all_hooks("after_action"):
        changed = hook(tx, cs, record)
        if changed is not None:
            record = changed
    tx.outbox.append(Notification(resource, action.name, cs.actor, record, cs))
    return record


def _visible(tx: Tx, resource: type[Resource], pk_values: Sequence[Any], verdict: Verdict) -> bool:
    """Whether the row with primary key *pk_values* exists and satisfies *verdict* (a SQL
    condition, or ``True`` for mere existence); one statement per shape."""
    table = resource.__table__
    key = resource.__primary_key__
    condition = None if verdict is True else part(verdict)
    params = pk_params(tuple(pk_values))
    if condition is not None:
        params.update(part_values(condition, "v"))
    shape = (
        None
        if condition is not None and condition.key is None
        else ("visible", table, None if condition is None else condition.key)
    )

    def build() -> Any:
        stmt: Any = sa.select(sa.literal_column("1")).select_from(table).where(pk_where(table, key))
        if condition is not None:
            stmt = stmt.where(template(condition, "v"))
        return stmt

    return tx.execute(shaped(shape, build), params).first() is not None


def _upsert(tx: Tx, cs: Changeset, values: dict[str, Any], final: bool) -> Any:
    """``INSERT ... ON CONFLICT (identity) DO UPDATE SET ...`` in *tx*'s dialect."""
    resource, action = cs.resource, cs.action
    ident = next(i for i in resource.identities if i.name == action.upsert_identity)
    fields = action.upsert_fields or tuple(
        f for f in (action.accept or ()) if f in values and f not in ident.fields
    )
    dialect = tx.dialect
    table = resource.__table__

    def build() -> Any:
        dialect_insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        ins = dialect_insert(table)
        upsert_set = {f: ins.excluded[f] for f in fields} or {
            ident.fields[0]: ins.excluded[ident.fields[0]]
        }
        stmt = ins.on_conflict_do_update(index_elements=list(ident.fields), set_=upsert_set)
        return stmt.returning(*table.c)

    stmt = shaped(("upsert", dialect, table, ident.fields, fields), build)
    return tx.execute(stmt, values, final=final)


def _insert(tx: Tx, cs: Changeset, values: dict[str, Any], verdict: Verdict, final: bool) -> Any:
    """The row of a create, checked against the policy condition after the insert."""
    resource, action = cs.resource, cs.action
    if action.upsert_identity is not None:
        rows = _upsert(tx, cs, values, final)
    else:
        rows = tx.execute(insert_returning(resource.__table__), values, final=final)
    record = from_row(resource, rows.names, rows.one())
    if verdict is not True and not _visible(tx, resource, record.pk_values(), verdict):
        raise Forbidden(
            "the created record does not satisfy the policy (rolled back)",
            resource=resource.__name__,
            action=action.name,
        )
    return record


def _update_or_delete(
    tx: Tx, cs: Changeset, values: dict[str, Any], verdict: Verdict, final: bool
) -> Any:
    """The row of an update or destroy, after checking the original against the policy."""
    resource, action = cs.resource, cs.action
    assert cs.data is not None
    pk_values = cs.data.pk_values()
    if verdict is not True and not _visible(tx, resource, pk_values, verdict):
        if not _visible(tx, resource, pk_values, True):
            raise NotFound(
                f"{resource.__name__} {pk_values}",
                resource=resource.__name__,
                action=action.name,
            )
        raise Forbidden(
            "the policy does not allow this record",
            resource=resource.__name__,
            action=action.name,
        )
    key = resource.__primary_key__
    params = pk_params(pk_values)
    if action.type == "update":
        # Nothing to set still touches the row (RETURNING it, firing its triggers).
        params.update(values or {key[0]: pk_values[0]})
        stmt = update_returning(resource.__table__, key)
    else:
        stmt = delete_returning(resource.__table__, key)
    rows = tx.execute(stmt, params, final=final)
    maybe = rows.one_or_none()
    if maybe is None:
        raise NotFound(
            f"{resource.__name__} {pk_values}", resource=resource.__name__, action=action.name
        )
    return from_row(resource, rows.names, maybe)
