"""web.api against a live server on loopback: every route kind, the JSON:API documents
(data, attributes, relationships, included, links, meta), filters, sorts, keyset and offset
pages, includes, sparse fieldsets, custom actions, plain-JSON mode, and notifiers firing for
writes made through the API."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import beam

from ..support.backends import PG_URL, pg_engine
from .api_app import running
from .api_checks import check_unstorable_input
from .api_client import JSONAPI, call, new, sign_in


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def board_with_notes(
    port: int, token: str, name: str, bodies: list[str]
) -> tuple[str, list[str]]:
    answer = await call(port, "POST", "/api/boards", new("boards", {"name": name}), token=token)
    assert answer.status == 201, answer
    board = answer.json["data"]["id"]
    ids = []
    for i, body in enumerate(bodies):
        posted = await call(
            port,
            "POST",
            "/api/notes",
            new("notes", {"body": body, "stars": i % 6}, board=("boards", board)),
            token=token,
        )
        assert posted.status == 201, posted
        ids.append(posted.json["data"]["id"])
    return board, ids


async def test_create_get_update_destroy(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        created = await call(
            r.port, "POST", "/api/boards", new("boards", {"name": "ops"}), token=token
        )
        assert created.status == 201
        assert created.headers["content-type"] == JSONAPI
        board = created.json["data"]
        assert board["type"] == "boards"
        assert board["attributes"]["name"] == "ops"
        assert created.headers["location"] == f"/api/boards/{board['id']}"
        assert board["links"]["self"] == f"/api/boards/{board['id']}"

        note = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "first"}, board=("boards", board["id"])),
            token=token,
        )
        assert note.status == 201, note
        data = note.json["data"]
        assert data["attributes"]["body"] == "first"
        assert data["attributes"]["author_id"] == str(r.alice.id)
        assert data["relationships"]["board"] == {"data": {"type": "boards", "id": board["id"]}}
        assert data["relationships"]["author"] == {
            "data": {"type": "people", "id": str(r.alice.id)}
        }

        got = await call(r.port, "GET", f"/api/notes/{data['id']}", token=token)
        assert got.status == 200
        assert got.json["data"] == data

        patched = await call(
            r.port,
            "PATCH",
            f"/api/notes/{data['id']}",
            {
                "data": {
                    "type": "notes",
                    "id": data["id"],
                    "attributes": {"body": "edited", "stars": 4},
                }
            },
            token=token,
        )
        assert patched.status == 200, patched
        assert patched.json["data"]["attributes"]["body"] == "edited"
        assert patched.json["data"]["attributes"]["stars"] == 4

        deleted = await call(r.port, "DELETE", f"/api/notes/{data['id']}", token=token)
        assert deleted.status == 200
        assert deleted.json["data"]["id"] == data["id"]
        gone = await call(r.port, "GET", f"/api/notes/{data['id']}", token=token)
        assert gone.status == 404
        assert gone.errors[0]["code"] == "not_found"


async def test_filters_and_sorts(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        bodies = ["apple pie", "banana", "cherry pie", "date", "elder 100%", "fig_pie"]
        board, ids = await board_with_notes(r.port, token, "fruit", bodies)

        async def bodies_for(query: str) -> list[str]:
            answer = await call(r.port, "GET", f"/api/notes?{query}&page[limit]=50", token=token)
            assert answer.status == 200, answer
            return [d["attributes"]["body"] for d in answer.json["data"]]

        assert await bodies_for("sort=body") == sorted(bodies)
        assert await bodies_for("sort=-body") == sorted(bodies, reverse=True)
        assert await bodies_for("filter[body]=date") == ["date"]
        assert await bodies_for("filter[body][contains]=pie&sort=body") == [
            "apple pie",
            "cherry pie",
            "fig_pie",
        ]
        # LIKE wildcards in the value are matched literally (bound and escaped, never SQL)
        assert await bodies_for("filter[body][contains]=%25") == ["elder 100%"]
        assert await bodies_for("filter[body][contains]=_") == ["fig_pie"]
        assert await bodies_for("filter[stars][gte]=3&sort=stars") == [
            "date",
            "elder 100%",
            "fig_pie",
        ]
        assert await bodies_for("filter[stars][lt]=2&sort=stars") == ["apple pie", "banana"]
        assert await bodies_for("filter[stars][not_eq]=0&filter[stars][lte]=1") == ["banana"]
        assert await bodies_for("filter[body][in]=banana,date&sort=-body") == ["date", "banana"]
        assert await bodies_for(f"filter[id]={ids[2]}") == ["cherry pie"]
        assert await bodies_for(
            f"filter[board_id]={board}&filter[pinned]=false&sort=body"
        ) == sorted(bodies)
        assert await bodies_for("filter[pinned]=true") == []
        assert await bodies_for("filter[body][is_nil]=true") == []
        # filter names with SQL in them are refused, not run
        refused = await call(
            r.port, "GET", "/api/notes?filter[body;drop table api_notes]=1", token=token
        )
        assert refused.status == 400
        assert await bodies_for("sort=body") == sorted(bodies)


async def test_keyset_pages_follow_links_next(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        bodies = [f"note {i:02}" for i in range(12)]
        await board_with_notes(r.port, token, "many", bodies)
        seen: list[str] = []
        target: str | None = "/api/notes?sort=-body&page[limit]=5"
        pages = 0
        while target is not None:
            answer = await call(r.port, "GET", target, token=token)
            assert answer.status == 200, answer
            doc = answer.json
            assert doc["links"]["self"] == target
            seen += [d["attributes"]["body"] for d in doc["data"]]
            assert doc["meta"]["page"]["limit"] == 5
            assert doc["meta"]["page"]["more"] == (doc["links"]["next"] is not None)
            target = doc["links"]["next"]
            pages += 1
        assert seen == sorted(bodies, reverse=True)
        assert pages == 3
        # the default page size of the route (5) applies when none is asked for
        first = await call(r.port, "GET", "/api/notes", token=token)
        assert len(first.json["data"]) == 5
        bad = await call(r.port, "GET", "/api/notes?page[after]=bm90LWEtY3Vyc29y", token=token)
        assert bad.status == 400
        assert bad.errors[0]["source"] == {"parameter": "page[after]"}
        # forged cursors (values of other types than the sort's columns) never reach the driver
        zero = {"u": str(uuid.UUID(int=0))}
        for forged in (
            ["abc"],
            [{"x": 1}],
            [[1]],
            [{"u": 5}],
            [1],
            [{"d": "2020-01-01"}],
            [zero, zero],
        ):
            cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
            answer = await call(r.port, "GET", f"/api/notes?page[after]={cursor}", token=token)
            assert answer.status == 400, (forged, answer)
        sorted_cursor = base64.urlsafe_b64encode(json.dumps([5, zero]).encode()).decode()
        by_body = await call(
            r.port, "GET", f"/api/notes?sort=body&page[after]={sorted_cursor}", token=token
        )
        assert by_body.status == 400  # body is text: 5 is no body


async def test_offset_pages(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        bodies = [f"n{i}" for i in range(7)]
        await board_with_notes(r.port, token, "off", bodies)
        answer = await call(
            r.port, "GET", "/api/notes?sort=body&page[offset]=3&page[limit]=3", token=token
        )
        assert answer.status == 200
        assert [d["attributes"]["body"] for d in answer.json["data"]] == ["n3", "n4", "n5"]
        assert answer.json["meta"]["page"] == {"limit": 3, "offset": 3, "more": True}
        following = await call(r.port, "GET", answer.json["links"]["next"], token=token)
        assert [d["attributes"]["body"] for d in following.json["data"]] == ["n6"]
        assert following.json["links"]["next"] is None


async def test_include_and_sparse_fieldsets(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        board, ids = await board_with_notes(r.port, token, "inc", ["a", "b"])
        answer = await call(r.port, "GET", "/api/notes?include=author,board", token=token)
        assert answer.status == 200, answer
        included = {(x["type"], x["id"]): x for x in answer.json["included"]}
        assert set(included) == {("people", str(r.alice.id)), ("boards", board)}  # once each
        person = included[("people", str(r.alice.id))]
        assert person["attributes"]["name"] == "alice"
        assert "secret" not in person["attributes"]  # hidden from the API
        one = await call(r.port, "GET", f"/api/notes/{ids[0]}?include=board", token=token)
        assert one.json["included"][0]["attributes"]["name"] == "inc"

        sparse = await call(
            r.port,
            "GET",
            "/api/notes?fields[notes]=body,author&include=author&fields[people]=name",
            token=token,
        )
        assert sparse.status == 200, sparse
        for d in sparse.json["data"]:
            assert set(d["attributes"]) == {"body"}
            assert set(d["relationships"]) == {"author"}
        assert set(sparse.json["included"][0]["attributes"]) == {"name"}
        # a to-many relationship included: a board's notes (as the actor may read them)
        boards = await call(r.port, "GET", f"/api/boards/{board}?include=notes", token=token)
        assert {x["id"] for x in boards.json["data"]["relationships"]["notes"]["data"]} == set(ids)
        hidden = await call(r.port, "GET", "/api/people?fields[people]=secret", token=token)
        assert hidden.status == 400
        assert hidden.errors[0]["source"] == {"parameter": "fields[people]"}


async def test_custom_actions(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        board, ids = await board_with_notes(r.port, token, "acts", ["red fox", "blue fox", "owl"])
        found = await call(r.port, "GET", "/api/notes/search?word=fox&sort=body", token=token)
        assert found.status == 200, found
        assert [d["attributes"]["body"] for d in found.json["data"]] == ["blue fox", "red fox"]
        missing_arg = await call(r.port, "GET", "/api/notes/search", token=token)
        assert missing_arg.status == 400, missing_arg  # the action's argument is required

        pinned = await call(r.port, "POST", f"/api/notes/{ids[2]}/pin", token=token)
        assert pinned.status == 200, pinned
        assert pinned.json["data"]["attributes"]["pinned"] is True

        rated = await call(
            r.port,
            "POST",
            f"/api/notes/{ids[0]}/rate",
            {"data": {"type": "notes", "attributes": {"delta": 3}}},
            token=token,
        )
        assert rated.status == 200, rated
        assert rated.json["data"]["attributes"]["stars"] == 3
        too_much = await call(
            r.port,
            "POST",
            f"/api/notes/{ids[0]}/rate",
            {"data": {"type": "notes", "attributes": {"delta": 50}}},
            token=token,
        )
        assert too_much.status == 422
        assert too_much.errors[0]["source"] == {"pointer": "/data/attributes/delta"}

        done = await call(
            r.port,
            "POST",
            "/api/notes/pin_all",
            {"data": {"type": "notes", "attributes": {"board_id": board}}},
            token=token,
        )
        assert done.status == 200, done
        assert done.json == {"meta": {"pinned": 3}}


async def test_plain_json_mode(tmp_path: Path) -> None:
    async with running(url(tmp_path), plain=True) as r:
        signed = await call(
            r.port,
            "POST",
            "/api/session",
            {"username": "bob", "password": "bob-secret"},
            content_type="application/json",
        )
        assert signed.status == 201, signed
        token = signed.json["token"]
        board = await call(
            r.port,
            "POST",
            "/api/boards",
            {"name": "plain"},
            token=token,
            content_type="application/json",
        )
        assert board.status == 201, board
        assert board.headers["content-type"] == "application/json"
        assert board.json["data"]["name"] == "plain"
        note = await call(
            r.port,
            "POST",
            "/api/notes",
            {"body": "flat", "board_id": board.json["data"]["id"]},
            token=token,
            content_type="application/json",
        )
        assert note.status == 201, note
        listed = await call(r.port, "GET", "/api/notes?include=author", token=token)
        item: dict[str, Any] = listed.json["data"][0]
        assert item["body"] == "flat"
        assert item["author"]["name"] == "bob"
        bad = await call(
            r.port, "POST", "/api/notes", {"body": ""}, token=token, content_type="application/json"
        )
        assert bad.status == 422
        assert {"pointer": "/body"} in [e.get("source") for e in bad.errors]


async def test_a_write_through_the_api_reaches_subscribers(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        token = await sign_in(r.port, "alice")
        board, _ = await board_with_notes(r.port, token, "live", [])
        beam.subscribe(f"board:{board}")
        posted = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "hello"}, board=("boards", board)),
            token=token,
        )
        event, record = await beam.receive(timeout=5)
        assert event == "new_note"
        assert str(record.id) == posted.json["data"]["id"]


@pytest.mark.postgres
async def test_on_postgresql(tmp_path: Path) -> None:
    engine = pg_engine()
    if engine is None:
        pytest.skip("PostgreSQL unreachable")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        async with running(PG_URL, schema=schema) as r:
            token = await sign_in(r.port, "alice")
            bodies = [f"pg {i}" for i in range(4)]
            await board_with_notes(r.port, token, "pg", bodies)
            answer = await call(
                r.port,
                "GET",
                "/api/notes?filter[body][contains]=pg&sort=-body&page[limit]=3&include=author",
                token=token,
            )
            assert answer.status == 200, answer
            assert [d["attributes"]["body"] for d in answer.json["data"]] == [
                "pg 3",
                "pg 2",
                "pg 1",
            ]
            following = await call(r.port, "GET", answer.json["links"]["next"], token=token)
            assert [d["attributes"]["body"] for d in following.json["data"]] == ["pg 0"]
            await check_unstorable_input(r.port, token)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
