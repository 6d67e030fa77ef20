"""Fuzzing the live HTTP/WebSocket server (issue 13, item 1): random bytes and random
mutations of valid requests and WebSocket upgrades (byte flips, truncations, deleted and
duplicated header lines, CR/LF and NUL injection, huge values) go to ONE server, started once
for the whole test. After each example the server must still answer a normal ``GET /`` with
200, its nursery must still be running, and no connection may have died of an exception of
ours (a "connection ... failed" or "request ... failed" crash in the ``web.server`` log).

The server runs in a thread of its own (its own trio loop and node), so that hypothesis can
drive plain blocking sockets against it, one example after another.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beam
import web

from .http_app import KEY, make_endpoint

#: Crash messages of ours (a handler's unsendable response is the handler's bug, not ours).
CRASHES = ("connection from", "request from")


class Collect(logging.Handler):
    """Keeps every record it sees."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class ServerThread(threading.Thread):
    """One server in a thread of its own: ``port`` once started, ``error`` if it ever stops."""

    def __init__(self, static: Path) -> None:
        super().__init__(name="fuzzed-server", daemon=True)
        self.static = static
        self.port = 0
        self.started = threading.Event()
        self.error: BaseException | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self.scope: trio.CancelScope | None = None
        #: The first request after which the server stopped answering.
        self.killer: bytes | None = None

    def run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported by the test, not lost
            self.error = exc
        finally:
            self.started.set()

    async def _main(self) -> None:
        async with beam.open_node(), trio.open_nursery() as nursery:
            self.scope = nursery.cancel_scope
            self.token = trio.lowlevel.current_trio_token()
            endpoint = make_endpoint(self.static, head_timeout=2.0, body_timeout=2.0)
            self.port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            self.started.set()
            await trio.sleep_forever()

    def stop(self) -> None:
        if self.token is not None and self.scope is not None and self.is_alive():
            trio.from_thread.run_sync(self.scope.cancel, trio_token=self.token)
        self.join(10)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Collect]]:
    static = tmp_path_factory.mktemp("static")
    (static / "app.js").write_text("console.log(1)")
    collect = Collect()
    logging.getLogger("web.server").addHandler(collect)
    thread = ServerThread(static)
    thread.start()
    thread.started.wait(10)
    try:
        assert thread.port, f"the server did not start: {thread.error!r}"
        yield thread, collect
    finally:
        thread.stop()
        logging.getLogger("web.server").removeHandler(collect)


def exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send *data*, half-close, and read what comes back until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before reading everything
            pass
        chunks = []
        try:
            while chunk := sock.recv(65_536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def form(body: bytes) -> bytes:
    return (
        b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\nCookie: a=1; b=2\r\n\r\n" % len(body)
    ) + body


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: phoenix\r\n\r\n"
)
#: A masked text frame "hi", then a masked close frame.
FRAMES = b"\x81\x82\x01\x02\x03\x04" + bytes([ord("h") ^ 1, ord("i") ^ 2]) + b"\x88\x80" + bytes(4)

VALID: list[bytes] = [
    b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nConnection: close\r\n\r\n",
    b"GET /crlf?name=ann&x=%00 HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\n\r\n",
    b'HEAD /assets/app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: "x"\r\n\r\n',
    form(b"username=bob&password=secret&_csrf_token=abc"),
    b"POST /form HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab=cd\r\n0\r\n\r\n",
    UPGRADE,
    UPGRADE + FRAMES,
    b"GET /teapot HTTP/1.0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
]

#: Request targets and methods that once stopped the server, or might.
TARGETS = [
    b"//[",
    b"http://[/",
    b"http://x/",
    b"*",
    b"x",
    b"/assets/%00",
    b"/assets/%ff",
    b"/ws?",
    b"/?" + b"&".join(b"f%d=1" % i for i in range(1_100)),
    b"/" + b"a" * 20_000,
    b"//x/../ws",
]
METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"G\x00T", b"get"]
VERSIONS = [b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b""]

