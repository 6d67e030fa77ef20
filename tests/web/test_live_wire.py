"""web.live keeps to its own objects and spells the LiveView wire protocol in one place.

* No module of ``web/live`` touches another object's ``_private`` attribute: the channel
  running a view takes its socket's effects with ``LiveSocket.take_effects()`` and marks
  renders with ``LiveSocket.rendered()``, instead of reading and resetting the socket's
  fields (issue 14, "No shared mutable state between processes").
* The keys of rendered trees (``"s"``, ``"c"``, ``"k"``, ...) appear as string literals only
  in ``web/live/_wire.py``; every other module uses its named constants.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import web.live._wire as wire
from web.live._rendered import merge, to_html
from web.live._stream import Stream
from web.live._template import LiveTemplate

LIVE = Path(wire.__file__).resolve().parent
MODULES = sorted(LIVE.glob("*.py"))

#: Private names of other objects that web/live still reaches, each with why. Empty is the
#: goal; each entry is a change to ask of the module's owner.
KNOWN_PRIVATE_TOUCHES: set[tuple[str, str]] = set()

#: The wire keys of rendered trees that must be spelled through web.live._wire.
TREE_KEYS = {"s", "r", "c", "t", "e", "k", "p", "kc", "km", "stream"}

#: String constants equal to a tree key that are not wire keys, by module (none today).
NOT_WIRE: dict[str, set[str]] = {}


def private_touches(source: str) -> list[str]:
    """``x._name`` attribute uses in *source* whose object is not ``self`` or ``cls``
    (dunders are not private), as source text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(ast.unparse(node))
    return found


def key_literals(source: str) -> list[tuple[int, str]]:
    """String constants of *source* equal to a tree key (docstrings are longer), with lines."""
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in TREE_KEYS
    )


def test_the_private_scan_finds_what_the_channel_used_to_do() -> None:
    before = (
        "if live._events:\n"
        "    diff['e'] = live._events\n"
        "    live._events = []\n"
        "update['live_patch'], live._patch = live._patch, None\n"
        "self.live._streams_sent()\n"
        "name = self.live._tasks.pop(ref, None)\n"
        "self._update(); cls._compiled; self.__class__\n"
    )
    assert private_touches(before) == [
        "live._events",
        "live._events",
        "live._events",
        "live._patch",
        "live._patch",
        "self.live._streams_sent",
        "self.live._tasks",
    ]


def test_no_module_of_web_live_touches_another_objects_private_names() -> None:
    touches = {
        (path.name, touch) for path in MODULES for touch in private_touches(path.read_text())
    }
    assert touches - KNOWN_PRIVATE_TOUCHES == set()
    assert touches >= KNOWN_PRIVATE_TOUCHES, "a known touch is gone: drop it from the list"


def test_the_key_scan_finds_literal_keys() -> None:
    assert key_literals('tree["c"] = components\nx = {"s": [], "kc": 0}\n"""c"""') == [
        (1, "c"),
        (2, "kc"),
        (2, "s"),
        (3, "c"),
    ]


def test_wire_keys_are_spelled_only_in_the_wire_module() -> None:
    spelled = {
        f"{path.name}:{line}: {value!r}"
        for path in MODULES
        if path.name != "_wire.py"
        for line, value in key_literals(path.read_text())
        if value not in NOT_WIRE.get(path.name, ())
    }
    assert spelled == set()
    assert {value for _, value in key_literals((LIVE / "_wire.py").read_text())} == TREE_KEYS - {
        "p"  # the template table: never sent (statics go inline)
    }


def test_the_constants_are_the_protocol_keys() -> None:
    # The official client's names (phoenix_live_view 1.2, constants.js): changing one breaks it.
    assert (wire.STATICS, wire.ROOT, wire.COMPONENTS, wire.TITLE, wire.EVENTS) == (
        "s",
        "r",
        "c",
        "t",
        "e",
    )
    assert (wire.KEYED, wire.KEYED_COUNT, wire.KEYED_MOVES, wire.STREAM) == (
        "k",
        "kc",
        "km",
        "stream",
    )
    assert (wire.DIFF, wire.LIVE_PATCH, wire.LIVE_REDIRECT, wire.REDIRECT) == (
        "diff",
        "live_patch",
        "live_redirect",
        "redirect",
    )
    assert (wire.EVENT, wire.CIDS_WILL_DESTROY, wire.CIDS_DESTROYED, wire.CIDS) == (
        "event",
        "cids_will_destroy",
        "cids_destroyed",
        "cids",
    )
    assert (wire.RENDERED, wire.VERSION) == ("rendered", "liveview_version")


def test_a_rendered_tree_is_byte_for_byte_what_it_was() -> None:
    # The JSON the client sees, pinned: the constants change no byte of it.
    template = LiveTemplate(
        "<h1>{{ title }}</h1>{% for u in users %}<li>{{ u }}</li>{% endfor %}"
        '<div phx-update="stream">{% for id, m in msgs %}<p id="{{ id }}">{{ m }}</p>'
        "{% endfor %}</div>"
    )

    msgs = Stream("msgs", "0", lambda m: f"m-{m}")
    msgs.insert("hi", at=0, limit=-10)
    tree, state = template.render({"title": "T", "users": ["ann"], "msgs": msgs})
    assert json.dumps(tree, separators=(",", ":")) == (
        '{"s":["<h1>","</h1>","<div phx-update=\\"stream\\">","</div>"],"0":"T",'
        '"1":{"s":["<li>","</li>"],"k":{"0":{"0":"ann"},"kc":1}},'
        '"2":{"k":{"0":{"0":"m-hi","1":"hi"},"kc":1},"stream":["0",[["m-hi",0,-10,false]],[]],'
        '"s":["<p id=\\"","\\">","</p>"]}}'
    )
    msgs.sent()
    diff, _ = template.diff({"title": "T", "users": ["ann", "bob"], "msgs": msgs}, state, {"users"})
    assert json.dumps(diff, separators=(",", ":")) == '{"1":{"k":{"1":{"0":"bob"},"kc":2}}}'
    assert to_html(merge(tree, diff)) == (
        '<h1>T</h1><li>ann</li><li>bob</li><div phx-update="stream"><p id="m-hi">hi</p></div>'
    )
