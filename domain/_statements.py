"""Statements built once per table and shape, executed with parameters.

Building a SQLAlchemy statement and computing its cache key costs more than a round trip
to a local database takes to answer, so the writes every action does (``INSERT ...
RETURNING``, ``UPDATE``/``DELETE ... WHERE pk = :pk RETURNING``) are built the first time a
table needs them and reused: each call only binds its values. The SET clause of an update
and the columns of an insert come from the keys of the parameters, as in SQLAlchemy's
``conn.execute(stmt, values)``. Reads of the most common shape (equality filters, a sort,
a limit and offset, no policy condition) are cached the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

import sqlalchemy as sa

__all__ = [
    "bound_values",
    "delete_returning",
    "insert_returning",
    "pk_params",
    "select_where_equal",
    "update_returning",
]

#: Prefix of the primary-key bind parameters. It cannot clash with a column: an attribute
#: declared as ``__name`` in a class body is renamed by Python (``_Class__name``). The
#: filter, limit and offset parameters below start with ``__`` for the same reason.
_PK = "__pk_"


@cache
def insert_returning(table: sa.Table) -> Any:
    """``INSERT INTO table ... RETURNING *``; the columns come from the parameters."""
    return sa.insert(table).returning(*table.c)


def _pk_where(table: sa.Table, pk: tuple[str, ...]) -> Any:
    return sa.and_(*(table.c[name] == sa.bindparam(f"{_PK}{i}") for i, name in enumerate(pk)))


@cache
def update_returning(table: sa.Table, pk: tuple[str, ...]) -> Any:
    """``UPDATE table SET ... WHERE pk = :__pk_0 RETURNING *`` for the primary-key columns
    named *pk* (bind them with :func:`pk_params`)."""
    return sa.update(table).where(_pk_where(table, pk)).returning(*table.c)


@cache
def delete_returning(table: sa.Table, pk: tuple[str, ...]) -> Any:
    """``DELETE FROM table WHERE pk = :__pk_0 RETURNING *`` (see :func:`update_returning`)."""
    return sa.delete(table).where(_pk_where(table, pk)).returning(*table.c)


def pk_params(values: tuple[Any, ...]) -> dict[str, Any]:
    """The bind parameters of a primary key's *values*, in the order its columns were named."""
    return {f"{_PK}{i}": v for i, v in enumerate(values)}


@lru_cache(maxsize=512)
def select_where_equal(
    table: sa.Table,
    keys: tuple[str, ...],
    order: tuple[tuple[str, bool], ...],
    limited: bool,
    offset: bool,
) -> Any:
    """``SELECT * FROM table WHERE k = :__f_k AND ... ORDER BY ... [LIMIT] [OFFSET]``, with
    *order* as ``(column, descending)`` pairs; bind it with :func:`bound_values`."""
    stmt = sa.select(table)
    for key in keys:
        stmt = stmt.where(table.c[key] == sa.bindparam(f"__f_{key}"))
    stmt = stmt.order_by(
        *(table.c[name].desc() if desc else table.c[name].asc() for name, desc in order)
    )
    if limited:
        stmt = stmt.limit(sa.bindparam("__limit", type_=sa.Integer()))
    if offset:
        stmt = stmt.offset(sa.bindparam("__offset", type_=sa.Integer()))
    return stmt


def bound_values(
    filter_: Mapping[str, Any], limit: int | None, offset: int | None
) -> dict[str, Any]:
    """The parameters of a :func:`select_where_equal` statement."""
    params = {f"__f_{key}": value for key, value in filter_.items()}
    if limit is not None:
        params["__limit"] = limit
    if offset:
        params["__offset"] = offset
    return params
