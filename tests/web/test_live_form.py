"""Forms in LiveView: the form helpers' markup, and a view whose form is bound to a domain
action (``tests/support/formapp.py``), driven in-process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import beam
import web

from ..support.formapp import Link, People, Person, Signup


class Plain:
    """The smallest value that fulfils web.FormData."""

    name = "user"

    def __init__(self, values: dict[str, Any], errors: dict[str, Sequence[str]]) -> None:
        self.values = values
        self.shown = errors

    def value(self, field: str) -> Any:
        return self.values.get(field)

    def errors(self, field: str) -> Sequence[str]:
        return self.shown.get(field, ())


def test_inputs_carry_their_name_id_value_and_errors_escaped() -> None:
    form = Plain({"name": '<b>"x"</b>', "agree": "true"}, {"name": ["too <short>"], "": ["no"]})
    html = str(web.form_input(form, "name", label="Name", phx_debounce="300", required=True))
    assert html == (
        '<div class="field"><label for="user_name">Name</label>'
        '<input type="text" id="user_name" name="user[name]" aria-invalid="true" '
        'aria-describedby="user_name_error" phx-debounce="300" required '
        'value="&lt;b&gt;&#34;x&#34;&lt;/b&gt;">'
        '<p class="field-error" id="user_name_error">too &lt;short&gt;</p></div>'
    )
    assert str(web.form_input(form, "bio", type="textarea")) == (
        '<div class="field"><label for="user_bio">Bio</label>'
        '<textarea id="user_bio" name="user[bio]"></textarea></div>'
    )
    checkbox = str(web.form_input(form, "agree", type="checkbox"))
    assert '<input type="hidden" name="user[agree]" value="false">' in checkbox
    assert 'value="true" checked>' in checkbox
    assert str(web.form_errors(form)) == '<p class="form-error" id="user_error">no</p>'
    assert str(web.form_errors(form, "bio")) == ""
    assert web.form_field(form, "name").errors == ("too <short>",)


async def test_a_bound_form_validates_as_typed_and_submits(tmp_path: Path) -> None:
    async with beam.open_node():
        await People.start_link(f"sqlite:///{tmp_path / 'people.db'}")
        await People.create_tables()
        view = await web.testing.live(Signup)
        assert 'name="person[username]"' in view.html
        assert "field-error" not in view.html

        # Typing a bad username: its error shows; email is required too, but untouched.
        typed = {"username": "Al", "email": "", "bio": "", "_unused_email": "", "_unused_bio": ""}
        await view.change("validate", {"person": typed}, target="person[username]")
        assert "must match" in view.html
        assert "is required" not in view.html
        assert 'value="Al"' in view.html

        await view.submit("save", {"person": {"username": "al", "email": "nope", "bio": ""}})
        assert "must be an email address" in view.html  # every field's errors, on submit
        assert 'value="nope"' in view.html  # what was typed is kept
        assert await People.read(Person) == []

        await view.submit("save", {"person": {"username": "al", "email": "al@x.org", "bio": ""}})
        assert "<li>al</li>" in view.html
        assert "field-error" not in view.html
        await view.submit("save", {"person": {"username": "al", "email": "b@x.org", "bio": ""}})
        assert "has already been taken" in view.html
        assert len(await People.read(Person)) == 1

        # A nested form: a link, created with the person in one transaction, or not at all.
        await view.click("add_link")
        assert 'name="person[links][0][url]"' in view.html
        assert 'id="person_links_0_url"' in view.html
        bob = {"username": "bob", "email": "bob@x.org", "bio": ""}
        await view.change("validate", {"person": {**bob, "links": {"0": {"url": "nope"}}}})
        assert 'id="person_links_0_url_error">must match' in view.html
        await view.submit("save", {"person": {**bob, "links": {"0": {"url": "ftp://x"}}}})
        assert 'id="person_links_0_url_error">must match' in view.html
        assert len(await People.read(Person)) == 1  # bob rolled back with his bad link
        await view.submit("save", {"person": {**bob, "links": {"0": {"url": "https://b.org"}}}})
        assert "<li>bob</li>" in view.html
        assert '<p id="links">1</p>' in view.html
        assert [link.url for link in await People.read(Link)] == ["https://b.org"]

