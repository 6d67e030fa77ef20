"""The Cookie header parser (linear, never raises) and the Set-Cookie builder."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from web import parse_cookies, set_cookie

PARSED: list[tuple[str, dict[str, str]]] = [
    ("", {}),
    ("a=1", {"a": "1"}),
    ("a=1; b=2", {"a": "1", "b": "2"}),
    ("a=1;b=2", {"a": "1", "b": "2"}),
    ("  a = 1 ;  b=2  ", {"a": "1", "b": "2"}),
    ("a=1; a=2", {"a": "1"}),  # the first (most specific) wins
    ('a="quoted value"', {"a": "quoted value"}),
    ('a="', {"a": '"'}),
    ('a=""', {"a": ""}),
    ("a=", {"a": ""}),
    ("junk; a=1", {"a": "1"}),
    ("=1; a=2", {"a": "2"}),
    ("a=b=c", {"a": "b=c"}),
    ("a=\\x\\y", {"a": "\\x\\y"}),  # nothing is unescaped
    (";;;", {}),
    ("a=1,b=2", {"a": "1,b=2"}),
]


@pytest.mark.parametrize(("header", "cookies"), PARSED)
def test_parse_cookies(header: str, cookies: dict[str, str]) -> None:
    assert parse_cookies(header) == cookies


@given(st.text(max_size=500))
def test_parse_cookies_never_raises_and_keeps_names_that_were_sent(header: str) -> None:
    cookies = parse_cookies(header)
    for name, value in cookies.items():
        assert name == name.strip()
        assert name
        assert ";" not in name
        assert ";" not in value
        assert name in header


NAME = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789!#$%&'*+-.^_`|~", min_size=1, max_size=12)
VALUE = st.text("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'()*+-./:<=>?@[]^_`{|}~", max_size=20)


@given(st.lists(st.tuples(NAME, VALUE), max_size=20))
def test_what_set_cookie_accepts_parse_cookies_reads_back(pairs: list[tuple[str, str]]) -> None:
    sent = [set_cookie(name, value)[1].split(";")[0] for name, value in pairs]
    expected: dict[str, str] = {}
    for name, value in pairs:
        expected.setdefault(name, value)
    assert parse_cookies("; ".join(sent)) == expected


def _lines_run(header: str) -> int:
    """How many Python lines :func:`parse_cookies` runs on *header* (a measure of work that
    does not depend on the machine's speed)."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        parse_cookies(header)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize(
    "shape",
    [
        lambda n: "; ".join(f"c{i}=v{i}" for i in range(n)),  # many cookies
        lambda n: 'a="' + "\\\\" * n + '"',  # CVE-2024-7592's shape for SimpleCookie
        lambda n: ";" * n,
        lambda n: "a" * n,
    ],
)
def test_parse_cookies_work_grows_linearly(shape: Any) -> None:
    # Python-level work: four times the input, at most four times the lines run.
    small, large = _lines_run(shape(1_000)), _lines_run(shape(4_000))
    assert large <= 4 * small + 20


def test_parse_cookies_calls_only_linear_string_methods() -> None:
    # The lines count cannot see work inside C calls (SimpleCookie's quadratic part is in its
    # regular expressions): the parser calls nothing but these one-pass string methods.
    assert set(parse_cookies.__code__.co_names) <= {"split", "partition", "strip", "len"}


SET: list[tuple[dict[str, Any], str]] = [
    ({}, "s=v; Path=/; HttpOnly; SameSite=Lax"),
    ({"max_age": 0}, "s=v; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    ({"secure": True}, "s=v; Path=/; HttpOnly; SameSite=Lax; Secure"),
    ({"http_only": False, "path": "/app"}, "s=v; Path=/app; SameSite=Lax"),
    ({"same_site": "None", "secure": True}, "s=v; Path=/; HttpOnly; SameSite=None; Secure"),
    ({"same_site": "Strict"}, "s=v; Path=/; HttpOnly; SameSite=Strict"),
]


@pytest.mark.parametrize(("options", "header"), SET)
def test_set_cookie(options: dict[str, Any], header: str) -> None:
    assert set_cookie("s", "v", **options) == ("set-cookie", header)


REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("a b", "v", {}, "cookie name"),
    ("", "v", {}, "cookie name"),
    ("a;", "v", {}, "cookie name"),
    ("s", "a;b", {}, "cookie value"),
    ("s", "a\r\nSet-Cookie: x=1", {}, "cookie value"),
    ("s", 'a"b', {}, "cookie value"),
    ("s", "é", {}, "cookie value"),
    ("s", "v", {"path": "app"}, "cookie path"),
    ("s", "v", {"path": "/a;b"}, "cookie path"),
    ("s", "v", {"path": "/a\nb"}, "cookie path"),
    ("s", "v", {"same_site": "None"}, "must be Secure"),
]


@pytest.mark.parametrize(("name", "value", "options", "message"), REFUSED)
def test_set_cookie_refuses_what_would_break_the_header(
    name: str, value: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        set_cookie(name, value, **options)
