"""The terminal client (``python -m examples.chat.terminal``) as a person runs it, in a
subprocess against a chat served by the test: its room channel is killed, then the server
stops and starts again; both times it rejoins by itself and what was typed meanwhile
arrives, once. Wrong passwords, unreachable servers and unknown rooms get one plain line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

import beam
import web
from examples.chat import chaos
from examples.chat.app import DEMO_PASSWORD, build
from examples.chat.model import Chat, Message

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0


class Terminal:
    """A running terminal client: its input, and everything it printed so far."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.output = ""

    async def read_until(self, text: str, timeout: float = WAIT) -> None:
        """Read what it prints until *text* appears (after what was read before)."""
        assert self.process.stdout is not None
        with trio.move_on_after(timeout):
            while text not in self.output:
                data = await self.process.stdout.receive_some(4096)
                if not data:
                    raise AssertionError(f"the client ended; it printed:\n{self.output}")
                self.output += data.decode()
            return
        raise AssertionError(f"no {text!r} within {timeout} s; the client printed:\n{self.output}")

    async def stored_once(self, text: str) -> None:
        """*text*, which this client typed, is stored exactly once."""
        try:
            found = await _stored(text)
        except trio.TooSlowError:
            raise AssertionError(
                f"{text!r} never stored; the client printed:\n{self.output}"
            ) from None
        assert len(found) == 1, (found, self.output)

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")


def _environ(password: str) -> dict[str, str]:
    return {**os.environ, "CHAT_PASSWORD": password, "PYTHONPATH": str(REPO_ROOT)}


@asynccontextmanager
async def terminal(port: int, *args: str) -> AsyncIterator[Terminal]:
    argv = [sys.executable, "-m", "examples.chat.terminal", "alice"]
    argv += ["--url", f"http://127.0.0.1:{port}", *args]
    process = await trio.lowlevel.open_process(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_environ(DEMO_PASSWORD),
        cwd=REPO_ROOT,
    )
    try:
        yield Terminal(process)
    finally:
        process.kill()
        await process.wait()


async def _stored(text: str) -> list[Message]:
    """The messages whose content is *text*, waiting (a little) for the first."""
    columns = Message.__table__.c
    with trio.fail_after(WAIT):
        while True:
            found: list[Message] = await Chat.read(
                Message, filter=columns.content == text, authorize=False
            )
            if found:
                await trio.sleep(0.5)  # a duplicate would have come by now
                return await Chat.read(Message, filter=columns.content == text, authorize=False)
            await trio.sleep(0.05)


def _alices_channel() -> beam.Pid:
    channels = chaos.victims()["channel"]
    assert len(channels) == 1, channels
    return channels[0]


async def test_terminal_rejoins_after_its_channel_crashes(tmp_path: Path) -> None:
    async with beam.open_node():
        endpoint = await build(tmp_path, database=f"sqlite:///{tmp_path / 'chat.db'}", demo=True)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            async with terminal(port) as client:
                await client.read_until("# lobby")
                await client.type("before the crash")
                await client.stored_once("before the crash")

                beam.exit(_alices_channel(), "kill")
                await client.type("after the crash")
                await client.read_until("(back in the room)")
                await client.stored_once("after the crash")
                assert "not sent" not in client.output
            nursery.cancel_scope.cancel()


async def test_terminal_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    async with beam.open_node():
        endpoint = await build(tmp_path, database=f"sqlite:///{tmp_path / 'chat.db'}", demo=True)
        async with trio.open_nursery() as nursery:
            first = trio.CancelScope()
            port = await nursery.start(_serve_until, endpoint, 0, first)
            async with terminal(port) as client:
                await client.read_until("# lobby")
                first.cancel()  # the server stops: every connection drops
                await client.read_until("(connection lost")
                await client.type("typed while the server was down")
                await trio.sleep(0.5)
                assert client.process.returncode is None  # still running, no traceback
                await nursery.start(web.serve, endpoint, "127.0.0.1", port)
                await client.read_until("(reconnected)")
                await client.read_until("(back in the room)")
                await client.stored_once("typed while the server was down")
                assert "Traceback" not in client.output
            nursery.cancel_scope.cancel()


async def _serve_until(
    endpoint: web.Endpoint,
    port: int,
    scope: trio.CancelScope,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``web.serve`` until *scope* (the test's handle on this server) is cancelled."""
    with scope:
        await web.serve(endpoint, "127.0.0.1", port, task_status=task_status)


async def test_terminal_says_in_one_line_what_is_wrong(tmp_path: Path) -> None:
    async with beam.open_node():
        endpoint = await build(tmp_path, database=f"sqlite:///{tmp_path / 'chat.db'}", demo=True)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            base = ["-m", "examples.chat.terminal", "alice", "--url", f"http://127.0.0.1:{port}"]

            async def run(*args: str, password: str = DEMO_PASSWORD) -> str:
                done = await trio.run_process(
                    [sys.executable, *args],
                    stdin=subprocess.DEVNULL,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    env=_environ(password),
                    cwd=REPO_ROOT,
                )
                assert done.returncode == 1, done
                said: str = done.stderr.decode().strip()
                assert "\n" not in said, said
                assert "Traceback" not in said, said
                return said

            assert await run(*base, password="nope") == "chat: wrong username or password"
            unknown = await run(*base, "--room", "nowhere")
            assert unknown == "chat: there is no room 'nowhere'; the rooms are: lobby, random"
            with trio.socket.socket() as spare:  # a port nothing listens on
                await spare.bind(("127.0.0.1", 0))
                free = spare.getsockname()[1]
            unreachable = await run(
                "-m", "examples.chat.terminal", "alice", "--url", f"http://127.0.0.1:{free}"
            )
            assert unreachable.startswith(f"chat: cannot reach the chat at http://127.0.0.1:{free}")
            nursery.cancel_scope.cancel()


async def test_a_busy_port_is_one_line_saying_so(tmp_path: Path) -> None:
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "examples.chat", "--demo", "--port", str(port)]
        done = await trio.run_process(
            [*argv, "--data-dir", str(tmp_path / "data")],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=_environ(""),
            cwd=REPO_ROOT,
        )
    said = done.stderr.decode().strip()
    assert done.returncode == 1, said
    assert said == (
        f"chat: port {port} is in use (is the chat running already?); "
        f"pick another: --port {port + 1}"
    )
