"""LiveView templates: Jinja2 syntax, compiled into rendered trees with change tracking.

Jinja2 parses the template; we compile its syntax tree into *blocks*: the static text, and the
*slots* between it. A slot is an expression (``{{ user.name }}``), a conditional (``{% if %}``
with its ``elif``/``else`` branches, each a block of its own) or a loop (``{% for %}``, a
comprehension whose entries share one block's statics). Expressions are evaluated by Jinja2
itself (filters, tests, autoescaping and all), so a template renders to exactly the HTML
Jinja2 would produce::

    >>> template = LiveTemplate("<h1>{{ title }}</h1>{% for u in users %}{{ u }}{% endfor %}")
    >>> tree, state = template.render({"title": "Users", "users": ["ann", "bob"]})
    >>> tree["0"], tree["1"]["k"]["kc"]
    ('Users', 2)
    >>> diff, state = template.diff({"title": "Admins", "users": ["ann", "bob"]}, state, {"title"})
    >>> diff
    {'0': 'Admins'}

Macros defined at the top level of a template are its *function components*: call them from
any expression, ``{% macro badge(n) %}<span class="badge">{{ n }}</span>{% endmacro %}`` then
``{{ badge(unread) }}``.

Change tracking works at two levels. A slot whose inputs (the names its expressions read) did
not change is not evaluated at all; a slot that is evaluated but renders the same string is not
sent. In a loop, an entry whose item is the same object as last time (or equal to it), with the
names the body reads from outside unchanged, is skipped without rendering. So treat assigns as
immutable values, as in Phoenix: assign a new list with a new row to change one row, and only
that row is rendered and sent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import jinja2
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.runtime import LoopContext
from markupsafe import escape

from ._form import FORM_HELPERS
from ._stream import Stream
from ._upload import UPLOAD_HELPERS
from ._wire import KEYED, KEYED_COUNT, STATICS, STREAM

__all__ = ["COMPONENTS", "ComponentRegistry", "LiveTemplate", "TemplateError", "live_environment"]

Tree = dict[str, Any]
Vars = Mapping[str, Any]
_LOOP: Final = "loop"


def live_environment(loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    """The Jinja2 environment of LiveView templates: autoescaping on, the form helpers
    (``form_input``, ``form_errors``, ``form_field``) among its globals, and *loader* for
    ``{% include %}``.

    >>> live_environment().globals["form_input"].__name__
    'form_input'
    """
    environment = jinja2.Environment(autoescape=True, loader=loader)
    environment.globals.update(FORM_HELPERS)
    environment.globals.update(UPLOAD_HELPERS)
    return environment


class TemplateError(ValueError):
    """A template uses something LiveView templates do not support; the message says where."""


@dataclass(frozen=True, slots=True)
class _Expr:
    """``{{ expression }}``: its rendered, escaped text."""

    render: Callable[[Vars], str]
    deps: frozenset[str]


@dataclass(frozen=True, slots=True)
class _If:
    """``{% if %}...{% elif %}...{% else %}``: the first branch whose test holds (test
    ``None``: the else branch); no branch renders the empty block."""

    branches: tuple[tuple[Callable[[Vars], Any] | None, _Block], ...]
    deps: frozenset[str]


@dataclass(frozen=True, slots=True)
class _For:
    """``{% for target in iterable [if test] %}body{% else %}else{% endfor %}``."""

    iterable: Callable[[Vars], Any]
    assign: Callable[[dict[str, Any], Any], None]
    test: Callable[[Vars], Any] | None
    body: _Block
    otherwise: _Block | None
    deps: frozenset[str]
    #: Names the body reads that the loop does not bind (a change re-renders every entry).
    outer: frozenset[str]
    uses_loop: bool


@dataclass(frozen=True, slots=True)
class _Component:
    """``{{ live_component(Card, id="c1", title=t) }}``: a stateful component, rendered by the
    scope's component registry; the slot's value is the component's id number (cid)."""

    component: Callable[[Vars], Any]
    assigns: tuple[tuple[str, Callable[[Vars], Any]], ...]
    deps: frozenset[str]


