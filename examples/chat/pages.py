"""The plain HTTP pages: sign in, sign up, sign out (they set and clear the session cookie).

Signing in cannot happen over a LiveView socket (a WebSocket cannot set cookies), so, as in
Phoenix, a small form posts to these handlers, which answer with a redirect.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import domain
import web

from .accounts import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    check_password,
    hash_password,
    session_token,
    socket_token,
)
from .model import Chat, User
from .style import CSS

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _redirect(to: str, cookie: str | None = None) -> web.Response:
    headers = [("location", to), ("content-type", "text/plain; charset=utf-8")]
    if cookie is not None:
        headers.append(("set-cookie", cookie))
    return web.Response(303, b"", tuple(headers))


def _cookie(value: str, max_age: int) -> str:
    return f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}"


def login_page(request: web.Request) -> web.Response:
    """The sign-in form (it also creates accounts)."""
    error = request.query.get("error", [""])[-1]
    banner = f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else ""
    body = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · trio-beam chat</title><style>{CSS}</style></head><body>
<form class="card" method="post" action="/login">
  <h1>trio-beam chat</h1>{banner}
  <input name="username" id="username" placeholder="username" autocomplete="username" required>
  <input name="password" id="password" type="password" placeholder="password" required>
  <div class="row"><button id="sign-in" type="submit">Sign in</button>
  <button id="sign-up" class="secondary" type="submit" formaction="/signup">Create account
  </button></div>
</form></body></html>"""
    return web.Response(200, body.encode(), (("content-type", "text/html; charset=utf-8"),))


def make_login(secret: str) -> Handler:
    """``POST /login``: check the password, set the session cookie."""

    async def login(request: web.Request) -> web.Response:
        form = request.form()
        username = form.get("username", "").strip().lower()
        users = await Chat.read(User, filter={"username": username}, limit=1)
        if not users or not check_password(form.get("password", ""), users[0].password_hash):
            return _redirect("/login?error=" + quote("wrong username or password"))
        return _redirect("/", _cookie(session_token(secret, str(users[0].id)), SESSION_MAX_AGE))

    return login


def make_signup(secret: str) -> Handler:
    """``POST /signup``: create the account, then sign in."""

    async def signup(request: web.Request) -> web.Response:
        form = request.form()
        username = form.get("username", "").strip().lower()
        password = form.get("password", "")
        if len(password) < 8:
            return _redirect("/login?error=" + quote("a password has at least 8 characters"))
        try:
            user: User = await Chat.register(username, hash_password(password))
        except domain.Invalid as exc:
            return _redirect("/login?error=" + quote(f"cannot create {username!r}: {exc}"))
        return _redirect("/", _cookie(session_token(secret, str(user.id)), SESSION_MAX_AGE))

    return signup


def make_token(secret: str) -> Handler:
    """``POST /api/token`` (username, password): a socket token, as JSON."""

    async def token(request: web.Request) -> web.Response:
        form = request.form()
        username = form.get("username", "").strip().lower()
        users = await Chat.read(User, filter={"username": username}, limit=1)
        if not users or not check_password(form.get("password", ""), users[0].password_hash):
            body = json.dumps({"error": "wrong username or password"}).encode()
            return web.Response(401, body, (("content-type", "application/json"),))
        user_id = str(users[0].id)
        body = json.dumps({"token": socket_token(secret, user_id), "user_id": user_id}).encode()
        return web.Response(200, body, (("content-type", "application/json"),))

    return token


def logout(request: web.Request) -> web.Response:
    """``POST /logout``: clear the session cookie."""
    return _redirect("/login", _cookie("", 0))
