"""A small domain (people, boards, seats, notes) served through web.api, for the API tests.

* anyone may register and read people (a person's ``secret`` is hidden from the API);
* signing in (name, secret) stores a :class:`Session` row; a bearer token carries its id, so
  deleting the row revokes the token;
* any signed-in person sees every board and opens one (becoming its first member), and
  takes a seat on a board to join it;
* only a board's members read and post its notes; only a note's author edits, pins, rates or
  removes it; posting a note broadcasts ``new_note`` to ``board:<id>``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

import beam
import web
from domain import (
    Changeset,
    Domain,
    Resource,
    Tx,
    action_type,
    actor_present,
    always,
    argument,
    attribute,
    authorize_if,
    belongs_to,
    change,
    create,
    create_timestamp,
    destroy,
    has_many,
    identity,
    many_to_many,
    policy,
    pubsub,
    read,
    relate_actor,
    relates_to_actor_via,
    set_attribute,
    update,
    uuid_primary_key,
)
from web import api

SECRET_KEY = "k" * 40


class Person(Resource):
    __tablename__ = "api_people"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute(min_length=2, max_length=20, match=r"^[a-z]+$")
    secret: str = attribute(max_length=100)
    inserted_at: datetime = create_timestamp()
    identities = (identity("unique_person_name", "name"),)
    actions = (create("register", accept=("name", "secret")), read("read"))
    policies = (policy(action_type("create", "read"), authorize_if(always())),)


class Session(Resource):
    __tablename__ = "api_sessions"
    id: uuid.UUID = uuid_primary_key()
    person_id: uuid.UUID = attribute(writable=False)
    person = belongs_to("Person", source_attribute="person_id", allow_nil=False)
    inserted_at: datetime = create_timestamp()
    actions = (create("issue", relate_actor("person"), accept=()), read("read"), destroy("revoke"))
    policies = (
        policy(action_type("read"), authorize_if(always())),
        policy(action_type("create", "destroy"), authorize_if(relates_to_actor_via("person"))),
    )


def _opener_sits(cs: Changeset) -> None:
    def sit(tx: Tx, cs: Changeset, board: Board) -> None:
        Boards.create_in(tx, Seat, "take", {"board_id": board.id}, actor=cs.actor)

    cs.after_action(sit)


class Board(Resource):
    __tablename__ = "api_boards"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute(min_length=1, max_length=40)
    inserted_at: datetime = create_timestamp()
    members = many_to_many("Person", through="Seat")
    notes = has_many("Note")
    identities = (identity("unique_board_name", "name"),)
    actions = (create("open", change(_opener_sits), accept=("name",)), read("read"))
    policies = (policy(action_type("create", "read"), authorize_if(actor_present())),)


class Seat(Resource):
    __tablename__ = "api_seats"
    id: uuid.UUID = uuid_primary_key()
    person_id: uuid.UUID = attribute(writable=False)
    person = belongs_to("Person", source_attribute="person_id", allow_nil=False)
    board_id: uuid.UUID = attribute()
    board = belongs_to("Board", source_attribute="board_id", allow_nil=False)
    identities = (identity("unique_seat", "person_id", "board_id"),)
    actions = (
        create("take", relate_actor("person"), accept=("board_id",), upsert_identity="unique_seat"),
        read("read"),
        destroy("leave"),
    )
    policies = (
        policy(action_type("create"), authorize_if(actor_present())),
        policy(action_type("read", "destroy"), authorize_if(relates_to_actor_via("person"))),
    )


def _column(name: str) -> Any:
    return Note.__table__.c[name]


def _rate(cs: Changeset) -> None:
    delta = cs.arguments.get("delta")
    if not isinstance(delta, int):
        return  # the argument's own error says why
    stars = (cs.get("stars") or 0) + delta
    cs.set("stars", max(0, min(5, stars)))


class Note(Resource):
    __tablename__ = "api_notes"
    id: uuid.UUID = uuid_primary_key()
    body: str = attribute(min_length=1, max_length=200)
    stars: int = attribute(default=0, min=0, max=5)
    pinned: bool = attribute(default=False, writable=False)
    board_id: uuid.UUID = attribute()
    board = belongs_to("Board", source_attribute="board_id", allow_nil=False)
    author_id: uuid.UUID = attribute(writable=False)
    author = belongs_to("Person", source_attribute="author_id", allow_nil=False)
    inserted_at: datetime = create_timestamp()
    actions = (
        create("post", relate_actor("author"), accept=("body", "board_id", "stars")),
        read("read"),
        read(
            "search",
            arguments=(argument("word", str, min_length=1),),
            filter=lambda ctx: _column("body").contains(ctx.arguments["word"], autoescape=True),
        ),
        update("edit", accept=("body", "stars")),
        update("pin", set_attribute("pinned", True), accept=()),
        update(
            "rate", change(_rate), accept=(), arguments=(argument("delta", int, min=-5, max=5),)
        ),
        destroy("remove"),
    )
    policies = (
        policy(
            action_type("create", "read"), authorize_if(relates_to_actor_via("board", "members"))
        ),
        policy(action_type("update", "destroy"), authorize_if(relates_to_actor_via("author"))),
    )
    notifiers = (pubsub("board:{board_id}", actions=("post",), event="new_note"),)


class Boards(Domain):
    resources = (Person, Session, Board, Seat, Note)


async def issue(attributes: Mapping[str, Any], request: web.Request) -> str | None:
    """Sign in: the id of a new session row, or ``None`` for a wrong name or secret."""
    found = await Boards.read(Person, filter={"name": attributes["username"]}, limit=1)
    if not found or found[0].secret != attributes["password"]:
        return None
    session = await Boards.create(Session, "issue", {}, actor=found[0])
    return str(session.id)


async def load(token_id: str) -> Person | None:
    """The person a live session row *token_id* belongs to (``None`` once revoked)."""
    try:
        wanted = uuid.UUID(token_id)
    except ValueError:
        return None
    found = await Boards.read(Session, filter={"id": wanted}, load=("person",), limit=1)
    return found[0].person if found else None


async def revoke(token_id: str, actor: Any) -> None:
    """Sign out: delete the session row."""
    found = await Boards.read(Session, filter={"id": uuid.UUID(token_id)}, limit=1)
    if found:
        await Boards.destroy(found[0], "revoke", actor=actor)


async def pin_all(call: api.ApiCall) -> dict[str, int]:
    """An app function as a route: pin every note of the caller's on a board."""
    try:
        board = uuid.UUID(str(call.input.get("board_id")))
    except ValueError:
        raise api.ApiError.one(
            422, "board_id is not a UUID", pointer="/data/attributes/board_id"
        ) from None
    notes = await Boards.read(
        Note, actor=call.actor, filter={"author_id": call.actor.id, "board_id": board}
    )
    for note in notes:
        await Boards.update(note, "pin", actor=call.actor)
    return {"pinned": len(notes)}


