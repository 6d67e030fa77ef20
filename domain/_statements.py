"""Statements built once per table and shape, executed with parameters.

Building a SQLAlchemy statement and computing its cache key costs more than a round trip
to a local database takes to answer, so the writes every action does (``INSERT ...
RETURNING``, ``UPDATE``/``DELETE ... WHERE pk = :pk RETURNING``) are built the first time a
table needs them and reused: each call only binds its values. The SET clause of an update
and the columns of an insert come from the keys of the parameters, as in SQLAlchemy's
``conn.execute(stmt, values)``.

Statements with parts that change from call to call (a policy's condition holds the
actor's id, a filter holds the caller's values) are cached by *shape* in the same way. A
:class:`Part` is such an expression seen by its structure: :func:`part` takes its
SQLAlchemy cache key (the structure, without the literal values) and its literals. The
statement is built once per shape, by :func:`shaped`, from each part's *template* (the
expression with every literal replaced by a named parameter, ``__<slot>_<n>``), and each
call binds the literals of its own parts (:func:`part_values`)::

    verdict = part(Message.author_id == alice.id)          # key: "author_id = <uuid>"
    stmt = shaped(("mine", Message, verdict.key),
                  lambda: sa.select(Message.__table__).where(template(verdict, "v")))
    rows = tx.execute(stmt, part_values(verdict, "v"))      # {"__v_0": alice.id}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

__all__ = [
    "Part",
    "delete_returning",
    "insert_returning",
    "part",
    "part_values",
    "pk_params",
    "pk_where",
    "shaped",
    "template",
    "update_returning",
]

#: Statements kept by :func:`shaped`; past this many the cache starts afresh.
_MAX_SHAPES = 2048

#: Prefix of the primary-key bind parameters. It cannot clash with a column: an attribute
#: declared as ``__name`` in a class body is renamed by Python (``_Class__name``). The
#: filter, limit and offset parameters below start with ``__`` for the same reason.
_PK = "__pk_"


@cache
def insert_returning(table: sa.Table) -> Any:
    """``INSERT INTO table ... RETURNING *``; the columns come from the parameters."""
    return sa.insert(table).returning(*table.c)


def pk_where(table: sa.Table, pk: tuple[str, ...]) -> Any:
    """``pk_0 = :__pk_0 AND ...`` for the primary-key columns named *pk*."""
    return sa.and_(*(table.c[name] == sa.bindparam(f"{_PK}{i}") for i, name in enumerate(pk)))


@cache
def update_returning(table: sa.Table, pk: tuple[str, ...]) -> Any:
    """``UPDATE table SET ... WHERE pk = :__pk_0 RETURNING *`` for the primary-key columns
    named *pk* (bind them with :func:`pk_params`)."""
    return sa.update(table).where(pk_where(table, pk)).returning(*table.c)


@cache
def delete_returning(table: sa.Table, pk: tuple[str, ...]) -> Any:
    """``DELETE FROM table WHERE pk = :__pk_0 RETURNING *`` (see :func:`update_returning`)."""
    return sa.delete(table).where(pk_where(table, pk)).returning(*table.c)


def pk_params(values: tuple[Any, ...]) -> dict[str, Any]:
    """The bind parameters of a primary key's *values*, in the order its columns were named."""
    return {f"{_PK}{i}": v for i, v in enumerate(values)}


@dataclass(frozen=True, eq=False)
class Part:
    """A SQL expression by its shape: ``key`` is its structure without literal values (or
    ``None`` when SQLAlchemy cannot cache it), ``binds`` its literals in a fixed order."""

    key: Any
    expr: Any
    binds: tuple[BindParameter[Any], ...]


def part(expr: Any) -> Part:
    """*expr* (a SQLAlchemy expression) as a :class:`Part`: ``part(Note.owner_id == uid)``."""
    cache_key = expr._generate_cache_key()
    if cache_key is None:
        return Part(None, expr, ())
    return Part(cache_key.key, expr, tuple(cache_key.bindparams))


def template(p: Part, slot: str) -> Any:
    """*p*'s expression with its literals replaced by parameters ``__<slot>_<n>`` (bind them
    with :func:`part_values`); an uncacheable part is its own template."""
    if p.key is None or not p.binds:
        return p.expr
    names = {id(bind): f"__{slot}_{n}" for n, bind in enumerate(p.binds)}

    def replace(element: Any) -> Any:
        if isinstance(element, BindParameter) and id(element) in names:
            return sa.bindparam(names[id(element)], type_=element.type, expanding=element.expanding)
        return None

    traverse: Any = visitors.replacement_traverse
    return traverse(p.expr, {}, replace)


def part_values(p: Part, slot: str) -> dict[str, Any]:
    """The parameters of *p*'s template at *slot*: ``{"__<slot>_0": value, ...}``."""
    if p.key is None:
        return {}
    return {f"__{slot}_{n}": bind.effective_value for n, bind in enumerate(p.binds)}


_shapes: dict[Any, Any] = {}


def shaped(key: Any, build: Callable[[], Any]) -> Any:
    """The statement of shape *key*, built by ``build()`` the first time (every time when
    *key* is ``None``: a part SQLAlchemy cannot cache)::

        stmt = shaped((table, keys), lambda: sa.select(table).where(...))
    """
    if key is None:
        return build()
    stmt = _shapes.get(key)
    if stmt is None:
        if len(_shapes) >= _MAX_SHAPES:
            _shapes.clear()
        stmt = _shapes[key] = build()
    return stmt
