"""A read query is a frozen value, compiled to SQL without a database (domain/_read.py)."""

from __future__ import annotations

import dataclasses
import uuid
from types import SimpleNamespace

import pytest

from domain import Invalid
from domain._actions import find_action
from domain._query import Query
from domain._read import compile_read, decode_cursor, encode_cursor, read_verdicts

from .app import Message, Notice, Room


def sql(plan_statement: object) -> str:
    return str(plan_statement)


def test_a_query_is_a_frozen_value() -> None:
    query = Query(Message, sort=("-inserted_at",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.limit = 3  # type: ignore[misc]
    first = dataclasses.replace(query, limit=20, after="")
    assert first.keyset
    assert not query.keyset
    assert query.limit is None
    assert first.sort == ("-inserted_at",)


def test_the_read_policy_becomes_a_where_clause() -> None:
    me = SimpleNamespace(id=uuid.uuid4(), is_admin=False)
    query = Query(Notice, actor=me)
    action = find_action(Notice, None, "read")
    plan = compile_read(query, action, read_verdicts(query, action))
    assert "WHERE notices.user_id = " in sql(plan.statement)
    anonymous = Query(Message)
    message_read = find_action(Message, None, "read")
    nobody = compile_read(anonymous, message_read, read_verdicts(anonymous, message_read))
    assert nobody.empty  # no actor: Message's read policy lets nothing through


def test_unauthorized_equality_reads_use_the_cached_statement() -> None:
    action = find_action(Room, None, "read")
    a = Query(Room, filter={"name": "a"}, limit=5, authorize=False)
    b = dataclasses.replace(a, filter={"name": "b"})
    plan_a = compile_read(a, action, read_verdicts(a, action))
    plan_b = compile_read(b, action, read_verdicts(b, action))
    assert plan_a.statement is plan_b.statement
    assert plan_a.params != plan_b.params


def test_keyset_pages_compare_the_sort_key_with_the_cursor() -> None:
    action = find_action(Room, None, "read")
    key = [uuid.uuid4()]
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    query = Query(Room, limit=10, after=cursor, load=("message_count",), authorize=False)
    plan = compile_read(query, action, read_verdicts(query, action))
    assert plan.keyset
    assert plan.extra == ("message_count",)
    assert "rooms.id > " in sql(plan.statement)
    assert "LIMIT" in sql(plan.statement)
    wrong = dataclasses.replace(query, sort=("name",))
    with pytest.raises(Invalid, match="does not match this sort"):
        compile_read(wrong, action, read_verdicts(wrong, action))
    with pytest.raises(Invalid, match="not a valid keyset cursor"):
        decode_cursor("!!")
