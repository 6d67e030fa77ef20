"""``python -m examples.chat.terminal [--url U] [--room lobby] USER PASSWORD``: chat from a
terminal. Lines you type are sent to the room; messages, typing and joins are printed."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
import uuid
from typing import Any

import trio

from .client import ChannelError, PhoenixSocket, connect


def socket_token(base_url: str, username: str, password: str) -> dict[str, Any]:
    """``POST /api/token``: the socket token and user id for *username*."""
    data = urllib.parse.urlencode({"username": username, "password": password}).encode()
    with urllib.request.urlopen(f"{base_url}/api/token", data=data, timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read())
    return result


async def chat(base_url: str, username: str, password: str, room_name: str) -> None:
    credentials = await trio.to_thread.run_sync(socket_token, base_url, username, password)
    async with connect(base_url, credentials["token"]) as socket:
        state_topic = f"user:{credentials['user_id']}"
        await socket.join(state_topic)
        rooms = await _initial_rooms(socket, state_topic)
        room = next((r for r in rooms if r["name"] == room_name), None)
        if room is None:
            names = ", ".join(r["name"] for r in rooms)
            raise SystemExit(f"no room {room_name!r}; there are: {names}")
        topic = f"room:{room['id']}"
        await socket.join(topic)
        print(f"# {room_name} — type a line and press enter; Ctrl-D leaves", flush=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_show, socket, username)
            await _type(socket, topic)
            nursery.cancel_scope.cancel()


async def _initial_rooms(socket: PhoenixSocket, topic: str) -> list[dict[str, str]]:
    async for message_topic, event, payload in socket.messages():
        if message_topic == topic and event == "initial_state":
            rooms: list[dict[str, str]] = payload["rooms"]
            return rooms
    raise SystemExit("the server closed the connection")


async def _show(socket: PhoenixSocket, me: str) -> None:
    async for _topic, event, payload in socket.messages():
        if event == "history":
            for message in payload["messages"]:
                print(f"{message['author']}: {message['content']}", flush=True)
        elif event == "new_message" and payload["author"] != me:
            print(f"{payload['author']}: {payload['content']}", flush=True)
        elif event == "typing":
            print(f"  ({payload['user']} is typing…)", flush=True)
        elif event == "presence_diff":
            for name in payload["joins"]:
                print(f"  → {name} joined", flush=True)
            for name in payload["leaves"]:
                print(f"  ← {name} left", flush=True)


async def _type(socket: PhoenixSocket, topic: str) -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    buffer = b""
    while True:
        data = await stdin.receive_some(4096)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            if text:
                try:
                    await socket.push(
                        topic, "new_message", {"content": text, "client_id": uuid.uuid4().hex}
                    )
                except ChannelError as exc:
                    print(f"  (not sent: {exc.response.get('reason', exc.response)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat.terminal", description=__doc__)
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("--url", default="http://127.0.0.1:4000")
    parser.add_argument("--room", default="lobby")
    args = parser.parse_args()
    trio.run(chat, args.url.rstrip("/"), args.username, args.password, args.room)


if __name__ == "__main__":
    main()
