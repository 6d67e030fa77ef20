"""The domain engine's seams: the optional notifications module stays optional."""

from __future__ import annotations

import ast
from pathlib import Path

import domain

DOMAIN_DIR = Path(domain.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The modules *path* imports, relative ones with their dots: ``from .x import y`` and
    ``from . import x`` are both ``.x``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            dots = "." * node.level
            if node.module is None:
                found.update(dots + alias.name for alias in node.names)
            else:
                found.add(dots + node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_engine_never_imports_the_notifications_module() -> None:
    # The package's __init__ re-exports it for older code; the engine modules never import it.
    engine = sorted(p for p in DOMAIN_DIR.glob("_*.py") if not p.name.startswith("__"))
    assert len(engine) > 10, "the engine modules were not found"
    importers = [
        path.name
        for path in engine
        if imported_modules(path) & {".notifications", "..notifications", "domain.notifications"}
    ]
    assert importers == [], f"engine modules import domain.notifications: {importers}"


def test_the_checker_sees_an_import_of_notifications(tmp_path: Path) -> None:
    module = tmp_path / "_x.py"
    module.write_text("from .notifications import initial_state\nimport domain.notifications\n")
    assert imported_modules(module) == {".notifications", "domain.notifications"}
    module.write_text("from . import _data, notifications\n")
    assert imported_modules(module) == {"._data", ".notifications"}
