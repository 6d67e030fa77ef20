"""Rows to records: result rows become resource instances without running ``__init__``.

Every read and every write ends here: the columns of a statement's :class:`~domain.Rows`
that are attributes of the resource (and any *extra* labelled columns a read loaded:
aggregates, calculations) go straight into each instance's ``__dict__``, in one pass over
the rows, and ``__metadata__`` starts empty (keyset paging puts the record's cursor there)::

    rows = tx.execute(sa.select(Message.__table__))
    messages = from_rows(Message, rows)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ._resource import Resource

if TYPE_CHECKING:
    from ._data import Rows

__all__ = ["from_row", "from_rows"]

R = TypeVar("R", bound=Resource)


def from_rows(resource: type[R], rows: Rows, extra: Iterable[str] = ()) -> list[R]:
    """Instances of *resource*, one per row of *rows*, holding its attribute columns and the
    *extra* labelled ones: ``from_rows(Message, rows, extra=("reply_count",))``."""
    names = rows.names
    attributes = resource.__attributes__
    wanted = set(extra)
    picks = [(i, name) for i, name in enumerate(names) if name in attributes or name in wanted]
    new = resource.__new__
    out: list[R] = []
    append = out.append
    if len(picks) == len(names):
        for row in rows.rows:
            rec = new(resource)
            d = rec.__dict__
            d.update(zip(names, row, strict=True))
            d["__metadata__"] = {}
            append(rec)
        return out
    for row in rows.rows:
        rec = new(resource)
        d = rec.__dict__
        for i, name in picks:
            d[name] = row[i]
        d["__metadata__"] = {}
        append(rec)
    return out


def from_row(resource: type[R], names: tuple[str, ...], row: Any) -> R:
    """One instance of *resource* from one *row* whose columns are *names*:
    ``from_row(Message, rows.names, rows.one())``."""
    attributes = resource.__attributes__
    rec = resource.__new__(resource)
    d = rec.__dict__
    for name, value in zip(names, row, strict=True):
        if name in attributes:
            d[name] = value
    d["__metadata__"] = {}
    return rec
