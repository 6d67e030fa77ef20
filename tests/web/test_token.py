"""Signed, expiring tokens."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from web import InvalidToken, Token, TokenExpired

SECRET = "s3cret-" * 6
OTHER = "other-" * 8


def test_sign_and_verify_round_trip() -> None:
    token = Token.sign(SECRET, "user socket", {"user_id": 42})
    assert Token.verify(SECRET, "user socket", token) == {"user_id": 42}


def test_expired_token_is_refused_with_its_age() -> None:
    token = Token.sign(SECRET, "user socket", 1, signed_at=1_000.0)
    assert Token.verify(SECRET, "user socket", token, max_age=60, now=1_059.0) == 1
    with pytest.raises(TokenExpired, match="signed 61 s ago, max_age 60 s"):
        Token.verify(SECRET, "user socket", token, max_age=60, now=1_061.0)


@pytest.mark.parametrize(("secret", "salt"), [(OTHER, "user socket"), (SECRET, "password reset")])
def test_other_key_or_salt_is_refused(secret: str, salt: str) -> None:
    token = Token.sign(SECRET, "user socket", 1)
    with pytest.raises(InvalidToken, match="not signed with this secret key and salt"):
        Token.verify(secret, salt, token)


def test_tampered_payload_is_refused() -> None:
    header, _body, signature = Token.sign(SECRET, "s", {"user_id": 1}).split(".")
    forged = Token.sign(SECRET, "s", {"user_id": 2}).split(".")[1]
    with pytest.raises(InvalidToken):
        Token.verify(SECRET, "s", f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c.d", "!!.??.**", "é.é.é"])
def test_garbage_is_refused_clearly(garbage: str) -> None:
    with pytest.raises(InvalidToken, match="token"):
        Token.verify(SECRET, "s", garbage)


def test_short_secret_and_unserializable_data_are_errors_that_say_the_fix() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Token.sign("short", "s", 1)
    with pytest.raises(TypeError, match="JSON-serializable"):
        Token.sign(SECRET, "s", object())


@given(st.text(max_size=60))
def test_verify_never_crashes_on_any_string(text: str) -> None:
    with pytest.raises(InvalidToken):
        Token.verify(SECRET, "s", text)


@given(st.recursive(st.none() | st.integers() | st.text(), lambda x: st.lists(x, max_size=3)))
def test_any_json_data_round_trips(data: Any) -> None:
    assert Token.verify(SECRET, "s", Token.sign(SECRET, "s", data)) == data
