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
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request

from ._liveview_server import PATH, TEMPLATES
from ._measure import Sample, log, report_and_exit

_REPO = Path(__file__).resolve().parent.parent

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
    def __init__(self, kind: str, template: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._liveview_server", kind, template],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_REPO,
            env=env,
        )
        self.stack = self._expect("STACK")
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


def client_frame(text: bytes) -> bytes:
    """A masked text frame, as a browser sends it (a fresh random mask each time).

    >>> len(client_frame(b"hi"))
    8
    """
    size = len(text)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 65_536:
        head = bytes((0x81, 0xFE)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0xFF)) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    return head + mask + (int.from_bytes(text, "big") ^ key).to_bytes(size, "big")


def server_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete (unmasked, unfragmented) server frames off the front of *buffer*:
    ``(opcode, payload)`` each."""
    frames = []
    at, end = 0, len(buffer)
    while end - at >= 2:
        opcode, size = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
        if not buffer[at] & 0x80 or buffer[at + 1] & 0x80:
            raise RuntimeError("the benchmark reads only whole, unmasked server frames")
        start = at + 2
        if size == 126:
            if end - start < 2:
                break
            size, start = int.from_bytes(buffer[start : start + 2], "big"), start + 2
        elif size == 127:
            if end - start < 8:
                break
            size, start = int.from_bytes(buffer[start : start + 8], "big"), start + 8
        if end - start < size:
            break
        frames.append((opcode, bytes(buffer[start : start + size])))
        at = start + size
    del buffer[:at]
    return frames


class _Session:
    """One browser tab: dead render, WebSocket, join; then events without blocking.

    The handshake goes through wsproto; after it the session frames and parses by hand (a
    load generator that spends little per event measures the server, not itself)."""

    def __init__(self, kind: str, port: int, event: str = "inc") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ok = self.errors = 0
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.latencies: list[float] = []
        if kind == "raw":
            return
        csrf, element_id, session, cookies = _dead_render(port)
        self.topic = f"lv:{element_id}"
        self.ref = 1
        self.click_json = json.dumps({"type": "click", "event": event, "value": {"value": ""}})
        ws = WSConnection(ConnectionType.CLIENT)
        target = f"/live/websocket?_csrf_token={quote(csrf)}&vsn=2.0.0"
        headers = [(b"cookie", cookies.encode())] if cookies else []
        upgrade = Request(host=f"127.0.0.1:{port}", target=target, extra_headers=headers)
        self.sock.sendall(ws.send(upgrade))
        while True:
            data = self.sock.recv(65_536)
            if not data:
                raise RuntimeError("the benchmark server closed a connection during set-up")
            ws.receive_data(data)
            events = list(ws.events())
            if any(isinstance(e, RejectConnection) for e in events):
                raise RuntimeError("the server refused the WebSocket")
            if any(isinstance(e, AcceptConnection) for e in events):
                break
        join = {
            "url": f"http://127.0.0.1:{port}{PATH}",
            "params": {"_csrf_token": csrf, "_mounts": 0},
            "session": session,
            "static": None,
        }
        self._send("phx_join", json.dumps(join))
        while True:
            data = self.sock.recv(65_536)
            if not data:
                raise RuntimeError("the benchmark server closed a connection during set-up")
            self.buffer += data
            replies = [p for op, p in server_frames(self.buffer) if op == 1]
            if replies:
                break
        message = json.loads(replies[0])
        if message[3] != "phx_reply" or message[4].get("status") != "ok":
            raise RuntimeError(f"{kind}: the join was refused: {replies[0][:300]!r}")

    def _send(self, event: str, payload: str) -> None:
        frame = f'["1","{self.ref}","{self.topic}","{event}",{payload}]'
        self.ref += 1
        self.sock.sendall(client_frame(frame.encode()))

    def click(self) -> None:
        self.sent_at = time.perf_counter()
        self._send("event", self.click_json)

    def read(self, counting: bool) -> None:
        """Take in what arrived; for each reply, count it and click again at once."""
        try:
            data = self.sock.recv(262_144)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("the benchmark server closed a session's connection")
        self.buffer += data
        for opcode, payload in server_frames(self.buffer):
            if opcode != 1:
                continue
            message = json.loads(payload)
            if message[3] != "phx_reply":
                continue
            if counting:
                self.latencies.append(time.perf_counter() - self.sent_at)
                if message[4].get("status") == "ok":
                    self.ok += 1
                else:
                    self.errors += 1
            self.click()


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def clicks(kind: str, sessions: int, seconds: float, warm_up: float, template: str) -> None:
    """Open *sessions* sessions of the counter (*template*, see
    :data:`bench._liveview_server.TEMPLATES`) on the *kind* server, then have each click as
    fast as its replies come back: *warm_up* seconds uncounted, then *seconds* counted. Reports
    events/s (ok replies), the median and 99th percentile of a click's round trip, error
    replies, and how busy the server and this load generator were (CPU seconds per second:
    the server near 1.0 means it is the bottleneck)."""
    server = _Server(kind, template)
    log(f"    {kind} ({template}): {server.stack}")
    event = TEMPLATES[template][1]
    conns: list[_Session] = []
    try:
        conns = [_Session(kind, server.port, event) for _ in range(sessions)]
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
        latencies = [latency for conn in conns for latency in conn.latencies]
    finally:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.close()
        server.stop()
    report_and_exit(
        {
            "per_s": ok / seconds,
            "p50_ms": _percentile(latencies, 0.50) * 1e3,
            "p99_ms": _percentile(latencies, 0.99) * 1e3,
            "errors": float(errors),
            "server_busy": server_cpu / seconds,
            "server_us_per_event": server_cpu / max(ok, 1) * 1e6,
            "lg_busy": cpu / seconds,
        }
    )


def session_memory(kind: str, sessions: int, template: str) -> None:
    """Join *sessions* counter sessions (plain connections for ``raw``); report the server's
    memory per session."""
    server = _Server(kind, template)
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
