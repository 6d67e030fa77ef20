"""The JSON API's errors: JSON:API error objects, and how the domain's errors map to them.

web never imports domain (docs/architecture.md): the domain's errors are recognised by the
names of their classes (Ash's three, ``Forbidden``, ``NotFound`` and ``Invalid``, plus
``ConnectionLost``), anywhere in their MRO, and ``Invalid``'s per-field messages are read from
its ``errors`` mapping, the same duck typing a LiveView form's error map relies on::

    try:
        ...
    except Exception as exc:
        error = from_exception(exc, pointer=lambda field: f"/data/attributes/{field}")
        if error is None:
            raise                       # a bug of ours: the server logs it and answers 500
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["ApiError", "error_object", "from_exception"]

#: The statuses of the domain's errors, by class name (the first found in the MRO wins:
#: NotFound is a kind of Invalid).
_STATUS_BY_NAME: Mapping[str, int] = {
    "Forbidden": 403,
    "NotFound": 404,
    "Invalid": 422,
    "ConnectionLost": 503,
}


def error_object(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    pointer: str | None = None,
    parameter: str | None = None,
    header: str | None = None,
) -> dict[str, Any]:
    """One JSON:API error object.

    >>> error_object(422, "is required", pointer="/data/attributes/content")["source"]
    {'pointer': '/data/attributes/content'}
    """
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    obj: dict[str, Any] = {
        "status": str(status),
        "code": code or title.lower().replace(" ", "_").replace("-", "_"),
        "title": title,
        "detail": detail,
    }
    if pointer is not None:
        obj["source"] = {"pointer": pointer}
    elif parameter is not None:
        obj["source"] = {"parameter": parameter}
    elif header is not None:
        obj["source"] = {"header": header}
    return obj


@dataclass
class ApiError(Exception):
    """Answer with *status* and these error objects (and *headers*): what every refusal of
    the API raises, caught where the request is handled.

    >>> raise ApiError.one(400, "sort: 'colour' is not a field of rooms", parameter="sort")
    """

    status: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        Exception.__init__(self, f"{self.status}: {[e.get('detail') for e in self.errors]}")

    @classmethod
    def one(
        cls,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        pointer: str | None = None,
        parameter: str | None = None,
        header: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> ApiError:
        """An error with one error object (see :func:`error_object`).

        >>> ApiError.one(404, "no rooms with id 'x'").status
        404
        """
        obj = error_object(
            status, detail, code=code, pointer=pointer, parameter=parameter, header=header
        )
        return cls(status, [obj], headers)


def _kind(exc: BaseException) -> str | None:
    for cls in type(exc).__mro__:
        if cls.__name__ in _STATUS_BY_NAME:
            return cls.__name__
    return None


def from_exception(
    exc: BaseException,
    *,
    pointer: Callable[[str], str | None],
    parameter: Callable[[str], str | None] | None = None,
    reading: bool = False,
) -> ApiError | None:
    """The :class:`ApiError` for a domain error (``None`` for anything else: a bug).

    ``Invalid`` gives one error object per field message, sourced by ``pointer(field)``
    (422); for a read (*reading*), whose input is the query string, it is a 400 sourced by
    ``parameter(field)``. ``NotFound`` is 404, ``Forbidden`` 403, ``ConnectionLost`` 503.

    >>> from_exception(exc, pointer=lambda f: f"/data/attributes/{f}").status
    422
    """
    kind = _kind(exc)
    if kind is None:
        return None
    status = _STATUS_BY_NAME[kind]
    if kind == "Forbidden":
        detail = "the actor may not run this action"
        reason = getattr(exc, "reason", None)
        if isinstance(reason, str) and reason:
            detail = f"{detail}: {reason}"
        return ApiError.one(403, detail, code="forbidden")
    if kind == "ConnectionLost":
        return ApiError.one(
            503,
            "the database did not answer in time; nothing was written, so it is safe to retry",
            code="unavailable",
            headers=(("retry-after", "1"),),
        )
    fields: Mapping[str, Sequence[str]] = getattr(exc, "errors", None) or {}
    if kind == "NotFound":
        found = [m for ms in fields.values() for m in ms] or ["not found"]
        return ApiError.one(404, "; ".join(found), code="not_found")
    if reading:
        status = 400
    objects = []
    for name, messages in fields.items():
        for message in messages:
            if reading:
                where = parameter(name) if parameter is not None else name
                objects.append(
                    error_object(status, f"{name} {message}", code="invalid", parameter=where)
                )
            else:
                objects.append(
                    error_object(status, f"{name} {message}", code="invalid", pointer=pointer(name))
                )
    if not objects:
        objects.append(error_object(status, str(exc), code="invalid"))
    return ApiError(status, objects)
