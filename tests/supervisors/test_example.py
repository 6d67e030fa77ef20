"""The runnable example: a tree under injected crashes recovers (run briefly, for real)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_supervision_tree_example_recovers() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "examples.supervision_tree", "--seconds", "1.0"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("injected ")
    assert "(seed 1234): counter x" in lines[0]
    assert ", worker x" in lines[0]
    assert "name 'counter' answers again: <0." in result.stdout
    assert "(restarted)" in result.stdout
    assert "workers running: 5/5" in result.stdout
    assert "counter rebuilt its state from the ledger: counter=" in result.stdout
    assert lines[-1] == "tree recovered"
