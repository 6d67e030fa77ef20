"""An API type: a domain resource as the JSON API shows it (its fields, relationships and
routes), read once from the resource's declarations.

web never imports domain: a resource is read structurally, through the class attributes
every ``domain.Resource`` has (``__name__``, ``__attributes__`` with each attribute's
``python_type``, ``allow_nil``, ``public``, ``writable`` and constraints, ``__relationships__``
with ``kind``, ``source_attribute`` and ``target()``, ``__primary_key__``, ``__table__`` and
``__actions__`` with each action's ``type``, ``accept`` and ``arguments``)::

    t = ApiType.build(Message, "messages", routes, hide=())
    t.fields            # ('content', 'room_id', 'author_id', ...) without the primary key
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._api_routes import Route

__all__ = ["INT_MAX", "INT_MIN", "ApiType", "encode_value", "parse_value", "unstorable"]


@dataclass(frozen=True)
class ApiType:
    """A resource exposed as JSON:API type ``name``: its exposed ``fields`` (public
    attributes less the hidden ones and the primary key), the ``relationships`` it shows
    (``name -> relationship``; linked to a type only where the target is exposed too), and its
    ``routes``.

    >>> api_type.name, api_type.pk
    ('messages', 'id')
    """

    resource: Any
    name: str
    routes: tuple[Route, ...]
    fields: tuple[str, ...]
    relationships: Mapping[str, Any]
    pk: str

    @classmethod
    def build(
        cls, resource: Any, name: str, routes: Sequence[Route], hide: Sequence[str]
    ) -> ApiType:
        """Read *resource*'s declarations; check that every route's action exists with a
        fitting type (a misdeclared route fails here, at start-up, not on a request).

        >>> ApiType.build(Room, "rooms", (index(), get()), hide=())
        """
        rname = resource.__name__
        if len(resource.__primary_key__) != 1:
            raise ValueError(f"{rname}: the JSON API needs a single-column primary key")
        pk = resource.__primary_key__[0]
        attributes = resource.__attributes__
        unknown = [h for h in hide if h not in attributes and h not in resource.__relationships__]
        if unknown:
            raise ValueError(f"{rname}: hide names unknown fields {unknown}")
        fields = tuple(n for n, a in attributes.items() if a.public and n != pk and n not in hide)
        relationships = {n: r for n, r in resource.__relationships__.items() if n not in hide}
        wanted = {
            "index": ("read",),
            "get": ("read",),
            "create": ("create",),
            "update": ("update",),
            "destroy": ("destroy",),
            "action": ("create", "read", "update", "destroy"),
        }
        for r in routes:
            if r.input is not None and r.input not in resource.__actions__:
                raise ValueError(
                    f"{rname}: route {r.method} {r.path or '/'} takes the input of {r.input!r}, "
                    f"which is not an action; actions are {sorted(resource.__actions__)}"
                )
            if r.action is None:
                continue
            action = resource.__actions__.get(r.action)
            if action is None and r.action == "read" and r.kind in ("index", "get"):
                continue  # every resource has the default read
            if action is None:
                raise ValueError(
                    f"{rname}: route {r.method} {r.path or '/'} runs {r.action!r}, which is not "
                    f"an action; actions are {sorted(resource.__actions__)}"
                )
            if action.type not in wanted[r.kind]:
                raise ValueError(
                    f"{rname}: route {r.method} {r.path or '/'} ({r.kind}) needs a "
                    f"{'/'.join(wanted[r.kind])} action; {r.action!r} is a {action.type}"
                )
            if action.type in ("update", "destroy") and r.kind == "action" and not r.on_record:
                raise ValueError(
                    f"{rname}: route {r.method} {r.path!r} runs the {action.type} action "
                    f"{r.action!r}: its path needs {{id}}"
                )
        seen: set[tuple[str, str]] = set()
        for r in routes:
            key = (r.method, r.path)
            if key in seen:
                raise ValueError(f"{rname}: two routes for {r.method} {r.path or '/'}")
            seen.add(key)
        return cls(resource, name, tuple(routes), fields, relationships, pk)

    def attribute(self, name: str) -> Any:
        """The attribute declaration *name* (exposed or the primary key), else ``None``."""
        if name == self.pk or name in self.fields:
            return self.resource.__attributes__[name]
        return None

    def action(self, name: str | None) -> Any:
        """The action *name*, or ``None`` for the default read."""
        return self.resource.__actions__.get(name) if name is not None else None

    def column(self, name: str) -> Any:
        """The SQL column of attribute *name* (for filters, built with its operators)."""
        return self.resource.__table__.c[name]


def encode_value(value: Any) -> Any:
    """A value as JSON carries it: UUIDs and decimals as strings, datetimes in ISO 8601.

    >>> encode_value(uuid.UUID(int=1))
    '00000000-0000-0000-0000-000000000001'
    """
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def parse_value(attr: Any, text: str) -> Any:
    """The query-string *text* as a value of *attr*'s type; :class:`ValueError` naming the
    type when it is not one.

    >>> parse_value(Message.__attributes__["inserted_at"], "2026-12-03T10:00:00Z")
    datetime.datetime(2026, 12, 3, 10, 0, tzinfo=datetime.timezone.utc)
    """
    pt = attr.python_type
    if "\x00" in text:
        raise ValueError(f"{type_name(pt)} (without NUL characters)")
    if pt is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError("a boolean (true or false)")
    try:
        if pt is int:
            number = int(text)
            if not INT_MIN <= number <= INT_MAX:
                raise ValueError
            return number
        if pt is float:
            return float(text)
        if pt is decimal.Decimal:
            return decimal.Decimal(text)
        if pt is uuid.UUID:
            return uuid.UUID(text)
        if pt is dt.datetime:
            value = dt.datetime.fromisoformat(text)
            return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        if isinstance(pt, type) and issubclass(pt, enum.Enum):
            return pt(text)
    except (ValueError, TypeError, ArithmeticError):
        raise ValueError(type_name(pt)) from None
    return text


#: The integers a database column holds (64-bit): beyond them a driver fails, so the API
#: refuses them first.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def unstorable(value: Any) -> str | None:
    """Why a JSON input *value* cannot reach a database at all (an integer beyond 64 bits,
    text with a NUL character, at any depth), or ``None``.

    >>> unstorable(10**20)
    'must be between -9223372036854775808 and 9223372036854775807'
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        return f"must be between {INT_MIN} and {INT_MAX}"
    if isinstance(value, str) and "\x00" in value:
        return "must not contain NUL characters"
    if isinstance(value, list):
        return next((why for v in value if (why := unstorable(v)) is not None), None)
    if isinstance(value, dict):
        return next((why for v in value.values() if (why := unstorable(v)) is not None), None)
    if isinstance(value, float) and value != value:  # NaN
        return "must be a number"
    return None


def type_name(pt: Any) -> str:
    """How an error names the type *pt* (``"a UUID"``)."""
    names = {
        int: "an integer",
        float: "a number",
        decimal.Decimal: "a decimal number",
        uuid.UUID: "a UUID",
        dt.datetime: "an ISO 8601 datetime",
        bool: "a boolean (true or false)",
        str: "a string",
    }
    if pt in names:
        return names[pt]
    if isinstance(pt, type) and issubclass(pt, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in pt)
    return getattr(pt, "__name__", str(pt))
