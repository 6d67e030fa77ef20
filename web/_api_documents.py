"""Records as JSON:API documents (``data``, ``attributes``, ``relationships``, ``included``,
``links``, ``meta``), or as plain JSON objects in the API's plain mode.

A record is read structurally (its attribute values are in its ``__dict__``, loaded
relationships too), so this module needs nothing of domain::

    docs = Documents(types, "/api", plain=False)
    body = docs.encode(docs.many(messages_type, records, include=("author",), fields={}))
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._api_types import ApiType, encode_value

__all__ = ["JSONAPI", "Documents"]

#: JSON:API's media type.
JSONAPI = "application/vnd.api+json"


class Documents:
    """Builds response documents for the exposed *types* (by resource) under *prefix*.

    >>> Documents(types, "/api").single(rooms, room)["data"]["type"]
    'rooms'
    """

    def __init__(self, types: Mapping[Any, ApiType], prefix: str, *, plain: bool = False):
        self.types = types
        self.prefix = prefix
        self.plain = plain
        self.media_type = "application/json" if plain else JSONAPI
        self._plans: dict[str, _Plan] = {}

    def forget(self) -> None:
        """Work the plans out again (a type was added)."""
        self._plans.clear()

    def encode(self, document: Any) -> bytes:
        """The document as UTF-8 JSON (UUIDs, datetimes and decimals as strings)."""
        return _JSON.encode(document).encode()

    def _plan(self, t: ApiType) -> _Plan:
        """How *t*'s records become objects, worked out once per type (the exposed types
        are all known by the first request)."""
        plan = self._plans.get(t.name)
        if plan is None:
            attrs = t.resource.__attributes__
            fields = tuple((n, _converter(attrs[n].python_type)) for n in t.fields)
            rels = []
            for rname, rel in t.relationships.items():
                target = self.types.get(rel.target())
                if target is not None:
                    source = rel.source_attribute if rel.kind == "belongs_to" else None
                    rels.append((rname, target, source))
            linked = f"{self.prefix}/{t.name}/" if any(r.kind == "get" for r in t.routes) else ""
            pk = _converter(attrs[t.pk].python_type)
            plan = _Plan(fields, tuple(rels), linked, pk)
            self._plans[t.name] = plan
        return plan

    def resource_object(
        self,
        t: ApiType,
        record: Any,
        fields: Mapping[str, Sequence[str]],
    ) -> dict[str, Any]:
        """One record as a resource object (or a plain object), its fields as *fields*
        (sparse fieldsets, by type name) allow."""
        values = record.__dict__
        plan = self._plan(t)
        wanted = fields.get(t.name)
        shown = set(wanted) if wanted is not None else None
        key = values.get(t.pk)
        attributes: dict[str, Any] = {
            name: value if convert is None or value is None else convert(value)
            for name, convert in plan.fields
            if (value := values.get(name, _ABSENT)) is not _ABSENT
            and (shown is None or name in shown)
        }
        if self.plain:
            obj = {"id": key if plan.pk is None else plan.pk(key), **attributes}
            for rname, target, _ in plan.relationships:
                if rname in values and (shown is None or rname in shown):
                    obj[rname] = self._plain_related(target, values[rname], fields)
            return obj
        sid = str(key)
        out: dict[str, Any] = {"type": t.name, "id": sid, "attributes": attributes}
        relationships: dict[str, Any] = {}
        for rname, target, source in plan.relationships:
            if shown is not None and rname not in shown:
                continue
            if rname in values:
                loaded = values[rname]
                if isinstance(loaded, list | tuple):
                    relationships[rname] = {"data": [_identifier(target, r) for r in loaded]}
                else:
                    relationships[rname] = {
                        "data": None if loaded is None else _identifier(target, loaded)
                    }
            elif source is not None and source in values:
                fk = values[source]
                relationships[rname] = {
                    "data": None if fk is None else {"type": target.name, "id": str(fk)}
                }
        if relationships:
            out["relationships"] = relationships
        if plan.linked:
            out["links"] = {"self": plan.linked + sid}
        return out

    @staticmethod
    def _simple_object(name: str, plan: _Plan, pk: str, values: dict[str, Any]) -> dict[str, Any]:
        """What :meth:`resource_object` makes of a record of a type with no linked
        relationships, all of its fields shown, in JSON:API mode."""
        sid = str(values.get(pk))
        out: dict[str, Any] = {
            "type": name,
            "id": sid,
            "attributes": {
                field: value if convert is None or value is None else convert(value)
                for field, convert in plan.fields
                if (value := values.get(field, _ABSENT)) is not _ABSENT
            },
        }
        if plan.linked:
            out["links"] = {"self": plan.linked + sid}
        return out

    def _plain_related(
        self, target: ApiType, loaded: Any, fields: Mapping[str, Sequence[str]]
    ) -> Any:
        if loaded is None:
            return None
        if isinstance(loaded, list | tuple):
            return [self.resource_object(target, r, fields) for r in loaded]
        return self.resource_object(target, loaded, fields)

    def _included(
        self,
        t: ApiType,
        records: Iterable[Any],
        include: Sequence[str],
        fields: Mapping[str, Sequence[str]],
    ) -> list[dict[str, Any]]:
        seen: set[tuple[str, str]] = set()
        out: list[dict[str, Any]] = []
        for record in records:
            for name in include:
                target = self.types[t.relationships[name].target()]
                loaded = record.__dict__.get(name)
                related = loaded if isinstance(loaded, list | tuple) else [loaded]
                for r in related:
                    if r is None:
                        continue
                    key = (target.name, str(r.__dict__.get(target.pk)))
                    if key not in seen:
                        seen.add(key)
                        out.append(self.resource_object(target, r, fields))
        return out

    def single(
        self,
        t: ApiType,
        record: Any,
        *,
        include: Sequence[str] = (),
        fields: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """A document holding one record (and what *include* names of it)."""
        fields = fields or {}
        doc: dict[str, Any] = {"data": self.resource_object(t, record, fields)}
        if include and not self.plain:
            doc["included"] = self._included(t, [record], include, fields)
        if not self.plain and "links" in doc["data"]:
            doc["links"] = {"self": doc["data"]["links"]["self"]}
        return doc

    def many(
        self,
        t: ApiType,
        records: Sequence[Any],
        *,
        include: Sequence[str] = (),
        fields: Mapping[str, Sequence[str]] | None = None,
        links: Mapping[str, str | None] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A document holding a list of records, with *links* (``self``, ``next``) and
        *meta* (the page)."""
        fields = fields or {}
        plan = self._plan(t)
        if self.plain or plan.relationships or t.name in fields:
            data = [self.resource_object(t, r, fields) for r in records]
        else:  # the usual list: resource_object's work without a call and checks per record
            data = [self._simple_object(t.name, plan, t.pk, r.__dict__) for r in records]
        doc: dict[str, Any] = {"data": data}
        if include and not self.plain:
            doc["included"] = self._included(t, records, include, fields)
        if links is not None:
            doc["links"] = dict(links)
        if meta is not None:
            doc["meta"] = dict(meta)
        return doc


