"""The layering rule of design.md ("Layers"): imports only point down.

    examples -> web -> presence -> supervisors -> beam
                domain ---------> supervisors -> beam

beam imports nothing of ours; domain and web never import each other; presence never
imports domain. Every ``.py`` file of each package is parsed (not imported), so the rule holds
for imports under ``if TYPE_CHECKING:`` and inside functions too. Relative imports stay inside
their package and are always allowed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

LAYER_DIRECTION = (
    "imports only point down the layers: examples -> web -> presence -> supervisors -> beam, "
    "and domain -> supervisors -> beam; domain and web never import each other "
    "(design.md, 'Layers')"
)

# package -> the top-level packages of ours it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "beam": frozenset({"supervisors", "presence", "domain", "web", "examples"}),
    "supervisors": frozenset({"presence", "domain", "web", "examples"}),
    "presence": frozenset({"domain", "web", "examples"}),
    "domain": frozenset({"presence", "web", "examples"}),
    "web": frozenset({"domain", "examples"}),
}


@dataclass(frozen=True)
class Violation:
    filename: str
    line: int
    package: str
    imported: str
    statement: str

    def __str__(self) -> str:
        return (
            f"{self.filename}:{self.line}: `{self.statement}`: {self.package} must not import "
            f"{self.imported}; {LAYER_DIRECTION}"
        )


def imported_top_level(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, top-level module, statement text) for every absolute import in ``tree``."""
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name.partition(".")[0], f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = ", ".join(alias.name for alias in node.names)
            statement = f"from {node.module} import {names}"
            found.append((node.lineno, node.module.partition(".")[0], statement))
    return found


def find_violations(source: str, filename: str, package: str) -> list[Violation]:
    """Every import in ``source`` (a file of ``package``) that breaks the layering rule."""
    tree = ast.parse(source, filename=filename)
    forbidden = FORBIDDEN[package]
    return [
        Violation(filename, line, package, module, statement)
        for line, module, statement in imported_top_level(tree)
        if module in forbidden
    ]


def package_files(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_down(package: str) -> None:
    files = package_files(package)
    assert files, f"no .py files found under {package}/: the layering check would be vacuous"
    violations: list[Violation] = []
    for path in files:
        relative = path.relative_to(REPO_ROOT).as_posix()
        violations += find_violations(path.read_text(encoding="utf-8"), relative, package)
    assert not violations, "layering violations:\n" + "\n".join(map(str, violations))


def test_checker_catches_violations() -> None:
    source = (
        "import trio\n"
        "import web.live\n"
        "from . import _types\n"
        "from ._node import Node\n"
        "if TYPE_CHECKING:\n"
        "    from supervisors import Supervisor\n"
        "def f():\n"
        "    import examples.chat as chat\n"
        "import beam\n"
    )
    violations = find_violations(source, "beam/_fake.py", "beam")
    assert [(v.line, v.imported) for v in violations] == [
        (2, "web"),
        (6, "supervisors"),
        (8, "examples"),
    ]
    message = str(violations[0])
    assert message.startswith("beam/_fake.py:2: `import web.live`: beam must not import web;")
    assert "imports only point down" in message


def test_checker_allows_what_the_layers_allow() -> None:
    web_source = "import beam\nfrom presence import track\nfrom supervisors import Supervisor\n"
    assert find_violations(web_source, "web/_x.py", "web") == []
    domain_source = "import beam\nfrom supervisors import Supervisor\nimport sqlalchemy\n"
    assert find_violations(domain_source, "domain/_x.py", "domain") == []
    assert find_violations("from web import LiveView\n", "domain/_x.py", "domain")
    assert find_violations("from domain import Invalid\n", "web/_x.py", "web")
    assert find_violations("import domain.errors\n", "presence/_x.py", "presence")


def test_rule_covers_every_package_directory() -> None:
    """A new top-level package must be given a place in the layers before it can land."""
    ours = {"beam", "supervisors", "presence", "domain", "web"}
    assert set(FORBIDDEN) == ours
    on_disk = {
        path.parent.name
        for path in REPO_ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests", "bench", "examples"}
    }
    assert on_disk <= ours, f"packages without a layer: {sorted(on_disk - ours)}"
