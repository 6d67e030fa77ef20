"""LiveView templates: rendered trees and diffs that bring the client to Jinja2's own output.

The oracle is Jinja2 itself: for every sequence of assigns, applying our diffs with the
client's merge rules (:func:`web.live._rendered.merge`) must give exactly the HTML that Jinja2
renders from the same template and assigns.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web.live._rendered import merge, to_html
from web.live._template import LiveTemplate, TemplateError

TEMPLATES = [
    "<p>{{ title }}</p>",
    "<h1>{{ title|upper }}</h1>{% if flag %}<b>{{ count }}</b>{% elif other %}-{% endif %}!",
    '<ul>{% for row in rows %}<li id="r{{ loop.index }}">{{ row.name }}:{{ row.n }}'
    "{% if row.n > 2 %} big{% endif %}</li>{% else %}<li>empty</li>{% endfor %}</ul>",
    "{% for row in rows if row.n %}{{ title }}{{ row.name }}{% if flag %}[{{ count }}]{% endif %}"
    "{% endfor %}<i>{{ count + 1 }}</i>",
    "{% for a, b in pairs %}<{{ a }}={{ b }}>{% for c in rows %}{{ c.n }}{% endfor %}"
    "{% endfor %}{{ rows|length }}",
    "{% if rows %}{% for r in rows %}{{ loop.index0 }}{{ loop.last }}{{ r.name }}{% endfor %}"
    "{% else %}none{% endif %}",
]

names = st.text(alphabet="ab<&>\"' ", max_size=4)
rows = st.lists(st.fixed_dictionaries({"name": names, "n": st.integers(0, 4)}), max_size=5)
assigns = st.fixed_dictionaries(
    {
        "title": names,
        "flag": st.booleans(),
        "other": st.booleans(),
        "count": st.integers(-2, 3),
        "rows": rows,
        "pairs": st.lists(st.tuples(names, st.integers(0, 2)), max_size=3),
    }
)


def jinja(source: str, values: dict[str, Any]) -> str:
    return jinja2.Environment(autoescape=True).from_string(source).render(values)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TEMPLATES), st.lists(assigns, min_size=1, max_size=6), st.booleans())
def test_diffs_bring_the_client_to_jinjas_render(
    source: str, steps: list[dict[str, Any]], tell_changes: bool
) -> None:
    template = LiveTemplate(source)
    tree, state = template.render(steps[0])
    json.dumps(tree)  # everything on the wire is JSON
    assert to_html(tree) == jinja(source, steps[0])
    previous = steps[0]
    for values in steps[1:]:
        changed = {k for k in values if values[k] != previous[k]} if tell_changes else None
        diff, state = template.diff(values, state, changed)
        json.dumps(diff)
        assert "s" not in diff or diff == {}  # the root fingerprint never changes
        tree = merge(tree, diff)
        assert to_html(tree) == jinja(source, values)
        previous = values


def test_nothing_changed_means_an_empty_diff_and_no_evaluation() -> None:
    calls: list[str] = []
    env = jinja2.Environment(autoescape=True)

    def spy(value: str) -> str:
        calls.append(value)
        return value

    env.filters["spy"] = spy
    template = LiveTemplate("{{ a|spy }}-{{ b|spy }}", environment=env)
    _, state = template.render({"a": "x", "b": "y"})
    calls.clear()
    diff, state = template.diff({"a": "x", "b": "z"}, state, {"b"})
    assert diff == {"1": "z"}
    assert calls == ["z"]  # the slot reading only a was not evaluated
    diff, state = template.diff({"a": "x", "b": "z"}, state, {"a"})
    assert diff == {}  # evaluated, same text: not sent


def test_one_changed_row_of_a_thousand_sends_one_entry() -> None:
    template = LiveTemplate(
        "<table>{% for r in rows %}<tr><td>{{ r.id }}</td><td>{{ r.name }}</td></tr>"
        "{% endfor %}</table>"
    )
    rows = [{"id": i, "name": f"row {i}"} for i in range(1000)]
    tree, state = template.render({"rows": rows})
    changed_rows = list(rows)
    changed_rows[500] = {"id": 500, "name": "changed"}
    diff, state = template.diff({"rows": changed_rows}, state, {"rows"})
    assert diff == {"0": {"k": {"500": {"1": "changed"}, "kc": 1000}}}
    assert len(json.dumps(diff)) < 0.01 * len(json.dumps(tree))


def test_unsupported_tags_and_syntax_errors_name_the_line() -> None:
    with pytest.raises(TemplateError, match=r"line 2: \{% set %\} is not supported"):
        LiveTemplate("ok\n{% set x = 1 %}")
    with pytest.raises(TemplateError, match="line 1"):
        LiveTemplate("{% if %}")


def test_includes_are_nested_nodes_and_render_like_jinja() -> None:
    loader = jinja2.DictLoader(
        {
            "row.html": "<li>{{ r.name }}{% if r.admin %} (admin){% endif %}</li>",
            "loop.html": '{% include "loop.html" %}',
        }
    )
    env = jinja2.Environment(autoescape=True, loader=loader)
    source = '<ul>{% for r in rows %}{% include "row.html" %}{% endfor %}</ul>'
    template = LiveTemplate(source, environment=env)
    rows = [{"name": "ann", "admin": True}, {"name": "bob", "admin": False}]
    tree, state = template.render({"rows": rows})
    assert to_html(tree) == env.from_string(source).render(rows=rows)
    changed = [rows[0], {"name": "bob", "admin": True}]
    diff, state = template.diff({"rows": changed}, state, {"rows"})
    assert to_html(merge(tree, diff)) == env.from_string(source).render(rows=changed)
    with pytest.raises(TemplateError, match="includes itself"):
        LiveTemplate('{% include "loop.html" %}', environment=env)
    with pytest.raises(TemplateError, match=r"no template 'missing\.html'"):
        LiveTemplate('{% include "missing.html" %}', environment=env)


def test_top_level_macros_are_function_components() -> None:
    source = (
        '{% macro badge(n, kind="info") %}<span class="{{ kind }}">{{ n }}</span>{% endmacro %}'
        "<p>{{ badge(count) }}{{ badge('<b>', kind='warn') }}</p>"
    )
    template = LiveTemplate(source)
    tree, state = template.render({"count": 3})
    assert to_html(tree) == jinja(source, {"count": 3})
    diff, _ = template.diff({"count": 4}, state, {"count"})
    assert diff == {"0": '<span class="info">4</span>'}


class _Obj:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class _Html:
    def __html__(self) -> str:
        return "<em>safe</em>"


class _Number(int):
    def __str__(self) -> str:
        return "<number>"


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    names,
    st.builds(lambda text: jinja2.utils.markupsafe.Markup(text), names),
    st.just(_Html()),
    st.builds(_Number, st.integers()),
    st.just(jinja2.Undefined()),
    st.just({"items": 1}),
)
_holders = st.one_of(
    _values,
    st.dictionaries(st.sampled_from(["name", "items", "x"]), _values, max_size=3),
    st.builds(lambda v: _Obj(name=v), _values),
    st.builds(lambda v: [v], _values),
)


@given(
    scope=st.dictionaries(st.sampled_from(["a", "b", "range"]), _holders, max_size=3),
)
@settings(max_examples=300, deadline=None)
def test_plain_names_and_attributes_render_exactly_as_jinja(scope: dict[str, Any]) -> None:
    # {{ name }} and {{ name.attr }} take a fast path of their own: it must print what Jinja2
    # prints, for every kind of value, missing names and attributes, globals and dict methods.
    for source in ("{{ a }}", "{{ a.name }}", "{{ b.items }}", "{{ a.x.name }}", "{{ range }}"):
        env = jinja2.Environment(autoescape=True)
        template = LiveTemplate(source, environment=env)
        ours = _outcome(lambda s, t=template: t.render(s)[0]["0"], scope)
        jinjas = _outcome(env.from_string(source).render, scope)
        assert ours == jinjas, source


def _outcome(render: Any, scope: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("ok", render(scope))
    except Exception as exc:
        return ("raised", type(exc))
