"""What the chat refuses: forged and expired tokens, other users' channels, rooms one is not a
member of, others' messages, and oversized or malformed frames, each with a clear answer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import domain
import web
from examples.chat.app import secret_key
from examples.chat.model import Chat, Message, Room, User, UserToken

from ..support import phx, wsclient
from ..support.chat import chat_server, socket_token


async def close_code(client: wsclient.Client) -> int:
    """The code the server closes with (frames before it are skipped)."""
    while True:
        try:
            await client.receive()
        except wsclient.Closed as closed:
            return closed.code


async def test_forged_and_expired_tokens_are_refused(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        alice = await socket_token(port, "alice")
        forged = alice["token"][:-4] + ("AAAA" if not alice["token"].endswith("AAAA") else "BBBB")
        (session,) = await Chat.read(UserToken, filter={"context": "api"})
        expired = web.Token.sign(  # names alice's live session, but was signed two days ago
            secret_key(tmp_path),
            "chat socket",
            str(session.id),
            signed_at=time.time() - 2 * 86_400,
        )
        for token in (forged, expired, "not-a-token"):
            with pytest.raises(wsclient.Rejected) as refused:
                async with wsclient.connect(port, f"/socket/websocket?vsn=2.0.0&token={token}"):
                    pass
            assert refused.value.status == 403
        async with wsclient.connect(port, f"/socket/websocket?vsn=2.0.0&token={alice['token']}"):
            pass  # the genuine one still works


async def test_other_users_channels_and_rooms_one_is_not_in(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        alice_token = await socket_token(port, "alice")
        bob_token = await socket_token(port, "bob")
        alice = (await Chat.read(User, filter={"username": "alice"}))[0]
        bob = (await Chat.read(User, filter={"username": "bob"}))[0]
        secret_room = await Chat.open_room("bobs-den", actor=bob)
        await Chat.send_message(
            content="only members see this", client_id="s1", room_id=secret_room.id, actor=bob
        )
        # Alice is not a member: the room's messages are simply not there for her, and she
        # cannot send to it.
        assert await Chat.read(Message, actor=alice, filter={"room_id": secret_room.id}) == []
        with pytest.raises(domain.Forbidden):
            await Chat.send_message(
                content="let me in", client_id="a1", room_id=secret_room.id, actor=alice
            )
        assert len(await Chat.read(Message, actor=bob, filter={"room_id": secret_room.id})) == 1
        assert await Chat.read(Room, actor=None) == []  # signed out: nothing at all

        async with phx.connect(port, f"token={alice_token['token']}") as a:
            _, reply = await a.join(f"user:{bob_token['user_id']}")
            assert reply == {"status": "error", "response": {"reason": "unauthorized"}}
            _, reply = await a.join("room:not-a-uuid")
            assert reply == {"status": "error", "response": {"reason": "no such room"}}


async def test_oversized_malformed_and_invalid_frames_get_clear_answers(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        token = (await socket_token(port, "alice"))["token"]
        path = f"/socket/websocket?vsn=2.0.0&token={token}"
        async with wsclient.connect(port, path) as client:
            await client.send("this is not a frame")
            assert await close_code(client) == 1007
        async with wsclient.connect(port, path) as client:
            await client.send("x" * (1_048_576 + 1))
            assert await close_code(client) == 1009
        async with phx.connect(port, f"token={token}") as a:
            lobby = (await Chat.read(Room, filter={"name": "lobby"}, authorize=False))[0]
            topic = f"room:{lobby.id}"
            ref, _ = await a.join(topic)
            too_long = await a.push(ref, topic, "new_message", {"content": "x" * 2001})
            assert too_long["status"] == "error"
            assert "content" in too_long["response"]["reason"]
            assert "2000" in too_long["response"]["reason"]
            json.dumps(too_long)  # a plain JSON answer, not a crash