_Slot = _Expr | _If | _For | _Component

#: The scope key under which a view passes its component registry to the template.
COMPONENTS: Final = "__live_components__"


class ComponentRegistry(Protocol):
    """What renders live components for a template (the view's component table)."""

    def render(self, component: Any, assigns: dict[str, Any]) -> int:
        """Render (or update) the component *component* with *assigns*; return its cid."""
        ...


def _render_component(slot: _Component, scope: Vars) -> int:
    registry = scope.get(COMPONENTS)
    if registry is None:
        raise TemplateError("live_component(...) needs a LiveView: render the template in one")
    assigns = {name: value(scope) for name, value in slot.assigns}
    cid: int = registry.render(slot.component(scope), assigns)
    return cid


@dataclass(frozen=True, slots=True, eq=False)
class _Block:
    """Static text around slots: ``len(statics) == len(slots) + 1``."""

    statics: tuple[str, ...]
    slots: tuple[_Slot, ...]


_EMPTY: Final = _Block(("",), ())


@dataclass(slots=True)
class _Entry:
    """What is remembered of one loop entry: its item, position and block state."""

    item: Any
    position: tuple[int, int]
    state: list[Any]


@dataclass(slots=True)
class _ForState:
    """A rendered loop: entries (comprehension) or the else block's state."""

    entries: list[_Entry] | None
    otherwise: list[Any] | None


