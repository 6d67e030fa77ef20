"""A WebSocket upgrade whose ``Host`` is not valid IDNA is a bad request (400), not a crash.

wsproto decodes the host of an upgrade as IDNA, which raises ``UnicodeError`` on bytes such
as ``0xb9``; the fuzzing of tests/security/test_fuzz.py found it answered 500 with a crash in
the server's log.
"""

from __future__ import annotations

import logging

import pytest
import trio

import beam
import web
from tests.support.http import http


async def ignore(ws: web.WebSocket) -> None:
    """A WebSocket handler that is never reached."""


@pytest.mark.parametrize("host", [b"\xb9", b"xn--\xff.example", b"a..b\xc3"])
async def test_an_upgrade_with_a_host_that_is_not_idna_is_answered_400(
    host: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with beam.open_node():
        endpoint = web.Endpoint()
        endpoint.websocket("/ws", ignore)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            raw = (
                b"GET /ws HTTP/1.1\r\nhost: " + host + b"\r\nupgrade: websocket\r\n"
                b"connection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"sec-websocket-version: 13\r\n\r\n"
            )
            with caplog.at_level(logging.ERROR, logger="web.server"):
                status, _, body = await http(port, raw)
            nursery.cancel_scope.cancel()
    assert status == 400, body
    assert b"bad WebSocket handshake" in body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
