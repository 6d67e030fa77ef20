"""Static files under a prefix: content types, ETags, HEAD, and no way out of the directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import beam
import web

from ..support.http import http


def get(path: str, extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n".encode()


async def test_files_are_served_with_types_and_etags(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "app.js").write_text("console.log('hi')")
    (tmp_path / ".secret").write_text("no")
    (tmp_path.parent / "outside.txt").write_text("no")
    async with beam.open_node():
        endpoint = web.Endpoint()
        endpoint.static("/assets", tmp_path)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            status, headers, body = await http(port, get("/assets/js/app.js"))
            assert (status, body) == (200, b"console.log('hi')")
            assert headers["content-type"].startswith(("text/javascript", "application/javascript"))
            etag = headers["etag"]
            status, _, body = await http(
                port, get("/assets/js/app.js", f"if-none-match: {etag}\r\n")
            )
            assert (status, body) == (304, b"")
            status, headers, body = await http(port, get("/assets/js/app.js", method="HEAD"))
            assert (status, body, headers["content-length"]) == (200, b"", "17")
            for path in (
                "/assets/.secret",
                "/assets/../outside.txt",
                "/assets/%2e%2e/outside.txt",
                "/assets/js",
                "/assets/missing.css",
            ):
                status, _, _ = await http(port, get(path))
                assert status == 404, path
            nursery.cancel_scope.cancel()


def test_bad_static_arguments_are_refused(tmp_path: Path) -> None:
    endpoint = web.Endpoint()
    with pytest.raises(ValueError, match="does not exist"):
        endpoint.static("/assets", tmp_path / "nope")
    with pytest.raises(ValueError, match="starts with '/'"):
        endpoint.static("assets", tmp_path)
