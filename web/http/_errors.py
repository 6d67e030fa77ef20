"""HTTP errors a handler (or the server) raises to answer with a status instead of a 500.

A handler that finds the request at fault raises :class:`HTTPError`; the server answers with
its status and message (and headers), logs nothing, and keeps the connection::

    def show(request: Request) -> Response:
        if "id" not in request.query:
            raise HTTPError(400, "the query has no id (add ?id=<number>)")
        ...

Any other exception in a handler is a bug of ours: it is logged and answered with a 500.
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["HTTPError"]


class HTTPError(Exception):
    """Answer the request with *status* and *message* (sent as plain text) and *headers*.

    >>> raise HTTPError(400, "the form has more than 1000 fields")
    """

    def __init__(
        self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"an HTTPError status is 4xx or 5xx, got {status!r}")
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.headers = headers

    @property
    def reason(self) -> str:
        """The status's reason phrase (``"Bad Request"`` for 400), or ``""`` if unknown.

        >>> HTTPError(431, "too many headers").reason
        'Request Header Fields Too Large'
        """
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""
