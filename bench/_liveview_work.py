"""The work of the ``liveview`` suite.

In-process: :func:`table_event` measures one event on a 1,000-row table LiveView, as a diff
(what our server replies) or as a full re-render of the same page.

In a fresh interpreter per repetition: :func:`clicks` and :func:`session_memory` start a server
(:mod:`bench._liveview_server`) in another interpreter, then open the sessions as the official
client does: the dead render over HTTP (for the page's CSRF token, container id and session
token, and the cookies it sets: the CSRF token is bound to the ``_csrf`` cookie), a WebSocket
to ``/live/websocket?_csrf_token=...&vsn=2.0.0`` carrying those cookies (wsproto) and the
``phx_join`` of ``lv:<id>``. pyview speaks the same Phoenix V2 framing for join, event and
reply (its rendered format differs, which a load generator that only counts replies does not
read).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request, TextMessage

from ._liveview_server import PATH
from ._measure import Sample, report_and_exit

_REPO = Path(__file__).resolve().parent.parent
_CLICK: Final = {"type": "click", "event": "inc", "value": {"value": ""}}

# -- 1. one event on a 1,000-row table, in-process ----------------------------------------------

#: The table: one comprehension entry per row, four dynamics each.
TABLE_TEMPLATE = (
    "<table><thead><tr><th>id</th><th>name</th><th>email</th><th>score</th></tr></thead>"
    "<tbody>{% for row in rows %}"
    '<tr id="row-{{ row.id }}"><td>{{ row.name }}</td><td>{{ row.email }}</td>'
    '<td class="score">{{ row.score }}</td></tr>'
    "{% endfor %}</tbody></table>"
)
_TOPIC = "lv:phx-F7b3kQx9Z1aA"


def _row(index: int, score: int) -> dict[str, Any]:
    return {
        "id": index,
        "name": f"User {index:04d}",
        "email": f"user{index:04d}@example.com",
        "score": score,
    }


def _frame_bytes(response: Mapping[str, Any], ref: int) -> int:
    """Bytes on the wire of the reply to push *ref*: the V2 JSON text and its frame header
    (a server frame is not masked)."""
    text = json.dumps(["4", str(ref), _TOPIC, "phx_reply", {"status": "ok", "response": response}])
    size = len(text.encode())
    return size + (2 if size < 126 else 4 if size < 65_536 else 10)


def table_event(rows: int, events: int, *, full: bool) -> Sample:
    """Change one field (the score) of one row per event, *events* times, and build each
    event's reply frame: our diff (``full`` false) or the full rendered tree of the new assigns
    (``full`` true). Returns seconds per event and the mean bytes of a reply frame."""
    import web

    class Table(web.LiveView):
        template = TABLE_TEMPLATE

        async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
            raise NotImplementedError  # the loop below does what an "inc" event would

    template = Table.compiled()
    live = web.LiveSocket(connected=True)
    live.assign(rows=[_row(i, 1000 + i) for i in range(rows)])
    _, state = template.render(live.assigns)
    live.changed.clear()
    sent = 0
    started = time.perf_counter()
    for seq in range(events):
        # The event handler: a new list with one new row (assigns are immutable values).
        index = (seq * 7919) % rows
        changed = list(live.assigns["rows"])
        changed[index] = {**changed[index], "score": 5000 + seq % 5000}
        live.assign(rows=changed)
        if full:
            tree, state = template.render(live.assigns)
            response: dict[str, Any] = {"rendered": tree}
        else:
            diff, state = template.diff(live.assigns, state, live.changed)
            response = {"diff": diff}
        live.changed.clear()
        sent += _frame_bytes(response, seq + 5)
    elapsed = time.perf_counter() - started
    return {"s_per_event": elapsed / events, "bytes": sent / events}


def check_table_diff(rows: int) -> None:
    """Raise unless the diff brings the client's tree to exactly the full render (the
    comparison above is only fair if both replies carry the same page)."""
    from web.live._rendered import merge, to_html
    from web.live._template import LiveTemplate

    template = LiveTemplate(TABLE_TEMPLATE)
    assigns = {"rows": [_row(i, 1000 + i) for i in range(rows)]}
    tree, state = template.render(assigns)
    changed = list(assigns["rows"])
    changed[rows // 2] = {**changed[rows // 2], "score": 7}
    diff, _ = template.diff({"rows": changed}, state, {"rows"})
    want, _ = template.render({"rows": changed})
    if to_html(merge(tree, diff)) != to_html(want):
        raise RuntimeError(f"the table's diff does not reproduce the full render: {diff}")


# -- 2 and 3. sessions against a server in another interpreter ----------------------------------


class _Server:
    def __init__(self, kind: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._liveview_server", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_REPO,
            env=env,
        )
        self.port = int(self._expect("PORT"))

    def _expect(self, word: str) -> str:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"benchmark server exited with {self.process.wait()}")
            got, _, value = line.partition(" ")
            if got == word:
                return value.strip()

    def rss(self) -> int:
        """The server's resident memory, garbage collected."""
        assert self.process.stdin is not None
        self.process.stdin.write("rss\n")
        self.process.stdin.flush()
        return int(self._expect("RSS"))

    def cpu_seconds(self) -> float:
        """The CPU time the server has used so far (user and system)."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _dead_render(port: int) -> tuple[str, str, str, str]:
    """GET the page; returns its CSRF token, container id, session token and the ``Cookie``
    header a browser would send back (what the page's ``Set-Cookie`` headers set)."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(
            f"GET {PATH} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n".encode()
        )
        chunks = []
        while chunk := conn.recv(65_536):
            chunks.append(chunk)
    head, _, page = b"".join(chunks).decode().partition("\r\n\r\n")
    cookies = [
        line.split(":", 1)[1].split(";")[0].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("set-cookie:")
    ]
    found = [
        re.search(pattern, page)
        for pattern in (
            r'<meta name="csrf-token" content="([^"]+)"',
            r'id="(phx-[^"]+)"',
            r'data-phx-session="([^"]+)"',
        )
    ]
    if not all(found):
        raise RuntimeError(f"the dead render of {PATH} lacks a LiveView container:\n{page[:600]}")
    csrf, element_id, session = (match.group(1) for match in found if match)
    return csrf, element_id, session, "; ".join(cookies)


