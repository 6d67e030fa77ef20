"""Finding Node and the official JavaScript clients installed from npm by the set-up script.

Without them the tests that drive those clients skip, unless ``BEAM_REQUIRE_BROWSER=1`` (as
in CI), where a missing client is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
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
