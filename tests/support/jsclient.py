"""Finding Node and the official JavaScript clients installed from npm by the set-up script,
and running a Node script that drives them.

The scripts share ``js/steps.cjs`` (next to this module, :data:`JS_DIR`): one JSON fact per
line on stdout, a failure as ``{"error": ...}``, joins and pushes with a timeout; a script
requires it by its path relative to itself. Without Node or the clients, the tests that
drive those clients skip, unless ``BEAM_REQUIRE_BROWSER=1`` (as in CI), where a missing client
is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The Node harness the scripts share (``steps.cjs``).
JS_DIR = Path(__file__).resolve().parent / "js"


def require_node_package(package: str) -> str:
    """The path of ``node``, once *package* is known to be installed; else skip or fail."""
    node = shutil.which("node")
    installed = (REPO_ROOT / "node_modules" / package / "package.json").is_file()
    if node is not None and installed:
        return node
    why = (
        "node is not on PATH"
        if node is None
        else f"the npm package {package!r} is not installed (run scripts/test, which runs npm ci)"
    )
    if os.environ.get("BEAM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BEAM_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


async def run_node_script(
    argv: list[str],
    on_fact: Callable[[dict[str, Any]], Awaitable[None]],
    timeout: float = 60,
) -> None:
    """Run a Node script that prints one JSON fact per line, handing each to *on_fact*; a
    fact with ``"error"`` fails the test, and so does a non-zero exit or *timeout*."""
    process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        with trio.fail_after(timeout):
            async for line in _lines(process.stdout):
                fact = json.loads(line)
                assert "error" not in fact, fact["error"]
                await on_fact(fact)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    while True:
        data = await stream.receive_some(65_536)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()
