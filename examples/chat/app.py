"""Putting the chat together: the domain's database, presence, the endpoint, demo data."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any, Final

import trio

import domain
import presence
import web
from supervisors import Application, child_spec

from .accounts import SESSION_COOKIE, hash_password, session_user
from .admin import CSS as ADMIN_CSS
from .admin import AdminLive
from .channels import ChatSocket
from .live import ChatLive
from .model import Chat, Room, User
from .pages import login_page, logout, make_login, make_signup, make_token
from .ratelimit import NAME as RATE_LIMITER
from .ratelimit import RateLimiter
from .style import CSS

logger = logging.getLogger("examples.chat")

#: The schema's revisions; after changing a resource run (and commit what it writes)
#: ``python -m domain migrations generate "what changed" --domain examples.chat.model:Chat
#: --dir examples/chat/migrations --url sqlite:///.chat-data/chat.db``.
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
DEMO_USERS = ("alice", "bob")
DEMO_PASSWORD = "wonderland"


def database_url(data_dir: Path) -> str:
    """``DATABASE_URL`` when set, else a SQLite file under *data_dir*."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'chat.db'}"


def secret_key(data_dir: Path) -> str:
    """The key sessions are signed with, kept beside the database so sign-ins survive a
    restart (``CHAT_SECRET_KEY`` overrides it)."""
    key = os.environ.get("CHAT_SECRET_KEY")
    if key:
        return key
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


async def upgrade_database(url: str) -> None:
    """Bring the database's schema up to date with ``migrations/`` (Alembic revisions made
    by ``python -m domain migrations generate``), on a worker thread: migrating blocks."""
    migrations = domain.Migrations(Chat, url, MIGRATIONS)
    try:
        await trio.to_thread.run_sync(migrations.upgrade)
    except domain.MigrationError as exc:
        raise SystemExit(
            f"chat: cannot use the database at {url}: {exc}. A data directory from before the "
            "chat had migrations cannot be upgraded: move it away (the default is "
            ".chat-data/) and start again."
        ) from None


async def seed() -> None:
    """Demo users, and demo rooms they are members of, created once."""
    for name in DEMO_USERS:
        if not await Chat.read(User, filter={"username": name}, limit=1):
            await Chat.register(name, hash_password(DEMO_PASSWORD))
    users = await Chat.read(User, filter=User.__table__.c.username.in_(DEMO_USERS))
    alice = next(u for u in users if u.username == "alice")
    if not await Chat.read(Room, actor=alice, limit=1):
        for room in ("lobby", "random"):
            opened = await Chat.open_room(room, actor=alice)
            for user in users:
                await Chat.join_room(opened.id, actor=user)


async def build(
    data_dir: Path, *, database: str | None = None, messages_per_minute: int = 60
) -> web.Endpoint:
    """Start the chat's supervision tree in the calling node and return its endpoint.

    The chat is an :class:`supervisors.Application` whose tree (``chat.sup``, one_for_one)
    holds the domain's connection pool (itself a supervisor of connection actors), the
    presence tracker and the per-user rate limiter. Any of them can be killed (from the
    ``/admin`` page, say): the supervisor starts it again and the chat goes on. LiveViews and
    channels are processes of their connections: their crashes stay theirs. The schema is
    brought up to date first (see :func:`upgrade_database`).
    """
    url = database or database_url(data_dir)
    await upgrade_database(url)
    app = Application(
        "chat.sup",
        [
            Chat.child_spec(url),
            child_spec(presence.Tracker),
            child_spec(RateLimiter, messages_per_minute, name=RATE_LIMITER),
        ],
        strategy="one_for_one",
        max_restarts=10,
        max_seconds=5,
        type="permanent",  # if the tree gives up, the node stops (and its own supervisor,
    )  # systemd say, starts a fresh one)
    await app.start()
    await seed()
    secret = secret_key(data_dir)
    endpoint = web.Endpoint(secret_key=secret)

    def session(request: web.Request) -> dict[str, Any] | web.Response:
        user_id = session_user(secret, request.cookie(SESSION_COOKIE))
        if user_id is None:
            return web.Response(303, b"", (("location", "/login"),))
        return {"user_id": user_id}

    endpoint.get("/login", login_page)
    endpoint.route("POST", "/login", make_login(secret))
    endpoint.route("POST", "/signup", make_signup(secret))
    endpoint.route("POST", "/logout", logout)
    endpoint.route("POST", "/api/token", make_token(secret))
    endpoint.socket("/socket", ChatSocket(secret))
    endpoint.live("/", ChatLive, head=f"<style>{CSS}</style>", session=session)
    endpoint.live("/admin", AdminLive, head=f"<style>{CSS}{ADMIN_CSS}</style>", session=session)
    return endpoint
