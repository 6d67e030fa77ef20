"""Attributes: a resource field's declaration, its SQL type, and casting values to it.

What a resource class is made of before it becomes a resource: :func:`attribute` declares a
field (``content: str = attribute(max_length=500)``), :func:`_finish_attribute` turns the
declaration and its annotation into a column when the class is built, and
:meth:`Attribute.cast` casts and checks input. :class:`ResourceDefinitionError` is the error of
every declaration check. The actions and policies modules need these (not the finished
:class:`~domain.Resource`), so they import this module and ``_resource`` imports them at the
top, without a cycle.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import inspect
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

__all__ = [
    "MISSING",
    "Attribute",
    "ResourceDefinitionError",
    "UTCDateTime",
    "attribute",
    "snake_case",
]

#: "No value given" (distinct from ``None``) for defaults and changeset fields.
MISSING: Any = object()


class ResourceDefinitionError(TypeError):
    """A resource declaration is wrong; the message names the resource, the field and the fix.

    >>> class Note(Resource):
    ...     text: str = attribute()
    Traceback (most recent call last):
    domain.ResourceDefinitionError: Note: no primary key; add `id: uuid.UUID = uuid_primary_key()`
    """


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive): the type of
    every ``datetime`` attribute.

    >>> User.__table__.c.inserted_at.type
    UTCDateTime()
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if isinstance(value, dt.datetime):
            return (
                value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
            )
        return value


@dataclass
class Attribute:
    """An attribute's declaration (see :func:`attribute`). After class creation ``name``,
    ``python_type`` and ``column`` are filled in.

    >>> attr = User.__attributes__["username"]
    >>> attr.max_length, attr.cast("  ann ")
    (20, ('ann', []))
    """

    sa_type: Any = None
    allow_nil: bool | None = None
    default: Any = MISSING
    update_default: Any = MISSING
    primary_key: bool = False
    writable: bool = True
    public: bool = True
    min_length: int | None = None
    max_length: int | None = None
    match: str | None = None
    min: Any = None
    max: Any = None
    one_of: Sequence[Any] | None = None
    trim: bool = True
    allow_empty: bool = False
    description: str = ""
    name: str = ""
    python_type: Any = None
    column: Any = None

    def has_default(self) -> bool:
        """Whether a create that omits this attribute gets a value anyway."""
        return self.default is not MISSING

    def make_default(self) -> Any:
        """A fresh default value (callables are called)."""
        return self.default() if callable(self.default) else self.default

    def cast(self, value: Any) -> tuple[Any, list[str]]:
        """Cast *value* to the attribute's type and check its constraints: (value, errors)."""
        return _cast(self, value)


def attribute(
    sa_type: Any = None,
    *,
    allow_nil: bool | None = None,
    default: Any = MISSING,
    update_default: Any = MISSING,
    primary_key: bool = False,
    writable: bool = True,
    public: bool = True,
    min_length: int | None = None,
    max_length: int | None = None,
    match: str | None = None,
    min: Any = None,  # noqa: A002 - Ash's constraint name
    max: Any = None,  # noqa: A002
    one_of: Sequence[Any] | None = None,
    trim: bool = True,
    allow_empty: bool = False,
    description: str = "",
) -> Any:
    """Declare a typed attribute: ``content: str = attribute(max_length=500)``.

    The SQL type comes from the annotation (``str``, ``int``, ``float``, ``bool``,
    ``Decimal``, ``uuid.UUID``, ``datetime``, ``date``, ``dict``, an ``Enum``) unless
    *sa_type* is given. ``allow_nil`` defaults to whether the annotation includes ``None``.
    Strings are trimmed and ``""`` counts as nil unless ``allow_empty=True`` (Ash's rules).
    Constraints: ``min_length``/``max_length``/``match`` (strings), ``min``/``max``
    (numbers), ``one_of`` (any type).

    >>> username: str = attribute(min_length=3, max_length=20, match=r"^[a-z0-9_]+$")
    >>> admin: bool = attribute(default=False, writable=False)
    >>> context: str = attribute(one_of=("session", "api"))
    """
    return Attribute(
        sa_type,
        allow_nil,
        default,
        update_default,
        primary_key,
        writable,
        public,
        min_length,
        max_length,
        match,
        min,
        max,
        one_of,
        trim,
        allow_empty,
        description,
    )


_TYPES: dict[Any, Callable[[], Any]] = {
    str: sa.String,
    int: sa.Integer,
    float: sa.Float,
    bool: sa.Boolean,
    decimal.Decimal: lambda: sa.Numeric(18, 6),
    uuid.UUID: sa.Uuid,
    dt.datetime: UTCDateTime,
    dt.date: sa.Date,
    dict: sa.JSON,
    list: sa.JSON,
}


def snake_case(name: str) -> str:
    """``"ChatRoom"`` -> ``"chat_room"``: table and foreign-key names from class names.

    >>> snake_case("ChatRoom")
    'chat_room'
    """
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        return annotation, nullable
    return annotation, False


