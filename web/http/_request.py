"""Requests and responses as handlers see them: plain immutable values.

A handler takes a :class:`Request` (the body read in full, within the endpoint's limits) and
returns a :class:`Response` (or raises :class:`~web.HTTPError` to answer with a status)::

    def hello(request: Request) -> Response:
        name = request.query.get("name", ["world"])[-1]
        return Response(200, f"hello {name}".encode())
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ._cookies import parse_cookies
from ._errors import HTTPError

__all__ = ["HttpHandler", "Request", "Response"]


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as a handler sees it (the body is read in full, within the limit).

    >>> def hello(request: Request) -> Response:
    ...     name = request.query.get("name", ["world"])[-1]
    ...     return Response(200, f"hello {name}".encode())
    >>> endpoint.get("/hello", hello)
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    #: The peer's ``(host, port)``, when the transport knows it.
    client: tuple[str, int] | None = None
    #: The query string as it came, undecoded (``query`` is its parsed form).
    query_string: str = ""
    #: :meth:`form` refuses bodies with more fields than this (``Endpoint.max_form_fields``).
    max_form_fields: int = 1_000
    #: ``"1.1"`` or ``"1.0"``.
    http_version: str = "1.1"

    def header(self, name: str) -> str | None:
        """The first header called *name* (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def cookie(self, name: str) -> str | None:
        """The value of the cookie called *name*, or ``None`` (parsed in linear time by
        :func:`~web.parse_cookies`; the first of a repeated name wins).

        >>> token = request.cookie("session")
        """
        for key, value in self.headers:
            if key == "cookie":
                found = parse_cookies(value).get(name)
                if found is not None:
                    return found
        return None

    def form(self) -> dict[str, str]:
        """The body as an URL-encoded form (the last value of a repeated field wins).

        A body with more than :attr:`max_form_fields` fields raises :class:`~web.HTTPError`
        400 (the server answers with it), as Django's ``DATA_UPLOAD_MAX_NUMBER_FIELDS``.

        >>> name = request.form().get("username", "")
        """
        try:
            pairs = parse_qsl(
                self.body.decode("utf-8", "replace"),
                keep_blank_values=True,
                max_num_fields=self.max_form_fields,
            )
        except ValueError:
            raise HTTPError(
                400,
                f"the form has more than {self.max_form_fields} fields "
                f"(the limit is Endpoint.max_form_fields)",
            ) from None
        return dict(pairs)


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler returns: status, body and headers (content-length is added).

    >>> Response(200, b'{"ok":true}', (("content-type", "application/json"),))
    >>> Response(303, headers=(("location", "/login"),))
    """

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("content-type", "text/plain; charset=utf-8"),)


HttpHandler = Callable[[Request], Response | Awaitable[Response]]