class LiveTemplate:
    """A template compiled for LiveView (see the module documentation).

    *environment* is the Jinja2 environment expressions run in (its filters, tests and
    globals); by default one with autoescaping on.
    """

    def __init__(
        self,
        source: str,
        *,
        environment: jinja2.Environment | None = None,
        name: str | None = None,
    ) -> None:
        self.environment = environment or live_environment()
        self.name = name or "<template>"
        self.source = source
        try:
            syntax = self.environment.parse(source, name=self.name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{self.name}, line {exc.lineno}: {exc.message}") from None
        macros = [node for node in syntax.body if isinstance(node, nodes.Macro)]
        if macros:
            # Function components: the template's macros, callable from its expressions
            # (their output is one dynamic, escaped like any Jinja2 macro output).
            self.environment = self.environment.overlay()
            module = self.environment.from_string(nodes.Template(macros, lineno=1)).module
            self.environment.globals.update({m.name: getattr(module, m.name) for m in macros})
            syntax.body = [node for node in syntax.body if not isinstance(node, nodes.Macro)]
        self._root = _Compiler(self.environment, self.name).block(syntax.body)

    def render(self, assigns: Vars) -> tuple[Tree, list[Any]]:
        """The full rendered tree for *assigns*, and the state to diff the next render with.

        >>> tree, state = LiveTemplate("<p>{{ n }}</p>").render({"n": 1})
        >>> tree
        {'s': ['<p>', '</p>'], '0': '1'}
        """
        return _full(self._root, assigns)

    def diff(
        self, assigns: Vars, state: list[Any], changed: Collection[str] | None = None
    ) -> tuple[Tree, list[Any]]:
        """What changed since the render *state* came from: a diff (``{}`` when nothing did),
        and the new state. *changed* names the assigns that may have changed (``None``: any).

        >>> template = LiveTemplate("<p>{{ n }}</p>")
        >>> tree, state = template.render({"n": 1})
        >>> template.diff({"n": 2}, state, {"n"})[0]
        {'0': '2'}
        """
        return _diff(self._root, assigns, state, None if changed is None else frozenset(changed))


# -- rendering ----------------------------------------------------------------------------------


def _full(block: _Block, scope: Vars) -> tuple[Tree, list[Any]]:
    tree: Tree = {STATICS: list(block.statics)}
    state: list[Any] = []
    for index, slot in enumerate(block.slots):
        value, slot_state = _full_slot(slot, scope)
        tree[str(index)] = value
        state.append(slot_state)
    return tree, state


def _full_slot(slot: _Slot, scope: Vars) -> tuple[Any, Any]:
    if type(slot) is _Expr:
        text = slot.render(scope)
        return text, text
    if type(slot) is _Component:
        cid = _render_component(slot, scope)
        return cid, cid
    if type(slot) is _If:
        branch, block = _choose(slot, scope)
        tree, state = _full(block, scope)
        return tree, (branch, state)
    assert type(slot) is _For
    return _full_for(slot, scope)


def _choose(slot: _If, scope: Vars) -> tuple[int, _Block]:
    for index, (test, block) in enumerate(slot.branches):
        if test is None or test(scope):
            return index, block
    return -1, _EMPTY


def _loop_items(slot: _For, scope: Vars) -> list[Any]:
    items = slot.iterable(scope)
    if isinstance(items, jinja2.Undefined):
        return []
    if slot.test is None:
        return list(items)
    kept = []
    for item in items:
        local = dict(scope)
        slot.assign(local, item)
        if slot.test(local):
            kept.append(item)
    return kept


def _entry_scopes(
    slot: _For, scope: Vars, items: list[Any]
) -> Iterable[tuple[int, dict[str, Any]]]:
    if not slot.uses_loop:
        for index, item in enumerate(items):
            local = dict(scope)
            slot.assign(local, item)
            yield index, local
        return
    # Jinja2's own loop object, so loop.index, loop.last, loop.cycle... behave as in Jinja2.
    for index, (item, loop) in enumerate(LoopContext(items, jinja2.Undefined)):
        local = dict(scope)
        slot.assign(local, item)
        local[_LOOP] = loop
        yield index, local


def _stream_for(slot: _For, scope: Vars, stream: Stream, full: bool) -> Tree | None:
    """A loop over a stream: only the pending inserts, with the stream's operations."""
    if not full and not stream.pending:
        return None
    items = list(stream)
    keyed: dict[str, Any] = {}
    for index, local in _entry_scopes(slot, scope, items):
        tree, _ = _full(slot.body, local)
        del tree[STATICS]
        keyed[str(index)] = tree
    keyed[KEYED_COUNT] = len(items)
    node: Tree = {KEYED: keyed, STREAM: stream.operations()}
    if full:
        node[STATICS] = list(slot.body.statics)
    return node


_STREAMED: Final = _ForState([], None)


def _full_for(slot: _For, scope: Vars) -> tuple[Tree, _ForState]:
    iterable = slot.iterable(scope)
    if isinstance(iterable, Stream):
        tree = _stream_for(slot, scope, iterable, True)
        assert tree is not None
        return tree, _STREAMED
    items = _loop_items(slot, scope)
    if not items and slot.otherwise is not None:
        tree, state = _full(slot.otherwise, scope)
        return tree, _ForState(None, state)
    keyed: dict[str, Any] = {}
    entries: list[_Entry] = []
    count = len(items)
    for index, local in _entry_scopes(slot, scope, items):
        tree, state = _full(slot.body, local)
        del tree[STATICS]
        keyed[str(index)] = tree
        entries.append(_Entry(items[index], (index, count), state))
    keyed[KEYED_COUNT] = count
    return {STATICS: list(slot.body.statics), KEYED: keyed}, _ForState(entries, None)


def _diff(
    block: _Block, scope: Vars, state: list[Any], changed: frozenset[str] | None
) -> tuple[Tree, list[Any]]:
    diff: Tree = {}
    new_state = list(state)
    for index, slot in enumerate(block.slots):
        if changed is not None and not (slot.deps & changed):
            continue
        value, new_state[index] = _diff_slot(slot, scope, state[index], changed)
        if value is not None:
            diff[str(index)] = value
    return diff, new_state


def _diff_slot(slot: _Slot, scope: Vars, state: Any, changed: frozenset[str] | None) -> Any:
    if type(slot) is _Expr:
        text = slot.render(scope)
        return (None if text == state else text), text
    if type(slot) is _Component:
        cid = _render_component(slot, scope)
        return (None if cid == state else cid), cid
    if type(slot) is _If:
        old_branch, old_state = state
        branch, block = _choose(slot, scope)
        if branch != old_branch:
            tree, new_state = _full(block, scope)
            return tree, (branch, new_state)
        sub, new_state = _diff(block, scope, old_state, changed)
        return (sub or None), (branch, new_state)
    assert type(slot) is _For
    return _diff_for(slot, scope, state, changed)


def _diff_for(
    slot: _For, scope: Vars, state: _ForState, changed: frozenset[str] | None
) -> tuple[Tree | None, _ForState]:
    iterable = slot.iterable(scope)
    if isinstance(iterable, Stream):
        return _stream_for(slot, scope, iterable, state is not _STREAMED), _STREAMED
    items = _loop_items(slot, scope)
    if not items and slot.otherwise is not None:
        if state.otherwise is None:
            tree, new = _full(slot.otherwise, scope)
            return tree, _ForState(None, new)
        sub, new = _diff(slot.otherwise, scope, state.otherwise, changed)
        return (sub or None), _ForState(None, new)
    if state.entries is None:  # from the else block to entries: a new fingerprint
        return _full_for(slot, scope)
    outer_changed = changed is None or bool(slot.outer & changed)
    old = state.entries
    count = len(items)
    keyed: dict[str, Any] = {}
    entries: list[_Entry] = []
    for index, local in _entry_scopes(slot, scope, items):
        item = items[index]
        position = (index, count)
        previous = old[index] if index < len(old) else None
        if previous is None:
            tree, entry_state = _full(slot.body, local)
            del tree[STATICS]
            keyed[str(index)] = tree
            entries.append(_Entry(item, position, entry_state))
            continue
        same_item = previous.item is item or _equal(previous.item, item)
        same_place = not slot.uses_loop or previous.position == position
        if same_item and same_place and not outer_changed:
            entries.append(previous)
            continue
        sub, entry_state = _diff(slot.body, local, previous.state, None)
        if sub:
            keyed[str(index)] = sub
        entries.append(_Entry(item, position, entry_state))
    if not keyed and count == len(old):
        return None, _ForState(entries, None)
    keyed[KEYED_COUNT] = count
    return {KEYED: keyed}, _ForState(entries, None)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an item type with an odd __eq__: render it to be safe
        return False


# -- compiling --------------------------------------------------------------------------------


class _Compiler:
    """Turns Jinja2 syntax nodes into blocks and slots."""

    def __init__(
        self, environment: jinja2.Environment, name: str, including: tuple[str, ...] = ()
    ) -> None:
        self.env = environment
        self.name = name
        self.including = including

    def block(self, body: list[nodes.Node]) -> _Block:
        statics: list[str] = [""]
        slots: list[_Slot] = []
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if isinstance(child, nodes.TemplateData):
                        statics[-1] += child.data
                    elif isinstance(child, nodes.Call) and _is_component_call(child):
                        slots.append(self.component(child))
                        statics.append("")
                    else:
                        slots.append(self.expression(child))
                        statics.append("")
            elif isinstance(node, nodes.If):
                slots.append(self.conditional(node))
                statics.append("")
            elif isinstance(node, nodes.For):
                slots.append(self.loop(node))
                statics.append("")
            elif isinstance(node, nodes.Include):
                slots.append(self.include(node))
                statics.append("")
            else:
                kind = _TAGS.get(type(node).__name__, type(node).__name__.lower())
                raise TemplateError(
                    f"{self.name}, line {node.lineno}: {{% {kind} %}} is not supported in "
                    "LiveView templates (use expressions, if and for; compute values in Python "
                    "and assign them)"
                )
        return _Block(tuple(statics), tuple(slots))

    def expression(self, node: nodes.Node) -> _Expr:
        template = self.env.from_string(nodes.Template([nodes.Output([node])], lineno=1))
        render = template.render
        fast = self._lookup(node, render)
        if fast is not None:
            return _Expr(fast, _names(node))
        return _Expr(lambda scope: render(scope), _names(node))

    def _lookup(
        self, node: nodes.Node, render: Callable[[Vars], str]
    ) -> Callable[[Vars], str] | None:
        """A fast renderer for ``{{ name }}`` and ``{{ name.attr.attr }}``, the most common
        expressions, or ``None`` for any other: it reads the value as Jinja2 would (an
        attribute, else an item) and escapes it as Jinja2's autoescaping does; whenever a
        lookup misses it hands the scope to Jinja2 (*render*), so an undefined value renders
        exactly as Jinja2 renders it. Only for an environment with plain autoescaping and no
        ``finalize``."""
        env = self.env
        if env.autoescape is not True or env.finalize is not None or env.is_async:
            return None
        if type(env).getattr is not jinja2.Environment.getattr:
            return None  # a sandbox, or an environment with its own attribute lookup
        path: list[str] = []
        while isinstance(node, nodes.Getattr):
            path.append(node.attr)
            node = node.node
        if not isinstance(node, nodes.Name) or node.ctx != "load":
            return None
        root = node.name
        path.reverse()
        attrs = tuple(path)

        def fast(scope: Vars) -> str:
            value = scope.get(root, _MISSING)
            for attr in attrs:
                if value is _MISSING:
                    break
                value = _getattr(value, attr)
            if value is _MISSING:
                return render(scope)
            kind = type(value)
            if kind is str:
                return str(escape(value))
            if kind is int:
                return str(value)
            return str(escape(value))

        return fast

    def include(self, node: nodes.Include) -> _If:
        """``{% include "part.html" %}``: the part's own block, a nested node of the tree."""
        where = f"{self.name}, line {node.lineno}"
        if not isinstance(node.template, nodes.Const) or not isinstance(node.template.value, str):
            raise TemplateError(f"{where}: include a template by its name, a string constant")
        name = node.template.value
        if name in self.including or name == self.name:
            raise TemplateError(f"{where}: {name!r} includes itself")
        if self.env.loader is None:
            raise TemplateError(
                f"{where}: cannot include {name!r}: the template has no loader (give the view "
                "a template_file, or an environment with a loader)"
            )
        try:
            source, _, _ = self.env.loader.get_source(self.env, name)
        except jinja2.TemplateNotFound:
            raise TemplateError(f"{where}: no template {name!r} to include") from None
        try:
            syntax = self.env.parse(source, name=name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{name}, line {exc.lineno}: {exc.message}") from None
        part = _Compiler(self.env, name, (*self.including, self.name)).block(syntax.body)
        return _If(((None, part),), _block_deps(part))

    def component(self, node: nodes.Call) -> _Component:
        if len(node.args) != 1 or node.dyn_args is not None or node.dyn_kwargs is not None:
            raise TemplateError(
                f"{self.name}, line {node.lineno}: write live_component(ComponentClass, "
                "id=..., name=value...) with keyword assigns"
            )
        assigns = tuple((kw.key, self.value(kw.value)) for kw in node.kwargs)
        if "id" not in {name for name, _ in assigns}:
            raise TemplateError(
                f"{self.name}, line {node.lineno}: live_component(...) needs an id= to tell "
                "its instances apart"
            )
        deps = _names(node) - {"live_component"}
        return _Component(self.value(node.args[0]), assigns, deps)

    def value(self, node: nodes.Node) -> Callable[[Vars], Any]:
        body = [nodes.Assign(nodes.Name("result", "store"), node, lineno=1)]
        expression = TemplateExpression(
            self.env.from_string(nodes.Template(body, lineno=1)), undefined_to_none=False
        )
        return lambda scope: expression(scope)

    def conditional(self, node: nodes.If) -> _If:
        branches: list[tuple[Callable[[Vars], Any] | None, _Block]] = []
        deps: set[str] = set()
        chain: list[tuple[nodes.Node, list[nodes.Node]]] = [(node.test, node.body)]
        chain += [(e.test, e.body) for e in node.elif_]
        for test, body in chain:
            branches.append((self.value(test), self.block(body)))
            deps |= _names(test)
        if node.else_:
            branches.append((None, self.block(node.else_)))
        for _, block in branches:
            deps |= _block_deps(block)
        return _If(tuple(branches), frozenset(deps))

    def loop(self, node: nodes.For) -> _For:
        if node.recursive:
            raise TemplateError(
                f"{self.name}, line {node.lineno}: recursive loops are not supported"
            )
        bound = _target_names(node.target, self.name)
        body = self.block(node.body)
        otherwise = self.block(node.else_) if node.else_ else None
        inner = _block_deps(body) | (_names(node.test) if node.test is not None else frozenset())
        outer = inner - bound - {_LOOP}
        deps = _names(node.iter) | outer
        if otherwise is not None:
            deps |= _block_deps(otherwise)
        return _For(
            iterable=self.value(node.iter),
            assign=_assigner(node.target),
            test=None if node.test is None else self.value(node.test),
            body=body,
            otherwise=otherwise,
            deps=frozenset(deps),
            outer=frozenset(outer),
            uses_loop=_LOOP in inner,
        )


#: Jinja2 syntax node names -> the tag a template author wrote.
_TAGS: Final = {
    "Assign": "set",
    "AssignBlock": "set",
    "CallBlock": "call",
    "FilterBlock": "filter",
    "ScopedEvalContextModifier": "autoescape",
    "Macro": "macro",
}


_MISSING: Final[Any] = object()
#: Attributes of a dict: ``row.items`` is the method, as Jinja2 reads it.
_DICT_ATTRS: Final = frozenset(dir(dict))


def _getattr(value: Any, attr: str) -> Any:
    """``value.attr`` as Jinja2 reads it (an attribute, else an item), or :data:`_MISSING`."""
    if type(value) is dict and attr not in _DICT_ATTRS:
        return value.get(attr, _MISSING)
    if isinstance(value, jinja2.Undefined):
        return _MISSING
    try:
        return getattr(value, attr)
    except AttributeError:
        pass
    try:
        return value[attr]
    except (TypeError, LookupError, AttributeError):
        return _MISSING


def _is_component_call(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name == "live_component"
    )


def _names(node: nodes.Node) -> frozenset[str]:
    found = {n.name for n in node.find_all(nodes.Name) if n.ctx == "load"}
    if isinstance(node, nodes.Name) and node.ctx == "load":
        found.add(node.name)
    return frozenset(found)


def _block_deps(block: _Block) -> frozenset[str]:
    deps: set[str] = set()
    for slot in block.slots:
        deps |= slot.deps
    return frozenset(deps)


def _target_names(target: nodes.Node, name: str) -> frozenset[str]:
    if isinstance(target, nodes.Name):
        return frozenset({target.name})
    if isinstance(target, nodes.Tuple):
        return frozenset().union(*(_target_names(item, name) for item in target.items))
    raise TemplateError(f"{name}, line {target.lineno}: unsupported loop target")


def _assigner(target: nodes.Node) -> Callable[[dict[str, Any], Any], None]:
    if isinstance(target, nodes.Name):
        key = target.name

        def assign(scope: dict[str, Any], item: Any) -> None:
            scope[key] = item

        return assign
    assert isinstance(target, nodes.Tuple)
    parts = [_assigner(item) for item in target.items]

    def unpack(scope: dict[str, Any], item: Any) -> None:
        values = tuple(item)
        if len(values) != len(parts):
            raise TemplateError(
                f"cannot unpack {len(values)} values into a loop target of {len(parts)}"
            )
        for part, value in zip(parts, values, strict=True):
            part(scope, value)

    return unpack
