"""SQLAlchemy Core statements compiled once for psycopg: SQL text, parameter order, processors.

SQLAlchemy's own execution path costs more per statement than a local round trip (execution
context, result metadata, row objects). The PostgreSQL data layer keeps only what SQLAlchemy
is good at, building and compiling statements, and executes the compiled SQL itself. A
:class:`Compiled` holds, for one statement shape and one set of parameter names:

* ``sql``: the statement as PostgreSQL expects it (``$1``, ``$2`` placeholders, each with the
  cast SQLAlchemy's psycopg dialect renders, so the server never has to guess a type);
* ``binds``: for each placeholder, the parameter's name and its type's bind processor (the
  few types that need one: UTC datetimes, enums, JSON);
* ``names`` and ``loaders``: the result columns and their result processors.

:func:`compiled_for` finds (or makes) the one for a statement and returns it with the values
of the literals the statement carries. The cache is keyed by SQLAlchemy's cache key, which
describes a statement's structure without its literal values, so a statement rebuilt with
other values (another actor's id in a policy filter) reuses the compiled form; a statement
object used again (``domain/_statements.py`` builds each shape once) costs a dictionary hit::

    compiled, literals = compiled_for(insert_returning(table), ("id", "title"))
    compiled.sql   # b'INSERT INTO notes (id, title) VALUES ($1::UUID, $2::VARCHAR) RETURNING ...'

Statements with an expanding ``IN`` (a Python list bound to ``col.in_(...)``) compile to one
SQL text per list length; they are marked ``expanding`` and rendered per call. The domain's
own statements bind lists with ``= ANY($1)`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import psycopg as _psycopg_dialect

from ._attributes import UTCDateTime

__all__ = ["DIALECT", "Compiled", "compiled_for", "expand"]

#: The dialect statements are compiled with: SQLAlchemy's psycopg dialect (its casts, its
#: type processors), with numbered ``$n`` placeholders.
DIALECT = _psycopg_dialect.dialect(paramstyle="numeric_dollar")

Processor = Callable[[Any], Any]

#: Compiled forms kept (per statement structure and parameter names).
_MAX_CACHED = 4096


@dataclass(frozen=True, eq=False)
class Compiled:
    """One statement compiled for PostgreSQL (see the module docstring)."""

    sql: bytes
    binds: tuple[tuple[str, Processor | None], ...]
    names: tuple[str, ...]
    loaders: tuple[tuple[int, Processor], ...]
    #: The loaders a session whose ``TimeZone`` is UTC needs: psycopg gives its datetimes
    #: in UTC already, so the domain's UTC datetime type has nothing to do.
    utc_loaders: tuple[tuple[int, Processor], ...]
    returns_rows: bool
    #: For each literal the statement carries (SQLAlchemy's cache-key order), the
    #: parameters it feeds (an insert's or update's values are copied into new ones).
    literal_names: tuple[tuple[str, ...], ...]
    #: Every parameter's value as compiled: what one that nothing else sets takes.
    defaults: Mapping[str, Any]
    #: An expanding IN: the SQL depends on list lengths (see :func:`expand`).
    expanding: Any = None

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        """The values of the placeholders, in order, each through its bind processor."""
        out = []
        for name, process in self.binds:
            value = values[name]
            out.append(value if process is None or value is None else process(value))
        return out


_cache: dict[tuple[Any, tuple[str, ...]], Compiled] = {}
#: The same, per statement object: (the statement, its compiled form, its literals' values).
#: Keyed by ``id()`` and checked by identity, so a dead statement's id reused is a miss.
_by_object: dict[tuple[int, tuple[str, ...]], tuple[Any, Compiled, dict[str, Any]]] = {}


def compiled_for(statement: Any, keys: tuple[str, ...]) -> tuple[Compiled, dict[str, Any]]:
    """The compiled form of *statement* executed with parameters named *keys* (an insert's or
    an update's columns come from them), and the values of the literals it carries::

        compiled, values = compiled_for(stmt, tuple(params))
        values.update(params)
        sql, args = compiled.sql, compiled.parameters(values)
    """
    hit = _by_object.get((id(statement), keys))
    if hit is not None and hit[0] is statement:
        return hit[1], dict(hit[2])
    # SQLAlchemy memoizes a statement's cache key on the statement object.
    cache_key = statement._generate_cache_key()
    if cache_key is None:  # a construct SQLAlchemy cannot cache: compile every time
        compiled = _compile(statement, keys, None)
        return compiled, dict(compiled.defaults)
    shape = (cache_key.key, keys)
    found = _cache.get(shape)
    if found is None:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        found = _cache[shape] = _compile(statement, keys, cache_key)
    values = dict(found.defaults)
    for names, bind in zip(found.literal_names, cache_key.bindparams, strict=True):
        if names:
            value = bind.effective_value
            for name in names:
                values[name] = value
    if len(_by_object) >= _MAX_CACHED:
        _by_object.clear()
    if not any(bind.callable for bind in cache_key.bindparams):  # else: values of the call
        _by_object[(id(statement), keys)] = (statement, found, values)
        return found, dict(values)
    return found, values


def _processor(type_: Any, kind: str) -> Processor | None:
    impl = type_.dialect_impl(DIALECT)
    if kind == "bind":
        return impl.bind_processor(DIALECT)
    return impl.result_processor(DIALECT, None)


def _compile(statement: Any, keys: tuple[str, ...], cache_key: Any) -> Compiled:
    compiled: Any = statement.compile(dialect=DIALECT, column_keys=list(keys), cache_key=cache_key)
    binds = compiled.binds
    names_of = compiled.bind_names
    literal_names: tuple[tuple[str, ...], ...] = ()
    if cache_key is not None:
        # As SQLAlchemy's construct_params does: each literal of the cache key, and the
        # parameters compiled from it (clones of it, in DML).
        fed_by, _ = compiled._cache_key_bind_match
        literal_names = tuple(
            tuple(names_of[b] for b in fed_by[bind] if b in names_of)
            for bind in cache_key.bindparams
        )
    order = compiled.positiontup or ()
    columns = list(compiled._result_columns)
    loaders = tuple(
        (i, process)
        for i, column in enumerate(columns)
        if (process := _processor(column.type, "result")) is not None
    )
    utc_loaders = tuple(
        (i, process) for i, process in loaders if not isinstance(columns[i].type, UTCDateTime)
    )
    expanding = bool(compiled.post_compile_params or compiled.literal_execute_params)
    return Compiled(
        sql=compiled.string.encode(),
        binds=tuple((name, _processor(binds[name].type, "bind")) for name in order),
        names=tuple(column.keyname for column in columns),
        loaders=loaders,
        utc_loaders=utc_loaders,
        returns_rows=bool(columns),
        literal_names=literal_names,
        defaults={name: bind.effective_value for bind, name in names_of.items()},
        expanding=compiled if expanding else None,
    )


def expand(compiled: Compiled, values: Mapping[str, Any]) -> tuple[bytes, list[Any]]:
    """SQL and placeholder values of an ``expanding`` statement for these *values* (the
    lists' lengths decide the SQL text)::

        sql, args = expand(compiled, values)
    """
    full = compiled.expanding.construct_params(dict(values))
    state = compiled.expanding.construct_expanded_state(full)
    params = state.parameters
    processors = state.processors
    args = []
    for name in state.positiontup or ():
        value = params[name]
        process = processors.get(name)
        args.append(value if process is None or value is None else process(value))
    return state.statement.encode(), args
