"""Each package has one public surface, its ``__init__``, and this checks it (trio-style).

For every package: ``__all__`` is a tuple of unique strings that all resolve; ``import *``
gives exactly ``__all__``; every public class or function defined in a private submodule
(``pkg/_*.py``) that the package exposes is listed in ``__all__``; every exported class and
function says it lives in the package (``beam.Pid``, not ``beam._types.Pid``) and has a
docstring of its own.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("beam", "supervisors", "presence", "domain", "domain.jobs", "web")


def _exported(package: ModuleType) -> list[tuple[str, Any]]:
    return [(name, getattr(package, name)) for name in package.__all__]


def _is_class_or_function(obj: object) -> bool:
    return inspect.isclass(obj) or inspect.isroutine(obj)


def _own_docstring(obj: object) -> str | None:
    """The docstring written for ``obj``, ignoring the ones dataclass/NamedTuple generate."""
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    if inspect.isclass(obj) and re.fullmatch(rf"{re.escape(obj.__name__)}\(.*\)", doc.strip()):
        return None  # "Pid(n: int)": generated from the fields, not written
    return doc


def _public_definitions(path: Path) -> list[str]:
    """Public classes and functions defined at the top level of a module's source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    statements: list[ast.stmt] = list(tree.body)
    while statements:
        node = statements.pop(0)
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                names.append(node.name)
        elif isinstance(node, ast.If | ast.Try):  # definitions under `if sys.version...` etc.
            statements.extend(node.body)
            statements.extend(node.orelse)
    return names


@pytest.fixture(params=PACKAGES)
def package(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


def test_all_is_a_tuple_of_unique_strings(package: ModuleType) -> None:
    exported = package.__dict__.get("__all__")
    assert isinstance(exported, tuple), (
        f"{package.__name__}.__all__ must be a tuple of str, got {type(exported).__name__}"
    )
    wrong = [name for name in exported if not isinstance(name, str)]
    assert not wrong, f"{package.__name__}.__all__ holds non-strings: {wrong!r}"
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert not duplicates, f"{package.__name__}.__all__ lists these twice: {duplicates}"


def test_every_name_in_all_resolves(package: ModuleType) -> None:
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing, f"{package.__name__}.__all__ names that do not exist: {missing}"
    namespace: dict[str, Any] = {}
    exec(f"from {package.__name__} import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(package.__all__)


def test_private_definitions_exposed_by_the_package_are_exported(package: ModuleType) -> None:
    package_dir = Path(package.__file__ or "").parent
    unlisted: list[str] = []
    for path in sorted(package_dir.glob("_*.py")):
        if path.name == "__init__.py":
            continue
        submodule = importlib.import_module(f"{package.__name__}.{path.stem}")
        for name in _public_definitions(path):
            obj = getattr(submodule, name, None)
            exposed = obj is not None and getattr(package, name, None) is obj
            if exposed and name not in package.__all__:
                unlisted.append(f"{name} (defined in {package.__name__}.{path.stem})")
    assert not unlisted, (
        f"{package.__name__} exposes these but does not list them in __all__: {unlisted}; "
        "add them to __all__, or do not import them into the package namespace"
    )


def test_exports_say_they_live_in_the_package(package: ModuleType) -> None:
    wrong = [
        f"{name}.__module__ == {obj.__module__!r}"
        for name, obj in _exported(package)
        if _is_class_or_function(obj) and obj.__module__ != package.__name__
    ]
    assert not wrong, (
        f"exports of {package.__name__} must have __module__ == {package.__name__!r} "
        f"(rewrite it in __init__, as trio's fixup_module_metadata does): {wrong}"
    )


def test_exports_have_docstrings(package: ModuleType) -> None:
    assert _own_docstring(package), f"{package.__name__} needs a module docstring"
    undocumented = [
        name
        for name, obj in _exported(package)
        if (_is_class_or_function(obj) or inspect.ismodule(obj)) and not _own_docstring(obj)
    ]
    assert not undocumented, f"{package.__name__} exports without a docstring: {undocumented}"


def test_docstring_detection_is_not_fooled_by_generated_ones() -> None:
    """Guards the checks above against passing vacuously."""
    from dataclasses import dataclass
    from typing import NamedTuple

    @dataclass
    class Fields:
        x: int

    class Pair(NamedTuple):
        a: int

    class Written:
        """Written by hand."""

    def undocumented() -> None:
        pass

    assert _own_docstring(Fields) is None
    assert _own_docstring(Pair) is None
    assert _own_docstring(undocumented) is None
    assert _own_docstring(Written) == "Written by hand."


def test_public_definitions_are_found(tmp_path: Path) -> None:
    source = (
        "class Pid: ...\n"
        "def spawn(): ...\n"
        "async def receive(): ...\n"
        "def _helper(): ...\n"
        "if True:\n"
        "    class Ref: ...\n"
        "X = 1\n"
    )
    module = tmp_path / "_mod.py"
    module.write_text(source, encoding="utf-8")
    assert _public_definitions(module) == ["Pid", "spawn", "receive", "Ref"]
