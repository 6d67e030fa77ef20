"""The plain HTTP pages: sign in and sign out (they set and clear the session cookie), and
``POST /api/token`` for terminal clients. Signing up is a LiveView (:mod:`examples.chat.signup`)
whose last step posts to ``/login`` here.

Signing in cannot happen over a LiveView socket (a WebSocket cannot set cookies), so, as in
Phoenix, a small form posts to these handlers, which answer with a redirect. The forms carry
a CSRF token (:class:`web.CsrfProtection`): a post without one, or with another browser's, is
refused with 403, so another site cannot sign a visitor in or out. ``/api/token`` takes a
username and password, not cookies, so it needs no CSRF token.

Sign-ins are throttled (:mod:`examples.chat.ratelimit`): attempts per client address, and,
after a few failures, growing delays per account name and per address (a success resets the
account's). A name nobody has is checked against a dummy hash, taking as long as a real one.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote

import web

from . import ratelimit, sessions
from .accounts import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    socket_token,
    verify_password,
)
from .model import Chat, User
from .style import CSS

Handler = Callable[[web.Request], Awaitable[web.Response]]
Header = tuple[str, str]


def redirect(to: str, *cookies: Header) -> web.Response:
    """A 303 to *to*, setting *cookies* (``web.set_cookie`` headers).

    >>> redirect("/login")
    """
    headers = (("location", to), ("content-type", "text/plain; charset=utf-8"), *cookies)
    return web.Response(303, b"", headers)


#: The cookie that keeps the username typed into a refused sign-in (five minutes), so the
#: form comes back with it filled in.
TYPED_COOKIE = "chat_typed_username"


def _refused(error: str, username: str = "", *, secure: bool = False) -> web.Response:
    typed = web.set_cookie(TYPED_COOKIE, quote(username[:40]), max_age=300, secure=secure)
    return redirect("/login?error=" + quote(error), *([typed] if username else []))


def address(request: web.Request) -> str:
    """The key of the client's address (the peer's: a proxy in front makes them all one).

    >>> address(request)
    'ip:127.0.0.1'
    """
    return f"ip:{request.client[0] if request.client else 'unknown'}"


@dataclass(frozen=True)
class Pages:
    """The sign-in pages of one chat: its signing *secret*, its CSRF protection, and whether
    cookies are ``Secure`` (served over TLS).

    >>> pages = Pages(secret, web.CsrfProtection(secret), secure=False)
    >>> endpoint.route("POST", "/login", pages.login)
    """

    secret: str
    csrf: web.CsrfProtection
    secure: bool = False

    def session_cookie(self, token: str, max_age: int = SESSION_MAX_AGE) -> Header:
        """The ``Set-Cookie`` of the session cookie (empty with ``max_age=0``: cleared)."""
        return web.set_cookie(SESSION_COOKIE, token, max_age=max_age, secure=self.secure)

    async def login_page(self, request: web.Request) -> web.Response:
        """``GET /login``: the sign-in form, with a CSRF token and a link to the sign-up
        page; a signed-in browser goes on to the chat."""
        token, cookie = self.csrf.token(request)
        if await sessions.lookup(request.cookie(SESSION_COOKIE)) is not None:
            return redirect("/", *([cookie] if cookie else []))
        error = request.query.get("error", [""])[-1]
        typed = html.escape(unquote(request.cookie(TYPED_COOKIE) or "") if error else "")
        # A refused sign-in is about the pair (or the pace): its words go under the password.
        banner = f'<p class="error field" id="login-error" role="alert">{html.escape(error)}</p>'
        password_error = banner if error else ""
        body = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · trio-beam chat</title><style>{CSS}</style></head><body>
<form class="card" method="post" action="/login">
  <h1>trio-beam chat</h1>
  <input type="hidden" name="{self.csrf.field}" value="{html.escape(token)}">
  <input name="username" id="username" placeholder="username" autocomplete="username" required
    value="{typed}">
  <input name="password" id="password" type="password" placeholder="password" required
    autocomplete="current-password" {"autofocus" if typed else ""}
    aria-invalid="{str(bool(password_error)).lower()}">{password_error}
  <div class="row"><button id="sign-in" type="submit">Sign in</button></div>
  <p class="muted">New here? <a href="/signup" id="sign-up">Create an account</a></p>
</form></body></html>"""
        headers = self.csrf.headers(cookie, (("content-type", "text/html; charset=utf-8"),))
        return web.Response(200, body.encode(), headers)

    async def _authenticate(self, request: web.Request, scope: str) -> User | str:
        """The user the form's username and password name, or why not (throttled, wrong).
        Raises :class:`web.RateLimited` when the client must wait."""
        form = request.form()
        username = form.get("username", "").strip().lower()[:40]
        await ratelimit.check(scope, address(request))
        await ratelimit.check("signin_account", f"user:{username}")
        await ratelimit.check("signin_address", address(request))
        users = await Chat.read(User, filter={"username": username}, limit=1)
        user = users[0] if users else None
        stored = user.password_hash if user is not None else None
        # Always hashed, a name nobody has too (against a dummy hash): the same time either way.
        matched = await verify_password(form.get("password", ""), stored)
        if user is None or not matched:
            await ratelimit.failed("signin_account", f"user:{username}")
            await ratelimit.failed("signin_address", address(request))
            return "wrong username or password"
        await ratelimit.succeeded("signin_account", f"user:{username}")
        return user

    async def login(self, request: web.Request) -> web.Response:
        """``POST /login``: check the CSRF token and the password, start a session."""
        if (refusal := self.csrf.check(request)) is not None:
            return refusal
        try:
            found = await self._authenticate(request, "login")
        except web.RateLimited as exc:
            return _refused(str(exc))
        if isinstance(found, str):
            return _refused(
                found, request.form().get("username", "").strip().lower(), secure=self.secure
            )
        token, _ = await sessions.issue(found)
        return redirect("/", self.session_cookie(token))

    async def logout(self, request: web.Request) -> web.Response:
        """``POST /logout``: check the CSRF token, delete the session on the server (its open
        pages and sockets close), clear the cookies."""
        if (refusal := self.csrf.check(request)) is not None:
            return refusal
        record = await sessions.lookup(request.cookie(SESSION_COOKIE))
        if record is not None:
            await sessions.sign_out(record)
        return redirect("/login", self.session_cookie("", 0), self.csrf.clear())

    async def api_token(self, request: web.Request) -> web.Response:
        """``POST /api/token`` (username, password): a socket token, as JSON; 401 for wrong
        credentials, 429 (with ``Retry-After``) when throttled."""
        try:
            found = await self._authenticate(request, "api")
        except web.RateLimited as exc:
            return _json(429, {"error": str(exc)}, ("retry-after", str(math.ceil(exc.retry_after))))
        if isinstance(found, str):
            return _json(401, {"error": found})
        _, record = await sessions.issue(found, "api")
        user_id = str(found.id)
        return _json(200, {"token": socket_token(self.secret, str(record.id)), "user_id": user_id})


def _json(status: int, value: object, *headers: Header) -> web.Response:
    body = json.dumps(value).encode()
    return web.Response(status, body, (("content-type", "application/json"), *headers))
