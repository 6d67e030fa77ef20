"""Records as JSON:API documents (``data``, ``attributes``, ``relationships``, ``included``,
``links``, ``meta``), or as plain JSON objects in the API's plain mode.

A record is read structurally (its attribute values are in its ``__dict__``, loaded
relationships too), so this module needs nothing of domain::

    docs = Documents(types, "/api", plain=False)
    body = docs.encode(docs.many(messages_type, records, include=("author",), fields={}))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
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

    def encode(self, document: Any) -> bytes:
        """The document as UTF-8 JSON (UUIDs, datetimes and decimals as strings)."""
        return json.dumps(
            document, default=encode_value, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def _shown(self, t: ApiType, fields: Mapping[str, Sequence[str]]) -> tuple[Sequence[str], Any]:
        wanted = fields.get(t.name)
        if wanted is None:
            return t.fields, None
        return [f for f in t.fields if f in wanted], set(wanted)

    def resource_object(
        self,
        t: ApiType,
        record: Any,
        fields: Mapping[str, Sequence[str]],
    ) -> dict[str, Any]:
        """One record as a resource object (or a plain object), its fields as *fields*
        (sparse fieldsets, by type name) allow."""
        values = record.__dict__
        names, wanted = self._shown(t, fields)
        key = values.get(t.pk)
        if self.plain:
            obj = {"id": key}
            obj.update((n, values[n]) for n in names if n in values)
            for rname, rel in t.relationships.items():
                if rname in values and (wanted is None or rname in wanted):
                    target = self.types.get(rel.target())
                    if target is not None:
                        obj[rname] = self._plain_related(target, values[rname], fields)
            return obj
        out: dict[str, Any] = {
            "type": t.name,
            "id": str(key),
            "attributes": {n: values[n] for n in names if n in values},
        }
        relationships: dict[str, Any] = {}
        for rname, rel in t.relationships.items():
            if wanted is not None and rname not in wanted:
                continue
            target = self.types.get(rel.target())
            if target is None:
                continue
            if rname in values:
                loaded = values[rname]
                if isinstance(loaded, list | tuple):
                    relationships[rname] = {"data": [_identifier(target, r) for r in loaded]}
                else:
                    relationships[rname] = {
                        "data": None if loaded is None else _identifier(target, loaded)
                    }
            elif rel.kind == "belongs_to" and rel.source_attribute in values:
                fk = values[rel.source_attribute]
                relationships[rname] = {
                    "data": None if fk is None else {"type": target.name, "id": str(fk)}
                }
        if relationships:
            out["relationships"] = relationships
        if any(r.kind == "get" for r in t.routes):
            out["links"] = {"self": f"{self.prefix}/{t.name}/{key}"}
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
        doc: dict[str, Any] = {"data": [self.resource_object(t, r, fields) for r in records]}
        if include and not self.plain:
            doc["included"] = self._included(t, records, include, fields)
        if links is not None:
            doc["links"] = dict(links)
        if meta is not None:
            doc["meta"] = dict(meta)
        return doc


def _identifier(target: ApiType, record: Any) -> dict[str, str]:
    return {"type": target.name, "id": str(record.__dict__.get(target.pk))}