#: One encoder for every document (json.dumps with options builds a new one per call).
#: Documents are trees of our own dicts and lists (no cycles): no check for them.
_JSON = json.JSONEncoder(
    default=encode_value, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


@dataclass(frozen=True)
class _Plan:
    """A type's fields with their converters, its linked relationships ``(name, target
    type, foreign key or None)``, the start of its records' own links (``""``: they have
    none), the key's converter."""

    fields: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    relationships: tuple[tuple[str, ApiType, str | None], ...]
    linked: str
    pk: Callable[[Any], Any] | None


def _converter(python_type: Any) -> Callable[[Any], Any] | None:
    """What turns a value of *python_type* into JSON's own (``None``: it is one already),
    so documents encode without a callback per value."""
    if python_type in (str, int, float, bool):
        return None
    if python_type in (uuid.UUID, decimal.Decimal):
        return str
    if python_type in (dt.datetime, dt.date):
        return _isoformat
    return _any


def _isoformat(value: Any) -> Any:
    kind = type(value)
    if kind is dt.datetime or kind is dt.date or isinstance(value, dt.date):
        return value.isoformat()
    return value


_ABSENT = object()


def _any(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | list | dict):
        return value
    try:
        return encode_value(value)
    except TypeError:
        return str(value)


def _identifier(target: ApiType, record: Any) -> dict[str, str]:
    return {"type": target.name, "id": str(record.__dict__.get(target.pk))}
