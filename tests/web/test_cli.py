"""``python -m web module:app`` serves the app until SIGTERM, then stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from ..support.http import http

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_cli_serves_an_app_factory_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "web", "tests.web.cliapp:make", "--port", "0"],
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )
    assert process.stderr is not None
    try:
        with trio.fail_after(20):
            seen = b""
            while b"serving on http://127.0.0.1:" not in seen or not seen.endswith(b"\n"):
                seen += await process.stderr.receive_some(4096)
            line = next(x for x in seen.decode().splitlines() if "serving on http://" in x)
            port = int(line.rsplit(":", 1)[1])
            status, _, body = await http(
                port, b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            assert (status, body) == (200, b"hello from the cli")
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def test_a_bad_app_spec_is_a_clear_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "web", "tests.web.cliapp"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "expected module:attribute" in done.stderr
