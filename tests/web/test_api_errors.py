"""web.api's errors as JSON:API error objects, against a live server: 422 with a
``source.pointer`` per field, 400 naming the parameter, the value and the fix, 404, 405,
409, 415; and never a 500 for anything a client sends (a seeded fuzz of query strings and
bodies, and a property of the query parser)."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from web import api

from .api_app import Note, Person, make_api, running
from .api_checks import check_unstorable_input
from .api_client import JSONAPI, call, new, sign_in


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def pointers(answer: Any) -> list[str | None]:
    return [e.get("source", {}).get("pointer") for e in answer.errors]


async def test_invalid_input_is_422_with_a_pointer_per_field(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        board = await call(r.port, "POST", "/api/boards", new("boards", {"name": "b"}), token=token)
        board_id = board.json["data"]["id"]
        bad = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "", "stars": 9}, board=("boards", board_id)),
            token=token,
        )
        assert bad.status == 422
        assert bad.headers["content-type"] == JSONAPI
        assert sorted(p or "" for p in pointers(bad)) == [
            "/data/attributes/body",
            "/data/attributes/stars",
        ]
        assert all(e["status"] == "422" and e["code"] == "invalid" for e in bad.errors)
        # an id given through a relationship is pointed at there
        wrong_board = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "x"}, board=("boards", "not-a-uuid")),
            token=token,
        )
        assert wrong_board.status == 422
        assert pointers(wrong_board) == ["/data/relationships/board"]
        unknown = await call(
            r.port,
            "POST",
            "/api/boards",
            new("boards", {"name": "c", "colour": "red"}),
            token=token,
        )
        assert unknown.status == 422
        assert pointers(unknown) == ["/data/attributes/colour"]
        not_writable = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "x", "pinned": True, "board_id": board_id}),
            token=token,
        )
        assert not_writable.status == 422
        assert pointers(not_writable) == ["/data/attributes/pinned"]
        taken = await call(r.port, "POST", "/api/boards", new("boards", {"name": "b"}), token=token)
        assert taken.status == 422
        assert pointers(taken) == ["/data/attributes/name"]
        assert "already been taken" in taken.errors[0]["detail"]
        missing_board = await call(
            r.port, "POST", "/api/notes", new("notes", {"body": "x"}), token=token
        )
        assert missing_board.status == 422
        assert pointers(missing_board) == ["/data/attributes/board_id"]
        nowhere = await call(
            r.port,
            "POST",
            "/api/seats",
            new("seats", {"board_id": str(uuid.uuid4())}),
            token=token,
        )
        assert nowhere.status == 422, nowhere  # a board that does not exist: the whole record
        assert pointers(nowhere) == ["/data"]
        cannot_set = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "x"}, author=("people", str(r.bob.id))),
            token=token,
        )
        assert cannot_set.status == 422
        assert pointers(cannot_set) == ["/data/relationships/author"]


async def test_malformed_bodies(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        cases: list[tuple[dict[str, Any], int]] = [
            ({"raw": b"{not json"}, 400),
            ({"raw": b"[1, 2]"}, 400),
            ({"raw": b'{"data": []}'}, 400),
            ({"raw": b'{"data": {"attributes": {}}}'}, 400),
            ({"raw": b'{"data": {"type": "notes", "attributes": {}}}'}, 409),
            ({"raw": b'{"data": {"type": "boards", "attributes": []}}'}, 400),
            ({"raw": b'{"data": {"type": "boards", "attributes": {}, "relationships": 5}}'}, 400),
            (
                {
                    "raw": b'{"data": {"type": "boards", "attributes": {"name": "x"}}}',
                    "content_type": "text/plain",
                },
                415,
            ),
            (
                {
                    "raw": b'{"data": {"type": "boards", "attributes": {"name": "x"}}}',
                    "content_type": "application/vnd.api+json; charset=utf-8",
                },
                415,
            ),
            ({"raw": b""}, 400),
            ({"raw": b"[" * 100_000}, 400),
        ]
        for options, status in cases:
            answer = await call(r.port, "POST", "/api/boards", token=token, **options)
            assert answer.status == status, (options, answer)
            assert answer.errors
            assert answer.errors[0]["status"] == str(status)
        board = await call(
            r.port, "POST", "/api/boards", new("boards", {"name": "ok"}), token=token
        )
        board_id = board.json["data"]["id"]
        note = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "x", "board_id": board_id}),
            token=token,
        )
        note_id = note.json["data"]["id"]
        other = str(uuid.uuid4())
        mismatch = await call(
            r.port,
            "PATCH",
            f"/api/notes/{note_id}",
            {"data": {"type": "notes", "id": other, "attributes": {"body": "y"}}},
            token=token,
        )
        assert mismatch.status == 409
        assert pointers(mismatch) == ["/data/id"]
        client_id = await call(
            r.port,
            "POST",
            "/api/boards",
            {"data": {"type": "boards", "id": other, "attributes": {"name": "mine"}}},
            token=token,
        )
        assert client_id.status == 403  # JSON:API: ids of new records are the server's
        assert pointers(client_id) == ["/data/id"]
        empty_patch = await call(r.port, "PATCH", f"/api/notes/{note_id}", token=token, raw=b"")
        assert empty_patch.status == 400
        with_query = await call(
            r.port, "POST", "/api/boards?x=1", new("boards", {"name": "q"}), token=token
        )
        assert with_query.status == 400


async def test_bad_queries_are_400_naming_the_value_and_the_fix(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        cases = {
            "filter[colour]=red": ("filter[colour]", "'colour' is not a field of notes"),
            "filter[stars]=many": ("filter[stars]", "'many' is not an integer"),
            "filter[stars][like]=1": ("filter[stars]", "no operator 'like'"),
            "filter[stars][contains]=1": ("filter[stars]", "applies to text fields"),
            "filter[pinned][gt]=true": ("filter[pinned]", "use eq"),
            "filter[inserted_at][gt]=yesterday": ("filter[inserted_at]", "ISO 8601"),
            "filter[id]=abc": ("filter[id]", "not a UUID"),
            "filter=1": ("filter", "filter[<field>]"),
            "sort=colour": ("sort", "sort by one of"),
            "sort=a,b,c,d,e,f": ("sort", "at most 5"),
            "page[limit]=500": ("page[limit]", "ask for at most 50 per page"),
            "page[limit]=0": ("page[limit]", "out of range"),
            "page[limit]=ten": ("page[limit]", "not a whole number"),
            "page[size]=1": ("page[size]", "page[limit], page[offset] or page[after]"),
            "page[offset]=2&page[after]=x": ("page[offset]", "pick one"),
            "include=author.name": ("include", "one relationship deep"),
            "include=colour": ("include", "not a relationship of notes"),
            "fields[colours]=x": ("fields[colours]", "no type 'colours'"),
            "fields[notes]=secret": ("fields[notes]", "not fields of notes"),
            "colour=red": ("colour", "unknown query parameter"),
            "a]b=1": ("a]b", "not a query parameter name"),
        }
        for query, (parameter, words) in cases.items():
            answer = await call(r.port, "GET", f"/api/notes?{query}", token=token)
            assert answer.status == 400, (query, answer)
            assert answer.errors[0]["source"]["parameter"].startswith(parameter), (query, answer)
            assert words in answer.errors[0]["detail"], (query, answer)
        everything = await call(
            r.port, "GET", "/api/notes?filter[colour]=1&sort=x&page[limit]=0", token=token
        )
        assert len(everything.errors) == 3  # every mistake at once
        one = await call(r.port, "GET", f"/api/notes/{uuid.uuid4()}?sort=body", token=token)
        assert one.status == 400


async def test_unstorable_values_are_refused_on_sqlite(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        await check_unstorable_input(r.port, await sign_in(r.port, "alice"))


async def test_not_found_and_method_not_allowed(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        nothing = await call(r.port, "GET", "/api/colours", token=token)
        assert nothing.status == 404
        assert "/api/notes" in nothing.errors[0]["detail"]
        assert (await call(r.port, "GET", "/api", token=token)).status == 404
        assert (await call(r.port, "GET", f"/api/notes/{uuid.uuid4()}", token=token)).status == 404
        assert (await call(r.port, "GET", "/api/notes/not-an-id", token=token)).status == 404
        assert (await call(r.port, "GET", "/api/notes/a/b/c", token=token)).status == 404
        put = await call(r.port, "PUT", "/api/boards", new("boards", {"name": "x"}), token=token)
        assert put.status == 405
        assert put.headers["allow"] == "GET, HEAD, POST"
        # a literal path is its own route: never read as the id of a record
        search = await call(r.port, "DELETE", "/api/notes/search", token=token)
        assert search.status == 405
        assert search.headers["allow"] == "GET, HEAD"
        people = await call(r.port, "DELETE", f"/api/people/{r.bob.id}", token=token)
        assert people.status == 405
        for accept, status in [
            ("application/vnd.api+json", 200),
            ("text/html, */*;q=0.8", 200),
            ("application/json", 200),
            ('application/vnd.api+json; ext="https://example.com/ext"', 406),
            ("text/html", 406),
        ]:
            answer = await call(
                r.port, "GET", "/api/boards", token=token, headers=(("accept", accept),)
            )
            assert answer.status == status, (accept, answer)
        # beside the API, the site's own routes still answer
        assert (await call(r.port, "GET", "/")).raw == b"ok"


async def test_no_input_yields_a_500(tmp_path: Path) -> None:
    """A seeded fuzz: random paths, methods, query strings and bodies, made of the API's own
    vocabulary and of junk; every answer is below 500 and a JSON:API error document or data."""
    rng = random.Random(22)
    words = [
        "filter", "sort", "page", "include", "fields", "limit", "offset", "after", "body", "stars",
        "id", "pinned", "board_id", "author", "board", "notes", "people", "gt", "in", "contains",
        "is_nil", "eq", "-body", "word", "delta", "%", "_", "'", '"', ";", "\\", "\u00e9", "[", "]",
        "null", "true", "0", "-1", "99999999999999999999", "2026-01-01", str(uuid.UUID(int=0)),
    ]  # fmt: skip

    def text() -> str:
        return "".join(rng.choice(words) for _ in range(rng.randint(0, 3)))

    def key() -> str:
        base = rng.choice(["filter", "sort", "page", "include", "fields", "word", text()])
        return base + "".join(f"[{text()}]" for _ in range(rng.randint(0, 3)))

    def value() -> Any:
        return rng.choice(
            [text(), rng.randint(-10, 10), None, True, [text()], {text(): text()}, 1.5, "x" * 300]
        )

    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        board = await call(
            r.port, "POST", "/api/boards", new("boards", {"name": "fuzz"}), token=token
        )
        board_id = board.json["data"]["id"]
        note = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "x", "board_id": board_id}),
            token=token,
        )
        ids = [note.json["data"]["id"], board_id, "x", str(uuid.uuid4())]
        for _ in range(250):
            collection = rng.choice(["notes", "boards", "seats", "people", "session", text()])
            path = f"/api/{quote(collection)}"
            if rng.random() < 0.5:
                path += "/" + rng.choice([*ids, "search", "pin_all"])
                if rng.random() < 0.3:
                    path += rng.choice(["/pin", "/rate", "/x"])
            query = "&".join(
                f"{quote(key())}={quote(str(value()))}" for _ in range(rng.randint(0, 4))
            )
            method = rng.choice(["GET", "POST", "PATCH", "DELETE", "PUT"])
            attributes = {rng.choice(words): value() for _ in range(rng.randint(0, 3))}
            document: Any = rng.choice(
                [
                    {"data": {"type": collection, "attributes": attributes}},
                    {"data": {"type": collection, "id": rng.choice(ids), "attributes": attributes}},
                    {
                        "data": {
                            "type": collection,
                            "relationships": {rng.choice(words): {"data": value()}},
                        }
                    },
                    attributes,
                    value(),
                ]
            )
            answer = await call(
                r.port,
                method,
                path + ("?" + query if query else ""),
                raw=json.dumps(document).encode() if method != "GET" else b"",
                token=rng.choice([token, token, token, None, "junk"]),
            )
            assert answer.status < 500, (method, path, query, document, answer)
            if answer.status >= 400:
                assert answer.headers.get("content-type") == JSONAPI, (method, path, query, answer)
                assert answer.errors, answer


# -- the query parser alone: any query string gives a spec or a 400, nothing else ----------------

_PARTS = st.sampled_from(
    ["filter", "sort", "page", "include", "fields", "word", "limit", "after", "offset", "body",
     "stars", "id", "notes", "people", "gt", "in", "is_nil", "contains", "author", "x", ""]
)  # fmt: skip


@st.composite
def _queries(draw: st.DrawFn) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for _ in range(draw(st.integers(0, 5))):
        name = draw(_PARTS) + "".join(f"[{p}]" for p in draw(st.lists(_PARTS, max_size=3)))
        query[name] = [draw(st.one_of(_PARTS, st.text(max_size=20)))]
    return query


@settings(max_examples=300, deadline=None)
@given(_queries())
def test_the_query_parser_answers_a_spec_or_a_400(query: dict[str, list[str]]) -> None:
    json_api = make_api()
    notes = json_api.by_name["notes"]
    for route in notes.routes:
        if route.method != "GET":
            continue
        refused: api.ApiError | None = None
        try:
            spec = api.parse_query(query, notes, route, json_api.types)
        except api.ApiError as exc:
            refused = exc
        if refused is not None:
            assert refused.status == 400
            assert refused.errors
            assert all("parameter" in e["source"] for e in refused.errors)
        else:
            assert 1 <= spec.limit <= route.max_limit
            assert set(spec.include) <= set(notes.relationships)
    assert Person in json_api.types
    assert Note in json_api.types
