"""Property tests of the domain layer, each checked against a plain-Python model of its rules.

Read policies against an evaluator of Ash's policy semantics, attribute and action
validations against independent predicates, and broadcasts against the committed writes
only. Each example runs its own node on a fresh SQLite file, under ``trio.run``.
"""

from __future__ import annotations

import collections
import string
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beam
import domain
from domain import (
    Domain,
    Forbidden,
    Invalid,
    NotFound,
    Resource,
    action_type,
    actor_attribute_equals,
    actor_present,
    always,
    argument,
    attribute,
    authorize_if,
    authorize_unless,
    belongs_to,
    bypass,
    compare,
    counter,
    create,
    expr,
    forbid_if,
    forbid_unless,
    identity,
    match,
    never,
    one_of,
    policy,
    present,
    pubsub,
    read,
    relates_to_actor_via,
    string_length,
    uuid_primary_key,
)

from ..support.backends import PG_URL, pg_engine

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_on_fresh_db(
    dom: type[Domain], body: Callable[[], Awaitable[None]], pg_schema: str | None = None
) -> None:
    """Run *body* in a new node with *dom* started on a new SQLite file (or, with *pg_schema*,
    in that PostgreSQL schema) and its tables made anew."""

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with beam.open_node():
                if pg_schema is None:
                    await dom.start_link(f"sqlite:///{Path(tmp) / 'prop.db'}")
                else:
                    await dom.start_link(PG_URL, schema=pg_schema)
                    await dom.drop_tables()
                await dom.create_tables()
                await body()

    trio.run(main)


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema for this module's property runs (skipped when unreachable)."""
    engine = pg_engine()
    if engine is None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    schema = f"p_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# -- a. read policies ----------------------------------------------------------------------------


class PropUser(Resource):
    __tablename__ = "prop_users"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute()
    is_admin: bool = attribute(default=False)
    is_banned: bool = attribute(default=False)
    actions = (create("create"), read("read"))


class PropRoom(Resource):
    __tablename__ = "prop_rooms"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute()
    owner_id: uuid.UUID | None = attribute()
    owner = belongs_to(PropUser, source_attribute="owner_id")
    actions = (create("create"), read("read"))


class PropDoc(Resource):
    """Its ``policies`` are replaced by each example (set before any call)."""

    __tablename__ = "prop_docs"
    id: uuid.UUID = uuid_primary_key()
    title: str = attribute()
    public: bool = attribute(default=False)
    author = belongs_to(PropUser, source_attribute="author_id")
    room = belongs_to(PropRoom, source_attribute="room_id")
    actions = (create("create"), read("read"))


class PropPolicyDomain(Domain):
    resources = (PropUser, PropRoom, PropDoc)


# A check is named by a spec; `STATIC` ones may be policy conditions.
STATIC: list[Any] = [
    "always",
    "never",
    "actor_present",
    ("admin", True),
    ("admin", False),
    ("banned", True),
    ("type", "read"),
    ("type", "create"),
]
FILTERS: list[Any] = ["author", "room_owner", "public"]
KINDS = ["authorize_if", "forbid_if", "authorize_unless", "forbid_unless"]


def make_check(spec: Any) -> domain.Check:
    if spec == "always":
        return always()
    if spec == "never":
        return never()
    if spec == "actor_present":
        return actor_present()
    if spec == "author":
        return relates_to_actor_via("author")
    if spec == "room_owner":
        return relates_to_actor_via("room", "owner")
    if spec == "public":
        return expr(lambda ctx: PropDoc.__table__.c.public.is_(True), "public")
    kind, value = spec
    if kind == "admin":
        return actor_attribute_equals("is_admin", value)
    if kind == "banned":
        return actor_attribute_equals("is_banned", value)
    return action_type(value)


STEP_MAKERS = {
    "authorize_if": authorize_if,
    "forbid_if": forbid_if,
    "authorize_unless": authorize_unless,
    "forbid_unless": forbid_unless,
}


@dataclass(frozen=True)
class PolicySpec:
    is_bypass: bool
    conditions: tuple[Any, ...]
    steps: tuple[tuple[str, Any], ...]

    def build(self) -> domain.Policy:
        conds = [make_check(c) for c in self.conditions]
        steps = [STEP_MAKERS[kind](make_check(c)) for kind, c in self.steps]
        return (bypass if self.is_bypass else policy)(conds, *steps)


policy_specs = st.builds(
    PolicySpec,
    st.booleans(),
    st.lists(st.sampled_from(STATIC), min_size=1, max_size=2).map(tuple),
    st.lists(
        st.tuples(st.sampled_from(KINDS), st.sampled_from(STATIC + FILTERS * 3)),
        min_size=1,
        max_size=3,
    ).map(tuple),
)