SCOPES: dict[str, web.Limit | web.Backoff] = {
    "api": web.Limit(10_000, 60.0, "API requests"),
    "posting": web.Limit(1000, 60.0, "notes"),
}


def make_api(*, plain: bool = False, tokens: api.BearerTokens | None = None) -> api.JsonApi:
    """The API over :class:`Boards` (people, boards, seats, notes), sign-in at /api/session."""
    tokens = tokens or api.BearerTokens(SECRET_KEY, load, max_age=3600)
    json_api = api.JsonApi(
        Boards, prefix="/api", tokens=tokens, scope="api", plain=plain, title="Boards"
    )
    json_api.resource(Person, "people", api.index(), api.get(), hide=("secret",))
    json_api.resource(Board, "boards", api.index(), api.get(), api.post("open"))
    json_api.resource(Seat, "seats", api.index(), api.post("take"), api.delete("leave"))
    json_api.resource(
        Note,
        "notes",
        api.index("read", default_limit=5, max_limit=50),
        api.get("read"),
        api.post("post", limit="posting"),
        api.patch("edit"),
        api.delete("remove"),
        api.route("GET", "/search", "search"),
        api.route("POST", "/{id}/pin", "pin"),
        api.route("POST", "/{id}/rate", "rate"),
        api.route("POST", "/pin_all", pin_all),
    )
    json_api.sign_in(issue, revoke=revoke)
    return json_api


@dataclass
class Running:
    """A live server: its port, the API, and the people made for the test."""

    port: int
    api: api.JsonApi
    alice: Person
    bob: Person
    carol: Person


@asynccontextmanager
async def running(
    url: str,
    *,
    plain: bool = False,
    schema: str | None = None,
    scopes: Mapping[str, web.Limit | web.Backoff] | None = None,
) -> AsyncIterator[Running]:
    """A node with the domain on *url*, a rate limiter and the API served on a free port."""
    async with beam.open_node(), trio.open_nursery() as nursery:
        await Boards.start_link(url, schema=schema)
        await Boards.create_tables()
        await web.RateLimiter.start_link({**SCOPES, **(scopes or {})}, name=web.RATE_LIMITER)
        people = [
            await Boards.create(Person, "register", {"name": n, "secret": f"{n}-secret"})
            for n in ("alice", "bob", "carol")
        ]
        json_api = make_api(plain=plain)
        endpoint = web.Endpoint()
        endpoint.get("/", lambda request: web.Response(200, b"ok"))
        json_api.mount(endpoint)
        port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
        yield Running(port, json_api, *people)
        nursery.cancel_scope.cancel()
