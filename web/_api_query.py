"""Reading a JSON:API query string: ``filter``, ``sort``, ``page``, ``include``, ``fields``
and a read action's arguments become a :class:`ReadSpec`, the options of the domain's read
query (``Domain.read``/``Domain.page`` build their frozen ``Query`` from exactly these).

Only declared things get through: filters and sorts name exposed attributes, with the
operators below, and their values are parsed to the attribute's type and bound as
parameters (built with the columns' own operators), so no text of the client's ever becomes
SQL. Every mistake is a 400 naming the parameter, the value and the fix; all of a request's
mistakes are reported at once::

    spec = parse_query(request.query, messages, route, types)
    # GET /api/messages?filter[room_id]=...&filter[inserted_at][gt]=2026-12-01T00:00:00Z
    #     &sort=-inserted_at&page[limit]=20&include=author&fields[messages]=content

Operators: ``eq`` (the default: ``filter[name]=value``), ``not_eq``, ``gt``, ``gte``,
``lt``, ``lte``, ``in`` (comma-separated), ``contains`` (strings), ``is_nil`` (true/false).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import json
import operator
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._api_errors import ApiError, error_object
from ._api_routes import Route
from ._api_types import ApiType, parse_value, type_name, unstorable

__all__ = ["OPERATORS", "ReadSpec", "parse_query", "split_key"]

#: Filter operators, and what each needs of the attribute's type.
OPERATORS: Mapping[str, str] = {
    "eq": "any",
    "not_eq": "any",
    "gt": "ordered",
    "gte": "ordered",
    "lt": "ordered",
    "lte": "ordered",
    "in": "any",
    "contains": "string",
    "is_nil": "any",
}
_MAX_FILTERS = 20
_MAX_SORT = 5
_MAX_IN = 100
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\[\]]*\])*)$")


@dataclass(frozen=True)
class ReadSpec:
    """The read options a query string asks for (see the module docstring). ``after`` is
    ``None`` for an offset page, else the keyset cursor (``""``: the first page)."""

    filter: Any = None
    sort: tuple[str, ...] = ()
    limit: int = 20
    offset: int | None = None
    after: str | None = ""
    include: tuple[str, ...] = ()
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Equal:
    """``filter[name]=value``, kept apart: a read filtered by equalities only passes them as
    a mapping (the domain keeps such statements by shape, one per set of names)."""

    name: str
    value: Any
    column: Any


def split_key(key: str) -> tuple[str, tuple[str, ...]] | None:
    """``"filter[a][gt]"`` as ``("filter", ("a", "gt"))``; ``None`` when malformed.

    >>> split_key("page[limit]")
    ('page', ('limit',))
    """
    m = _KEY.match(key)
    if m is None:
        return None
    return m.group(1), tuple(re.findall(r"\[([^\[\]]*)\]", m.group(2)))


class _Problems:
    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []

    def add(self, parameter: str, detail: str) -> None:
        self.objects.append(error_object(400, detail, code="bad_parameter", parameter=parameter))

    def raise_any(self) -> None:
        if self.objects:
            raise ApiError(400, self.objects)


def _names(t: ApiType) -> str:
    return ", ".join((t.pk, *t.fields))


def parse_query(
    query: Mapping[str, list[str]],
    t: ApiType,
    route: Route,
    types: Mapping[Any, ApiType],
    *,
    by_name: Mapping[str, ApiType] | None = None,
) -> ReadSpec:
    """The :class:`ReadSpec` of *query* for *route* of type *t* (*types*: every exposed
    type by resource, for ``include``); raises :class:`ApiError` (400) listing every
    mistake. A route that reads one record takes only ``include`` and ``fields``.

    >>> parse_query({"sort": ["-inserted_at"]}, messages, index("read"), types).sort
    ('-inserted_at',)
    """
    by_name = by_name if by_name is not None else {x.name: x for x in types.values()}
    problems = _Problems()
    conditions: list[Any] = []
    sort: tuple[str, ...] = ()
    limit = route.default_limit
    offset: int | None = None
    after: str | None = ""
    include: tuple[str, ...] = ()
    fields: dict[str, tuple[str, ...]] = {}
    arguments: dict[str, Any] = {}
    action = t.action(route.action)
    declared_args = {a.name: a for a in (action.arguments if action is not None else ())}
    listing = route.reads
    for key, values in query.items():
        value = values[-1] if values else ""
        parts = split_key(key)
        if parts is None:
            problems.add(key, f"{key!r} is not a query parameter name (write name[part]...)")
            continue
        name, path = parts
        if name == "include" and not path:
            include = _include(value, t, types, problems)
        elif name == "fields" and len(path) == 1:
            _fields(path[0], value, by_name, fields, problems, key)
        elif not listing:
            problems.add(
                key,
                f"{key} is not accepted here: reading one record takes only include and "
                "fields[<type>]",
            )
        elif name == "filter":
            if not path or len(path) > 2:
                problems.add(
                    key,
                    f"{key}: write filter[<field>]=value or filter[<field>][<operator>]=value "
                    f"(fields: {_names(t)}; operators: {', '.join(OPERATORS)})",
                )
                continue
            cond = _filter(t, path, value, problems, key)
            if cond is not None:
                conditions.append(cond)
        elif name == "sort" and not path:
            sort = _sort(value, t, problems)
        elif name == "page" and len(path) == 1:
            if path[0] == "limit":
                limit = _int(value, key, problems, 1, route.max_limit, limit)
            elif path[0] == "offset":
                offset = _int(value, key, problems, 0, 10**9, 0)
            elif path[0] == "after":
                after = value
            else:
                problems.add(key, f"{key}: pages take page[limit], page[offset] or page[after]")
        elif not path and name in declared_args:
            arg = declared_args[name]
            try:
                parsed = parse_value(arg.attr, value)
            except ValueError as exc:
                problems.add(key, f"{key}={value!r} is not {exc}")
                continue
            cast, messages = arg.attr.cast(parsed)
            for message in messages:
                problems.add(key, f"{key}={value!r}: {message}")
            arguments[name] = cast
        else:
            known = ["filter[<field>]", "sort", "page[limit]", "page[offset]", "page[after]"]
            known += ["include", "fields[<type>]", *declared_args]
            problems.add(
                key, f"unknown query parameter {key!r}; this route takes {', '.join(known)}"
            )
    for name, arg in declared_args.items():
        if name in arguments:
            continue
        if arg.attr.has_default() and arg.attr.default is not None:
            arguments[name] = arg.attr.make_default()
        elif arg.attr.allow_nil:
            arguments[name] = None
        else:
            problems.add(name, f"the argument {name} is required: add {name}=<value> to the query")
    if len(conditions) > _MAX_FILTERS:
        problems.add("filter", f"at most {_MAX_FILTERS} filters per request")
    if offset is not None and after:
        problems.add("page[offset]", "page[offset] and page[after] do not go together: pick one")
    elif after and not _fits(after, t, sort or (action.sort if action is not None else ())):
        problems.add(
            "page[after]",
            f"page[after]={after[:60]!r} is not a cursor this API gave for this sort: follow "
            "links.next of the previous page (with the same sort)",
        )
    problems.raise_any()
    where: Any = None
    equal_names = [c.name for c in conditions if isinstance(c, _Equal)]
    if (
        conditions
        and len(equal_names) == len(conditions)
        and len(set(equal_names)) == len(equal_names)
    ):
        # Only equalities: the domain's mapping filter, whose statements it keeps by shape.
        where = {c.name: c.value for c in conditions}
    elif conditions:
        terms = [t.column == t.value if isinstance(t, _Equal) else t for t in conditions]
        where = functools.reduce(operator.and_, terms)
    return ReadSpec(
        where,
        sort,
        limit,
        offset,
        None if offset is not None else after,
        include,
        fields,
        arguments,
    )


def _fits(cursor: str, t: ApiType, sort: tuple[str, ...]) -> bool:
    """Whether *cursor* is a keyset cursor of *t* for *sort*: the sort key values of a
    record (then its primary key), in the domain's encoding (JSON, URL-safe base64; UUIDs
    as ``{"u": text}``, datetimes ``{"d": text}``, decimals ``{"n": text}``), each of its
    column's type. A forged one must not reach the driver, which fails on a value of
    another type."""
    names = [k.lstrip("-+") for k in sort]
    if t.pk not in names:
        names.append(t.pk)
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, RecursionError):
        return False
    if not isinstance(values, list) or len(values) != len(names):
        return False
    for name, value in zip(names, values, strict=True):
        attr = t.resource.__attributes__.get(name)
        if attr is None or not _of_type(attr.python_type, value):
            return False
    return True


_PARSERS: Mapping[str, Callable[[str], Any]] = {
    "u": uuid.UUID,
    "d": dt.datetime.fromisoformat,
    "n": decimal.Decimal,
}


def _of_type(pt: Any, value: Any) -> bool:
    if value is None:
        return True
    tagged = {uuid.UUID: "u", dt.datetime: "d", decimal.Decimal: "n"}.get(pt)
    if tagged is not None:
        if isinstance(value, int | float) and not isinstance(value, bool) and pt is decimal.Decimal:
            return True
        if not (isinstance(value, dict) and set(value) == {tagged}):
            return False
        text = value[tagged]
        if not isinstance(text, str):
            return False
        try:
            _PARSERS[tagged](text)
        except (ValueError, TypeError, ArithmeticError):
            return False
        return unstorable(text) is None
    if pt is bool:
        return isinstance(value, bool)
    if pt is int:
        return isinstance(value, int) and not isinstance(value, bool) and unstorable(value) is None
    if pt is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if pt is str:
        return isinstance(value, str) and unstorable(value) is None
    return isinstance(value, str | int) and unstorable(value) is None


def _include(
    value: str, t: ApiType, types: Mapping[Any, ApiType], problems: _Problems
) -> tuple[str, ...]:
    out: list[str] = []
    for name in filter(None, (p.strip() for p in value.split(","))):
        if "." in name:
            problems.add(
                "include",
                f"include={name!r}: includes go one relationship deep (include depth 1); "
                "ask for the related records' own relationships from their type's routes",
            )
            continue
        rel = t.relationships.get(name)
        if rel is None or rel.target() not in types:
            shown = [n for n, r in t.relationships.items() if r.target() in types]
            problems.add(
                "include",
                f"include={name!r} is not a relationship of {t.name}; it has: "
                f"{', '.join(shown) or 'none'}",
            )
            continue
        if name not in out:
            out.append(name)
    return tuple(out)


def _fields(
    type_name_: str,
    value: str,
    by_name: Mapping[str, ApiType],
    fields: dict[str, tuple[str, ...]],
    problems: _Problems,
    key: str,
) -> None:
    target = by_name.get(type_name_)
    if target is None:
        problems.add(key, f"{key}: no type {type_name_!r}; types are {', '.join(sorted(by_name))}")
        return
    names = tuple(filter(None, (p.strip() for p in value.split(","))))
    wrong = [n for n in names if n not in target.fields and n not in target.relationships]
    if wrong:
        problems.add(
            key,
            f"{key}: {', '.join(map(repr, wrong))} not fields of {type_name_}; its fields are "
            f"{', '.join((*target.fields, *target.relationships))}",
        )
        return
    fields[type_name_] = names


def _sort(value: str, t: ApiType, problems: _Problems) -> tuple[str, ...]:
    keys = tuple(filter(None, (p.strip() for p in value.split(","))))
    if len(keys) > _MAX_SORT:
        problems.add("sort", f"sort={value!r}: at most {_MAX_SORT} sort keys")
        return ()
    for key in keys:
        name = key.lstrip("-+")
        attr = t.attribute(name)
        if attr is None:
            problems.add(
                "sort",
                f"sort={value!r}: {name!r} is not a field of {t.name}; sort by one of "
                f"{_names(t)} (prefix - for descending)",
            )
    return tuple(k if not k.startswith("+") else k[1:] for k in keys)


def _int(value: str, key: str, problems: _Problems, low: int, high: int, default: int) -> int:
    try:
        number = int(value)
    except ValueError:
        problems.add(key, f"{key}={value!r} is not a whole number (between {low} and {high})")
        return default
    if not low <= number <= high:
        fix = (
            f"ask for at most {high} per page and follow links.next"
            if key == "page[limit]"
            else f"use a number between {low} and {high}"
        )
        problems.add(key, f"{key}={value!r} is out of range: {fix}")
        return default
    return number


def _filter(t: ApiType, path: tuple[str, ...], value: str, problems: _Problems, key: str) -> Any:
    name = path[0]
    op = path[1] if len(path) == 2 else "eq"
    attr = t.attribute(name)
    if attr is None:
        problems.add(
            key, f"{key}: {name!r} is not a field of {t.name}; filter by one of {_names(t)}"
        )
        return None
    need = OPERATORS.get(op)
    if need is None:
        problems.add(key, f"{key}: no operator {op!r}; operators are {', '.join(OPERATORS)}")
        return None
    pt = attr.python_type
    if need == "ordered" and pt is bool:
        problems.add(key, f"{key}: {op} does not apply to the boolean {name}; use eq")
        return None
    if need == "string" and pt is not str:
        problems.add(key, f"{key}: {op} applies to text fields; {name} is {type_name(pt)}")
        return None
    column = t.column(name)
    try:
        if op == "is_nil":
            lowered = value.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError("a boolean (true or false)")
            return column.is_(None) if lowered == "true" else column.is_not(None)
        if op == "in":
            items = [v for v in value.split(",") if v != ""]
            if not items or len(items) > _MAX_IN:
                problems.add(key, f"{key}: give 1 to {_MAX_IN} comma-separated values")
                return None
            return column.in_([parse_value(attr, v) for v in items])
        parsed = parse_value(attr, value)
    except ValueError as exc:
        problems.add(key, f"{key}={value!r} is not {exc}")
        return None
    if op == "contains":
        return column.contains(parsed, autoescape=True)
    if op == "eq" and parsed is not None:
        return _Equal(name, parsed, column)
    ops = {
        "eq": operator.eq,
        "not_eq": operator.ne,
        "gt": operator.gt,
        "gte": operator.ge,
        "lt": operator.lt,
        "lte": operator.le,
    }
    return ops[op](column, parsed)
