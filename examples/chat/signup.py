"""The sign-up page (``/signup``): a LiveView whose form is bound to the ``sign_up`` action of
:class:`~examples.chat.model.User` (a :class:`domain.Form`).

As the user types (``phx-change``) the form runs the action's casts and validations without
writing, and asks whether the name is taken; each field's error shows next to it once the
user has been in that field. ``phx-submit`` creates the account (counted against the
``signup`` limit per address), then, as Phoenix's generated sign-up does, a hidden form posts
the name and password to ``POST /login`` (``phx-trigger-action``): a WebSocket cannot set the
session cookie, that plain post does. Whatever is refused, what was typed stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import domain
import web

from . import ratelimit, sessions
from .accounts import SESSION_COOKIE, hash_off_loop
from .errors import spoken
from .forms import refused, taken
from .model import Chat, User

__all__ = ["SignupLive", "signed_out"]

TEMPLATE = """<form class="card" id="signup" phx-change="validate" phx-submit="save">
  <h1>Create an account</h1>
  {{ form_input(form, "username", label="Username", autocomplete="username",
                autofocus=True, phx_debounce="150") }}
  {{ form_input(form, "password", label="Password", type="password",
                autocomplete="new-password", phx_debounce="150") }}
  <p class="muted">3 to 20 lowercase letters, digits or _, and a password of 8 characters or
  more.</p>
  {{ form_errors(form) }}
  <div class="row"><button id="create" phx-disable-with="Creating…">Create account</button>
  </div>
  <p class="muted">Have an account already? <a href="/login" id="to-sign-in">Sign in</a></p>
</form>
{%- if signed_up %}<form id="signed-up" method="post" action="/login" phx-trigger-action hidden>
  <input type="hidden" name="_csrf_token" value="{{ csrf_token }}">
  <input type="hidden" name="username" value="{{ signed_up[0] }}">
  <input type="hidden" name="password" value="{{ signed_up[1] }}"></form>{% endif %}"""

#: The fields the page shows (the form also carries the password's hash on submit).
FIELDS = ("username", "password")


def _empty() -> domain.Form:
    return domain.Form.for_create(Chat, User, "sign_up", name="user")


class SignupLive(web.LiveView):
    """The sign-up page (see the module documentation)."""

    template = TEMPLATE
    title = "Create an account · trio-beam chat"

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(
            form=_empty(),
            signed_up=None,
            csrf_token=str(session.get("csrf_token", "")),
            address=str(session.get("address", "")),
        )

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        form: domain.Form = socket.assigns["form"]
        params = value.get(form.name) if isinstance(value, Mapping) else None
        params = params if isinstance(params, Mapping) else {}
        if event == "validate":
            socket.assign(form=spoken(await taken(form.validate(params), "username")))
        elif event == "save":
            await self._save(form, params, socket)

    async def _save(
        self, form: domain.Form, params: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        checked = await taken(form.validate(params), "username")
        shown = {k: v for k, v in checked.all_errors.items() if k in FIELDS}
        if shown:  # nothing is hashed or written for a form that cannot pass
            socket.assign(form=spoken(replace(checked, all_errors=shown, submitted=True)))
            return
        try:
            await ratelimit.check("signup", socket.assigns["address"] or "ip:unknown")
        except web.RateLimited as exc:
            socket.assign(form=refused(form, params, str(exc)))
            return
        password = str(params.get("password", ""))
        hashed = await hash_off_loop(password)
        record, done = await form.submit({**params, "password_hash": hashed})
        socket.assign(form=spoken(done))
        if record is not None:  # the hidden form signs in with what was typed
            socket.assign(signed_up=(record.username, password))


def signed_out(
    csrf: web.CsrfProtection,
) -> Callable[[web.Request], Awaitable[dict[str, Any] | web.Response]]:
    """The sign-up page's guard: a signed-in browser goes on to the chat; anyone else gets
    the page, with a CSRF token for the sign-in post and their address (for the limit).

    >>> router.live("/signup", SignupLive, session=signed_out(csrf))
    """

    async def guard(request: web.Request) -> dict[str, Any] | web.Response:
        if await sessions.lookup(request.cookie(SESSION_COOKIE)) is not None:
            return web.Response(303, b"", (("location", "/"),))
        peer = request.client[0] if request.client else "unknown"
        return {"csrf_token": csrf.token(request)[0], "address": f"ip:{peer}"}

    return guard
