"""``python -m examples.chat.terminal USER [--url U] [--room lobby]``: chat from a terminal.

Lines you type are sent to the room; messages (with their time), joins and leaves are
printed, and who is typing shows on one line that replaces itself. The password comes from
``CHAT_PASSWORD`` or, without it, a prompt. When the connection drops (the server restarts)
or the room's channel fails, the client reconnects and rejoins by itself, and sends again
what the server had not acknowledged (each line carries a client id, stored once).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime
from typing import Any, TextIO

import trio

from .client import ChannelError, ConnectFailed, PhoenixSocket, connect

PASSWORD_ENV = "CHAT_PASSWORD"
#: How long lines typed before the input ended may still take to be sent.
DRAIN_SECONDS = 10.0


class Refused(Exception):
    """Something the user must fix (wrong password, no server, no room): one line says what."""


def socket_token(base_url: str, username: str, password: str) -> dict[str, Any]:
    """``POST /api/token``: the socket token and user id for *username*; :class:`Refused`
    with a plain sentence when that fails.

    >>> socket_token("http://127.0.0.1:4000", "alice", "wonderland")["user_id"]
    """
    data = urllib.parse.urlencode({"username": username, "password": password}).encode()
    try:
        with urllib.request.urlopen(f"{base_url}/api/token", data=data, timeout=10) as answer:
            result: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise Refused("wrong username or password") from None
        if exc.code == 429:
            raise Refused(_reason(exc) or "too many sign-in attempts; wait a little") from None
        raise Refused(f"the chat at {base_url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise Refused(
            f"cannot reach the chat at {base_url} ({why}); is it running? (--url sets where)"
        ) from None
    return result


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", ""))
    except (ValueError, OSError):
        return ""


def clock(iso: str | None) -> str:
    """The local ``HH:MM`` of an ISO time (``""`` when there is none).

    >>> clock("2026-12-03T17:45:00+00:00")   # in UTC
    '17:45'
    """
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone().strftime("%H:%M")


class Screen:
    """What the terminal shows: message lines, and one status line (who is typing) that
    the next line replaces. On a file or pipe the status is printed once per change."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.tty = out.isatty()
        self.status = ""
        self.seen: set[str] = set()

    def line(self, text: str) -> None:
        if self.tty and self.status:
            self.out.write("\r\x1b[K")
        self.out.write(text + "\n")
        if self.tty and self.status:
            self.out.write(self.status)
        self.out.flush()

    def show_status(self, text: str) -> None:
        if text == self.status:
            return
        self.status = text
        if self.tty:
            self.out.write("\r\x1b[K" + text)
            self.out.flush()
        elif text:
            self.line(text)

    def message(self, message: dict[str, Any]) -> None:
        """A message, once (a rejoin sends the history again)."""
        if message.get("id") in self.seen:
            return
        self.seen.add(str(message.get("id")))
        self.show_status("")
        self.line(
            f"[{clock(message.get('inserted_at'))}] {message['author']}: {message['content']}"
            + "".join(f" [{f['name']}]" for f in message.get("attachments") or ())
        )


async def chat(base_url: str, username: str, password: str, room_name: str) -> None:
    """Sign in, join the room *room_name*, and chat until the input ends."""
    credentials = await trio.to_thread.run_sync(socket_token, base_url, username, password)
    try:
        async with connect(base_url, credentials["token"]) as socket:
            state_topic = f"user:{credentials['user_id']}"
            await socket.join(state_topic)
            rooms = await _initial_rooms(socket, state_topic)
            room = next((r for r in rooms if r["name"] == room_name), None)
            if room is None:
                names = ", ".join(r["name"] for r in rooms) or "none"
                raise Refused(f"there is no room {room_name!r}; the rooms are: {names}")
            topic = f"room:{room['id']}"
            screen = Screen()
            outbox_send, outbox = trio.open_memory_channel[str](100)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_show, socket, username, screen)
                await socket.join(topic)
                screen.line(f"# {room_name} — type a line and press enter; Ctrl-D leaves")
                async with trio.open_nursery() as sending:
                    sending.start_soon(_send_all, socket, topic, outbox, screen)
                    async with outbox_send:
                        await _type(outbox_send)
                    # The input ended: the lines still unsent get a few seconds more.
                    sending.cancel_scope.deadline = trio.current_time() + DRAIN_SECONDS
                nursery.cancel_scope.cancel()
    except ConnectFailed as exc:
        raise Refused(f"cannot open the chat's socket at {base_url}: {exc}") from None


async def _initial_rooms(socket: PhoenixSocket, topic: str) -> list[dict[str, str]]:
    async for message_topic, event, payload in socket.messages():
        if message_topic == topic and event == "initial_state":
            rooms: list[dict[str, str]] = payload["rooms"]
            return rooms
    raise Refused("the server closed the connection")


async def _show(socket: PhoenixSocket, me: str, screen: Screen) -> None:
    async for _topic, event, payload in socket.messages():
        if event == "history":
            for message in payload["messages"]:
                screen.message(message)
        elif event == "new_message":
            if payload["author"] == me:
                screen.seen.add(str(payload.get("id")))  # shown as typed
            else:
                screen.message(payload)
        elif event == "typing" and payload["user"] != me:
            screen.show_status(f"  ({payload['user']} is typing…)")
        elif event == "presence_diff":
            for name in payload["joins"]:
                screen.line(f"  → {name} joined")
            for name in payload["leaves"]:
                screen.line(f"  ← {name} left")
        elif event == "disconnected":
            screen.line(f"  (connection lost; reconnecting in {payload['retry_in']:g} s…)")
        elif event == "reconnected":
            screen.line("  (reconnected)")
        elif event == "rejoined":
            screen.line("  (back in the room)")


async def _send_all(
    socket: PhoenixSocket, topic: str, outbox: trio.MemoryReceiveChannel[str], screen: Screen
) -> None:
    """Send each line in order, each until the server answers it (the same client id every
    time, so a line whose answer was lost is stored once)."""
    async for text in outbox:
        payload = {"content": text, "client_id": uuid.uuid4().hex}
        while True:
            try:
                await socket.push(topic, "new_message", payload, timeout=30)
            except ChannelError as exc:
                why = exc.response.get("message") or exc.response.get("reason", exc.response)
                screen.line(f"  (not sent: {why})")
            except trio.TooSlowError:
                continue  # still down: keep trying
            break


async def _type(outbox: trio.MemorySendChannel[str]) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stdin:
        while True:
            data = await stdin.receive_some(4096)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if text:
                    await outbox.send(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.chat.terminal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("username", help="your username (as on the sign-in page)")
    parser.add_argument(
        "--url", default="http://127.0.0.1:4000", help="where the chat runs (default: %(default)s)"
    )
    parser.add_argument("--room", default="lobby", help="the room to join (default: %(default)s)")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise SystemExit(f"chat: set {PASSWORD_ENV} (no terminal to ask for the password)")
        password = getpass.getpass(f"{args.username}'s password: ")
    try:
        trio.run(chat, args.url.rstrip("/"), args.username, password, args.room)
    except (Refused, BaseExceptionGroup) as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        raise SystemExit(f"chat: {refused}") from None
    except KeyboardInterrupt:
        raise SystemExit(0) from None


def _refusal(exc: BaseException) -> Refused | None:
    """The :class:`Refused` that *exc* is or holds (trio's nurseries wrap errors in groups)."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _refusal(inner)) is not None:
                return found
    return None


if __name__ == "__main__":
    main()
