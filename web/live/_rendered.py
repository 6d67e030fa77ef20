"""Rendered trees as the LiveView client keeps them: merging diffs and turning a tree into HTML.

A *rendered tree* is what LiveView sends in a join reply: ``{"s": [statics], "0": dyn, ...}``
where each dynamic is a string, a nested tree, or a comprehension ``{"s": [...], "k": {"0":
{...entry dynamics...}, "kc": count}}`` whose entries share its statics. A *diff* has the same
shape with only what changed; a node carrying ``"s"`` replaces the old one.

These functions follow the rules of the official client (``Rendered.mutableMerge`` and
``toOutputBuffer`` in phoenix_live_view 1.2), so a test can check, without a browser, that our
diffs bring the client's tree to exactly the server's latest render::

    >>> tree = {"s": ["<p>", "</p>"], "0": "1"}
    >>> to_html(merge(tree, {"0": "2"}))
    '<p>2</p>'
"""

from __future__ import annotations

import copy
from typing import Any

from ._wire import COMPONENTS, KEYED, KEYED_COUNT, KEYED_MOVES, STATICS

__all__ = ["merge", "to_html"]

Tree = dict[str, Any]


def merge(tree: Tree, diff: Tree) -> Tree:
    """The tree the client holds after applying *diff* to *tree* (*tree* is not changed).

    >>> merge({"s": ["a", "b"], "0": "x"}, {"0": "y"})
    {'s': ['a', 'b'], '0': 'y'}
    """
    components = diff.get(COMPONENTS)
    if STATICS in diff:
        target = copy.deepcopy(diff)
    else:
        target = copy.deepcopy(tree)
        _merge_into(target, {k: v for k, v in diff.items() if k != COMPONENTS})
    if components:
        merged = dict(tree.get(COMPONENTS, {}))
        for cid, node in components.items():
            old = merged.get(cid)
            if STATICS in node or old is None:
                merged[cid] = copy.deepcopy(node)
            else:
                fresh = copy.deepcopy(old)
                _merge_into(fresh, node)
                merged[cid] = fresh
        target[COMPONENTS] = merged
    elif COMPONENTS in tree:
        target[COMPONENTS] = copy.deepcopy(tree[COMPONENTS])
    return target


def _merge_into(target: Tree, source: Tree) -> None:
    if KEYED in source:
        _merge_keyed(target, source)
        return
    for key, value in source.items():
        old = target.get(key)
        if isinstance(value, dict) and STATICS not in value and isinstance(old, dict):
            _merge_into(old, value)
        else:
            target[key] = copy.deepcopy(value)


def _merge_keyed(target: Tree, source: Tree) -> None:
    keyed = source[KEYED]
    old_entries = copy.deepcopy(target[KEYED]) if keyed.get(KEYED_MOVES) else None
    entries = target[KEYED]
    for index, entry in keyed.items():
        if index in (KEYED_COUNT, KEYED_MOVES):
            continue
        if isinstance(entry, list):
            assert old_entries is not None, "a move needs km"
            entries[index] = copy.deepcopy(old_entries[str(entry[0])])
            _merge_into(entries[index], entry[1])
        elif isinstance(entry, int):
            assert old_entries is not None, "a move needs km"
            entries[index] = copy.deepcopy(old_entries[str(entry)])
        else:
            entries.setdefault(index, {})
            _merge_into(entries[index], entry)
    for index in range(keyed[KEYED_COUNT], entries.get(KEYED_COUNT, 0)):
        entries.pop(str(index), None)
    entries[KEYED_COUNT] = keyed[KEYED_COUNT]


def to_html(tree: Tree) -> str:
    """The HTML a rendered tree stands for (statics interleaved with dynamics).

    >>> rows = {"s": ["<li>", "</li>"], "k": {"0": {"0": "a"}, "1": {"0": "b"}, "kc": 2}}
    >>> to_html({"s": ["<ul>", "</ul>"], "0": rows})
    '<ul><li>a</li><li>b</li></ul>'
    """
    parts: list[str] = []
    _write(tree, parts, tree.get(COMPONENTS, {}))
    return "".join(parts)


def _write(node: Any, parts: list[str], components: dict[str, Any]) -> None:
    if isinstance(node, str):
        parts.append(node)
        return
    if isinstance(node, int) and not isinstance(node, bool):
        _write(components[str(node)], parts, components)  # a live component, by cid
        return
    if not isinstance(node, dict):
        raise TypeError(f"a rendered dynamic is a string or a tree, got {node!r:.80}")
    statics = node[STATICS]
    if KEYED in node:
        keyed = node[KEYED]
        for index in range(keyed[KEYED_COUNT]):
            _write_dynamics(keyed[str(index)], statics, parts, components)
        return
    _write_dynamics(node, statics, parts, components)


def _write_dynamics(
    node: Tree, statics: list[str], parts: list[str], components: dict[str, Any]
) -> None:
    for index, static in enumerate(statics[:-1]):
        parts.append(static)
        _write(node[str(index)], parts, components)
    parts.append(statics[-1])
