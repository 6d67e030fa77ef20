"""The OpenAPI 3.1 document of a :class:`~web.api.JsonApi`, generated from the same
declarations that route its requests: each type's fields (their JSON Schema from the
attributes' types and constraints), each route's parameters, body and responses, the bearer
scheme and the sign-in route::

    document = openapi_document(api)       # served at GET <prefix>/openapi.json
    document["paths"]["/api/messages"]["get"]["parameters"][0]["name"]   # 'filter[id]'
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._api_query import OPERATORS
from ._api_routes import Route
from ._api_types import INT_MAX, INT_MIN, ApiType

if TYPE_CHECKING:
    from ._api import JsonApi

__all__ = ["attribute_schema", "openapi_document"]

_ERRORS = {"$ref": "#/components/schemas/errors"}
_REASONS = {
    400: "Bad request: a malformed body or query parameter (each error names it and the fix)",
    401: "No valid bearer token (see WWW-Authenticate)",
    403: "The actor may not run this action",
    404: "No such record, or the actor may not see it",
    405: "Method not allowed",
    406: "The Accept header does not take the API's media type",
    409: "The body's type or id does not match the route",
    415: "Unsupported content type",
    422: "Invalid input: one error per field, with source.pointer",
    429: "Rate limited (see Retry-After)",
    503: "The database did not answer in time; safe to retry",
}


def attribute_schema(attr: Any) -> dict[str, Any]:
    """The JSON Schema of a value of the attribute (or argument) *attr*.

    >>> attribute_schema(Message.__attributes__["room_id"])
    {'type': 'string', 'format': 'uuid'}
    """
    pt = attr.python_type
    schema: dict[str, Any]
    if pt is str:
        schema = {"type": "string"}
        if attr.min_length is not None:
            schema["minLength"] = attr.min_length
        if attr.max_length is not None:
            schema["maxLength"] = attr.max_length
        if attr.match is not None:
            schema["pattern"] = attr.match
        elif attr.min_length and getattr(attr, "trim", False):
            schema["pattern"] = _SOME_TEXT  # blanks are trimmed away: "  " is no text
        else:
            schema["pattern"] = _TEXT
    elif pt is bool:
        schema = {"type": "boolean"}
    elif pt is int:
        schema = {"type": "integer"}
    elif pt is float:
        schema = {"type": "number"}
    elif pt is decimal.Decimal:
        schema = {"type": "string", "format": "decimal"}
    elif pt is uuid.UUID:
        schema = {"type": "string", "format": "uuid"}
    elif pt is dt.datetime:
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(pt, type) and issubclass(pt, enum.Enum):
        schema = {"enum": [m.value for m in pt]}
    else:
        schema = {}
    if pt in (int, float):
        if attr.min is not None:
            schema["minimum"] = attr.min
        if attr.max is not None:
            schema["maximum"] = attr.max
    if pt is int:  # what a database column holds
        schema.setdefault("minimum", INT_MIN)
        schema.setdefault("maximum", INT_MAX)
    if attr.one_of is not None:
        schema["enum"] = list(attr.one_of)
    if attr.allow_nil:
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
    if getattr(attr, "description", ""):
        schema["description"] = attr.description
    return schema


#: Text without NUL characters (no database column takes them), and such text with at least
#: one character that is not blank.
_TEXT = "^[^\\u0000]*$"
_SOME_TEXT = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$"


def _filter_schema(attr: Any) -> dict[str, Any]:
    """What ``filter[name]=value`` takes for *attr*: a value of its type, no constraint of
    its own (a filter may look for what an input may not be)."""
    pt = attr.python_type
    plain: dict[Any, dict[str, Any]] = {
        bool: {"type": "boolean"},
        int: {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
        float: {"type": "number"},
        uuid.UUID: {"type": "string", "format": "uuid"},
        dt.datetime: {"type": "string", "format": "date-time"},
    }
    if pt in plain:
        return dict(plain[pt])
    if isinstance(pt, type) and issubclass(pt, enum.Enum):
        return {"enum": [m.value for m in pt]}
    return {"type": "string", "pattern": _TEXT}


def _list_of(names: Sequence[str], *, sign: bool = False, most: int | None = None) -> str:
    """A pattern for comma-separated *names* (``-`` before each with *sign*), or nothing."""
    one = ("-?" if sign else "") + "(" + "|".join(re.escape(n) for n in names) + ")"
    repeat = "*" if most is None else "{0," + str(most - 1) + "}"
    return f"^({one}(,{one}){repeat})?$"  # empty: none


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _resource_schemas(api: JsonApi, t: ApiType) -> dict[str, Any]:
    attrs = t.resource.__attributes__
    properties = {n: attribute_schema(attrs[n]) for n in t.fields}
    schemas: dict[str, Any] = {}
    linked = {
        n: api.types[r.target()] for n, r in t.relationships.items() if r.target() in api.types
    }
    if api.plain:
        props: dict[str, Any] = {"id": attribute_schema(attrs[t.pk]), **properties}
        for name, target in linked.items():
            rel = t.relationships[name]
            one = {"oneOf": [_ref(target.name), {"type": "null"}]}
            props[name] = (
                one
                if rel.kind in ("belongs_to", "has_one")
                else {"type": "array", "items": _ref(target.name)}
            )
        schemas[t.name] = {"type": "object", "required": ["id"], "properties": props}
        return schemas
    schemas[f"{t.name}_attributes"] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    relationships = {}
    for name, target in linked.items():
        rel = t.relationships[name]
        ident = {
            "type": "object",
            "required": ["type", "id"],
            "properties": {"type": {"const": target.name}, "id": {"type": "string"}},
        }
        data = (
            {"oneOf": [ident, {"type": "null"}]}
            if rel.kind in ("belongs_to", "has_one")
            else {"type": "array", "items": ident}
        )
        relationships[name] = {"type": "object", "properties": {"data": data}}
    schemas[t.name] = {
        "type": "object",
        "required": ["type", "id", "attributes"],
        "properties": {
            "type": {"const": t.name},
            "id": {"type": "string"},
            "attributes": _ref(f"{t.name}_attributes"),
            "relationships": {"type": "object", "properties": relationships},
            "links": {"type": "object", "properties": {"self": {"type": "string"}}},
        },
    }
    return schemas


def _documents(api: JsonApi, t: ApiType) -> dict[str, Any]:
    any_resource = {"oneOf": [_ref(x.name) for x in api.types.values()]}
    links = {
        "type": "object",
        "properties": {"self": {"type": "string"}, "next": {"type": ["string", "null"]}},
    }
    single: dict[str, Any] = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": _ref(t.name)},
    }
    many: dict[str, Any] = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": _ref(t.name)},
            "links": links,
            "meta": {"type": "object"},
        },
    }
    if not api.plain:
        for doc in (single, many):
            doc["properties"]["included"] = {"type": "array", "items": any_resource}
        single["properties"]["links"] = links
    return {f"{t.name}_document": single, f"{t.name}_list": many}


def _input_schema(api: JsonApi, t: ApiType, route: Route) -> dict[str, Any] | None:
    action = t.action(route.action or route.input)
    if action is None:
        return None
    attrs = t.resource.__attributes__
    properties = {n: attribute_schema(attrs[n]) for n in (action.accept or ())}
    required = []
    if action.type == "create":
        required = [
            n
            for n in (action.accept or ())
            if not attrs[n].allow_nil and not attrs[n].has_default()
        ]
    for arg in action.arguments:
        properties[arg.name] = attribute_schema(arg.attr)
        if not arg.attr.allow_nil and arg.attr.default is None:
            required.append(arg.name)
    attributes: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        attributes["required"] = required
    if api.plain:
        return attributes
    relationships: dict[str, Any] = {}
    for name, rel in t.relationships.items():
        if (
            rel.kind == "belongs_to"
            and rel.source_attribute in properties
            and rel.target() in api.types
        ):
            target = api.types[rel.target()]
            relationships[name] = {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "object",
                        "required": ["type", "id"],
                        "properties": {"type": {"const": target.name}, "id": {"type": "string"}},
                    }
                },
            }
    data: dict[str, Any] = {
        "type": "object",
        "required": ["type", "attributes"] if required else ["type"],
        "properties": {
            "type": {"const": t.name},
            "id": {"type": "string"},
            "attributes": attributes,
        },
    }
    if relationships:
        data["properties"]["relationships"] = {
            "type": "object",
            "properties": relationships,
            "additionalProperties": False,
        }
    return {"type": "object", "required": ["data"], "properties": {"data": data}}


def _query_parameters(api: JsonApi, t: ApiType, route: Route) -> list[dict[str, Any]]:
    attrs = t.resource.__attributes__
    params: list[dict[str, Any]] = []
    ops = ", ".join(OPERATORS)
    for name in (t.pk, *t.fields):
        params.append(
            {
                "name": f"filter[{name}]",
                "in": "query",
                "required": False,
                "description": (
                    f"Only records whose {name} equals this; filter[{name}][<op>] takes the "
                    f"operators {ops}"
                ),
                "schema": _filter_schema(attrs[name]),
            }
        )
    sortable = ", ".join((t.pk, *t.fields))
    params += [
        {
            "name": "sort",
            "in": "query",
            "required": False,
            "description": f"Comma-separated fields, - for descending: {sortable}",
            "schema": {"type": "string", "pattern": _list_of((t.pk, *t.fields), sign=True, most=5)},
        },
        {
            "name": "page[limit]",
            "in": "query",
            "required": False,
            "description": f"Records per page (default {route.default_limit})",
            "schema": {"type": "integer", "minimum": 1, "maximum": route.max_limit},
        },
        {
            "name": "page[offset]",
            "in": "query",
            "required": False,
            "description": "Offset paging: skip this many records",
            "schema": {"type": "integer", "minimum": 0, "maximum": 10**9},
        },
        {
            "name": "page[after]",
            "in": "query",
            "required": False,
            "description": "Keyset paging (the default): the cursor from meta.page.after",
            "schema": {"type": "string"},
        },
    ]
    action = t.action(route.action)
    for arg in action.arguments if action is not None else ():
        params.append(
            {
                "name": arg.name,
                "in": "query",
                "required": not arg.attr.allow_nil and arg.attr.default is None,
                "schema": attribute_schema(arg.attr),
            }
        )
    return params


def _shape_parameters(api: JsonApi, t: ApiType) -> list[dict[str, Any]]:
    includable = [n for n, r in t.relationships.items() if r.target() in api.types]
    params: list[dict[str, Any]] = []
    if includable:
        params.append(
            {
                "name": "include",
                "in": "query",
                "required": False,
                "description": f"Comma-separated relationships to include: {', '.join(includable)}",
                "schema": {"type": "string", "pattern": _list_of(includable)},
            }
        )
    for other in api.types.values():
        params.append(
            {
                "name": f"fields[{other.name}]",
                "in": "query",
                "required": False,
                "description": f"Sparse fieldset of {other.name}: comma-separated fields",
                "schema": {
                    "type": "string",
                    "pattern": _list_of((*other.fields, *other.relationships)),
                },
            }
        )
    return params


def _errors(media: str, *statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": _REASONS[s], "content": {media: {"schema": _ERRORS}}}
        for s in statuses
    }


def _operation(api: JsonApi, t: ApiType, route: Route, used: set[str]) -> dict[str, Any]:
    media = "application/json" if api.plain else "application/vnd.api+json"
    action = t.action(route.action)
    what = route.action or getattr(route.handler, "__name__", "call")
    if route.kind == "action":
        name = f"{t.name}_{what}"
    else:
        verb = "list" if route.kind == "index" else route.kind
        defaults = {"index": "read", "get": "read", "create": "create", "update": "update"}
        default = defaults.get(route.kind, "destroy")
        name = f"{verb}_{t.name}" + ("" if what == default else f"_{what}")
    op_id = re.sub(r"[^A-Za-z0-9_]", "_", name)
    while op_id in used:
        op_id += "_"
    used.add(op_id)
    summary = route.summary or {
        "index": f"List {t.name} ({what})",
        "get": f"Get one of {t.name} ({what})",
        "create": f"Create one of {t.name} ({what})",
        "update": f"Update one of {t.name} ({what})",
        "destroy": f"Delete one of {t.name} ({what})",
    }.get(route.kind, f"{what} on {t.name}")
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [t.name]}
    params: list[dict[str, Any]] = []
    if route.on_record:
        params.append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
    statuses = [400, 401, 406, 429]
    lists = route.reads and (action is not None or route.handler is None)
    if lists:
        params += _query_parameters(api, t, route) + _shape_parameters(api, t)
    elif route.kind == "get":
        params += _shape_parameters(api, t)
    if route.on_record:
        statuses.append(404)
    writes = route.method != "GET"
    if writes or route.handler is not None:
        statuses += [403, 422]
    if writes:
        statuses.append(415)
        if not api.plain:
            statuses.append(409)
        body = _input_schema(api, t, route)
        if body is not None:
            op["requestBody"] = {
                "required": route.kind in ("create", "update"),
                "content": {media: {"schema": body}},
            }
    if params:
        op["parameters"] = params
    ok = (
        "201"
        if route.kind == "create" or (action is not None and action.type == "create")
        else "200"
    )
    if route.handler is not None and route.input is not None:
        ok = "201" if route.method == "POST" and route.path == "" else "200"
        doc = f"{t.name}_document"
        op["responses"] = {ok: {"description": "OK", "content": {media: {"schema": _ref(doc)}}}}
    elif route.handler is not None:
        op["responses"] = {
            "200": {"description": "Done", "content": {media: {"schema": {"type": "object"}}}},
            "204": {"description": "Done, nothing to send"},
        }
    else:
        doc = f"{t.name}_list" if lists else f"{t.name}_document"
        op["responses"] = {ok: {"description": "OK", "content": {media: {"schema": _ref(doc)}}}}
    op["responses"].update(_errors(media, *sorted(set(statuses))))
    return op


def openapi_document(api: JsonApi) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing *api* (see the module docstring).

    >>> openapi_document(api)["components"]["securitySchemes"]
    {'bearer': {'type': 'http', 'scheme': 'bearer'}}
    """
    schemas: dict[str, Any] = {
        "errors": {
            "type": "object",
            "required": ["errors"],
            "properties": {"errors": {"type": "array", "items": _ref("error")}},
        },
        "error": {
            "type": "object",
            "required": ["status", "title", "detail"],
            "properties": {
                "status": {"type": "string"},
                "code": {"type": "string"},
                "title": {"type": "string"},
                "detail": {"type": "string"},
                "source": {
                    "type": "object",
                    "properties": {
                        "pointer": {"type": "string"},
                        "parameter": {"type": "string"},
                        "header": {"type": "string"},
                    },
                },
            },
        },
    }
    paths: dict[str, Any] = {}
    used: set[str] = set()
    for t in api.types.values():
        schemas.update(_resource_schemas(api, t))
        schemas.update(_documents(api, t))
        for route in t.routes:
            path = f"{api.prefix}/{t.name}{route.path}"
            paths.setdefault(path, {})[route.method.lower()] = _operation(api, t, route, used)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": api.version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if api.description:
        document["info"]["description"] = api.description
    if api.tokens is not None:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        if not api.public:
            document["security"] = [{"bearer": []}]
    if api.signin is not None:
        document["paths"][api.prefix + api.signin.path] = _signin_paths(api)
    return document