@dataclass
class World:
    users: list[tuple[bool, bool]]  # (is_admin, is_banned)
    rooms: list[int | None]  # owner index
    docs: list[tuple[bool, int | None, int | None]]  # (public, author index, room index)


@st.composite
def policy_cases(draw: st.DrawFn) -> tuple[World, list[PolicySpec], Any]:
    n_users = draw(st.integers(1, 4))
    users = draw(
        st.lists(st.tuples(st.booleans(), st.booleans()), min_size=n_users, max_size=n_users)
    )
    rooms = draw(st.lists(st.none() | st.integers(0, n_users - 1), max_size=3))
    room_index = st.none() | (st.integers(0, len(rooms) - 1) if rooms else st.nothing())
    docs = draw(
        st.lists(
            st.tuples(st.booleans(), st.none() | st.integers(0, n_users - 1), room_index),
            max_size=8,
        )
    )
    specs = draw(st.lists(policy_specs, max_size=3))
    actor = draw(st.none() | st.just("stranger") | st.integers(0, n_users - 1))
    return World(users, rooms, docs), specs, actor


def python_check(spec: Any, actor: Any, doc: dict[str, Any], rooms: dict[Any, Any]) -> bool:
    """The meaning of a check for a read, over plain values."""
    if spec == "always":
        return True
    if spec == "never":
        return False
    if spec == "actor_present":
        return actor is not None
    if spec == "author":
        return actor is not None and doc["author_id"] is not None and doc["author_id"] == actor.id
    if spec == "room_owner":
        if actor is None or doc["room_id"] is None:
            return False
        owner = rooms[doc["room_id"]]
        return owner is not None and owner == actor.id
    if spec == "public":
        return bool(doc["public"])
    kind, value = spec
    if kind == "admin":
        return actor is not None and actor.is_admin == value
    if kind == "banned":
        return actor is not None and actor.is_banned == value
    return bool(value == "read")


def python_allows(
    specs: Sequence[PolicySpec], actor: Any, doc: dict[str, Any], rooms: dict[Any, Any]
) -> bool:
    """Ash's policy semantics, written out: bypasses, then every applicable policy must pass,
    and something must have applied (a passing bypass or a regular policy)."""
    if not specs:
        return True

    def check(c: Any) -> bool:
        return python_check(c, actor, doc, rooms)

    regular_applied = False
    for spec in specs:
        if not all(check(c) for c in spec.conditions):
            continue
        passed = False  # undecided: fails
        for kind, c in spec.steps:
            value = check(c)
            if kind == "authorize_if" and value:
                passed = True
                break
            if kind == "forbid_if" and value:
                break
            if kind == "authorize_unless" and not value:
                passed = True
                break
            if kind == "forbid_unless" and not value:
                break
        if spec.is_bypass:
            if passed:
                return True
        else:
            regular_applied = True
            if not passed:
                return False
    return regular_applied


def check_policy_case(case: tuple[World, list[PolicySpec], Any], pg: str | None) -> None:
    world, specs, actor_choice = case
    PropDoc.policies = tuple(s.build() for s in specs)
    domain._policy.check_policies(PropDoc)
    dom = PropPolicyDomain

    async def body() -> None:
        users = [
            await dom.create(
                PropUser,
                input={"name": f"u{i}", "is_admin": a, "is_banned": b},
                authorize=False,
            )
            for i, (a, b) in enumerate(world.users)
        ]
        rooms = [
            await dom.create(
                PropRoom,
                input={"name": f"r{i}", "owner_id": None if o is None else users[o].id},
                authorize=False,
            )
            for i, o in enumerate(world.rooms)
        ]
        owner_of = {r.id: r.owner_id for r in rooms}
        docs = [
            await dom.create(
                PropDoc,
                input={
                    "title": f"d{i}",
                    "public": public,
                    "author_id": None if a is None else users[a].id,
                    "room_id": None if r is None else rooms[r].id,
                },
                authorize=False,
            )
            for i, (public, a, r) in enumerate(world.docs)
        ]
        actor: Any
        if actor_choice is None:
            actor = None
        elif actor_choice == "stranger":
            actor = SimpleNamespace(id=uuid.uuid4(), is_admin=False, is_banned=False)
        else:
            actor = users[actor_choice]
        expected = {d.id for d in docs if python_allows(specs, actor, d.to_dict(), owner_of)}
        got = await dom.read(PropDoc, actor=actor)
        assert {d.id for d in got} == expected
        assert len(got) == len(expected)
        forbidden = [d for d in docs if d.id not in expected][:2]
        for d in forbidden:
            with pytest.raises(NotFound):
                await dom.get(PropDoc, d.id, actor=actor)
        allowed = [d for d in docs if d.id in expected][:1]
        for d in allowed:
            assert (await dom.get(PropDoc, d.id, actor=actor)).title == d.title

    try:
        run_on_fresh_db(dom, body, pg)
    finally:
        PropDoc.policies = ()


