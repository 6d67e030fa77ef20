"""Cookies: a linear-time ``Cookie`` header parser and a ``Set-Cookie`` builder.

The standard library's ``http.cookies.SimpleCookie`` is quadratic on some inputs (a 48 KB
header held the loop for seconds), and it is stricter than browsers in places and looser in
others. Browsers send ``name=value`` pairs separated by ``;``, and that is all we read::

    >>> parse_cookies("session=abc; theme=dark")
    {'session': 'abc', 'theme': 'dark'}
    >>> set_cookie("session", "abc", max_age=3600, secure=True)
    ('set-cookie', 'session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure')
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = ["parse_cookies", "set_cookie"]

#: What a cookie name may hold (RFC 6265's token) and a value (cookie-octets, no quotes).
_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE: Final = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")


def parse_cookies(header: str) -> dict[str, str]:
    """The cookies of one ``Cookie`` header, in one pass over it (the first of a repeated
    name wins, as browsers send the most specific cookie first). Pairs without ``=`` are
    skipped; a value in double quotes loses its quotes; nothing is unescaped.

    >>> parse_cookies('a=1; b="two"; junk; a=3')
    {'a': '1', 'b': 'two'}
    """
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, eq, value = pair.partition("=")
        if not eq:
            continue
        name = name.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name and name not in cookies:
            cookies[name] = value
    return cookies


def set_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    path: str = "/",
    http_only: bool = True,
    same_site: Literal["Lax", "Strict", "None"] = "Lax",
    secure: bool = False,
) -> tuple[str, str]:
    """A ``("set-cookie", ...)`` header for a response. ``max_age=0`` deletes the cookie;
    ``None`` makes it last as long as the browser session. Set *secure* behind TLS so the
    browser never sends the cookie over plain HTTP (``SameSite=None`` requires it).

    >>> set_cookie("session", "", max_age=0)
    ('set-cookie', 'session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax')
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"a cookie name is a token (letters, digits, !#$%&'*+-.^_`|~): {name!r}")
    if not _VALUE.fullmatch(value):
        raise ValueError(
            f"a cookie value has no spaces, quotes, commas, semicolons, backslashes or control "
            f"characters (encode it, say with base64url): {value[:80]!r}"
        )
    if not path.startswith("/") or any(c in path for c in ";\r\n"):
        raise ValueError(f"a cookie path starts with '/' and has no ';' or line breaks: {path!r}")
    if same_site == "None" and not secure:
        raise ValueError("SameSite=None cookies must be Secure (browsers drop them otherwise)")
    parts = [f"{name}={value}", f"Path={path}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if http_only:
        parts.append("HttpOnly")
    parts.append(f"SameSite={same_site}")
    if secure:
        parts.append("Secure")
    return ("set-cookie", "; ".join(parts))