def _annotation(cls: type, name: str) -> Any:
    raw = inspect.get_annotations(cls).get(name)
    if raw is None:
        return None
    if isinstance(raw, str):
        module = sys.modules.get(cls.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        namespace.setdefault(cls.__name__, cls)
        try:
            return eval(raw, namespace, {"dt": dt, "uuid": uuid, "decimal": decimal})
        except Exception as exc:
            raise ResourceDefinitionError(
                f"{cls.__name__}.{name}: cannot evaluate the annotation {raw!r} ({exc}); import "
                "the types it names at module level"
            ) from exc
    return raw


def _finish_attribute(
    cls: type, name: str, attr: Attribute, *, annotated: bool = True
) -> Attribute:
    rname = cls.__name__
    python_type: Any = None
    nullable_ann = False
    if annotated:
        ann = _annotation(cls, name)
        if ann is None:
            raise ResourceDefinitionError(
                f"{rname}.{name}: attribute without an annotation; "
                f"write `{name}: str = attribute(...)`"
            )
        python_type, nullable_ann = _unwrap_optional(ann)
    if attr.allow_nil is None:
        attr.allow_nil = nullable_ann
    elif annotated and attr.allow_nil and not nullable_ann:
        raise ResourceDefinitionError(
            f"{rname}.{name}: allow_nil=True but the annotation does not include None; "
            f"annotate it as `{getattr(python_type, '__name__', python_type)} | None`"
        )
    elif annotated and not attr.allow_nil and nullable_ann:
        raise ResourceDefinitionError(
            f"{rname}.{name}: allow_nil=False but the annotation includes None; drop `| None`"
        )
    if attr.primary_key and attr.allow_nil:
        raise ResourceDefinitionError(f"{rname}.{name}: a primary key cannot allow nil")
    sa_type = attr.sa_type
    if sa_type is None:
        if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
            sa_type = sa.Enum(python_type, native_enum=False, length=64, validate_strings=True)
        elif python_type in _TYPES:
            sa_type = _TYPES[python_type]()
        else:
            raise ResourceDefinitionError(
                f"{rname}.{name}: no SQL type for {python_type!r}; use one of "
                "str, int, float, bool, Decimal, uuid.UUID, datetime, date, dict, an Enum, "
                "or pass sa_type=..."
            )
    elif isinstance(sa_type, type):
        sa_type = sa_type()
    if python_type is None:
        try:
            python_type = sa_type.python_type
        except NotImplementedError:
            python_type = object
    is_str = python_type is str
    if (attr.min_length is not None or attr.max_length is not None or attr.match) and not is_str:
        raise ResourceDefinitionError(
            f"{rname}.{name}: min_length/max_length/match apply to str attributes only"
        )
    if (attr.min is not None or attr.max is not None) and python_type not in (
        int,
        float,
        decimal.Decimal,
        dt.datetime,
        dt.date,
    ):
        raise ResourceDefinitionError(f"{rname}.{name}: min/max apply to numbers and dates only")
    if attr.match is not None:
        try:
            re.compile(attr.match)
        except re.error as exc:
            raise ResourceDefinitionError(f"{rname}.{name}: bad match regex ({exc})") from exc
    if (
        is_str
        and attr.max_length is not None
        and isinstance(sa_type, sa.String)
        and not sa_type.length
    ):
        sa_type = sa.String(attr.max_length)
    attr.name = name
    attr.python_type = python_type
    attr.sa_type = sa_type
    attr.column = sa.Column(
        name, sa_type, primary_key=attr.primary_key, nullable=bool(attr.allow_nil)
    )
    return attr


def _cast(attr: Attribute, value: Any) -> tuple[Any, list[str]]:
    if value is None:
        return None, ([] if attr.allow_nil else ["is required"])
    pt = attr.python_type
    try:
        if pt is str:
            if not isinstance(value, str):
                return value, ["must be a string"]
            if attr.trim:
                value = value.strip()
            if value == "" and not attr.allow_empty:
                return None, ([] if attr.allow_nil else ["is required"])
        elif pt is bool:
            if not isinstance(value, bool):
                return value, ["must be a boolean"]
        elif pt is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
                    value = int(value)
                else:
                    return value, ["must be an integer"]
        elif pt is float:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                return value, ["must be a number"]
            value = float(value)
        elif pt is decimal.Decimal:
            value = decimal.Decimal(str(value))
        elif pt is uuid.UUID:
            if not isinstance(value, uuid.UUID):
                value = uuid.UUID(str(value))
        elif pt is dt.datetime:
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
            if not isinstance(value, dt.datetime):
                return value, ["must be a datetime"]
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
        elif isinstance(pt, type) and issubclass(pt, enum.Enum):
            value = pt(value)
    except (ValueError, TypeError, decimal.InvalidOperation):
        return value, [f"is not a valid {getattr(pt, '__name__', pt)}"]
    errors: list[str] = []
    if pt is str:
        if attr.min_length is not None and len(value) < attr.min_length:
            errors.append(f"must be at least {attr.min_length} characters")
        if attr.max_length is not None and len(value) > attr.max_length:
            errors.append(f"must be at most {attr.max_length} characters")
        if attr.match is not None and re.search(attr.match, value) is None:
            errors.append(f"must match {attr.match}")
    if attr.min is not None and value < attr.min:
        errors.append(f"must be greater than or equal to {attr.min}")
    if attr.max is not None and value > attr.max:
        errors.append(f"must be less than or equal to {attr.max}")
    if attr.one_of is not None and value not in attr.one_of:
        errors.append(f"must be one of {', '.join(map(str, attr.one_of))}")
    return value, errors
