"""The examples in presence's docstrings run and print what their comments say."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from types import ModuleType

import presence
import presence._state


def example(module: ModuleType) -> str:
    """The indented block that follows the first ``::`` of *module*'s docstring."""
    doc = module.__doc__ or ""
    found = re.search(r"::\n\n((?:    .*\n|\n)+)", doc)
    assert found, f"{module.__name__} has no example block"
    return textwrap.dedent(found.group(1))


def run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<docstring>", "exec"), {"__name__": "docstring_example"})
    return out.getvalue()


def test_package_example() -> None:
    code = example(presence)
    promised = [line.split("# ", 1)[1].strip() for line in code.splitlines() if "print(" in line]
    assert run(code).splitlines() == promised == ["presence_diff ['alice']", "online"]


def test_state_example() -> None:
    assert run("from presence import State\n" + example(presence._state)) == ""