INJECTIONS = [b"\r\n", b"\r", b"\n", b"\x00", b"\r\n\r\n", b" ", b":", b"%", b"\xff", b"\t"]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("delete_line"), st.integers(0, 50)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 50)),
    st.tuples(st.just("inject"), st.integers(0, 10_000), st.sampled_from(INJECTIONS)),
    st.tuples(
        st.just("huge"),
        st.integers(0, 10_000),
        st.sampled_from([100, 5_000, 17_000, 70_000]),
        st.sampled_from([b"a", b";", b"\\", b"=", b",", b"%00"]),
    ),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("request_line"), st.integers(0, 2), st.sampled_from(TARGETS + METHODS)),
    st.tuples(st.just("version"), st.just(0), st.sampled_from(VERSIONS)),
)


def mutate(data: bytes, op: tuple[Any, ...]) -> bytes:
    """*data* changed by one mutation *op* (a tuple drawn from ``mutation``)."""
    kind, where, *args = op
    at = where % (len(data) + 1)
    if kind == "flip" and data:
        at %= len(data)
        return data[:at] + bytes([data[at] ^ (args[0] or 1)]) + data[at + 1 :]
    if kind == "truncate":
        return data[:at]
    if kind in ("delete_line", "duplicate_line"):
        lines = data.split(b"\r\n")
        index = where % len(lines)
        if kind == "delete_line":
            del lines[index]
        else:
            lines.insert(index, lines[index])
        return b"\r\n".join(lines)
    if kind in ("inject", "insert"):
        return data[:at] + args[0] + data[at:]
    if kind == "huge":
        size, piece = args
        return data[:at] + piece * size + data[at:]
    line, crlf, rest = data.partition(b"\r\n")
    words = line.split(b" ")
    if kind == "request_line":  # replace the method (a known one) or the target
        value = args[0]
        words[0 if value in METHODS else min(1, len(words) - 1)] = value
    elif kind == "version":
        words[-1] = args[0]
    return b" ".join(words) + crlf + rest


requests = st.one_of(
    st.binary(max_size=2_000),
    st.builds(
        lambda base, ops: _apply(base, ops),
        st.sampled_from(VALID),
        st.lists(mutation, min_size=1, max_size=4),
    ),
)


def _apply(base: bytes, ops: list[tuple[Any, ...]]) -> bytes:
    for op in ops:
        base = mutate(base, op)
    return base


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=requests)
def test_no_request_stops_the_server(fuzzed: tuple[ServerThread, Collect], data: bytes) -> None:
    thread, collect = fuzzed
    # Once the server is down every example fails (and hypothesis shrinks to a trivial one):
    # the request that brought it down is kept and named.
    assert thread.killer is None, f"the server stopped after {thread.killer!r:.300}"
    try:
        exchange(thread.port, data)
        answer = exchange(thread.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    except OSError:
        answer = b""
    if not thread.is_alive() or not answer.startswith(b"HTTP/1.1 200"):
        thread.killer = data
    assert thread.is_alive(), f"the server stopped after {data!r:.300}: {thread.error!r}"
    assert answer.startswith(b"HTTP/1.1 200"), (data[:300], answer[:200])
    assert answer.endswith(b"\r\n\r\nok")
    crashes = [r for r in collect.records if r.getMessage().startswith(CRASHES)]
    assert not crashes, (data[:300], [r.getMessage() for r in crashes])


def test_valid_requests_are_valid() -> None:
    # The seeds must be requests the server accepts, or the mutations start from noise.
    thread = ServerThread(Path(__file__).parent)
    thread.start()
    thread.started.wait(10)
    try:
        for request in VALID:
            answer = exchange(thread.port, request)
            status = answer.split(b" ", 2)[1]
            assert status in (b"101", b"200", b"204", b"304", b"404", b"418"), (request, answer)
    finally:
        thread.stop()
    assert thread.error is None
