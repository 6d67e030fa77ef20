"""Checks that several API test modules run (on SQLite and on PostgreSQL)."""

from __future__ import annotations

from .api_client import call, new


async def check_unstorable_input(port: int, token: str) -> None:
    """What no database column can take is refused before it reaches the driver (SQLite
    overflows past 64 bits, PostgreSQL refuses NUL characters): a 400 or 422, not a 500."""
    board = await call(port, "POST", "/api/boards", new("boards", {"name": "edge"}), token=token)
    board_id = board.json["data"]["id"]
    for query in (
        "filter[stars]=99999999999999999999",
        "filter[stars][in]=1,-99999999999999999999",
        "filter[body]=a%00b",
        "filter[body][contains]=%00",
    ):
        answer = await call(port, "GET", f"/api/notes?{query}", token=token)
        assert answer.status == 400, (query, answer)
    found = await call(port, "GET", "/api/notes/search?word=%00", token=token)
    assert found.status == 400, found
    for attributes in ({"body": "a\u0000b"}, {"body": "ok", "stars": 10**20}):
        posted = await call(
            port,
            "POST",
            "/api/notes",
            new("notes", {**attributes, "board_id": board_id}),
            token=token,
        )
        assert posted.status == 422, (attributes, posted)
    named = await call(port, "POST", "/api/boards", new("boards", {"name": "x\u0000"}), token=token)
    assert named.status == 422
    assert named.errors[0]["source"] == {"pointer": "/data/attributes/name"}
    signin = {"data": {"type": "session", "attributes": {"username": "a\u0000", "password": "x"}}}
    assert (await call(port, "POST", "/api/session", signin)).status == 422