def _signin_paths(api: JsonApi) -> dict[str, Any]:
    signin = api.signin
    assert signin is not None
    media = "application/json" if api.plain else "application/vnd.api+json"
    fields = {f: {"type": "string", "minLength": 1} for f in signin.fields}
    attributes = {"type": "object", "required": list(signin.fields), "properties": fields}
    token = {
        "type": "object",
        "required": ["token", "token_type", "expires_in"],
        "properties": {
            "token": {"type": "string"},
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer"},
        },
    }
    if api.plain:
        body, answer = attributes, token
    else:
        body = {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "object",
                    "required": ["type", "attributes"],
                    "properties": {"type": {"const": signin.type}, "attributes": attributes},
                }
            },
        }
        answer = {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "object",
                    "required": ["type", "id", "attributes"],
                    "properties": {
                        "type": {"const": signin.type},
                        "id": {"type": "string"},
                        "attributes": token,
                    },
                }
            },
        }
    out: dict[str, Any] = {
        "post": {
            "operationId": "sign_in",
            "summary": "Sign in: a bearer token for these credentials",
            "tags": ["session"],
            "security": [],
            "requestBody": {"required": True, "content": {media: {"schema": body}}},
            "responses": {
                "201": {"description": "Signed in", "content": {media: {"schema": answer}}},
                **_errors(media, 400, 401, 406, 415, 422, 429),
            },
        }
    }
    if signin.revoke is not None:
        out["delete"] = {
            "operationId": "sign_out",
            "summary": "Sign out: revoke this bearer token",
            "tags": ["session"],
            "security": [{"bearer": []}],
            "responses": {
                "204": {"description": "Signed out"},
                **_errors(media, 401, 406, 429),
            },
        }
    return out
