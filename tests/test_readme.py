"""README.md's examples run: every ```python block whose first line is ``# test: run``.

Each runs in a fresh interpreter from the repo root and must exit 0; every ``# expect: TEXT``
line in it must appear in its stdout. The README must keep at least one such block.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
RUN_MARKER = "# test: run"
TIMEOUT_SECONDS = 60

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_EXPECT = re.compile(r"^[ \t]*# expect: (.*?)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence in README.md
    code: str

    @property
    def expected(self) -> list[str]:
        return _EXPECT.findall(self.code)


def runnable_blocks(markdown: str) -> list[Block]:
    blocks = []
    for match in _FENCE.finditer(markdown):
        code = match.group(1)
        if code.split("\n", 1)[0].strip() == RUN_MARKER:
            blocks.append(Block(markdown.count("\n", 0, match.start()) + 1, code))
    return blocks


BLOCKS = runnable_blocks(README.read_text(encoding="utf-8")) if README.exists() else []


def test_readme_has_runnable_examples() -> None:
    assert README.exists(), "README.md is missing"
    assert BLOCKS, f"README.md has no ```python block starting with {RUN_MARKER!r}"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_example_runs(block: Block) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block.code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    where = f"README.md:{block.line}"
    assert result.returncode == 0, (
        f"{where} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    for text in block.expected:
        assert text in result.stdout, (
            f"{where}: expected {text!r} in stdout\nstdout:\n{result.stdout}"
        )


def test_block_extraction() -> None:
    markdown = (
        "# Title\n"
        "```python\n# test: run\nprint('hi')\n# expect: hi\n```\n"
        "```python\nprint('not run')\n```\n"
        "```bash\n# test: run\n```\n"
    )
    blocks = runnable_blocks(markdown)
    assert [(b.line, b.expected) for b in blocks] == [(2, ["hi"])]
