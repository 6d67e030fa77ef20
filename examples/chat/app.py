"""Putting the chat together: the domain's database, presence, rate limits, the endpoint, and
its first users (demo users in demo mode, else the admin named by the environment)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
import trio

import domain
import presence
import web
from supervisors import Application, child_spec

from . import attachments, background, ratelimit, sessions
from .accounts import SESSION_COOKIE, hash_off_loop, verify_password
from .admin import AGENT as ADMIN_AGENT
from .admin import CSS as ADMIN_CSS
from .admin import AdminAgent, AdminLive
from .api import mount_api
from .channels import ChatSocket
from .live import ChatLive
from .model import Chat, Room, User
from .pages import Pages, redirect
from .signup import SignupLive, signed_out
from .startup import startup_lock
from .style import CSS

logger = logging.getLogger("examples.chat")

#: The schema's revisions; after changing a resource run (and commit what it writes)
#: ``python -m domain migrations generate "what changed" --domain examples.chat.model:Chat
#: --dir examples/chat/migrations --url sqlite:///.chat-data/chat.db``.
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
#: Demo mode only (``--demo``, ``CHAT_DEMO=1``): these users, this password, alice an admin.
DEMO_USERS = ("alice", "bob")
DEMO_PASSWORD = "wonderland"
ADMIN_USERNAME: Final = "CHAT_ADMIN_USERNAME"
#: A refused page's reason for the chat page (a few seconds' cookie: see ``admin_only``).
NOTICE_COOKIE: Final = "chat_notice"
ADMIN_PASSWORD: Final = "CHAT_ADMIN_PASSWORD"


def database_url(data_dir: Path) -> str:
    """``DATABASE_URL`` when set, else a SQLite file under *data_dir*."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'chat.db'}"


def redacted(url: str) -> str:
    """*url* with its password hidden, fit for a message.

    >>> redacted("postgresql://chat:hunter2@db/chat")
    'postgresql://chat:***@db/chat'
    """
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<an unreadable database URL>"


def secret_key(data_dir: Path) -> str:
    """The key sessions are signed with, kept beside the database so sign-ins survive a
    restart (``CHAT_SECRET_KEY`` overrides it); the file is readable by its owner only.

    >>> key = secret_key(Path(".chat-data"))
    """
    key = os.environ.get("CHAT_SECRET_KEY")
    if key:
        return key
    path = data_dir / "secret_key"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        if path.stat().st_mode & 0o077:  # from before the chat made it private
            path.chmod(0o600)
        return path.read_text().strip()
    # Written whole under another name, then linked into place: a node starting at the
    # same moment reads either no file or the whole key, and the first link wins.
    draft = data_dir / f".secret_key.{os.getpid()}"
    fd = os.open(draft, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(32))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


async def upgrade_database(url: str) -> None:
    """Bring the database's schema up to date with ``migrations/`` (Alembic revisions made
    by ``python -m domain migrations generate``), on a worker thread: migrating blocks."""
    migrations = domain.Migrations(Chat, url, MIGRATIONS)
    try:
        await trio.to_thread.run_sync(migrations.upgrade)
    except domain.MigrationError as exc:
        raise SystemExit(
            f"chat: cannot use the database at {redacted(url)}: {exc}. A data directory from "
            "before the chat had migrations cannot be upgraded: move it away (the default is "
            ".chat-data/) and start again."
        ) from None


async def seed_demo() -> None:
    """Demo mode: alice (an admin) and bob, password ``wonderland``, and demo rooms they
    are members of, created once."""
    for name in DEMO_USERS:
        if not await Chat.read(User, filter={"username": name}, limit=1):
            await Chat.register(name, await hash_off_loop(DEMO_PASSWORD))
    users = await Chat.read(User, filter=User.__table__.c.username.in_(DEMO_USERS))
    alice = next(u for u in users if u.username == "alice")
    if not alice.admin:
        alice = await Chat.make_admin(alice, authorize=False)
    if not await Chat.read(Room, actor=alice, limit=1):
        for room in ("lobby", "random"):
            opened = await Chat.open_room(room, actor=alice)
            for user in users:
                await Chat.join_room(opened.id, actor=user)


