"""The chat's JSON API (examples/chat/api.py) on the chat's own server: a curl-like session,
authorization (another user's notifications, a room one is not a member of), tokens, and a
message sent through the API reaching a LiveView page in real time."""

from __future__ import annotations

import time
from pathlib import Path

import web
from examples.chat.api import make_api

from ..support import phx
from ..support.chat import chat_server, open_chat, socket_token
from .api_client import call

LIMITS = {"api": web.Limit(10_000, 60.0, "API requests")}


async def chat_token(port: int, username: str, password: str = "wonderland") -> str:
    answer = await call(
        port,
        "POST",
        "/api/session",
        {"data": {"type": "session", "attributes": {"username": username, "password": password}}},
    )
    assert answer.status == 201, answer
    token: str = answer.json["data"]["attributes"]["token"]
    return token


def message(room_id: str, content: str, client_id: str | None = None) -> dict[str, object]:
    attributes = {"room_id": room_id, "content": content}
    if client_id is not None:
        attributes["client_id"] = client_id
    return {"data": {"type": "messages", "attributes": attributes}}


async def test_a_session_rooms_messages_and_the_live_page(tmp_path: Path) -> None:
    async with chat_server(tmp_path, limits=LIMITS) as port:
        wrong = await call(
            port,
            "POST",
            "/api/session",
            {"data": {"type": "session", "attributes": {"username": "alice", "password": "x"}}},
        )
        assert wrong.status == 401
        alice = await chat_token(port, "alice")
        rooms = await call(port, "GET", "/api/rooms?sort=name", token=alice)
        assert rooms.status == 200, rooms
        names = {d["attributes"]["name"]: d["id"] for d in rooms.json["data"]}
        assert set(names) == {"lobby", "random"}
        lobby = names["lobby"]

        bob_socket = await socket_token(port, "bob")
        async with (
            open_chat(port, "bob") as bob_page,
            phx.connect(port, f"token={bob_socket['token']}") as channel,
        ):
            topic = f"room:{lobby}"
            await channel.join(topic)
            await channel.event(topic, "history")
            sent = await call(
                port, "POST", "/api/messages", message(lobby, "hello from curl", "c-1"), token=alice
            )
            assert sent.status == 201, sent
            assert sent.json["data"]["attributes"]["author_name"] == "alice"
            # the LiveView page and the channel client see it at once
            await bob_page.until(lambda p: any("hello from curl" in s for s in p.streamed))
            pushed = await channel.event(topic, "new_message")
            assert pushed[4]["content"] == "hello from curl"
        again = await call(
            port, "POST", "/api/messages", message(lobby, "hello from curl", "c-1"), token=alice
        )
        assert (
            again.json["data"]["id"] == sent.json["data"]["id"]
        )  # the same client id: stored once

        history = await call(
            port,
            "GET",
            f"/api/messages?filter[room_id]={lobby}&sort=-inserted_at&include=author",
            token=alice,
        )
        assert [d["attributes"]["content"] for d in history.json["data"]] == ["hello from curl"]
        assert history.json["included"][0]["attributes"] == {
            "username": "alice",
            "admin": True,
            "inserted_at": history.json["included"][0]["attributes"]["inserted_at"],
        }  # and never the password hash
        message_id = sent.json["data"]["id"]
        edit = {"data": {"type": "messages", "id": message_id, "attributes": {"content": "edited"}}}
        edited = await call(port, "PATCH", f"/api/messages/{message_id}", edit, token=alice)
        assert edited.status == 200, edited
        assert edited.json["data"]["attributes"]["edited_at"] is not None
        bob = await chat_token(port, "bob")
        assert (
            await call(port, "PATCH", f"/api/messages/{message_id}", edit, token=bob)
        ).status == 403
        assert (
            await call(port, "DELETE", f"/api/messages/{message_id}", token=alice)
        ).status == 200

        invalid = await call(port, "POST", "/api/messages", message(lobby, ""), token=alice)
        assert invalid.status == 422
        assert invalid.errors[0]["source"] == {"pointer": "/data/attributes/content"}
        # the site's own /api/token route still answers beside the API
        legacy = await call(
            port, "POST", "/api/token", raw=b"username=alice&password=wonderland",
            content_type="application/x-www-form-urlencoded",
        )  # fmt: skip
        assert legacy.status == 200
        document = await call(port, "GET", "/api/openapi.json")
        assert "/api/notifications/read_all" in document.json["paths"]


async def test_what_belongs_to_others_is_absent_or_refused(tmp_path: Path) -> None:
    async with chat_server(tmp_path, limits=LIMITS) as port:
        alice = await chat_token(port, "alice")
        bob = await chat_token(port, "bob")
        opened = await call(
            port,
            "POST",
            "/api/rooms",
            {"data": {"type": "rooms", "attributes": {"name": "staff"}}},
            token=alice,
        )
        assert opened.status == 201, opened
        staff = opened.json["data"]["id"]
        await call(port, "POST", "/api/messages", message(staff, "for staff only"), token=alice)
        # bob is not a member of staff: its messages are absent, a send is forbidden
        listed = await call(port, "GET", f"/api/messages?filter[room_id]={staff}", token=bob)
        assert listed.json["data"] == []
        refused = await call(port, "POST", "/api/messages", message(staff, "let me in"), token=bob)
        assert refused.status == 403
        memberships = await call(port, "GET", "/api/memberships", token=bob)
        assert staff not in {d["attributes"]["room_id"] for d in memberships.json["data"]}

        rooms = await call(port, "GET", "/api/rooms?filter[name]=lobby", token=alice)
        lobby = rooms.json["data"][0]["id"]
        await call(port, "POST", "/api/messages", message(lobby, "hi @bob"), token=alice)
        mine = await call(port, "GET", "/api/notifications", token=bob)
        assert len(mine.json["data"]) == 1, mine
        notification = mine.json["data"][0]["id"]
        assert (await call(port, "GET", "/api/notifications", token=alice)).json["data"] == []
        assert (
            await call(port, "GET", f"/api/notifications/{notification}", token=alice)
        ).status == 404
        assert (
            await call(port, "POST", f"/api/notifications/{notification}/read", token=alice)
        ).status == 404
        read = await call(port, "POST", f"/api/notifications/{notification}/read", token=bob)
        assert read.status == 200, read
        assert read.json["data"]["attributes"]["is_read"] is True
        all_read = await call(port, "POST", "/api/notifications/read_all", token=bob)
        assert all_read.json == {"meta": {"marked": 0}}


async def test_tokens_expire_and_are_revoked(tmp_path: Path) -> None:
    async with chat_server(tmp_path, limits=LIMITS) as port:
        token = await chat_token(port, "alice")
        assert (await call(port, "GET", "/api/rooms", token=token)).status == 200
        tokens = make_api(_secret(tmp_path)).tokens
        assert tokens is not None
        old = tokens.sign(tokens.token_id(token), signed_at=time.time() - 2 * 86_400)
        expired = await call(port, "GET", "/api/rooms", token=old)
        assert expired.status == 401
        assert expired.headers["www-authenticate"].startswith('Bearer realm="chat"')
        assert (await call(port, "DELETE", "/api/session", token=token)).status == 204
        assert (await call(port, "GET", "/api/rooms", token=token)).status == 401
        assert (await call(port, "GET", "/api/rooms")).status == 401


def _secret(tmp_path: Path) -> str:
    return (tmp_path / "secret_key").read_text().strip()
