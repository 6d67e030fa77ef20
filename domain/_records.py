"""Rows to records: a result row becomes a resource instance without running ``__init__``.

Every read and every write ends here: the row's columns that are attributes of the resource
(and any *extra* labelled columns a read loaded: aggregates, calculations) go straight into
the instance's ``__dict__``, and ``__metadata__`` starts empty (keyset paging puts the
record's cursor there)::

    row = tx.conn.execute(sa.select(Message.__table__)).first()
    message = from_row(Message, row)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from ._resource import Resource

__all__ = ["from_row"]

R = TypeVar("R", bound=Resource)


def from_row(resource: type[R], row: Any, extra: Iterable[str] = ()) -> R:
    """An instance of *resource* holding *row*'s attribute columns and the *extra* labelled
    ones: ``from_row(Message, row, extra=("reply_count",))``."""
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
