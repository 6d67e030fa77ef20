"""The layering rule of docs/architecture.md ("Layers"): imports only point down.

    examples -> web -> presence -> supervisors -> beam
                domain ---------> supervisors -> beam

    inside web:   web.live -> web.channels -> web.http

beam imports nothing of ours; domain and web never import each other; presence never
imports domain. Inside web, the HTTP layer (``web.http``) imports nothing of Channels
(``web.channels``) or LiveView (``web.live``), and Channels nothing of LiveView; neither imports
the package ``web`` itself, whose ``__init__`` loads every layer. Every ``.py`` file of each
package is parsed (not imported), so the rule holds for imports under ``if TYPE_CHECKING:`` and
inside functions too; relative imports are made absolute first (``from ..live import View`` in
``web/http/_x.py`` imports ``web.live``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .support.imports import imports, module_name

REPO_ROOT = Path(__file__).resolve().parent.parent

LAYER_DIRECTION = (
    "imports only point down the layers: examples -> web -> presence -> supervisors -> beam, "
    "and domain -> supervisors -> beam; domain and web never import each other; inside web, "
    "web.live -> web.channels -> web.http (docs/architecture.md, 'Layers')"
)

# package -> the top-level packages of ours it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "beam": frozenset({"supervisors", "presence", "domain", "web", "examples"}),
    "supervisors": frozenset({"presence", "domain", "web", "examples"}),
    "presence": frozenset({"domain", "web", "examples"}),
    "domain": frozenset({"presence", "web", "examples"}),
    "web": frozenset({"domain", "examples"}),
}

# a layer inside a package -> the layers of that package it must never import (a layer is a
# sub-package and everything in it; the package itself, named alone, is its __init__ only)
FORBIDDEN_INSIDE: dict[str, frozenset[str]] = {
    "web.http": frozenset({"web", "web.channels", "web.live"}),
    "web.channels": frozenset({"web", "web.live"}),
}

#: The sub-packages of web, bottom up: each must have its place in FORBIDDEN_INSIDE or be the top.
WEB_LAYERS = ("web.http", "web.channels", "web.live")


@dataclass(frozen=True)
class Violation:
    filename: str
    line: int
    layer: str
    imported: str
    statement: str

    def __str__(self) -> str:
        return (
            f"{self.filename}:{self.line}: `{self.statement}`: {self.layer} must not import "
            f"{self.imported}; {LAYER_DIRECTION}"
        )


def layer_of(module: str) -> str:
    """The layer *module* belongs to: its inner layer if it has one, else its package.

    >>> layer_of("web.http._server"), layer_of("web.testing"), layer_of("beam._node")
    ('web.http', 'web', 'beam')
    """
    for layer in FORBIDDEN_INSIDE:
        if module == layer or module.startswith(layer + "."):
            return layer
    return module.partition(".")[0]


def breaks(imported: str, forbidden: str, *, inner: bool = False) -> bool:
    """Whether importing the module *imported* reaches *forbidden*: a package or an inner layer
    with everything in it; but among the *inner* layers, a package named alone (``web``) is
    its ``__init__`` only (``web.testing`` is not ``web.live``).

    >>> breaks("web.live._view", "web.live"), breaks("web.testing", "web", inner=True)
    (True, False)
    """
    if inner and "." not in forbidden:
        return imported == forbidden
    return imported == forbidden or imported.startswith(forbidden + ".")


def find_violations(
    source: str, filename: str, module: str, *, package: bool = False
) -> list[Violation]:
    """Every import in *source* (the text of *module*, at *filename*) that breaks the rule."""
    layer = layer_of(module)
    top = module.partition(".")[0]
    found: list[Violation] = []
    for imported in imports(source, module, filename=filename, package=package):
        for name in reversed(imported.candidates()):  # `from .. import live`: web.live first
            refused = [t for t in FORBIDDEN.get(top, ()) if breaks(name, t)]
            refused += [t for t in FORBIDDEN_INSIDE.get(layer, ()) if breaks(name, t, inner=True)]
            if refused:
                found.append(
                    Violation(filename, imported.line, layer, refused[0], imported.statement)
                )
                break
    return found


def package_files(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


def violations_in(path: Path) -> list[Violation]:
    relative = path.relative_to(REPO_ROOT).as_posix()
    module = module_name(path, REPO_ROOT)
    source = path.read_text(encoding="utf-8")
    return find_violations(source, relative, module, package=path.name == "__init__.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_down(package: str) -> None:
    files = package_files(package)
    assert files, f"no .py files found under {package}/: the layering check would be vacuous"
    violations = [v for path in files for v in violations_in(path)]
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
    violations = find_violations(source, "beam/_fake.py", "beam._fake")
    assert [(v.line, v.imported) for v in violations] == [
        (2, "web"),
        (6, "supervisors"),
        (8, "examples"),
    ]
    message = str(violations[0])
    assert message.startswith("beam/_fake.py:2: `import web.live`: beam must not import web;")
    assert "imports only point down" in message


def test_checker_catches_upward_imports_inside_web() -> None:
    source = (
        "from ._request import Request\n"  # fine: its own layer
        "from ..channels import Socket\n"  # relative, up one layer
        "from ..live._view import LiveView\n"  # relative, up two
        "from .. import live\n"  # the live sub-package, named as a name
        "import web.channels.testing\n"  # absolute
        "if TYPE_CHECKING:\n"
        "    from web.live import LiveSocket\n"
        "def serve():\n"
        "    from web import LiveRouter\n"  # the package itself: its __init__ loads every layer
        "from beam.lowlevel import spawn_opt\n"  # fine: below web
    )
    violations = find_violations(source, "web/http/_fake.py", "web.http._fake")
    assert [(v.line, v.imported) for v in violations] == [
        (2, "web.channels"),
        (3, "web.live"),
        (4, "web.live"),
        (5, "web.channels"),
        (7, "web.live"),
        (9, "web"),
    ]
    assert str(violations[0]).startswith(
        "web/http/_fake.py:2: `from ..channels import Socket`: web.http must not import "
        "web.channels;"
    )
    channels = "from ..http import Request\nfrom ..live import LiveView\nimport web.http\n"
    found = find_violations(channels, "web/channels/_fake.py", "web.channels._fake")
    assert [(v.line, v.layer, v.imported) for v in found] == [(2, "web.channels", "web.live")]
    # a package's __init__: `.` is the package itself
    init = "from ._server import serve\nfrom ..live import LiveView\n"
    found = find_violations(init, "web/http/__init__.py", "web.http", package=True)
    assert [(v.line, v.imported) for v in found] == [(2, "web.live")]


def test_checker_allows_what_the_layers_allow() -> None:
    web_source = "import beam\nfrom presence import track\nfrom supervisors import Supervisor\n"
    assert find_violations(web_source, "web/_x.py", "web._x") == []
    domain_source = "import beam\nfrom supervisors import Supervisor\nimport sqlalchemy\n"
    assert find_violations(domain_source, "domain/_x.py", "domain._x") == []
    assert find_violations("from web import LiveView\n", "domain/_x.py", "domain._x")
    assert find_violations("from domain import Invalid\n", "web/_x.py", "web._x")
    assert find_violations("import domain.errors\n", "presence/_x.py", "presence._x")
    live = "from ..channels import Channel\nfrom ..http import Request\nimport web.http\n"
    assert find_violations(live, "web/live/_x.py", "web.live._x") == []
    top = "from .live import LiveView\nfrom .channels import Socket\nimport web\n"
    assert find_violations(top, "web/__init__.py", "web", package=True) == []


def test_rule_covers_every_package_directory() -> None:
    """A new top-level package, or a new sub-package of web, must be given a place in the
    layers before it can land."""
    ours = {"beam", "supervisors", "presence", "domain", "web"}
    assert set(FORBIDDEN) == ours
    on_disk = {
        path.parent.name
        for path in REPO_ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests", "bench", "examples"}
    }
    assert on_disk <= ours, f"packages without a layer: {sorted(on_disk - ours)}"
    web_layers = {f"web.{path.parent.name}" for path in REPO_ROOT.glob("web/*/__init__.py")}
    assert web_layers == set(WEB_LAYERS), f"web's sub-packages changed: {sorted(web_layers)}"
    assert set(FORBIDDEN_INSIDE) == set(WEB_LAYERS[:-1])  # the top layer may import the others
