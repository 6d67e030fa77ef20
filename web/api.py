"""web.api: a JSON API derived from a domain's resources (AshJsonApi's job).

Declare which actions of which resources are routes; the API answers them as JSON:API
documents (``application/vnd.api+json``, or plain JSON with ``plain=True``), with the actor
from a signed, expiring, revocable bearer token, the domain's policies as for any actor,
errors as JSON:API error objects (400 naming the parameter and the fix, 401 with
``WWW-Authenticate``, 403, 404, 409, 415, 422 with a ``source.pointer`` per field, 429 with
``Retry-After``), per-scope rate limits, and an OpenAPI 3.1 document generated from the same
declarations at ``<prefix>/openapi.json`` and an interactive page of it at ``<prefix>/docs``
(Swagger UI, from npm)::

    from web import api

    tokens = api.BearerTokens(secret_key, load_actor, max_age=86_400)
    chat_api = api.JsonApi(Chat, prefix="/api", tokens=tokens, scope="api")
    chat_api.resource(Room, "rooms", api.index("read"), api.get("read"), api.post("open"))
    chat_api.resource(
        Message, "messages",
        api.index("read"), api.get("read"), api.post("send", limit="message"),
        api.patch("edit"), api.delete("delete"),
    )
    chat_api.sign_in(issue_token, revoke=revoke_token)      # POST /api/session
    chat_api.mount(endpoint)

    # GET /api/messages?filter[room_id]=<id>&sort=-inserted_at&page[limit]=20&include=author

web never imports domain: resources, records and the domain's errors are read structurally
(see :mod:`web._api_types` and :mod:`web._api_errors`), so any ``domain.Domain`` works, and
so would anything shaped like one.
"""

import contextlib

from ._api import JsonApi as JsonApi
from ._api import SignIn as SignIn
from ._api_auth import BearerTokens as BearerTokens
from ._api_auth import Unauthorized as Unauthorized
from ._api_docs import swagger_ui as swagger_ui
from ._api_documents import JSONAPI as JSONAPI
from ._api_errors import ApiError as ApiError
from ._api_errors import error_object as error_object
from ._api_openapi import attribute_schema as attribute_schema
from ._api_query import OPERATORS as OPERATORS
from ._api_query import ReadSpec as ReadSpec
from ._api_query import parse_query as parse_query
from ._api_routes import ApiCall as ApiCall
from ._api_routes import Route as Route
from ._api_routes import delete as delete
from ._api_routes import get as get
from ._api_routes import index as index
from ._api_routes import patch as patch
from ._api_routes import post as post
from ._api_routes import route as route

__all__ = (
    "JSONAPI",
    "OPERATORS",
    "ApiCall",
    "ApiError",
    "BearerTokens",
    "JsonApi",
    "ReadSpec",
    "Route",
    "SignIn",
    "Unauthorized",
    "attribute_schema",
    "delete",
    "error_object",
    "get",
    "index",
    "parse_query",
    "patch",
    "post",
    "route",
    "swagger_ui",
)

# The modules live beside this one (web/_api*.py), not inside it: say they live here.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("web._api"):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
