"""Every import of a Python file, parsed (not run), with relative imports made absolute.

The layering test and the structure test read imports through this: each :class:`Import` says
which module it names (``from ..live import View`` in ``web/http/_x.py`` names ``web.live``),
whether it sits inside a function or method body, and whether it is under
``if TYPE_CHECKING:``.

>>> [i.module for i in imports("from ..live import View\\n", "web.http._x")]
['web.live']
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One imported module as a file names it.

    ``module`` is absolute (``from . import x`` in ``web/http/_a.py`` gives ``web.http``, with
    ``names == ("x",)``); ``local`` is true inside a function or method body (a lambda too);
    ``type_checking`` under ``if TYPE_CHECKING:``; ``relative`` when written with dots.

    >>> Import(3, "web.live", ("View",), "from ..live import View", False, False, True).module
    'web.live'
    """

    line: int
    module: str
    names: tuple[str, ...]
    statement: str
    local: bool
    type_checking: bool
    relative: bool

    def candidates(self) -> tuple[str, ...]:
        """The module and, for ``from m import n``, ``m.n`` (which may be a submodule).

        >>> Import(1, "tests.web", ("phx",), "from . import phx", False, False, True).candidates()
        ('tests.web', 'tests.web.phx')
        """
        return (self.module, *(f"{self.module}.{name}" for name in self.names))


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module in *path* under *root* (a package's ``__init__.py`` is the
    package).

    >>> module_name(Path("/r/web/http/_a.py"), Path("/r"))
    'web.http._a'
    """
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(
    source: str, module: str, *, filename: str = "<source>", package: bool = False
) -> list[Import]:
    """Every import in *source*, the text of *module* (*package*: it is a package's
    ``__init__``, so ``.`` is the module itself), in the order written.

    >>> [i.statement for i in imports("def f():\\n    import beam\\n", "web.x")]
    ['import beam']
    """
    tree = ast.parse(source, filename=filename)
    here = module.split(".") if package else module.split(".")[:-1]
    return list(_walk(tree, here, local=False, type_checking=False))


def _walk(node: ast.AST, here: list[str], *, local: bool, type_checking: bool) -> Iterator[Import]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                statement = f"import {alias.name}"
                yield Import(child.lineno, alias.name, (), statement, local, type_checking, False)
        elif isinstance(child, ast.ImportFrom):
            yield _from_import(child, here, local, type_checking)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for inner in child.body:
                yield from _walk_one(inner, here, local=local, type_checking=True)
            for inner in child.orelse:
                yield from _walk_one(inner, here, local=local, type_checking=type_checking)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, here, local=True, type_checking=type_checking)
        else:
            yield from _walk(child, here, local=local, type_checking=type_checking)


def _walk_one(
    node: ast.stmt, here: list[str], *, local: bool, type_checking: bool
) -> Iterator[Import]:
    """:func:`_walk` over one statement itself (not only its children)."""
    holder = ast.Module(body=[node], type_ignores=[])
    yield from _walk(holder, here, local=local, type_checking=type_checking)


def _from_import(node: ast.ImportFrom, here: list[str], local: bool, type_checking: bool) -> Import:
    names = tuple(alias.name for alias in node.names)
    dots = "." * node.level
    statement = f"from {dots}{node.module or ''} import {', '.join(names)}"
    if node.level == 0:
        module = node.module or ""
    else:
        base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
        module = ".".join([*base, *([node.module] if node.module else [])])
    return Import(node.lineno, module, names, statement, local, type_checking, node.level > 0)


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
