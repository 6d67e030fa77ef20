"""The HTTP/1.1 and WebSocket server over real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from web import Endpoint, Request, Response, WebSocket, serve

from ..support.wsclient import Closed, connect


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        if message == "close please":
            await ws.close()
            return
        if message == "crash":
            raise RuntimeError("handler bug")
        await ws.send(message)


def make_endpoint() -> Endpoint:
    endpoint = Endpoint(max_request_bytes=1_000, max_frame_bytes=10_000, keep_alive_timeout=5)
    endpoint.get("/", lambda request: Response(200, b"hello"))

    async def greet(request: Request) -> Response:
        return Response(200, f"hi {request.query['name'][0]}".encode())

    endpoint.get("/greet", greet)
    endpoint.route(
        "POST", "/upload", lambda request: Response(201, str(len(request.body)).encode())
    )
    endpoint.websocket("/socket/websocket", echo)
    return endpoint


@asynccontextmanager
async def running() -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, make_endpoint(), "127.0.0.1", 0)
        yield port
        nursery.cancel_scope.cancel()


async def http(port: int, raw: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        chunks = []
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65_536):
                chunks.append(chunk)
        return b"".join(chunks)


async def test_get_routes_query_and_errors() -> None:
    async with running() as port:
        ok = await http(
            port, b"GET /greet?name=ann HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        assert ok.startswith(b"HTTP/1.1 200")
        assert ok.endswith(b"hi ann")
        missing = await http(port, b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert missing.startswith(b"HTTP/1.1 404")
        assert b"no route for GET /nope" in missing
        wrong = await http(port, b"DELETE / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert wrong.startswith(b"HTTP/1.1 405")


async def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    async with running() as port:
        both = await http(
            port,
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        assert both.count(b"HTTP/1.1 200") == 2


async def test_request_body_limit_and_malformed_requests() -> None:
    async with running() as port:
        small = await http(
            port,
            b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
            b"connection: close\r\n\r\nhello",
        )
        assert small.startswith(b"HTTP/1.1 201")
        assert small.endswith(b"5")
        big = b"x" * 2_000
        refused = await http(
            port,
            b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\n\r\n" + big,
        )
        assert refused.startswith(b"HTTP/1.1 413")
        garbage = await http(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400")


async def test_pipelined_requests_are_answered_in_order_in_one_read() -> None:
    async with running() as port:
        answers = await http(
            port,
            b"GET /greet?name=a HTTP/1.1\r\nhost: x\r\n\r\n"
            b"POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /greet?name=b HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        assert answers.count(b"HTTP/1.1 ") == 3
        first, second, third = answers.split(b"HTTP/1.1 ")[1:]
        assert first.startswith(b"200")
        assert first.endswith(b"hi a")
        assert second.startswith(b"201")
        assert second.endswith(b"5")
        assert third.startswith(b"200")
        assert b"connection: close" in third
        assert third.endswith(b"hi b")


async def test_http_10_is_answered_then_closed() -> None:
    async with running() as port:
        answer = await http(port, b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n")
        assert answer.count(b"HTTP/1.1 200") == 1
        assert b"connection: close" in answer


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/2.0\r\nhost: x\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # no Host
        (b"POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n", b"501"),
        # Refused by its Content-Length, before a byte of the body is read.
        (b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1001\r\n\r\n", b"413"),
    ],
)
async def test_refusals_by_the_head(raw: bytes, status: bytes) -> None:
    async with running() as port:
        answer = await http(port, raw)
        assert answer.startswith(b"HTTP/1.1 " + status), answer
        assert b"connection: close" in answer


_SMUGGLED = b"GET /greet?name=smuggled HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"


# llhttp passes the bytes after an upgrade request's head (its body too) or a CONNECT's on
# as bytes of another protocol; the upgrade not taken, the server went on parsing them as
# HTTP: a request smuggled in a body.
@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /upload HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: h2c\r\n", b"400"),
        (b"CONNECT /upload HTTP/1.1\r\nhost: x\r\n", b"405"),
    ],
)
async def test_what_follows_an_upgrade_or_connect_is_not_served_as_a_request(
    head: bytes, status: bytes
) -> None:
    async with running() as port:
        answer = await http(port, head + b"content-length: %d\r\n\r\n" % len(_SMUGGLED) + _SMUGGLED)
        assert answer.count(b"HTTP/1.1 ") == 1, answer
        assert answer.startswith(b"HTTP/1.1 " + status), answer
        assert b"connection: close" in answer
        assert b"smuggled" not in answer


async def test_a_peer_that_does_not_read_its_response_is_let_go() -> None:
    # A slow read: the request is whole, the response too big for the socket buffers, and
    # the client reads none of it. The send waited for it forever, holding the response.
    endpoint = Endpoint(send_timeout=0.5)
    size = 64 * 1_048_576
    endpoint.get("/big", lambda request: Response(200, b"x" * size))
    endpoint.get("/", lambda request: Response(200, b"hello"))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, endpoint, "127.0.0.1", 0)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        with sock:
            await sock.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
            await trio.sleep(1.5)
            received = 0
            with trio.fail_after(10), contextlib.suppress(ConnectionResetError):
                while received < size and (chunk := await sock.recv(1_048_576)):
                    received += len(chunk)
        assert 0 < received < size  # cut off, the connection closed
        answer = await http(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")
        nursery.cancel_scope.cancel()


async def test_expect_100_continue_gets_a_100_before_the_body_is_sent() -> None:
    async with running() as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(
                b"POST /upload HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
                b"content-length: 3\r\nconnection: close\r\n\r\n"
            )
            with trio.fail_after(5):
                interim = await stream.receive_some(65_536)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            await stream.send_all(b"abc")
            chunks = []
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65_536):
                    chunks.append(chunk)
        answer = b"".join(chunks)
        assert answer.startswith(b"HTTP/1.1 201")
        assert answer.endswith(b"3")


async def test_websocket_echo_text_and_binary_and_phoenix_subprotocol() -> None:
    async with running() as port:
        path = "/socket/websocket?vsn=2.0.0"
        async with connect(port, path, subprotocols=["phoenix", "x"]) as ws:
            assert ws.subprotocol == "phoenix"
            await ws.send("hello")
            assert await ws.receive() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.receive() == b"\x00\x01"
            assert await ws.ping(b"p") == b"p"


@pytest.mark.parametrize(
    ("message", "code"),
    # 2 MB: still being sent when the server refuses it by its header (the server reads on
    # until the client has its close frame: closing at once reset the connection).
    [("close please", 1001), ("crash", 1011), ("x" * 20_000, 1009), ("y" * 2_000_000, 1009)],
)
async def test_websocket_close_codes(message: str, code: int) -> None:
    async with running() as port, connect(port, "/socket/websocket") as ws:
        await ws.send(message)
        with pytest.raises(Closed) as closed:
            await ws.receive()
        assert closed.value.code == code


async def test_unknown_websocket_path_is_404() -> None:
    async with running() as port:
        answer = await http(
            port,
            b"GET /elsewhere HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n"
            b"connection: upgrade, close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 404")


def test_request_cookies_and_forms() -> None:
    request = Request(
        "POST",
        "/login",
        {},
        (("cookie", "a=1; session=xyz"), ("cookie", "b=2")),
        b"username=bob&note=%20hi&username=ann",
    )
    assert request.cookie("session") == "xyz"
    assert request.cookie("b") == "2"
    assert request.cookie("missing") is None
    assert request.form() == {"username": "ann", "note": " hi"}
