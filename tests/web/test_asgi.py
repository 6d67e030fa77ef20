"""A mounted Starlette app answers the HTTP routes ours do not; sockets stay ours."""

from __future__ import annotations

import json

import trio
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import beam
import web

from ..support import phx
from ..support.http import http
from .rooms import UserSocket


async def echo(request: StarletteRequest) -> JSONResponse:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "body": (await request.body()).decode(),
            "header": request.headers.get("x-test"),
        }
    )


async def fail(request: StarletteRequest) -> PlainTextResponse:
    raise RuntimeError("the app failed")


APP = Starlette(
    routes=[Route("/api/echo", echo, methods=["GET", "POST"]), Route("/api/fail", fail)]
)


async def test_unrouted_requests_reach_the_mounted_app_and_sockets_stay_ours() -> None:
    async with beam.open_node():
        endpoint = web.Endpoint()
        endpoint.get("/ours", lambda request: web.Response(200, b"ours"))
        endpoint.socket("/socket", UserSocket())
        endpoint.mount(APP)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            status, _, body = await http(
                port, b"GET /ours HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            assert (status, body) == (200, b"ours")

            request = (
                b"POST /api/echo?a=1&b=%20x HTTP/1.1\r\nhost: x\r\nx-test: yes\r\n"
                b"content-length: 5\r\nconnection: close\r\n\r\nhello"
            )
            status, headers, body = await http(port, request)
            assert status == 200
            assert headers["content-type"] == "application/json"
            assert json.loads(body) == {
                "method": "POST",
                "path": "/api/echo",
                "query": {"a": "1", "b": " x"},
                "body": "hello",
                "header": "yes",
            }

            status, _, _ = await http(
                port, b"GET /api/missing HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            assert status == 404  # Starlette's own 404
            status, _, _ = await http(
                port, b"GET /api/fail HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            assert status == 500

            async with phx.connect(port) as client:
                assert (await client.join("room:a"))[1]["status"] == "ok"
            nursery.cancel_scope.cancel()


async def test_http_handlers_run_in_a_process_of_their_own() -> None:
    async with beam.open_node():
        seen: list[beam.Pid] = []
        endpoint = web.Endpoint()

        async def who(request: web.Request) -> web.Response:
            seen.append(beam.self())
            beam.send("echo", (beam.self(), "ping"))
            answer = await beam.receive(timeout=1)  # receiving needs a process of one's own
            return web.Response(200, str(answer).encode())

        async def echo_server() -> None:
            while True:
                sender, text = await beam.receive()
                beam.send(sender, text.upper())

        beam.register("echo", beam.spawn(echo_server))
        endpoint.get("/who", who)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            status, _, body = await http(
                port, b"GET /who HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            nursery.cancel_scope.cancel()
        assert (status, body) == (200, b"PING")
        assert seen
        assert seen[0] != beam.self()
