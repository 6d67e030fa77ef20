"""The JSON API (AshJsonApi's job): routes derived from a domain's resources and actions.

A :class:`JsonApi` is given a domain (anything with the ``Domain`` class methods ``read``,
``page``, ``create``, ``update`` and ``destroy``) and, per resource, the routes that expose
its actions (see :mod:`web._api_routes`); mounted on an :class:`~web.Endpoint` it answers
every request under its prefix, beside the site's pages and sockets, on the same port::

    api = JsonApi(Chat, prefix="/api", tokens=BearerTokens(secret, load), scope="api")
    api.resource(Room, "rooms", index("read"), get("read"), post("open"))
    api.resource(Message, "messages", index("read"), post("send"), patch("edit"))
    api.sign_in(issue, revoke=revoke)          # POST /api/session -> a bearer token
    api.mount(endpoint)                        # also GET /api/openapi.json

Each request: the route is matched (404, 405), the actor comes from the bearer token (401
with ``WWW-Authenticate``), the rate limits are counted (429 with ``Retry-After``), the query
string or body is read (400, 415), the action runs as the actor (policies: read policies
filter rows, a forbidden write is 403; ``Invalid`` is 422 with a pointer per field), and the
records go back as a JSON:API document (``application/vnd.api+json``) or, in plain mode,
as plain JSON. Nothing a client sends yields a 500: a failure of ours is logged and answered
with a JSON error object carrying no trace.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import beam

from ._api_auth import BearerTokens, Unauthorized
from ._api_docs import serve_docs
from ._api_documents import JSONAPI, Documents
from ._api_errors import ApiError, error_object, from_exception
from ._api_openapi import openapi_document
from ._api_query import parse_query
from ._api_routes import ApiCall, Route
from ._api_types import ApiType, parse_value, unstorable
from .http import RATE_LIMITER, Endpoint, RateLimited, Request, Response, Shared, rate_limit

__all__ = ["JsonApi", "SignIn"]

logger = logging.getLogger("web.api")

#: What :meth:`JsonApi.sign_in` calls: ``await issue(attributes, request)`` -> the id of the
#: stored token row, or ``None`` for wrong credentials.
Issue = Callable[[Mapping[str, Any], Request], Awaitable[str | None]]
#: ``await revoke(token_id, actor)``: delete the row (sign out).
Revoke = Callable[[str, Any], Awaitable[None]]
#: A rate limiter: its registered name or pid, or a :class:`~web.Shared` one.
Server = str | beam.Pid | Shared


@dataclass(frozen=True)
class SignIn:
    """The token-issuing route: ``POST <prefix><path>`` with *fields*, ``DELETE`` to sign
    out (see :meth:`JsonApi.sign_in`)."""

    issue: Issue
    revoke: Revoke | None
    path: str
    fields: tuple[str, ...]
    type: str


@dataclass(frozen=True)
class _Compiled:
    t: ApiType
    route: Route
    pattern: re.Pattern[str]


class JsonApi:
    """A JSON API over *domain* (see the module docstring).

    *tokens* authenticates (``None``: no authentication, every actor is ``None``); with
    ``public=False`` (the default) a request without a token is refused (401). *scope* is
    a rate-limit scope of *limiter* counted for every request (per actor, else per client
    address). *plain* answers plain JSON instead of JSON:API documents.

    >>> api = JsonApi(Chat, prefix="/api", tokens=tokens, scope="api")
    """

    def __init__(
        self,
        domain: Any,
        *,
        prefix: str = "/api",
        tokens: BearerTokens | None = None,
        public: bool = False,
        plain: bool = False,
        scope: str | None = None,
        limiter: Server = RATE_LIMITER,
        title: str = "API",
        version: str = "1.0.0",
        description: str = "",
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"an API prefix starts with '/' and does not end with one: {prefix!r}")
        self.domain = domain
        self.prefix = prefix
        self.tokens = tokens
        self.public = public or tokens is None
        self.plain = plain
        self.scope = scope
        self.limiter = limiter
        self.title = title
        self.version = version
        self.description = description
        self.types: dict[Any, ApiType] = {}
        self.by_name: dict[str, ApiType] = {}
        self.signin: SignIn | None = None
        self._compiled: dict[str, list[_Compiled]] = {}
        self._openapi: bytes | None = None
        self.docs = Documents(self.types, prefix, plain=plain)

    # -- declaring -----------------------------------------------------------------------------

    def resource(self, resource: Any, name: str, *routes: Route, hide: Sequence[str] = ()) -> None:
        """Expose *resource* as the type *name* through *routes* (only those); *hide* keeps
        attributes (a password hash) and relationships out of every document, filter and sort.

        >>> api.resource(User, "users", get("read"), hide=("password_hash",))
        """
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise ValueError(f"an API type name is lowercase letters, digits, - and _: {name!r}")
        if name in self.by_name or resource in self.types:
            raise ValueError(f"{name!r} ({resource.__name__}) is exposed twice")
        if self.signin is not None and name == self.signin.path.strip("/").split("/")[0]:
            raise ValueError(f"{name!r} is the sign-in path")
        t = ApiType.build(resource, name, routes, hide)
        self.types[resource] = t
        self.by_name[name] = t
        compiled = []
        # Literal paths before {id}, so /read_all is not taken for a record's id.
        for r in sorted(routes, key=lambda r: ("{id}" in r.path, r.path)):
            regex = "^" + re.escape(r.path).replace(re.escape("{id}"), "(?P<id>[^/]+)") + "$"
            compiled.append(_Compiled(t, r, re.compile(regex)))
        self._compiled[name] = compiled
        self._openapi = None
        self.docs.forget()

    def sign_in(
        self,
        issue: Issue,
        *,
        revoke: Revoke | None = None,
        path: str = "/session",
        fields: Sequence[str] = ("username", "password"),
        type: str = "session",  # noqa: A002 - the JSON:API member's name
    ) -> None:
        """Declare the action that issues tokens: ``POST <prefix><path>`` with *fields*
        calls ``await issue(attributes, request)``, which answers the id of the token row it
        stored (or ``None``: 401); the client gets ``tokens.sign(id)``. With *revoke*,
        ``DELETE <prefix><path>`` (with the token) calls ``await revoke(token_id, actor)``.
        Counted in the API's scope per client address.

        >>> api.sign_in(issue, revoke=revoke)      # POST /api/session {username, password}
        """
        if self.tokens is None:
            raise ValueError("sign_in needs the API's tokens (JsonApi(..., tokens=...))")
        if not re.fullmatch(r"(/[a-z][a-z0-9_-]*)+", path):
            raise ValueError(f"a sign-in path is /-separated lowercase segments: {path!r}")
        self.signin = SignIn(issue, revoke, path, tuple(fields), type)
        self._openapi = None

    def mount(self, endpoint: Endpoint, *, docs: bool = True) -> None:
        """Answer every request under the prefix on *endpoint* (exact routes of the
        endpoint, registered before or after, still win). With *docs*, ``GET <prefix>/docs``
        is an interactive page of the OpenAPI document (Swagger UI from npm's
        ``swagger-ui-dist``, served from ``node_modules``, no CDN).

        >>> api.mount(endpoint)          # then open http://localhost:4000/api/docs
        """
        endpoint.forward(self.prefix, self.handle)
        if docs:
            serve_docs(endpoint, self.prefix, self.title)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this API (what ``GET <prefix>/openapi.json`` serves).

        >>> api.openapi()["openapi"]
        '3.1.0'
        """
        return openapi_document(self)

    # -- answering -----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one request under the prefix (the endpoint calls it).

        >>> response = await api.handle(request)
        """
        try:
            return await self._handle(request)
        except ApiError as exc:
            return self._error(exc)
        except RateLimited as exc:
            return self._rate_limited(exc)
        except Exception as exc:
            unavailable = from_exception(exc, pointer=lambda _field: None)
            if unavailable is not None and unavailable.status == 503:  # the database, anywhere
                return self._error(unavailable)
            logger.exception("API request %s %s failed", request.method, request.path)
            return self._error(
                ApiError.one(500, "the server failed to answer; this is a bug of ours")
            )

    async def _handle(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        path = request.path[len(self.prefix) :]
        if path == "/openapi.json":
            if method != "GET":
                raise ApiError.one(
                    405, f"{request.path} answers GET", headers=(("allow", "GET, HEAD"),)
                )
            if self._openapi is None:
                self._openapi = json.dumps(self.openapi(), separators=(",", ":")).encode()
            return Response(200, self._openapi, (("content-type", "application/json"),))
        self._acceptable(request)
        if self.signin is not None and path == self.signin.path:
            return await self._session(method, request)
        compiled, record_id = self._match(method, path, request.path)
        actor = await self._actor(request)
        await self._count(request, actor, compiled.route)
        return await self._run(request, compiled.t, compiled.route, record_id, actor)

    def _acceptable(self, request: Request) -> None:
        """406 unless the ``Accept`` header (when there is one) takes what we send: a JSON:API
        media type with parameters other than ``q`` does not count, as the spec says."""
        accept = request.header("accept")
        if accept is None:
            return
        ours = self.docs.media_type
        for item in accept.split(","):
            media, *params = (part.strip().lower() for part in item.split(";"))
            extra = [p for p in params if p and not p.startswith("q=")]
            if media in ("*/*", "application/*", "application/json", ours) and not (
                media == JSONAPI and extra
            ):
                return
        raise ApiError.one(
            406,
            f"this API answers {ours}; the Accept header ({accept[:100]!r}) does not take it",
            header="accept",
        )

    def _match(self, method: str, path: str, full: str) -> tuple[_Compiled, str | None]:
        name, _, rest = path.lstrip("/").partition("/")
        rest = "/" + rest if rest else ""
        candidates = self._compiled.get(name) if path.startswith("/") else None
        if not candidates:
            known = ", ".join(f"{self.prefix}/{n}" for n in sorted(self._compiled))
            raise ApiError.one(404, f"no API route {full}; the collections are {known or 'none'}")
        matches = [(c, m) for c in candidates if (m := c.pattern.match(rest)) is not None]
        literal = [(c, m) for c, m in matches if not c.route.on_record]
        if literal:  # /notes/search is that route, never the note with id "search"
            matches = literal
        for c, m in matches:
            if c.route.method == method:
                return c, m.groupdict().get("id")
        allowed = [c.route.method for c, _ in matches]
        if allowed:
            allow = ", ".join(sorted({*allowed, *(["HEAD"] if "GET" in allowed else [])}))
            raise ApiError.one(
                405,
                f"{method} is not allowed on {full} (allowed: {allow})",
                headers=(("allow", allow),),
            )
        raise ApiError.one(404, f"no API route {full}")

    async def _actor(self, request: Request) -> Any:
        header = request.header("authorization")
        if self.tokens is None:
            return None
        if header is None:
            if self.public:
                return None
            raise self._unauthorized(
                Unauthorized("this API needs a bearer token (Authorization: Bearer <token>)")
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(
                Unauthorized(
                    "the Authorization header is not 'Bearer <token>'", error="invalid_request"
                ),
                status=401,
            )
        try:
            return await self.tokens.actor(token.strip())
        except Unauthorized as exc:
            raise self._unauthorized(exc) from None

    def _unauthorized(self, exc: Unauthorized, status: int = 401) -> ApiError:
        assert self.tokens is not None
        challenge = self.tokens.challenge(exc.error, exc.message if exc.error else None)
        return ApiError.one(
            status,
            exc.message,
            code=exc.error or "unauthorized",
            header="authorization",
            headers=(("www-authenticate", challenge),),
        )

    async def _count(self, request: Request, actor: Any, route: Route | None) -> None:
        key = _client_key(request, actor)
        if self.scope is not None:
            await rate_limit(self.scope, key, server=self.limiter)
        if route is not None and route.limit is not None:
            await rate_limit(route.limit, key, server=self.limiter)

    def _rate_limited(self, exc: RateLimited) -> Response:
        wait = str(max(1, math.ceil(exc.retry_after)))
        return self._error(
            ApiError.one(429, str(exc), code="rate_limited", headers=(("retry-after", wait),))
        )

    def _respond(self, status: int, document: Any, *headers: tuple[str, str]) -> Response:
        body = self.docs.encode(document)
        return Response(status, body, (("content-type", self.docs.media_type), *headers))

    def _error(self, exc: ApiError) -> Response:
        return self._respond(exc.status, {"errors": exc.errors}, *exc.headers)

    # -- the routes ----------------------------------------------------------------------------

    async def _run(
        self, request: Request, t: ApiType, route: Route, record_id: str | None, actor: Any
    ) -> Response:
        kind = route.kind
        action = t.action(route.action)
        if kind == "action" and route.handler is not None:
            return await self._call(request, t, route, record_id, actor)
        if kind == "index" or (kind == "action" and action is not None and action.type == "read"):
            return await self._index(request, t, route, actor)
        if kind == "get":
            assert record_id is not None
            spec = parse_query(request.query, t, route, self.types, by_name=self.by_name)
            record = await self._fetch(t, record_id, actor, route.action, spec.include)
            return self._respond(
                200, self.docs.single(t, record, include=spec.include, fields=spec.fields)
            )
        self._no_query(request)
        if kind == "create" or (action is not None and action.type == "create"):
            values, pointers = self._body(request, t, None, required=True, action=action)
            record = await self._write(
                self.domain.create(t.resource, route.action, values, actor=actor),
                pointers,
                _inputs(t, action, values),
            )
            location = f"{self.prefix}/{t.name}/{record.__dict__.get(t.pk)}"
            return self._respond(201, self.docs.single(t, record), ("location", location))
        assert record_id is not None
        original = await self._fetch(t, record_id, actor, None, ())
        values, pointers = self._body(
            request,
            t,
            record_id,
            required=kind == "update" and request.method != "DELETE",
            action=action,
        )
        if action is not None and action.type == "destroy":
            run = self.domain.destroy(original, route.action, values, actor=actor)
        else:
            run = self.domain.update(original, route.action, values, actor=actor)
        record = await self._write(run, pointers, _inputs(t, action, values))
        return self._respond(200, self.docs.single(t, record))

    def _no_query(self, request: Request) -> None:
        if request.query:
            names = ", ".join(sorted(request.query))
            raise ApiError.one(
                400,
                f"a write takes no query parameters (got {names}); send the input in the body",
                parameter=sorted(request.query)[0],
            )

    async def _index(self, request: Request, t: ApiType, route: Route, actor: Any) -> Response:
        spec = parse_query(request.query, t, route, self.types, by_name=self.by_name)
        options: dict[str, Any] = {
            "actor": actor,
            "filter": spec.filter,
            "sort": spec.sort,
            "load": spec.include,
            "arguments": dict(spec.arguments),
        }
        try:
            if spec.after is not None:
                page = await self.domain.page(
                    t.resource, route.action, limit=spec.limit, after=spec.after, **options
                )
                records, more, cursor = page.results, page.more, page.after
                meta = {"page": {"limit": spec.limit, "after": cursor, "more": more}}
                following = {"page[after]": cursor} if more else None
            else:
                offset = spec.offset or 0
                rows = await self.domain.read(
                    t.resource, route.action, limit=spec.limit + 1, offset=offset, **options
                )
                records, more = rows[: spec.limit], len(rows) > spec.limit
                meta = {"page": {"limit": spec.limit, "offset": offset, "more": more}}
                following = {"page[offset]": str(offset + spec.limit)} if more else None
        except Exception as exc:
            error = from_exception(exc, pointer=lambda f: None, parameter=_parameter, reading=True)
            if error is None:
                raise
            raise error from None
        links = {
            "self": _url(request, None),
            "next": _url(request, following) if following else None,
        }
        document = self.docs.many(
            t, records, include=spec.include, fields=spec.fields, links=links, meta=meta
        )
        return self._respond(200, document)

    async def _fetch(
        self, t: ApiType, record_id: str, actor: Any, action: str | None, include: Sequence[str]
    ) -> Any:
        """The record *record_id* as *actor* may read it; 404 when there is none to see."""
        try:
            key = parse_value(t.resource.__attributes__[t.pk], record_id)
        except ValueError:
            raise _missing(t, record_id) from None
        try:
            found = await self.domain.read(
                t.resource, action, actor=actor, filter={t.pk: key}, load=tuple(include), limit=1
            )
        except Exception as exc:
            error = from_exception(exc, pointer=lambda f: None, parameter=_parameter, reading=True)
            if error is None:
                raise
            raise error from None
        if not found:
            raise _missing(t, record_id)
        return found[0]

    async def _write(
        self, run: Awaitable[Any], pointers: Mapping[str, str], values: Collection[str]
    ) -> Any:
        """Await the write *run*; the domain's errors become error objects, each pointing at
        the input it names (one of *values*: the sent input, the resource's attributes and
        the action's arguments; else ``/data``, an error of the whole record, such as a
        reference to a record that does not exist)."""
        try:
            return await run
        except Exception as exc:

            def pointer(field: str) -> str:
                if field in pointers:
                    return pointers[field]
                return self._pointer(field) if field in values else ("" if self.plain else "/data")

            error = from_exception(exc, pointer=pointer)
            if error is None:
                raise
            raise error from None

    def _pointer(self, name: str) -> str:
        return f"/{name}" if self.plain else f"/data/attributes/{name}"

    def _body(
        self,
        request: Request,
        t: ApiType,
        record_id: str | None,
        *,
        required: bool,
        action: Any = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The input a write's body carries, and the JSON pointer of each input name that
        came from a relationship (``/data/relationships/room``)."""
        if not request.body.strip():
            if required:
                raise ApiError.one(400, self._body_hint(t, "the request has no body"))
            return {}, {}
        self._content_type(request)
        try:
            document = json.loads(request.body)
        except (ValueError, RecursionError) as exc:
            raise ApiError.one(
                400, f"the body is not valid JSON ({exc})", code="malformed_json"
            ) from None
        if self.plain:
            if not isinstance(document, dict):
                raise ApiError.one(400, "the body is a JSON object of the input fields", pointer="")
            problems = [
                error_object(422, f"{name} {why}", code="invalid", pointer=f"/{name}")
                for name, value in document.items()
                if (why := unstorable(value)) is not None
            ]
            if problems:
                raise ApiError(422, problems)
            return document, {}
        if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
            raise ApiError.one(
                400, self._body_hint(t, "the body has no data object"), pointer="/data"
            )
        data = document["data"]
        if data.get("type") != t.name:
            status = 400 if "type" not in data else 409
            raise ApiError.one(
                status,
                f"data.type is {data.get('type')!r}; this route takes {t.name!r}",
                pointer="/data/type",
            )
        if record_id is not None and "id" in data and str(data["id"]) != record_id:
            raise ApiError.one(
                409,
                f"data.id {data['id']!r} is not the id in the URL ({record_id!r})",
                pointer="/data/id",
            )
        if record_id is None and "id" in data and action is not None and action.type == "create":
            raise ApiError.one(
                403,
                "this API makes the ids of new records: send data without an id",
                code="client_generated_id",
                pointer="/data/id",
            )
        attributes = data.get("attributes", {})
        if not isinstance(attributes, dict):
            raise ApiError.one(400, "data.attributes is a JSON object", pointer="/data/attributes")
        values = dict(attributes)
        pointers: dict[str, str] = {}
        relationships = data.get("relationships", {})
        if not isinstance(relationships, dict):
            raise ApiError.one(
                400, "data.relationships is a JSON object", pointer="/data/relationships"
            )
        for name, linkage in relationships.items():
            where = f"/data/relationships/{name}"
            rel = t.relationships.get(name)
            settable = action is None or (
                rel is not None
                and (
                    rel.source_attribute in (action.accept or ())
                    or any(a.name == rel.source_attribute for a in action.arguments)
                )
            )
            if (
                rel is None
                or rel.kind != "belongs_to"
                or rel.target() not in self.types
                or not settable
            ):
                raise ApiError.one(
                    422, f"{name!r} is not a relationship to set here", pointer=where
                )
            if not isinstance(linkage, dict) or "data" not in linkage:
                raise ApiError.one(
                    400,
                    f'{name} takes {{"data": {{"type", "id"}}}} or {{"data": null}}',
                    pointer=where,
                )
            target = self.types[rel.target()]
            ident = linkage["data"]
            if ident is None:
                values[rel.source_attribute] = None
            elif (
                isinstance(ident, dict)
                and ident.get("type") == target.name
                and isinstance(ident.get("id"), str)
            ):
                values[rel.source_attribute] = ident["id"]
            else:
                raise ApiError.one(
                    400,
                    f'{name}.data is {{"type": {target.name!r}, "id": <string>}}',
                    pointer=where + "/data",
                )
            pointers[rel.source_attribute] = where
        problems = [
            error_object(
                422,
                f"{name} {why}",
                code="invalid",
                pointer=pointers.get(name, self._pointer(name)),
            )
            for name, value in values.items()
            if (why := unstorable(value)) is not None
        ]
        if problems:
            raise ApiError(422, problems)
        for name, rel in t.relationships.items():
            if rel.kind == "belongs_to" and rel.source_attribute in attributes:
                pointers.setdefault(
                    rel.source_attribute, f"/data/attributes/{rel.source_attribute}"
                )
            pointers.setdefault(name, f"/data/relationships/{name}")
        return values, pointers

    def _body_hint(self, t: ApiType, what: str) -> str:
        if self.plain:
            return f"{what}: send a JSON object of the input fields"
        return f'{what}: send {{"data": {{"type": "{t.name}", "attributes": {{...}}}}}}'

    def _content_type(self, request: Request) -> None:
        value = request.header("content-type") or ""
        base, _, params = value.partition(";")
        base = base.strip().lower()
        accepted = ("application/json",) if self.plain else (JSONAPI, "application/json")
        if base not in accepted or (base == JSONAPI and params.strip()):
            raise ApiError.one(
                415,
                f"the body's content-type is {value!r}; send {accepted[0]} (without parameters)",
                header="content-type",
            )

    async def _call(
        self, request: Request, t: ApiType, route: Route, record_id: str | None, actor: Any
    ) -> Response:
        """A route running an app function (see :func:`route`)."""
        record = await self._fetch(t, record_id, actor, None, ()) if record_id is not None else None
        if route.method == "GET":
            values: Mapping[str, Any] = {k: v[-1] for k, v in request.query.items() if v}
            for name, value in values.items():
                if (why := unstorable(value)) is not None:
                    raise ApiError.one(400, f"{name} {why}", parameter=name)
        else:
            self._no_query(request)
            values = (
                self._body(request, t, record_id, required=False)[0] if request.body.strip() else {}
            )
        assert route.handler is not None
        try:
            result = await route.handler(ApiCall(actor, record, values, t.resource))
        except Exception as exc:
            error = from_exception(exc, pointer=self._pointer)
            if error is None:
                raise
            raise error from None
        if result is None:
            return Response(204, b"", ())
        if isinstance(result, list | tuple):
            return self._respond(200, self.docs.many(t, list(result)))
        if hasattr(result, "__attributes__"):
            created = route.method == "POST" and route.path == ""
            return self._respond(201 if created else 200, self.docs.single(t, result))
        return self._respond(200, {"meta": result})

    async def _session(self, method: str, request: Request) -> Response:
        """The sign-in route: ``POST`` issues a token, ``DELETE`` revokes the caller's."""
        signin, tokens = self.signin, self.tokens
        assert signin is not None
        assert tokens is not None
        await self._count(request, None, None)
        if method == "DELETE" and signin.revoke is not None:
            header = request.header("authorization") or ""
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise self._unauthorized(Unauthorized("signing out needs the bearer token"))
            try:
                token_id = tokens.token_id(token.strip())
                actor = await tokens.actor(token.strip())
            except Unauthorized as exc:
                raise self._unauthorized(exc) from None
            await signin.revoke(token_id, actor)
            return Response(204, b"", ())
        if method != "POST":
            allow = "POST, DELETE" if signin.revoke is not None else "POST"
            raise ApiError.one(405, f"{request.path} answers {allow}", headers=(("allow", allow),))
        self._no_query(request)
        if not request.body.strip():
            raise ApiError.one(400, f"send {', '.join(signin.fields)}")
        self._content_type(request)
        try:
            document = json.loads(request.body)
        except (ValueError, RecursionError) as exc:
            raise ApiError.one(
                400, f"the body is not valid JSON ({exc})", code="malformed_json"
            ) from None
        if not self.plain:
            data = document.get("data") if isinstance(document, dict) else None
            attributes = data.get("attributes") if isinstance(data, dict) else None
            base = "/data/attributes/"
        else:
            attributes, base = document, "/"
        if not isinstance(attributes, dict):
            raise ApiError.one(
                400,
                f'send {{"data": {{"type": "{signin.type}", "attributes": {{...}}}}}}',
                pointer="/data",
            )
        problems = [
            error_object(422, f"{f} is required (a string)", code="invalid", pointer=base + f)
            for f in signin.fields
            if not isinstance(attributes.get(f), str)
            or not attributes[f]
            or unstorable(attributes[f]) is not None
        ]
        if problems:
            raise ApiError(422, problems)
        issued = await signin.issue({f: attributes[f] for f in signin.fields}, request)
        if issued is None:
            raise self._unauthorized(Unauthorized("wrong credentials"))
        token_id = issued
        token = tokens.sign(token_id)
        attrs = {"token": token, "token_type": "Bearer", "expires_in": int(tokens.max_age)}
        if self.plain:
            return self._respond(201, attrs)
        return self._respond(
            201, {"data": {"type": signin.type, "id": token_id, "attributes": attrs}}
        )


