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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import psycopg as _psycopg_dialect

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
    returns_rows: bool
    #: The names of the literals the statement carries, in SQLAlchemy's cache-key order.
    literal_names: tuple[str | None, ...]
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


def compiled_for(statement: Any, keys: tuple[str, ...]) -> tuple[Compiled, dict[str, Any]]:
    """The compiled form of *statement* executed with parameters named *keys* (an insert's or
    an update's columns come from them), and the values of the literals it carries::

        compiled, values = compiled_for(stmt, tuple(params))
        values.update(params)
        sql, args = compiled.sql, compiled.parameters(values)
    """
    # SQLAlchemy memoizes a statement's cache key on the statement object.
    cache_key = statement._generate_cache_key()
    if cache_key is None:  # a construct SQLAlchemy cannot cache: compile every time
        compiled = _compile(statement, keys, ())
        return compiled, {}
    literal_binds = cache_key.bindparams
    shape = (cache_key.key, keys)
    found = _cache.get(shape)
    if found is None:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        found = _cache[shape] = _compile(statement, keys, literal_binds)
    if not literal_binds:
        return found, {}
    return found, _literal_values(found, literal_binds)


def _literal_values(compiled: Compiled, binds: Sequence[Any]) -> dict[str, Any]:
    return {
        name: bind.effective_value
        for name, bind in zip(compiled.literal_names, binds, strict=True)
        if name is not None
    }


def _processor(type_: Any, kind: str) -> Processor | None:
    impl = type_.dialect_impl(DIALECT)
    if kind == "bind":
        return impl.bind_processor(DIALECT)
    return impl.result_processor(DIALECT, None)


def _compile(statement: Any, keys: tuple[str, ...], literal_binds: Sequence[Any]) -> Compiled:
    compiled: Any = statement.compile(dialect=DIALECT, column_keys=list(keys))
    binds = compiled.binds
    order = compiled.positiontup or ()
    columns = list(compiled._result_columns)
    loaders = tuple(
        (i, process)
        for i, column in enumerate(columns)
        if (process := _processor(column.type, "result")) is not None
    )
    expanding = bool(compiled.post_compile_params or compiled.literal_execute_params)
    return Compiled(
        sql=compiled.string.encode(),
        binds=tuple((name, _processor(binds[name].type, "bind")) for name in order),
        names=tuple(column.keyname for column in columns),
        loaders=loaders,
        returns_rows=bool(columns),
        literal_names=tuple(compiled.bind_names.get(bind) for bind in literal_binds),
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

