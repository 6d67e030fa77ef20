"""HTTP server hardening (issue 13, items 1, 2, 3, 11 and 13), against a live server on
loopback: each request that once stopped the node (or was accepted when it should not be) is
sent, its answer checked, and then the same server must still answer a normal ``GET /``.
Before the fix, any of the item-1 requests cancelled the server's nursery: the ``async with``
around the server raised and the test failed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import beam
import web

from ..support.wsclient import connect
from .http_app import KEY, make_endpoint


@asynccontextmanager
async def server(tmp_path: Path, **limits: object) -> AsyncIterator[int]:
    (tmp_path / "app.js").write_text("console.log(1)")
    async with beam.open_node(), trio.open_nursery() as nursery:
        port = await nursery.start(web.serve, make_endpoint(tmp_path, **limits), "127.0.0.1", 0)
        yield port
        nursery.cancel_scope.cancel()


Answer = tuple[int, dict[str, str], bytes]


async def send(port: int, raw: bytes, *, eof: bool = True) -> Answer:
    """Send *raw*, (half-)close, and read the first response on the connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        if eof:
            await stream.send_eof()
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65_536):
                data += chunk
    return parse(data)


def parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(lines[0].split()[1]), headers, body


async def still_serving(port: int) -> None:
    status, _, body = await send(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert (status, body) == (200, b"ok")


def get(target: str, extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n".encode()


def upgrade(
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
    connection: str | None = "Upgrade",
    key: str | None = KEY,
    ws_version: str | None = "13",
) -> bytes:
    lines = [f"{method} /ws {version}", "host: x", "upgrade: websocket"]
    if connection is not None:
        lines.append(f"connection: {connection}")
    if key is not None:
        lines.append(f"sec-websocket-key: {key}")
    if ws_version is not None:
        lines.append(f"sec-websocket-version: {ws_version}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# (what, request, expected status, a fragment the body or a header must hold)
CASES: list[tuple[str, bytes, int, str]] = [
    # Item 1: each of these stopped the node.
    ("target //[ (urlsplit's ValueError)", get("//["), 404, "no route"),
    ("absolute target with a bad IPv6 host", get("http://[/x"), 400, "malformed"),
    ("target that is not a path", get("x/y"), 400, "not a path"),
    ("upgrade without Sec-WebSocket-Key", upgrade(key=None), 400, "Sec-WebSocket-Key"),
    ("upgrade with a key that is not 16 bytes", upgrade(key="c2hvcnQ="), 400, "16 random"),
    ("upgrade with a wrong version", upgrade(ws_version="8"), 426, "version 8"),
    ("upgrade without a version", upgrade(ws_version=None), 426, "Sec-WebSocket-Version: 13"),
    ("upgrade without Connection: Upgrade", upgrade(connection=None), 400, "Connection: Upgrade"),
    ("upgrade with Connection: keep-alive", upgrade(connection="keep-alive"), 400, "Upgrade"),
    ("POST upgrade", upgrade(method="POST"), 400, "GET request, not POST"),
    ("HTTP/1.0 upgrade", upgrade(version="HTTP/1.0"), 400, "HTTP/1.1"),
    ("handler puts CR/LF into a header", get("/crlf?name=a%0d%0aset-cookie:%20x=1"), 500, ""),
    ("handler puts a non-latin-1 header", get("/snowman"), 500, "internal server error"),
    ("handler returns a str body", get("/body-str"), 500, "internal server error"),
    ("handler raises SystemExit", get("/exit"), 500, "internal server error"),
    (
        "upgrader raises HTTPError",
        upgrade().replace(b"GET /ws ", b"GET /members "),
        401,
        "members only",
    ),
    # Item 13.
    (
        "Content-Length with Transfer-Encoding",
        b"POST /form HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
        b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "Content-Length and Transfer-Encoding",
    ),
    ("GET on a POST route", get("/form"), 405, "allowed: POST"),
    ("DELETE on a GET route", get("/", method="DELETE"), 405, "allowed: GET, HEAD"),
    ("POST on static files", get("/assets/app.js", method="POST"), 405, "static"),
    ("static %00", get("/assets/app.js%00"), 404, ""),
    ("static %00 alone", get("/assets/%00"), 404, ""),
    ("static control characters", get("/assets/a%0d%0ab"), 404, ""),
    ("static bad percent-encoding", get("/assets/%ff%fe%zz"), 404, ""),
    ("static overlong path", get("/assets/" + "a" * 5_000), 404, ""),
    ("static name over NAME_MAX", get("/assets/" + "b" * 300), 404, ""),
    # Item 3: a handler (or Request.form) raises HTTPError.
    ("HTTPError from a handler", get("/teapot"), 418, "short and stout"),
]


@pytest.mark.parametrize(("what", "raw", "status", "fragment"), CASES, ids=[c[0] for c in CASES])
async def test_bad_requests_get_an_answer_and_the_server_keeps_serving(
    tmp_path: Path, what: str, raw: bytes, status: int, fragment: str
) -> None:
    async with server(tmp_path) as port:
        got, headers, body = await send(port, raw)
        assert got == status, (what, body)
        assert fragment in body.decode() or fragment in str(headers), (what, body, headers)
        await still_serving(port)


async def test_a_bad_response_is_logged_once_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with server(tmp_path) as port:
        with caplog.at_level(logging.ERROR, logger="web.server"):
            status, headers, _ = await send(port, get("/crlf?name=a%0d%0ax-evil:%201"))
        assert status == 500
        assert "x-evil" not in headers
        errors = [r for r in caplog.records if r.name == "web.server"]
        assert len(errors) == 1
        assert errors[0].exc_info is not None
        await still_serving(port)


async def test_the_426_names_the_version_we_speak(tmp_path: Path) -> None:
    async with server(tmp_path) as port:
        status, headers, _ = await send(port, upgrade(ws_version="8"))
        assert status == 426
        assert headers["sec-websocket-version"] == "13"


async def test_a_valid_upgrade_still_gets_101_and_echoes(tmp_path: Path) -> None:
    async with server(tmp_path) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(upgrade())
            with trio.fail_after(5):
                answer = await stream.receive_some(65_536)
        assert answer.startswith(b"HTTP/1.1 101")
        async with connect(port, "/ws") as ws:
            await ws.send("hello")
            assert await ws.receive() == "hello"


async def test_an_http_error_keeps_the_connection_alive(tmp_path: Path) -> None:
    async with server(tmp_path) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(
                b"GET /teapot HTTP/1.1\r\nhost: x\r\n\r\n"
                b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            data = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65_536):
                    data += chunk
        assert data.startswith(b"HTTP/1.1 418")
        assert b"x-pot: tea" in data
        assert data.count(b"HTTP/1.1 200") == 1
        assert data.endswith(b"ok")


def test_a_48kb_cookie_header_parses_linearly_and_fully() -> None:
    # SimpleCookie took seconds on this shape (CVE-2024-7592); the parser is one split.
    header = 'a="' + "\\\\" * 24_000 + '"; wanted=yes'
    request = web.Request("GET", "/", {}, (("cookie", header),))
    assert request.cookie("wanted") == "yes"
    assert request.cookie("a") == "\\\\" * 24_000
    many = "; ".join(f"c{i}=v{i}" for i in range(4_000))
    assert web.Request("GET", "/", {}, (("cookie", many),)).cookie("c3999") == "v3999"


async def test_big_heads_and_many_headers_get_431(tmp_path: Path) -> None:
    async with server(tmp_path) as port:
        # 60 KB in one read: the limit on an incomplete head never sees it.
        cookie = "a=" + "b" * 60_000
        status, _, body = await send(port, get("/", f"cookie: {cookie}\r\n"))
        assert status == 431
        assert b"16384 bytes" in body
        many = "".join(f"x-h{i}: v\r\n" for i in range(101))
        status, _, body = await send(port, get("/", many))
        assert status == 431
        assert b"100 (Endpoint.max_headers)" in body
        within = "".join(f"x-h{i}: v\r\n" for i in range(90))
        status, _, _ = await send(port, get("/", within))
        assert status == 200
        await still_serving(port)


async def test_head_limits_are_configurable(tmp_path: Path) -> None:
    async with server(tmp_path, max_head_bytes=200, max_headers=3) as port:
        status, _, _ = await send(port, get("/", "x-a: 1\r\n"))
        assert status == 200
        status, _, _ = await send(port, get("/", "x-a: 1\r\nx-b: 2\r\n"))
        assert status == 431
        status, _, _ = await send(port, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
        assert status == 431


async def test_form_field_limit(tmp_path: Path) -> None:
    async with server(tmp_path, max_form_fields=10) as port:
        for fields, status, answer in ((10, 200, b"10"), (11, 400, b"more than 10 fields")):
            body = "&".join(f"f{i}=x" for i in range(fields)).encode()
            raw = (
                b"POST /form HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-"
                b"urlencoded\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            ) + body
            got, _, text = await send(port, raw)
            assert (got, answer in text) == (status, True)
        status, _, _ = await send(port, get("/?" + "&".join(f"q{i}=1" for i in range(11))))
        assert status == 400


def test_form_field_limit_default_is_djangos() -> None:
    body = "&".join(f"f{i}=x" for i in range(1_001)).encode()
    request = web.Request("POST", "/", {}, (), body)
    with pytest.raises(web.HTTPError) as refused:
        request.form()
    assert refused.value.status == 400
    assert "1000 fields" in refused.value.message
    assert len(web.Request("POST", "/", {}, (), body[: body.rindex(b"&")]).form()) == 1_000


async def test_head_on_a_get_route(tmp_path: Path) -> None:
    async with server(tmp_path) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(get("/", method="HEAD"))
            data = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65_536):
                    data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"content-length: 2" in head
        assert rest == b""


async def test_security_headers_on_every_response(tmp_path: Path) -> None:
    async with server(tmp_path) as port:
        for target, status in (("/", 200), ("/nope", 404), ("/assets/app.js", 200)):
            got, headers, _ = await send(port, get(target))
            assert got == status
            for name, value in web.SECURITY_HEADERS:
                assert headers[name] == value, (target, name)
        # An error answered before any request was complete carries them too.
        got, headers, _ = await send(port, b"NOT HTTP\r\n\r\n")
        assert got == 400
        assert headers["x-content-type-options"] == "nosniff"
        # A handler's own value wins.
        _, headers, _ = await send(port, get("/own-frame"))
        assert headers["x-frame-options"] == "DENY"


async def test_security_headers_can_be_turned_off(tmp_path: Path) -> None:
    async with server(tmp_path, security_headers=()) as port:
        _, headers, _ = await send(port, get("/"))
        assert not {name for name, _ in web.SECURITY_HEADERS} & set(headers)


def test_invalid_security_headers_are_refused() -> None:
    with pytest.raises(ValueError, match="security_headers"):
        web.Endpoint(security_headers=(("x-a", "b\r\nc"),))


async def test_head_timeout_is_short_and_keep_alive_idle_is_its_own(tmp_path: Path) -> None:
    async with server(tmp_path, head_timeout=0.3, keep_alive_timeout=30) as port:
        # A head that stops half-way: 408, then the connection closes.
        status, _, body = await send(port, b"GET / HTTP/1.1\r\nhost", eof=False)
        assert status == 408
        assert b"Endpoint.head_timeout" in body
        # An idle connection (no byte sent) outlives the head timeout.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await trio.sleep(0.6)
            await stream.send_all(get("/"))
            with trio.fail_after(5):
                answer = await stream.receive_some(65_536)
        assert answer.startswith(b"HTTP/1.1 200")


async def test_body_timeout(tmp_path: Path) -> None:
    async with server(tmp_path, body_timeout=0.3) as port:
        status, _, body = await send(
            port,
            b"POST /form HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
            eof=False,
        )
        assert status == 408
        assert b"Endpoint.body_timeout" in body