def _inputs(t: ApiType, action: Any, values: Mapping[str, Any]) -> set[str]:
    """The names an input error may point at: what was sent, the resource's attributes, the
    action's arguments."""
    names = {*values, *t.resource.__attributes__}
    names.update(a.name for a in (action.arguments if action is not None else ()))
    return names


def _missing(t: ApiType, record_id: str) -> ApiError:
    return ApiError.one(404, f"no {t.name} with id {record_id!r}", code="not_found")


def _client_key(request: Request, actor: Any) -> str:
    actor_id = getattr(actor, "id", None)
    if actor_id is not None:
        return f"actor:{actor_id}"
    return f"ip:{request.client[0]}" if request.client else "ip:unknown"


def _parameter(name: str) -> str:
    return {"after": "page[after]", "load": "include", "filter": "filter", "sort": "sort"}.get(
        name, name
    )


def _url(request: Request, replace: Mapping[str, str] | None) -> str:
    if not replace:
        return request.path + ("?" + request.query_string if request.query_string else "")
    pairs = [
        (k, v)
        for k, vs in request.query.items()
        if k not in ("page[after]", "page[offset]")
        for v in vs
    ]
    pairs.extend(replace.items())
    # urlencode's own text, written with a cache of the (few, repeated) names and no
    # quoting of values that need none: a page's next link costs 2 us instead of 35.
    return request.path + "?" + "&".join(f"{_quoted_name(k)}={_quote(v)}" for k, v in pairs)


_SAFE = re.compile(r"[A-Za-z0-9_.\-~]*")
#: What a keyset cursor (URL-safe base64) is made of: only its padding needs quoting.
_CURSOR = re.compile(r"[A-Za-z0-9_.\-~=]*")
_NAMES: dict[str, str] = {}


def _quote(value: str) -> str:
    if _SAFE.fullmatch(value):
        return value
    if _CURSOR.fullmatch(value):
        return value.replace("=", "%3D")
    return quote_plus(value)


def _quoted_name(name: str) -> str:
    quoted = _NAMES.get(name)
    if quoted is None:
        quoted = quote_plus(name)
        if len(_NAMES) < 1_024:
            _NAMES[name] = quoted
    return quoted