@SETTINGS
@given(case=policy_cases())
def test_read_returns_exactly_what_the_policies_allow(
    case: tuple[World, list[PolicySpec], Any],
) -> None:
    check_policy_case(case, None)


@pytest.mark.postgres
@settings(SETTINGS, max_examples=25, suppress_health_check=list(HealthCheck))
@given(case=policy_cases())
def test_read_returns_exactly_what_the_policies_allow_postgres(
    pg_schema: str, case: tuple[World, list[PolicySpec], Any]
) -> None:
    check_policy_case(case, pg_schema)


# -- b. validations ------------------------------------------------------------------------------


class PropForm(Resource):
    __tablename__ = "prop_forms"
    id: uuid.UUID = uuid_primary_key()
    handle: str = attribute(min_length=3, max_length=8, match=r"^[a-z]+$")
    age: int = attribute(min=0, max=130)
    level: str = attribute(one_of=("low", "mid", "high"))
    nick: str | None = attribute(max_length=5)
    low: int = attribute()
    high: int = attribute()
    kind: str | None = attribute()
    code: str | None = attribute()
    actions = (
        create(
            "create",
            present("nick"),
            compare("high", greater_than="low"),
            one_of("kind", ("a", "b")),
            string_length("note", min=2, max=4),
            match("code", r"^[A-Z]{2}[0-9]$"),
            arguments=(argument("note", str, allow_nil=True),),
        ),
        read("read"),
    )


class PropFormDomain(Domain):
    resources = (PropForm,)


LOWER = set(string.ascii_lowercase)