async def refuse_demo_leftovers() -> None:
    """Outside demo mode: raise :class:`SystemExit` while a demo user still has the demo
    password (the database was seeded by ``--demo``: anyone could sign in as alice, an
    admin).

    >>> await refuse_demo_leftovers()
    """
    users = await Chat.read(User, filter=User.__table__.c.username.in_(DEMO_USERS))
    for user in sorted(users, key=lambda user: user.username):
        if await verify_password(DEMO_PASSWORD, user.password_hash):
            raise SystemExit(
                f"chat: refusing to start outside demo mode: the demo user {user.username!r} "
                f"still has the demo password {DEMO_PASSWORD!r} (this database was seeded by "
                "--demo); use another data directory (--data-dir) or DATABASE_URL, or run it "
                "with --demo"
            )


async def ensure_admin(environ: Mapping[str, str]) -> str | None:
    """Outside demo mode: create or update the admin ``CHAT_ADMIN_USERNAME`` with the
    password ``CHAT_ADMIN_PASSWORD``; without them, an admin must exist already. Returns the
    admin's name when one was set from the environment; raises :class:`SystemExit` saying
    what to set otherwise.

    >>> await ensure_admin({"CHAT_ADMIN_USERNAME": "root", "CHAT_ADMIN_PASSWORD": "s3cret!!"})
    'root'
    """
    username = environ.get(ADMIN_USERNAME, "").strip().lower()
    password = environ.get(ADMIN_PASSWORD, "")
    if not username and not password:
        if await Chat.read(User, filter={"admin": True}, limit=1):
            return None
        raise SystemExit(
            f"chat: refusing to start: there is no admin account. Set {ADMIN_USERNAME} and "
            f"{ADMIN_PASSWORD} (at least 8 characters) to create one, or run the demo "
            "(python -m examples.chat --demo, or CHAT_DEMO=1) with its demo users."
        )
    if not username or len(password) < 8:
        missing = ADMIN_USERNAME if not username else f"{ADMIN_PASSWORD} (at least 8 characters)"
        raise SystemExit(f"chat: refusing to start: set {missing} as well")
    password_hash = await hash_off_loop(password)
    found = await Chat.read(User, filter={"username": username}, limit=1)
    try:
        user = found[0] if found else await Chat.register(username, password_hash)
    except domain.Invalid as exc:
        raise SystemExit(f"chat: refusing to start: {ADMIN_USERNAME}={username!r}: {exc}") from None
    if found:
        user = await Chat.set_password(user, password_hash, authorize=False)
    if not user.admin:
        await Chat.make_admin(user, authorize=False)
    return username


def flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment variable *name* is set to ``1``, ``true``, ``yes`` or ``on``.

    >>> flag("CHAT_DEMO", {"CHAT_DEMO": "1"})
    True
    """
    value = (os.environ if environ is None else environ).get(name, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


async def build(
    data_dir: Path,
    *,
    database: str | None = None,
    messages_per_minute: int = 60,
    demo: bool | None = None,
    limits: Mapping[str, web.Limit | web.Backoff] | None = None,
    secure_cookies: bool | None = None,
    digest_after: float | None = None,
) -> web.Endpoint:
    """Start the chat's supervision tree in the calling node and return its endpoint.

    The chat is an :class:`supervisors.Application` whose tree (``chat.sup``, one_for_one)
    holds the domain's connection pool (itself a supervisor of connection actors), the
    presence tracker and the rate limiter (:mod:`examples.chat.ratelimit`; *limits*
    overrides its scopes). Any of them can be killed (from the ``/admin`` page, say): the
    supervisor starts it again and the chat goes on. LiveViews and channels are processes of
    their connections: their crashes stay theirs. The schema is brought up to date first
    (see :func:`upgrade_database`).

    In *demo* mode (default: ``CHAT_DEMO``) it seeds alice and bob (password
    ``wonderland``, alice an admin); otherwise the admin comes from the environment (see
    :func:`ensure_admin`). *secure_cookies* (default: ``CHAT_SECURE_COOKIES``) marks the
    session and CSRF cookies ``Secure``, for a chat served over TLS. Background jobs
    (:mod:`examples.chat.background`: mention digests after *digest_after* seconds, default
    ``CHAT_DIGEST_MINUTES``; the nightly pruning) run under the same tree, after the
    database.
    """
    demo = flag("CHAT_DEMO") if demo is None else demo
    secure_cookies = flag("CHAT_SECURE_COOKIES") if secure_cookies is None else secure_cookies
    url = database or database_url(data_dir)
    media = data_dir / "attachments"  # messages' files (and thumbnails), see attachments.py
    jobs = background.setup(digest_after=digest_after, media=media)
    app = Application(
        "chat.sup",
        [
            Chat.child_spec(url),
            jobs.child_spec(),
            child_spec(presence.Tracker),
            child_spec(
                web.RateLimiter,
                (ratelimit.scopes(messages_per_minute, limits), ratelimit.SHARED),
                name=ratelimit.NAME,
            ),
            child_spec(AdminAgent, name=ADMIN_AGENT),
        ],
        strategy="one_for_one",
        max_restarts=10,
        max_seconds=5,
        type="permanent",  # if the tree gives up, the node stops (and its own supervisor,
    )  # systemd say, starts a fresh one)
    async with startup_lock(url, data_dir):  # nodes starting together take turns here
        await upgrade_database(url)
        await app.start()
        if demo:
            await seed_demo()
        else:
            await refuse_demo_leftovers()
            await ensure_admin(os.environ)
        secret = secret_key(data_dir)
    endpoint = web.Endpoint(secret_key=secret, secure_cookies=secure_cookies)
    csrf = web.CsrfProtection(secret, secure=secure_cookies)
    pages = Pages(secret, csrf, secure=secure_cookies)

    async def signed_in(request: web.Request) -> dict[str, Any] | web.Response:
        """The chat page's guard, on every mount: a live session, else to the sign-in page."""
        record = await sessions.lookup(request.cookie(SESSION_COOKIE))
        if record is None or request.cookie(csrf.cookie) is None:
            return redirect("/login")
        found = {**sessions.live_session(record), "csrf_token": csrf.token(request)[0]}
        return found | {"notice": request.cookie(NOTICE_COOKIE) or ""}

    async def admin_only(request: web.Request) -> dict[str, Any] | web.Response:
        """The process page's guard: admins only (others go back to the chat, with a
        cookie that lives a few seconds saying why: the chat shows it as a flash)."""
        found = await signed_in(request)
        if isinstance(found, dict) and not found["admin"]:
            notice = web.set_cookie(NOTICE_COOKIE, "admin", max_age=5, secure=secure_cookies)
            return redirect("/", notice)
        return found

    endpoint.get("/login", pages.login_page)
    endpoint.route("POST", "/login", pages.login)
    endpoint.route("POST", "/logout", pages.logout)
    endpoint.route("POST", "/api/token", pages.api_token)
    mount_api(endpoint, secret)
    endpoint.socket("/socket", ChatSocket(secret))
    router = web.LiveRouter(endpoint)
    endpoint.get("/assets/chat/chat.js", _chat_js)
    endpoint.get("/attachment", attachments.serve(media))
    chat_live = type("ChatLive", (ChatLive,), {"media": media})
    router.live("/", chat_live, layout=LAYOUT, head=f"<style>{CSS}</style>", session=signed_in)
    router.live(
        "/signup", SignupLive, layout=LAYOUT, head=f"<style>{CSS}</style>", session=signed_out(csrf)
    )
    head = f"<style>{CSS}{ADMIN_CSS}</style>"
    router.live("/admin", AdminLive, layout=LAYOUT, head=head, session=admin_only)
    return endpoint


#: The chat's client: the official clients with the chat's hooks (see ``static/chat.js``).
CHAT_JS: Final = (Path(__file__).resolve().parent / "static" / "chat.js").read_bytes()
#: The pages' layout: LiveView's, loading the chat's client instead of the bare one.
LAYOUT: Final = web.live.DEFAULT_LAYOUT.replace("/assets/live/app.js", "/assets/chat/chat.js")


def _chat_js(request: web.Request) -> web.Response:
    headers = (("content-type", "text/javascript; charset=utf-8"), ("cache-control", "no-cache"))
    return web.Response(200, CHAT_JS, headers)