class _Session:
    """One browser tab: dead render, WebSocket, join; then events without blocking."""

    def __init__(self, kind: str, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.ok = self.errors = 0
        if kind == "raw":
            return
        csrf, element_id, session, cookies = _dead_render(port)
        self.topic = f"lv:{element_id}"
        self.ref = 1
        target = f"/live/websocket?_csrf_token={quote(csrf)}&vsn=2.0.0"
        headers = [(b"cookie", cookies.encode())] if cookies else []
        upgrade = Request(host=f"127.0.0.1:{port}", target=target, extra_headers=headers)
        self.sock.sendall(self.ws.send(upgrade))
        self._until(lambda event: isinstance(event, AcceptConnection))
        join = {
            "url": f"http://127.0.0.1:{port}{PATH}",
            "params": {"_csrf_token": csrf, "_mounts": 0},
            "session": session,
            "static": None,
        }
        self._send("phx_join", join)
        reply = self._until(lambda event: isinstance(event, TextMessage))
        message = json.loads(reply.data)
        if message[3] != "phx_reply" or message[4].get("status") != "ok":
            raise RuntimeError(f"{kind}: the join was refused: {reply.data[:300]}")

    def _send(self, event: str, payload: Any) -> None:
        frame = json.dumps(["1", str(self.ref), self.topic, event, payload])
        self.ref += 1
        self.sock.sendall(self.ws.send(TextMessage(frame)))

    def _until(self, match: Callable[[Any], bool]) -> Any:
        while True:
            for event in self.ws.events():
                if isinstance(event, RejectConnection):
                    raise RuntimeError(f"the server refused the WebSocket: {event.status_code}")
                if match(event):
                    return event
            data = self.sock.recv(65_536)
            if not data:
                raise RuntimeError("the benchmark server closed a connection during set-up")
            self.ws.receive_data(data)

    def click(self) -> None:
        self._send("event", _CLICK)

    def read(self, counting: bool) -> None:
        """Take in what arrived; for each reply, count it and click again at once."""
        try:
            data = self.sock.recv(262_144)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("the benchmark server closed a session's connection")
        self.ws.receive_data(data)
        for event in self.ws.events():
            if not isinstance(event, TextMessage):
                continue
            message = json.loads(event.data)
            if message[3] != "phx_reply":
                continue
            if counting:
                if message[4].get("status") == "ok":
                    self.ok += 1
                else:
                    self.errors += 1
            self.click()


def clicks(kind: str, sessions: int, seconds: float, warm_up: float) -> None:
    """Open *sessions* sessions of the counter on the *kind* server, then have each click as
    fast as its replies come back: *warm_up* seconds uncounted, then *seconds* counted. Reports
    events/s (ok replies), error replies, and how busy the server and this load generator were
    (CPU seconds per second: the server near 1.0 means it is the bottleneck)."""
    server = _Server(kind)
    conns: list[_Session] = []
    try:
        conns = [_Session(kind, server.port) for _ in range(sessions)]
        selector = selectors.DefaultSelector()
        for conn in conns:
            conn.sock.setblocking(False)
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        started = time.monotonic()
        count_from, until = started + warm_up, started + warm_up + seconds
        for conn in conns:
            conn.click()
        cpu = server_cpu = -1.0
        while (now := time.monotonic()) < until:
            counting = now >= count_from
            if counting and cpu < 0:
                cpu, server_cpu = time.process_time(), server.cpu_seconds()
            for key, _ in selector.select(timeout=min(0.05, until - now)):
                key.data.read(counting)
        cpu = time.process_time() - cpu
        server_cpu = server.cpu_seconds() - server_cpu
        ok = sum(conn.ok for conn in conns)
        errors = sum(conn.errors for conn in conns)
    finally:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.close()
        server.stop()
    report_and_exit(
        {
            "per_s": ok / seconds,
            "errors": float(errors),
            "server_busy": server_cpu / seconds,
            "lg_busy": cpu / seconds,
        }
    )


def session_memory(kind: str, sessions: int) -> None:
    """Join *sessions* counter sessions (plain connections for ``raw``); report the server's
    memory per session."""
    server = _Server(kind)
    conns: list[_Session] = []
    try:
        before = server.rss()
        conns = [_Session(kind, server.port) for _ in range(sessions)]
        if kind == "raw":
            time.sleep(0.5)  # plain connections have no reply to wait for
        after = server.rss()
    finally:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.close()
        server.stop()
    report_and_exit({"bytes": (after - before) / sessions})
