"""A LiveView whose form is bound to a domain action (``domain.Form``), for the form tests.

``People`` has one resource, ``Person`` (a unique lowercase username, an email, a bio), and
``Signup`` signs people up through its ``register`` action: ``phx-change`` validates (no
write), ``phx-submit`` runs the action and lists who signed up; the rendered inputs come from
``form_input`` and show a field's errors once the user touched it.
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


class People(Domain):
    resources = (Person,)


class Signup(web.LiveView):
    template = (
        '<form id="signup" phx-change="validate" phx-submit="save">'
        '{{ form_input(form, "username", label="Username") }}'
        '{{ form_input(form, "email", label="Email", type="email") }}'
        '{{ form_input(form, "bio", label="About you", type="textarea") }}'
        "{{ form_errors(form) }}"
        '<button id="save">Sign up</button></form>'
        '<ul id="people">{% for name in people %}<li>{{ name }}</li>{% endfor %}</ul>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(form=domain.Form.for_create(People, Person, "register"), people=())

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        form: domain.Form = socket.assigns["form"]
        params = value.get(form.name, {}) if isinstance(value, Mapping) else {}
        if event == "validate":
            socket.assign(form=form.validate(params))
        elif event == "save":
            record, form = await form.submit(params)
            if record is None:
                socket.assign(form=form)  # the errors, and everything typed, stay
                return
            fresh = domain.Form.for_create(People, Person, "register")
            socket.assign(form=fresh, people=(*socket.assigns["people"], record.username))