def _stripped_or_nil(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def expected_form_errors(data: dict[str, Any]) -> set[str]:
    """Which fields are invalid, by rules written out independently of the library."""
    bad: set[str] = set()
    handle = _stripped_or_nil(data["handle"])
    if handle is None or not 3 <= len(handle) <= 8 or not set(handle) <= LOWER:
        bad.add("handle")
    age = data["age"]
    if isinstance(age, str):
        age = int(age) if age.strip().lstrip("+-").isdigit() else None
    elif isinstance(age, bool):
        age = None
    if age is None or not 0 <= age <= 130:
        bad.add("age")
    if _stripped_or_nil(data["level"]) not in ("low", "mid", "high"):
        bad.add("level")
    nick = _stripped_or_nil(data["nick"])
    if nick is None or len(nick) > 5:
        bad.add("nick")
    if not data["high"] > data["low"]:
        bad.add("high")
    kind = _stripped_or_nil(data["kind"])
    if kind is not None and kind not in ("a", "b"):
        bad.add("kind")
    note = _stripped_or_nil(data["note"])
    if note is not None and not 2 <= len(note) <= 4:
        bad.add("note")
    code = _stripped_or_nil(data["code"])
    if code is not None and not (
        len(code) == 3
        and all(ch in string.ascii_uppercase for ch in code[:2])
        and code[2] in string.digits
    ):
        bad.add("code")
    return bad


def _text(alphabet: str, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, max_size=max_size)


form_inputs = st.fixed_dictionaries(
    {
        "handle": _text("abcxyzAZ1 _", 10),
        "age": st.integers(-5, 140)
        | st.integers(-5, 140).map(lambda i: f" {i} ")
        | st.sampled_from(["x", "1.5", True]),
        "level": st.sampled_from(["low", "mid", "high", " mid ", "Low", "", "top"]),
        "nick": st.none() | _text("ab ", 7),
        "low": st.integers(-3, 3),
        "high": st.integers(-3, 3),
        "kind": st.none() | st.sampled_from(["a", "b", " a ", "c", "", "ab"]),
        "note": st.none() | _text("xy ", 6),
        "code": st.none() | _text("AB19x ", 4),
    }
)


@SETTINGS
@given(inputs=st.lists(form_inputs, min_size=1, max_size=8))
def test_validations_reject_exactly_the_invalid_inputs(inputs: list[dict[str, Any]]) -> None:
    dom = PropFormDomain

    async def body() -> None:
        stored: list[tuple[uuid.UUID, dict[str, Any]]] = []
        for data in inputs:
            bad = expected_form_errors(data)
            if bad:
                with pytest.raises(Invalid) as info:
                    await dom.create(PropForm, input=data)
                assert set(info.value.errors) == bad, data
                for name in bad:
                    assert name in str(info.value)
            else:
                rec = await dom.create(PropForm, input=data)
                stored.append((rec.id, data))
        rows = {r.id: r for r in await dom.read(PropForm)}
        assert set(rows) == {i for i, _ in stored}
        for rid, data in stored:
            row = rows[rid]
            assert row.handle == data["handle"].strip()
            assert row.age == int(str(data["age"]).strip())
            assert row.level == data["level"].strip()
            assert row.nick == _stripped_or_nil(data["nick"])
            assert (row.low, row.high) == (data["low"], data["high"])
            assert row.kind == _stripped_or_nil(data["kind"])
            assert row.code == _stripped_or_nil(data["code"])

    run_on_fresh_db(dom, body)


# -- c. no broadcast escapes a rolled-back transaction -------------------------------------------


class Boom(Exception):
    pass


def _fail_after_write(tx: domain.Tx, cs: domain.Changeset, record: Any) -> None:
    if record.mode == "hook":
        raise Boom(record.title)
    if record.mode == "nested":
        # a nested create joins the outbox, then the parent fails: both roll back
        PropBroadcastDomain.create_in(
            tx,
            PropNote,
            input={"owner_id": record.owner_id, "title": f"{record.title}-child", "mode": "ok"},
        )
        raise Boom(record.title)


class PropNote(Resource):
    __tablename__ = "prop_notes"
    id: uuid.UUID = uuid_primary_key()
    owner_id: uuid.UUID = attribute()
    title: str = attribute()
    mode: str = attribute(default="ok")
    identities = (identity("prop_unique_title", "title"),)
    actions = (create("create", after_action=[_fail_after_write]), read("read"))
    policies = (
        policy(
            action_type("create"),
            authorize_if(expr(lambda ctx: PropNote.__table__.c.mode != "policy", "not policy")),
        ),
        policy(action_type("read"), authorize_if(always())),
    )
    notifiers = (pubsub("prop_notes:{owner_id}", event="created"),)
    counters = (counter("prop_notes", trigger_on=("create",), audience="owner_id"),)


class PropBroadcastDomain(Domain):
    resources = (PropNote,)


MODES = ["ok", "ok", "ok", "hook", "policy", "nested"]
op = st.tuples(st.integers(0, 1), st.sampled_from("abcdefg"), st.sampled_from(MODES))


@SETTINGS
@given(groups=st.lists(st.lists(op, min_size=1, max_size=3), min_size=1, max_size=6))
def test_no_broadcast_escapes_a_rolled_back_transaction(
    groups: list[list[tuple[int, str, str]]],
) -> None:
    dom = PropBroadcastDomain
    owners = [uuid.uuid4(), uuid.uuid4()]

    async def forward(index: int, parent: beam.Pid) -> None:
        beam.subscribe(f"prop_notes:{owners[index]}")
        beam.subscribe(f"user:{owners[index]}")
        while True:
            msg = await beam.receive()
            if msg == "flush":
                beam.send(parent, ("flushed", index))
            else:
                beam.send(parent, ("got", index, msg))

    async def write(inputs: list[dict[str, Any]]) -> None:
        if len(inputs) == 1:
            await dom.create(PropNote, input=inputs[0])
        else:
            await dom.bulk_create(PropNote, "create", inputs)

    async def body() -> None:
        me = beam.self()
        forwarders = [beam.spawn(forward, i, me) for i in range(2)]
        await trio.sleep(0.01)  # let both subscribe
        titles: set[str] = set()
        counts = [0, 0]
        expected: collections.Counter[Any] = collections.Counter()
        for group in groups:
            group_titles = [t for _, t, _ in group]
            fails = (
                any(m != "ok" for _, _, m in group)
                or len(set(group_titles)) != len(group_titles)
                or bool(titles & set(group_titles))
            )
            inputs = [{"owner_id": owners[o], "title": t, "mode": m} for o, t, m in group]
            if fails:
                with pytest.raises((Boom, Forbidden, Invalid)):
                    await write(inputs)
                continue
            await write(inputs)
            titles |= set(group_titles)
            for o, t, _ in group:
                counts[o] += 1
                expected[(o, "created", t)] += 1
            for o in {o for o, _, _ in group}:
                expected[(o, "counter", counts[o])] += 1
        for pid in forwarders:
            beam.send(pid, "flush")
        got: collections.Counter[Any] = collections.Counter()
        flushed = 0
        while flushed < 2:
            msg = await beam.receive(timeout=5)
            if msg[0] == "flushed":
                flushed += 1
                continue
            _, index, (event, payload) = msg
            if event == "created":
                assert payload.owner_id == owners[index]
                got[(index, "created", payload.title)] += 1
            else:
                assert event == "counter_updated"
                assert payload["counter"] == "prop_notes"
                got[(index, "counter", payload["value"])] += 1
        assert got == expected
        stored = await dom.read(PropNote)
        assert sorted(n.title for n in stored) == sorted(titles)
        for o in range(2):
            values = await dom.counter_values(PropNote, PropNote.counters[0], [owners[o]])
            assert values[owners[o]] == counts[o]
        for pid in forwarders:
            beam.exit(pid, "kill")

    run_on_fresh_db(dom, body)
