"""Two structural rules, checked by parsing (not importing) every file they cover.

1. No test module imports another test module (a ``test_*`` module), nor another package's
   ``conftest``: helpers that several test packages use live in ``tests/support/``, and a
   helper of one test package lives in a plain module of that package.
2. No function-local import of the project's own code: an import inside a function or method
   body of ``beam``, ``supervisors``, ``presence``, ``domain``, ``web``, ``examples`` or
   ``bench`` that names one of those packages (or is relative) is how an import cycle gets
   hidden, so it is refused (docs/architecture.md). Imports under ``if TYPE_CHECKING:`` are
   fine (they never run); the files in :data:`LOCAL_IMPORTS_ALLOWED` import inside functions
   on purpose, each for the reason given there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .support.imports import Import, imports, module_name

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The packages whose code rule 2 covers, and whose imports it refuses inside functions.
OURS = ("beam", "supervisors", "presence", "domain", "web", "examples", "bench")

#: Files that import our code inside functions on purpose: file -> why.
LOCAL_IMPORTS_ALLOWED: dict[str, str] = {
    # The benchmark servers run in an interpreter of their own, started by a load generator
    # that imports constants from the same module (PATH, PASSWORD, bot_name): each side loads
    # only its own stack (ours, or the competitor's: pyview, python-socketio, uvicorn), so the
    # load generator's figures (memory, CPU) carry none of the server's.
    "bench/_channels_server.py": "runs in its own interpreter; each side loads only its stack",
    "bench/_chat_server.py": "runs in its own interpreter; each side loads only its stack",
    "bench/_liveview_server.py": "runs in its own interpreter; each side loads only its stack",
    # The liveview suite's load generator (clicks, session memory) imports this module too and
    # must not load web; only the in-process workloads (table_event, check_table_diff) do.
    "bench/_liveview_work.py": "the load generator imports it and must not load web",
    # The runtime suite also measures older checkouts of beam (before/after figures), where
    # beam.GenServer may not exist yet: _call_work is imported only once beam has that API.
    "bench/runtime.py": "imports _call_work only when this checkout of beam has GenServer",
}


def python_files(directory: Path) -> list[Path]:
    """Every ``.py`` file under *directory* (none of an installed ``node_modules``)."""
    return sorted(p for p in directory.rglob("*.py") if "node_modules" not in p.parts)


def parse(path: Path) -> list[Import]:
    """The imports of the file at *path*, relative ones made absolute."""
    return imports(
        path.read_text(encoding="utf-8"),
        module_name(path, REPO_ROOT),
        filename=str(path),
        package=path.name == "__init__.py",
    )


# -- rule 1: test modules import helpers, never each other -------------------------------------


def why_refused(imported: Import, importer: str) -> str | None:
    """Why the test tree's module *importer* may not make the import *imported*, or ``None``.

    >>> why_refused(imports("from .test_asgi import http", "tests.web.x")[0], "tests.web.x")
    'imports the test module tests.web.test_asgi'
    """
    own_package = importer.rpartition(".")[0]
    for name in imported.candidates():
        parts = name.split(".")
        for i, part in enumerate(parts):
            if part.startswith("test_"):
                return f"imports the test module {'.'.join(parts[: i + 1])}"
        if parts[-1] == "conftest" and ".".join(parts[:-1]) != own_package:
            return f"imports another package's conftest ({name})"
    return None


def cross_test_imports(found: list[Import], importer: str, filename: str) -> list[str]:
    """One message per import in *found* (of *importer*, at *filename*) that rule 1 refuses."""
    messages = []
    for imported in found:
        why = why_refused(imported, importer)
        if why is not None:
            messages.append(
                f"{filename}:{imported.line}: `{imported.statement}` {why}; move what it needs "
                "to tests/support/ (or to a plain module of its own test package)"
            )
    return messages


def test_no_test_module_imports_another() -> None:
    files = python_files(REPO_ROOT / "tests")
    assert len(files) > 50, "the test tree was not found: the check would be vacuous"
    messages: list[str] = []
    for path in files:
        relative = path.relative_to(REPO_ROOT).as_posix()
        messages += cross_test_imports(parse(path), module_name(path, REPO_ROOT), relative)
    assert not messages, "test modules importing test modules:\n" + "\n".join(messages)


def test_rule_1_catches_every_spelling() -> None:
    source = (
        "import pytest\n"
        "from . import phx\n"
        "from .test_asgi import http\n"
        "from ..web import test_channels\n"
        "import tests.web.test_asgi\n"
        "from tests.support.http import http\n"
        "from .conftest import drain\n"
        "from ..domain.conftest import Backend\n"
        "from .. import support\n"
        "def f():\n"
        "    from .test_chat import chat_server\n"
    )
    found = imports(source, "tests.examples.test_x")
    messages = cross_test_imports(found, "tests.examples.test_x", "tests/examples/test_x.py")
    assert [m.split(":")[1] for m in messages] == ["3", "4", "5", "8", "11"]
    assert messages[0] == (
        "tests/examples/test_x.py:3: `from .test_asgi import http` imports the test module "
        "tests.examples.test_asgi; move what it needs to tests/support/ (or to a plain module "
        "of its own test package)"
    )
    assert "tests.web.test_channels" in messages[1]
    assert "another package's conftest (tests.domain.conftest)" in messages[3]


# -- rule 2: no function-local import of our own code ------------------------------------------


def local_imports_of_ours(found: list[Import]) -> list[Import]:
    """The imports in *found* that rule 2 refuses: inside a function, not under
    ``if TYPE_CHECKING:``, of one of :data:`OURS` or relative."""
    return [
        i
        for i in found
        if i.local and not i.type_checking and (i.relative or i.module.split(".")[0] in OURS)
    ]


@pytest.mark.parametrize("package", OURS)
def test_no_function_local_import_of_our_code(package: str) -> None:
    files = python_files(REPO_ROOT / package)
    assert files, f"no .py files under {package}/: the check would be vacuous"
    messages: list[str] = []
    for path in files:
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative in LOCAL_IMPORTS_ALLOWED:
            continue
        messages += [
            f"{relative}:{i.line}: `{i.statement}` inside a function: import it at the top of "
            "the module; if that makes a cycle, move what both modules need into a module "
            "below them both"
            for i in local_imports_of_ours(parse(path))
        ]
    assert not messages, "function-local imports of our own code:\n" + "\n".join(messages)


def test_every_allowed_file_still_needs_its_entry() -> None:
    """An entry whose file no longer imports inside a function must go (no stale leniency)."""
    stale = [
        name for name in LOCAL_IMPORTS_ALLOWED if not local_imports_of_ours(parse(REPO_ROOT / name))
    ]
    assert not stale, f"remove these entries from LOCAL_IMPORTS_ALLOWED: {stale}"


def test_rule_2_catches_local_imports_and_allows_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import beam\n"
        "from ._actions import build_actions\n"
        "if TYPE_CHECKING:\n"
        "    from ._resource import Resource\n"
        "def build(cls):\n"
        "    import json\n"
        "    from ._policy import check_policies\n"
        "    if TYPE_CHECKING:\n"
        "        from ._changeset import Changeset\n"
        "class Page:\n"
        "    async def mount(self):\n"
        "        import web.live\n"
        "        from examples.chat import app\n"
        "    handler = lambda: __import__('x')\n"
        "    from presence import track\n"
    )
    found = local_imports_of_ours(imports(source, "domain._resource"))
    assert [(i.line, i.module) for i in found] == [
        (8, "domain._policy"),
        (13, "web.live"),
        (14, "examples.chat"),
    ]
