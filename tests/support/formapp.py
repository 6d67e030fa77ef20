"""A LiveView whose form is bound to a domain action (``domain.Form``), for the form tests.

``People`` has two resources, ``Person`` (a unique lowercase username, an email, a bio) and
``Link`` (a person's web address), and ``Signup`` signs people up through ``Person``'s
``register`` action, with their links as nested forms (``Link``'s ``add``): ``phx-change``
validates (no write), ``phx-submit`` runs the actions in one transaction and lists who signed
up; the rendered inputs come from ``form_input`` and show a field's errors once the user
touched it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import domain
import web
from domain import (
    Domain,
    Resource,
    action_type,
    always,
    attribute,
    authorize_if,
    create,
    identity,
    match,
    policy,
    read,
    uuid_primary_key,
)


class Person(Resource):
    id: uuid.UUID = uuid_primary_key()
    username: str = attribute(min_length=2, max_length=20, match=r"^[a-z0-9_]*$")
    email: str = attribute(max_length=80)
    bio: str | None = attribute(max_length=2000, allow_nil=True)
    identities = (identity("unique_username", "username"),)
    actions = (
        create(
            "register",
            match("email", r"^[^@\s]+@[^@\s]+$", message="must be an email address"),
            accept=("username", "email", "bio"),
        ),
        read("read"),
    )
    policies = (
        policy(action_type("create"), authorize_if(always())),
        policy(action_type("read"), authorize_if(always())),
    )


class Link(Resource):
    id: uuid.UUID = uuid_primary_key()
    person_id: uuid.UUID = attribute()
    url: str = attribute(max_length=200, match=r"^https?://\S+$")
    actions = (create("add", accept=("person_id", "url")), read("read"))
    policies = (policy(action_type("create", "read"), authorize_if(always())),)


class People(Domain):
    resources = (Person, Link)


def signup_form() -> domain.Form:
    """An empty sign-up form, its links nested."""
    nested = {"links": domain.Nested(Link, "add", link="person_id")}
    return domain.Form.for_create(People, Person, "register", nested=nested)


class Signup(web.LiveView):
    template = (
        '<form id="signup" phx-change="validate" phx-submit="save">'
        '{{ form_input(form, "username", label="Username") }}'
        '{{ form_input(form, "email", label="Email", type="email") }}'
        '{{ form_input(form, "bio", label="About you", type="textarea") }}'
        '{% for link in form.forms("links") %}{{ form_input(link, "url", label="Link") }}'
        "{% endfor %}"
        '<button type="button" id="add-link" phx-click="add_link">Add a link</button>'
        "{{ form_errors(form) }}"
        '<button id="save">Sign up</button></form>'
        '<ul id="people">{% for name in people %}<li>{{ name }}</li>{% endfor %}</ul>'
        '<p id="links">{{ links }}</p>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(form=signup_form(), people=(), links=0)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        form: domain.Form = socket.assigns["form"]
        params = value.get(form.name, {}) if isinstance(value, Mapping) else {}
        if event == "validate":
            socket.assign(form=form.validate(params))
        elif event == "add_link":
            socket.assign(form=form.add("links"))
        elif event == "save":
            record, form = await form.submit(params)
            if record is None:
                socket.assign(form=form)  # the errors, and everything typed, stay
                return
            links = len(form.forms("links"))
            people = (*socket.assigns["people"], record.username)
            socket.assign(form=signup_form(), people=people, links=socket.assigns["links"] + links)
