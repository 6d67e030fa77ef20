"""web.api's actor and its rights, against a live server: bearer tokens (issued by the
app's sign-in, signed, expiring, revocable), 401 with ``WWW-Authenticate``, policies as for
any actor (read policies filter rows, forbidden writes are 403), and rate limits (429 with
``Retry-After``)."""

from __future__ import annotations

import time
from pathlib import Path

import web

from .api_app import SECRET_KEY, running
from .api_client import call, new, sign_in


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def test_missing_malformed_forged_expired_and_revoked_tokens_are_401(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        missing = await call(r.port, "GET", "/api/boards")
        assert missing.status == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="api"'
        assert missing.errors[0]["source"] == {"header": "authorization"}

        basic = await call(r.port, "GET", "/api/boards", headers=(("authorization", "Basic eDp5"),))
        assert basic.status == 401
        assert 'error="invalid_request"' in basic.headers["www-authenticate"]

        forged = await call(r.port, "GET", "/api/boards", token="abc.def.ghi")
        assert forged.status == 401
        assert 'error="invalid_token"' in forged.headers["www-authenticate"]

        token = await sign_in(r.port, "alice")
        # another key signed it: refused
        tokens = r.api.tokens
        assert tokens is not None
        token_id = tokens.token_id(token)
        other = web.api.BearerTokens("x" * 40, tokens.load).sign(token_id)
        assert (await call(r.port, "GET", "/api/boards", token=other)).status == 401

        # signed long ago: expired
        old = tokens.sign(token_id, signed_at=time.time() - 7200)
        expired = await call(r.port, "GET", "/api/boards", token=old)
        assert expired.status == 401
        assert "expired" in expired.errors[0]["detail"]

        assert (await call(r.port, "GET", "/api/boards", token=token)).status == 200
        signed_out = await call(r.port, "DELETE", "/api/session", token=token)
        assert signed_out.status == 204
        revoked = await call(r.port, "GET", "/api/boards", token=token)
        assert revoked.status == 401
        assert "revoked" in revoked.errors[0]["detail"]
        assert 'error="invalid_token"' in revoked.headers["www-authenticate"]
        assert SECRET_KEY not in revoked.raw.decode()


async def test_sign_in_refusals(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        wrong = await call(
            r.port,
            "POST",
            "/api/session",
            {"data": {"type": "session", "attributes": {"username": "alice", "password": "nope"}}},
        )
        assert wrong.status == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        incomplete = await call(
            r.port,
            "POST",
            "/api/session",
            {"data": {"type": "session", "attributes": {"username": 7}}},
        )
        assert incomplete.status == 422
        assert [e["source"]["pointer"] for e in incomplete.errors] == [
            "/data/attributes/username",
            "/data/attributes/password",
        ]
        get = await call(r.port, "GET", "/api/session")
        assert get.status == 405
        assert get.headers["allow"] == "POST, DELETE"


async def test_read_policies_filter_rows_and_hide_records(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        alice = await sign_in(r.port, "alice")
        bob = await sign_in(r.port, "bob")
        board = await call(
            r.port, "POST", "/api/boards", new("boards", {"name": "private"}), token=alice
        )
        board_id = board.json["data"]["id"]
        note = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "secret"}, board=("boards", board_id)),
            token=alice,
        )
        note_id = note.json["data"]["id"]

        # bob is not a member: the board's notes are simply not there for him
        listed = await call(r.port, "GET", "/api/notes", token=bob)
        assert listed.status == 200
        assert listed.json["data"] == []
        assert (await call(r.port, "GET", f"/api/notes/{note_id}", token=bob)).status == 404
        edit = {"data": {"type": "notes", "id": note_id, "attributes": {"body": "mine now"}}}
        assert (await call(r.port, "PATCH", f"/api/notes/{note_id}", edit, token=bob)).status == 404
        assert (await call(r.port, "DELETE", f"/api/notes/{note_id}", token=bob)).status == 404
        included = await call(r.port, "GET", f"/api/boards/{board_id}?include=notes", token=bob)
        assert included.json["data"]["relationships"]["notes"]["data"] == []
        # posting to a board he is not a member of is forbidden (checked on the written row)
        post = await call(
            r.port,
            "POST",
            "/api/notes",
            new("notes", {"body": "hi"}, board=("boards", board_id)),
            token=bob,
        )
        assert post.status == 403, post
        assert post.errors[0]["code"] == "forbidden"

        # bob takes a seat: now he reads the notes, but may not edit alice's (403)
        seat = await call(
            r.port, "POST", "/api/seats", new("seats", {}, board=("boards", board_id)), token=bob
        )
        assert seat.status == 201, seat
        listed = await call(r.port, "GET", "/api/notes", token=bob)
        assert [d["id"] for d in listed.json["data"]] == [note_id]
        forbidden = await call(r.port, "PATCH", f"/api/notes/{note_id}", edit, token=bob)
        assert forbidden.status == 403
        assert (await call(r.port, "DELETE", f"/api/notes/{note_id}", token=bob)).status == 403
        assert (await call(r.port, "POST", f"/api/notes/{note_id}/pin", token=bob)).status == 403
        # seats are private: each sees only their own
        carol = await sign_in(r.port, "carol")
        seats = await call(r.port, "GET", "/api/seats", token=carol)
        assert seats.json["data"] == []
        mine = await call(r.port, "GET", "/api/seats", token=bob)
        assert [d["relationships"]["person"]["data"]["id"] for d in mine.json["data"]] == [
            str(r.bob.id)
        ]
        # unchanged for alice
        again = await call(r.port, "GET", f"/api/notes/{note_id}", token=alice)
        assert again.json["data"]["attributes"]["body"] == "secret"


async def test_rate_limits_are_429_with_retry_after(tmp_path: Path) -> None:
    scopes = {"posting": web.Limit(2, 60.0, "notes"), "api": web.Limit(30, 60.0, "API requests")}
    async with running(url(tmp_path), scopes=scopes) as r:
        alice = await sign_in(r.port, "alice")
        bob = await sign_in(r.port, "bob")
        board = await call(
            r.port, "POST", "/api/boards", new("boards", {"name": "limits"}), token=alice
        )
        board_id = board.json["data"]["id"]
        statuses = []
        for i in range(3):
            posted = await call(
                r.port,
                "POST",
                "/api/notes",
                new("notes", {"body": f"n{i}"}, board=("boards", board_id)),
                token=alice,
            )
            statuses.append(posted.status)
        assert statuses == [201, 201, 429]
        assert int(posted.headers["retry-after"]) >= 1
        assert posted.errors[0]["code"] == "rate_limited"
        assert "at most 2 notes per minute" in posted.errors[0]["detail"]
        # counted per actor: bob still reads; the api scope is per actor too
        assert (await call(r.port, "GET", "/api/notes", token=bob)).status == 200
        seen = set()
        for _ in range(30):
            seen.add((await call(r.port, "GET", "/api/boards", token=bob)).status)
        assert seen == {200, 429}
