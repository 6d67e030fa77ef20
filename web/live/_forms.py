"""Decoding what a LiveView client sends: URL query parameters and URL-encoded forms, nested
Plug-style, within limits (a form event has at most 1,000 fields nested at most 32 levels
deep, as Django bounds its forms)::

    >>> form_params("user%5Bname%5D=Jo&tags%5B%5D=a&tags%5B%5D=b")
    {'user': {'name': 'Jo'}, 'tags': ['a', 'b']}
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

__all__ = ["MAX_FORM_DEPTH", "MAX_FORM_FIELDS", "FormError", "form_params", "url_params"]

#: A LiveView form event may have at most this many fields (as Django's default) ...
MAX_FORM_FIELDS: Final = 1000
#: ... and keys nested at most this deep (``a[b][c]`` is 3 levels).
MAX_FORM_DEPTH: Final = 32


def url_params(url: str) -> dict[str, Any]:
    """The query parameters of *url* (the last value wins for repeated names)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


class FormError(ValueError):
    """A form event over the limits of :func:`form_params` (the event is refused).

    >>> form_params("&".join(["x=1"] * 1001))
    Traceback (most recent call last):
    FormError: form refused: more than 1000 fields ...
    """


def form_params(
    encoded: str, *, max_fields: int = MAX_FORM_FIELDS, max_depth: int = MAX_FORM_DEPTH
) -> dict[str, Any]:
    """A URL-encoded form as nested dicts, Plug-style: ``user[name]=Jo`` -> ``{"user":
    {"name": "Jo"}}``, ``tags[]=a&tags[]=b`` -> ``{"tags": ["a", "b"]}``.

    Raises :class:`FormError` for more than *max_fields* fields or a key nested deeper than
    *max_depth* levels. Keys that clash (``a=1&a[b]=2``) keep what came first.

    >>> form_params("user%5Bname%5D=Jo&tags%5B%5D=a&tags%5B%5D=b")
    {'user': {'name': 'Jo'}, 'tags': ['a', 'b']}
    """
    try:
        pairs = parse_qsl(encoded, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:
        raise FormError(
            f"form refused: more than {max_fields} fields (split the form, or send the data "
            "another way)"
        ) from None
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key.count("[") >= max_depth:
            raise FormError(
                f"form refused: the key {key[:40]!r}... is nested deeper than {max_depth} levels"
            )
        head, _, rest = key.partition("[")
        path = [head] + [part.rstrip("]") for part in rest.split("[")] if rest else [head]
        target: Any = result
        for index, part in enumerate(path):
            if index == len(path) - 1:
                if part == "" and isinstance(target, list):
                    target.append(value)
                elif isinstance(target, dict):
                    target[part] = value
            elif isinstance(target, dict):
                default: Any = [] if path[index + 1] == "" else {}
                target = target.setdefault(part, default)
            else:
                break  # a[][b] shapes, or a key clashing with a value: keep what we have
    return result
