"""``python -m web module:app --nodes N``: N node processes on one port and one cluster.

Real OS processes throughout: the parent, its nodes (``web1``, ``web2``), a redis-server of
the test's own. Each answer of the app (tests/web/nodesapp.py) names the node that gave it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trio

import web

from ..support import phx, wsclient
from ..support.http import fetch, http
from ..support.nodes import free_port, redis_server

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The hard limit on one wait of these tests (a node restarted after SIGKILL waits up to 5 s
#: for its name to be freed by the cluster).
WAIT = 20.0


class Group:
    """The test's end of one ``python -m web --nodes`` parent: its log lines, its port."""

    def __init__(self, process: trio.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self._changed = trio.Event()

    async def read_log(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        while chunk := await self.process.stderr.receive_some(65_536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            self.lines.extend(line.decode() for line in lines)
            self._changed.set()
            self._changed = trio.Event()

    async def line(self, pattern: str, after: int = 0) -> re.Match[str]:
        """The first log line from index *after* on that *pattern* finds (waits for it)."""
        with trio.fail_after(WAIT):
            while True:
                for line in self.lines[after:]:
                    found = re.search(pattern, line)
                    if found:
                        return found
                await self._changed.wait()

    def pids(self) -> dict[str, list[int]]:
        """Every node process the parent started, by name (in order)."""
        started: dict[str, list[int]] = {}
        for line in self.lines:
            found = re.search(r"started node (\S+) \(pid (\d+)\)", line)
            if found:
                started.setdefault(found.group(1), []).append(int(found.group(2)))
        return started

    async def get(self, path: str) -> tuple[int, str]:
        status, _, body = await http(
            self.port, f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode()
        )
        return status, body.decode()


def _alive(pid: int) -> bool:
    """Whether *pid* is a process that has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _gone(pids: list[int]) -> None:
    """Wait until every process of *pids* has exited (they need not be our children)."""
    for _ in range(int(WAIT / 0.05)):
        if not any(_alive(pid) for pid in pids):
            return
        await trio.sleep(0.05)
    raise AssertionError(f"still running: {[pid for pid in pids if _alive(pid)]}")


@contextlib.asynccontextmanager
async def nodes(
    app: str = "make", *options: str, nodes: int = 2, ready: bool = True
) -> AsyncIterator[Group]:
    """Run ``python -m web tests.web.nodesapp:<app> --nodes <nodes>`` with a Redis of its own.

    Whatever happens, the parent and every node it started are killed at the end.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("BEAM_CLUSTER", None)
    env.pop("BEAM_NODE", None)
    with redis_server() as redis:
        port = free_port()
        argv = [
            *(sys.executable, "-m", "web", f"tests.web.nodesapp:{app}"),
            *("--nodes", str(nodes), "--port", str(port), "--cluster", redis.url),
            *("--name", "web", *options),
        ]
        process = await trio.lowlevel.open_process(
            argv, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT
        )
        group = Group(process, port)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(group.read_log)
                if ready:
                    await group.line(rf"serving on http://127\.0\.0\.1:{port} with {nodes} nodes")
                yield group
                nursery.cancel_scope.cancel()
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            for pids in group.pids().values():
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            with trio.move_on_after(5):
                await process.wait()
            if process.stderr is not None:
                await process.stderr.aclose()


async def until(what: Callable[[], Any], found: Callable[[Any], bool], tries: int = 100) -> Any:
    """Await ``what()`` until ``found`` accepts its result (at most *tries* times)."""
    for _ in range(tries):
        result = await what()
        if found(result):
            return result
    raise AssertionError(f"not found in {tries} tries")


async def test_requests_reach_every_node_and_sigterm_stops_them_all() -> None:
    async with nodes() as group:
        answers = [await group.get("/node") for _ in range(100)]
        assert {status for status, _ in answers} == {200}
        assert {body for _, body in answers} == {"web1", "web2"}
        # Each node's log lines carry its name.
        assert any(line.startswith("[web1] INFO web: serving on") for line in group.lines)
        assert any(line.startswith("[web2] INFO web: serving on") for line in group.lines)
        children = [pid for pids in group.pids().values() for pid in pids]
        assert len(children) == 2

        group.process.send_signal(signal.SIGTERM)
        with trio.fail_after(WAIT):
            assert await group.process.wait() == 0
        await _gone(children)
        assert any("[web1] INFO web: stopping on SIGTERM" in line for line in group.lines)
        assert any("node web1 stopped (exited with status 0)" in line for line in group.lines)
        assert any("node web2 stopped (exited with status 0)" in line for line in group.lines)


async def test_sigterm_to_the_parent_and_its_nodes_at_once_stops_them_cleanly() -> None:
    # As a service manager does that signals every process of the service: each node gets
    # SIGTERM twice (its own, the one the parent passes on) and still stops gracefully.
    async with nodes() as group:
        children = [pid for pids in group.pids().values() for pid in pids]
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        group.process.send_signal(signal.SIGTERM)
        with trio.fail_after(WAIT):
            assert await group.process.wait() == 0
        await _gone(children)
        assert len([pid for pids in group.pids().values() for pid in pids]) == 2  # no restart
        for name in ("web1", "web2"):
            assert any(f"[{name}] INFO web: stopping on SIGTERM" in x for x in group.lines)
            assert any(f"node {name} exited with status 0" in x for x in group.lines) or any(
                f"node {name} stopped (exited with status 0)" in x for x in group.lines
            ), "\n".join(group.lines)


async def test_a_node_stopped_alone_is_started_again() -> None:
    async with nodes() as group:
        [old] = group.pids()["web2"]
        after = len(group.lines)
        os.kill(old, signal.SIGTERM)
        await group.line(r"node web2 exited with status 0; starting it again in 1.0 s", after)
        await group.line(r"node web2 serves again", after)
        assert len(group.pids()["web2"]) == 2


@contextlib.asynccontextmanager
async def client_on(group: Group, node: str, user: str) -> AsyncIterator[phx.Phx]:
    """A Channels client of *user* joined to ``room:lobby`` on *node* (it connects again
    until the kernel hands its connection to that node)."""
    for _ in range(100):
        async with phx.connect(group.port, f"user={user}") as client:
            _, reply = await client.join("room:lobby")
            assert reply["status"] == "ok"
            if reply["response"]["node"] == node:
                yield client
                return
    raise AssertionError(f"no connection landed on {node} in 100 tries")


async def closed(client: phx.Phx) -> None:
    """Wait until the server ends *client*'s connection (frames before that are skipped)."""
    with trio.fail_after(WAIT):
        try:
            while True:
                await client.client.receive()
        except (wsclient.Closed, trio.BrokenResourceError):
            return


async def test_broadcast_and_disconnect_reach_sockets_on_every_node() -> None:
    async with (
        nodes() as group,
        client_on(group, "web1", "ann") as ann1,
        client_on(group, "web2", "ann") as ann2,
    ):
        status, by = await group.get("/broadcast?topic=room:lobby&text=hello")
        assert (status, by in ("web1", "web2")) == (200, True)
        for client in (ann1, ann2):  # one of them is on the other node than *by*
            frame = await client.event("room:lobby", "news")
            assert frame[4] == {"text": "hello"}

        status, _ = await group.get("/disconnect?id=user:ann")
        assert status == 200
        await closed(ann1)
        await closed(ann2)


async def test_a_killed_node_is_started_again_and_its_clients_rejoin_elsewhere() -> None:
    async with nodes() as group, client_on(group, "web1", "bob") as bob:
        [old] = group.pids()["web1"]
        after = len(group.lines)
        os.kill(old, signal.SIGKILL)
        await closed(bob)
        # Once the parent saw it die, its listening socket is closed too (a connection queued
        # there before is reset: the kernel moves none to the other node's socket).
        await group.line(r"node web1 was killed by SIGKILL; starting it again", after)

        # The other node serves every request meanwhile (web1 is back only once the cluster
        # freed its name, 5 s after its last heartbeat).
        answers = [await group.get("/node") for _ in range(20)]
        assert {status for status, _ in answers} == {200}
        back = any("node web1 serves again" in line for line in group.lines[after:])
        assert {node for _, node in answers} == {"web2"} or back

        # The client reconnects where the kernel sends it, joins again, and hears broadcasts.
        async with phx.connect(group.port, "user=bob") as again:
            _, reply = await again.join("room:lobby")
            assert reply["status"] == "ok"
            await group.get("/broadcast?topic=room:lobby&text=back")
            assert (await again.event("room:lobby", "news"))[4] == {"text": "back"}

        # The parent starts web1 again (a new process, once the cluster freed its name).
        await group.line(r"node web1 serves again", after)
        [_, new] = group.pids()["web1"]
        assert new != old
        assert _alive(new)
        assert not _alive(old)
        await until(lambda: group.get("/node"), lambda answer: answer == (200, "web1"))

        # And web1 is in the cluster again: a client on it hears a broadcast made on web2.
        async with client_on(group, "web1", "bob") as bob_again:
            await until(
                lambda: group.get("/broadcast?topic=room:lobby&text=from-web2"),
                lambda answer: answer == (200, "web2"),
            )
            frame = await bob_again.event("room:lobby", "news")
            assert frame[4] == {"text": "from-web2"}


async def dead_render(group: Group) -> tuple[str, str, str, str, str]:
    """GET /where: the node that rendered it, its csrf token and cookie, element id, session."""
    request = f"GET /where HTTP/1.1\r\nhost: 127.0.0.1:{group.port}\r\nconnection: close\r\n\r\n"
    status, _, cookies, body = await fetch(group.port, request.encode())
    assert status == 200, body
    page = body.decode()
    node = re.search(r'<p id="node">([^<]*)</p>', page)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    container = re.search(r'<div id="(phx-[^"]+)" data-phx-main data-phx-session="([^"]+)"', page)
    cookie = re.match(r"_csrf=([^;]+);", next(c for c in cookies if c.startswith("_csrf=")))
    assert node is not None, page
    assert csrf is not None, page
    assert container is not None, page
    assert cookie is not None, cookies
    return node.group(1), csrf.group(1), cookie.group(1), container.group(1), container.group(2)


async def test_a_liveview_rendered_by_one_node_connects_on_another() -> None:
    async with nodes() as group:
        rendered_by, token, cookie, element_id, session = await dead_render(group)
        assert rendered_by in ("web1", "web2")
        for _ in range(100):
            async with phx.connect(
                group.port,
                f"_csrf_token={quote(token)}",
                path="/live/websocket",
                headers=[(b"cookie", f"_csrf={cookie}".encode())],
            ) as client:
                _, reply = await client.join(
                    f"lv:{element_id}",
                    {
                        "url": f"http://127.0.0.1:{group.port}/where",
                        "params": {"_csrf_token": token, "_mounts": 0},
                        "session": session,
                        "static": None,
                    },
                )
                assert reply["status"] == "ok", reply
                rendered = str(reply["response"]["rendered"])
                assert "True" in rendered  # the connected mount
                if rendered_by not in rendered:
                    break
        else:
            raise AssertionError("no LiveView socket landed on the other node in 100 tries")
        other = "web2" if rendered_by == "web1" else "web1"
        assert other in rendered


async def test_the_parent_warns_when_the_nodes_sign_with_different_keys() -> None:
    async with nodes("make_unshared") as group:
        await group.line(r"\[parent\] WARNING web\.nodes: the nodes sign with different secret")


async def test_nodes_that_die_too_often_make_the_parent_give_up() -> None:
    options = ("--max-restarts", "2", "--max-seconds", "60")
    async with nodes("broken", *options, ready=False) as group:
        with trio.fail_after(WAIT):
            assert await group.process.wait() == 1
        await group.line(r"died 3 times within 60.0 s \(more than --max-restarts 2\): giving up")
        children = [pid for pids in group.pids().values() for pid in pids]
        assert len(children) == 2 + 2  # two nodes, two restarts, the third death is the end
        await _gone(children)


async def test_nodes_stop_by_themselves_when_the_parent_is_killed() -> None:
    async with nodes() as group:
        children = [pid for pids in group.pids().values() for pid in pids]
        group.process.kill()
        await _gone(children)
        assert any("[web1] INFO web: stopping on the end of the parent" in x for x in group.lines)


def test_several_nodes_without_a_cluster_are_refused() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("BEAM_CLUSTER", None)
    done = subprocess.run(
        [sys.executable, "-m", "web", "tests.web.nodesapp:make", "--nodes", "2", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--nodes 2 starts 2 nodes that must share one cluster" in done.stderr
    assert "--cluster redis://" in done.stderr
    assert "BEAM_CLUSTER" in done.stderr


def test_a_bad_node_count_is_refused() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "web", "tests.web.nodesapp:make", "--nodes", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "expected a number of nodes >= 1 or 'auto', got '0'" in done.stderr


def test_an_endpoint_takes_its_default_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEB_SECRET_KEY", "one key for every node")
    assert web.Endpoint().secret_key == "one key for every node"
    monkeypatch.delenv("WEB_SECRET_KEY")
    assert web.Endpoint().secret_key != web.Endpoint().secret_key  # random per endpoint
