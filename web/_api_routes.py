"""The JSON API's declarations: which actions of a resource are routes, and how.

A resource takes part in the API only through the routes declared for it (opt-in per
resource and per action), each naming the domain action it runs::

    api.resource(Message, "messages",
                 index("read"), get("read"), post("send"), patch("edit"), delete("delete"),
                 route("POST", "/{id}/pin", "pin"))

Paths are relative to the type's collection (``/api/messages``): ``""`` is the collection,
``"/{id}"`` one record. A :func:`route` whose path holds ``{id}`` runs its action on that
record (fetched first, as the actor may see it); otherwise on the collection (a create, or a
read with its arguments from the query string). A route may also run a plain async function
of the app's instead of an action (``route("POST", "/read_all", mark_all)``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ApiCall",
    "Route",
    "RouteKind",
    "delete",
    "get",
    "index",
    "patch",
    "post",
    "route",
]

RouteKind = Literal["index", "get", "create", "update", "destroy", "action"]

#: What a route that runs an app function calls: ``await fn(ApiCall)``.
Handler = Callable[["ApiCall"], Awaitable[Any]]

_PATH = re.compile(r"^(/(\{id\}|[a-z][a-z0-9_-]*))*$")


@dataclass(frozen=True)
class ApiCall:
    """What a route's app function receives: the ``actor``, the record (``None`` unless the
    path holds ``{id}``), the ``input`` (the body's attributes, or the query's arguments for a
    ``GET``) and the resource.

    >>> async def mark_all(call: ApiCall) -> None:
    ...     await mark_all_as_read(Chat, Notification, actor=call.actor)
    """

    actor: Any
    record: Any
    input: Mapping[str, Any]
    resource: Any


@dataclass(frozen=True)
class Route:
    """One route of a resource (made by :func:`index`, :func:`get`, :func:`post`,
    :func:`patch`, :func:`delete` or :func:`route`).

    >>> index("read").method, index("read").path
    ('GET', '')
    """

    kind: RouteKind
    method: str
    path: str
    action: str | None = None
    handler: Handler | None = None
    #: A rate-limit scope counted (per actor) on top of the API's own scope.
    limit: str | None = None
    #: Page sizes of reads: the default and the most a client may ask for.
    default_limit: int = 20
    max_limit: int = 100
    summary: str = ""
    #: For an app function: the action whose input it takes and whose record it answers
    #: (what the OpenAPI document says of it).
    input: str | None = None

    def __post_init__(self) -> None:
        if not _PATH.match(self.path):
            raise ValueError(
                f"an API route path is '' or /-separated lowercase segments and {{id}}, "
                f"got {self.path!r}"
            )
        if self.method not in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            raise ValueError(
                f"an API route method is GET, POST, PATCH, PUT or DELETE: {self.method!r}"
            )
        if (self.action is None) == (self.handler is None):
            raise ValueError("an API route runs either a domain action or an app function")
        if not 1 <= self.default_limit <= self.max_limit:
            raise ValueError(
                f"page sizes need 1 <= default_limit <= max_limit, got "
                f"{self.default_limit} and {self.max_limit}"
            )

    @property
    def on_record(self) -> bool:
        """Whether the path names one record (``{id}``)."""
        return "{id}" in self.path

    @property
    def reads(self) -> bool:
        """Whether the route answers with a list read through the query string."""
        return self.kind == "index" or (self.kind == "action" and self.method == "GET")


def index(
    action: str = "read",
    *,
    default_limit: int = 20,
    max_limit: int = 100,
    limit: str | None = None,
) -> Route:
    """``GET /<type>``: run the read *action* with the query's ``filter``, ``sort``,
    ``page``, ``include`` and ``fields``, and its arguments as plain parameters.

    >>> index("read", default_limit=50, max_limit=200)
    """
    return Route("index", "GET", "", action, None, limit, default_limit, max_limit)


def get(action: str = "read", *, limit: str | None = None) -> Route:
    """``GET /<type>/<id>``: one record through the read *action* (404 when the actor may
    not see it).

    >>> get("read")
    """
    return Route("get", "GET", "/{id}", action, limit=limit)


def post(action: str = "create", *, limit: str | None = None) -> Route:
    """``POST /<type>``: run the create *action* on the body's attributes (201).

    >>> post("send", limit="message")
    """
    return Route("create", "POST", "", action, limit=limit)


def patch(action: str = "update", *, limit: str | None = None) -> Route:
    """``PATCH /<type>/<id>``: run the update *action* on that record.

    >>> patch("edit", limit="edit")
    """
    return Route("update", "PATCH", "/{id}", action, limit=limit)


def delete(action: str = "destroy", *, limit: str | None = None) -> Route:
    """``DELETE /<type>/<id>``: run the destroy *action* on that record (200, with it).

    >>> delete("delete")
    """
    return Route("destroy", "DELETE", "/{id}", action, limit=limit)


def route(
    method: str,
    path: str,
    action: str | Handler,
    *,
    limit: str | None = None,
    default_limit: int = 20,
    max_limit: int = 100,
    summary: str = "",
    input: str | None = None,  # noqa: A002 - what the function takes
) -> Route:
    """A custom route: *method* on *path* (relative to the collection) runs the domain
    *action* (any type; its arguments come from the body, or from the query for a ``GET``),
    or an app function ``await action(ApiCall)`` returning records, a record, a mapping
    (sent as ``meta``) or ``None`` (204); a record made by a ``POST`` on the collection is a
    201. A function that takes an action's input and answers its record (sending a message
    and then notifying mentions, say) names that action as *input*, so the OpenAPI document
    describes its body and answer.

    >>> route("POST", "/{id}/read", "mark_as_read")
    >>> route("POST", "/read_all", mark_all, summary="Mark every notification read")
    >>> route("POST", "", send_and_notify, input="send")
    """
    if isinstance(action, str):
        return Route(
            "action", method.upper(), path, action, None, limit, default_limit, max_limit, summary
        )
    return Route(
        "action",
        method.upper(),
        path,
        None,
        action,
        limit,
        default_limit,
        max_limit,
        summary,
        input,
    )
