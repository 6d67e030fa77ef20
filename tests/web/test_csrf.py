"""CSRF protection: tokens bound to the browser's cookie secret and the server's key, checked
on unsafe methods in a form field or a header."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from web import CsrfProtection, Request

KEY = "a secret key of at least 32 characters!!"
CSRF = CsrfProtection(KEY)
FORM = ("content-type", "application/x-www-form-urlencoded")


def request(
    method: str = "POST",
    cookie: str | None = "secret-of-this-browser",
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (FORM,),
) -> Request:
    jar = () if cookie is None else (("cookie", f"theme=dark; _csrf={cookie}"),)
    return Request(method, "/login", {}, (*jar, *headers), body)


def issued(cookie: str = "secret-of-this-browser", csrf: CsrfProtection = CSRF) -> str:
    token, set_cookie = csrf.token(request("GET", cookie))
    assert set_cookie is None  # the browser has its cookie already
    return token


def test_a_token_verifies_for_its_cookie_only() -> None:
    token = issued()
    assert CSRF.verify(request(), token)
    assert not CSRF.verify(request(cookie="another-browser"), token)
    assert not CSRF.verify(request(cookie=None), token)


def test_tokens_are_fresh_per_page_and_all_verify() -> None:
    first, second = issued(), issued()
    assert first != second
    assert CSRF.verify(request(), first)
    assert CSRF.verify(request(), second)


def test_a_first_visit_gets_a_cookie_whose_tokens_verify() -> None:
    token, header = CSRF.token(request("GET", cookie=None))
    assert header is not None
    name, value = header
    assert name == "set-cookie"
    assert "HttpOnly" in value
    assert "SameSite=Lax" in value
    secret = value.split(";")[0].removeprefix("_csrf=")
    assert CSRF.verify(request(cookie=secret), token)
    secure = CsrfProtection(KEY, secure=True).token(request("GET", cookie=None))[1]
    assert secure is not None
    assert secure[1].endswith("; Secure")


FORGED = [
    None,
    "",
    ".",
    "nonce",
    "nonce.",
    ".mac",
    "nonce.mac",
    "x" * 300 + "." + "y",
    "nonce.\x80",  # non-ASCII: hmac.compare_digest raised TypeError (a 500) on it
    "é.é",
    42,
    ["a.b"],
]


@pytest.mark.parametrize("token", FORGED)
def test_forged_or_malformed_tokens_do_not_verify(token: object) -> None:
    assert not CSRF.verify(request(), token)


def test_a_token_signed_with_another_key_does_not_verify() -> None:
    other = CsrfProtection("another secret key of 32 characters or more")
    assert not CSRF.verify(request(), issued(csrf=other))


def test_a_token_with_its_nonce_changed_does_not_verify() -> None:
    nonce, _, mac = issued().partition(".")
    assert not CSRF.verify(request(), f"{nonce}x.{mac}")
    assert not CSRF.verify(request(), f"{nonce}.{mac[:-1]}")


@given(st.text(max_size=40), st.text(max_size=80))
def test_no_guessed_token_verifies(secret: str, token: str) -> None:
    cookie = "".join(c for c in secret if c.isalnum()) or "s"
    assert not CSRF.verify(request(cookie=cookie), token)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_check_lets_safe_methods_through(method: str) -> None:
    assert CSRF.check(request(method, cookie=None)) is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_check_refuses_unsafe_methods_without_a_token(method: str) -> None:
    refusal = CSRF.check(request(method, body=b"username=bob"))
    assert refusal is not None
    assert refusal.status == 403
    assert b"the form has no _csrf_token field" in refusal.body


def test_check_accepts_the_form_field_and_the_header() -> None:
    token = issued()
    assert CSRF.check(request(body=f"username=bob&_csrf_token={token}".encode())) is None
    assert CSRF.check(request(headers=(("x-csrf-token", token),))) is None


def test_check_reads_the_form_field_only_from_a_form() -> None:
    body = f"_csrf_token={issued()}".encode()
    refusal = CSRF.check(request(body=body, headers=(("content-type", "application/json"),)))
    assert refusal is not None
    assert refusal.status == 403


@pytest.mark.parametrize(
    ("cookie", "token", "why"),
    [
        (None, "a.b", b"no _csrf cookie"),
        ("secret-of-this-browser", "a.b", b"does not match"),
        ("another-browser", None, b"does not match"),
    ],
)
def test_check_says_what_is_wrong(cookie: str | None, token: str | None, why: bytes) -> None:
    real = issued() if token is None else token
    refusal = CSRF.check(request(cookie=cookie, body=f"_csrf_token={real}".encode()))
    assert refusal is not None
    assert refusal.status == 403
    assert why in refusal.body


def test_an_overlong_cookie_is_no_secret() -> None:
    long = "s" * 65
    token, header = CSRF.token(request("GET", cookie=long))
    assert header is not None  # a new secret is issued
    assert not CSRF.verify(request(cookie=long), token)


def test_clear_drops_the_cookie() -> None:
    assert CSRF.clear() == ("set-cookie", "_csrf=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")


def test_headers_adds_the_cookie_when_one_was_issued() -> None:
    base = (("content-type", "text/html"),)
    assert CsrfProtection.headers(None, base) == base
    assert CsrfProtection.headers(("set-cookie", "x=1"), base) == (*base, ("set-cookie", "x=1"))
