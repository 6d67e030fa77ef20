"""The chat's hardening (issue 13), against a live chat on 127.0.0.1: CSRF on the sign-in
forms, sign-in throttling and hashing off the loop, revocable sessions, demo users only in
demo mode, the admin page's kill rules, private secrets, a redacted database URL, and the
rate limits on rooms, edits and typing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import sqlalchemy as sa
import trio

import beam
import domain
import web
from examples.chat import accounts, app
from examples.chat.model import Chat, Room, User, UserToken

from ..support import phx, wsclient
from ..support.chat import (
    chat_server,
    load_page,
    login_form,
    open_page,
    post_form,
    sign_in,
    socket_token,
)
from ..support.http import fetch, jar


async def closed(client: wsclient.Client) -> None:
    """Read frames until the server closes the connection (within 5 s)."""
    with trio.fail_after(5):
        while True:
            try:
                await client.receive()
            except wsclient.Closed:
                return


async def post_login(
    port: int, username: str, password: str, path: str = "/login"
) -> tuple[int, str]:
    """A genuine form post (a fresh browser: GET the form, post with its token): the status
    and where it redirects to (decoded)."""
    token, cookie = await login_form(port)
    body = f"_csrf_token={quote(token)}&username={username}&password={quote(password)}"
    status, headers, _, _ = await fetch(port, post_form(path, body.encode(), cookie))
    return status, unquote(headers.get("location", ""))


async def test_sign_in_sign_up_and_sign_out_need_the_forms_csrf_token(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        credentials = b"username=alice&password=wonderland"
        token, cookie = await login_form(port)
        other_token, _ = await login_form(port)  # another browser's token
        for path in ("/login", "/logout"):  # (signing up is a LiveView: its join is checked)
            # a cross-site post: no cookie, no token
            status, _, _, body = await fetch(port, post_form(path, credentials))
            assert status == 403, path
            assert b"invalid CSRF token" in body
            # the cookie, but no token or another browser's
            status, _, _, _ = await fetch(port, post_form(path, credentials, cookie))
            assert status == 403, path
            forged = f"_csrf_token={quote(other_token)}&".encode() + credentials
            status, _, _, _ = await fetch(port, post_form(path, forged, cookie))
            assert status == 403, path
        genuine = f"_csrf_token={quote(token)}&".encode() + credentials
        status, headers, cookies, _ = await fetch(port, post_form("/login", genuine, cookie))
        assert (status, headers["location"]) == (303, "/")
        assert any(c.startswith("chat_session=") for c in cookies)
        # the chat page's sign-out form carries a token of its own that works
        signed_in = jar(*cookie.split("; "), *cookies)
        status, _, page = await load_page(port, signed_in)
        assert status == 200
        form = page.split('id="logout"', 1)[1]
        page_token = form.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]
        body = f"_csrf_token={quote(page_token)}".encode()
        status, headers, _, _ = await fetch(port, post_form("/logout", body, signed_in))
        assert (status, headers["location"]) == (303, "/login")


async def test_failed_sign_ins_slow_an_account_down_until_one_succeeds(tmp_path: Path) -> None:
    limits = {"signin_account": web.Backoff(free=3, base=30.0, what="failed sign-ins")}
    async with chat_server(tmp_path, limits=limits) as port:
        assert await post_login(port, "alice", "nope") == (
            303,
            "/login?error=wrong username or password",
        )
        assert (await post_login(port, "alice", "wonderland"))[1] == "/"  # a success resets
        for _ in range(3):
            status, where = await post_login(port, "alice", "guess")
            assert where == "/login?error=wrong username or password"
        status, where = await post_login(port, "alice", "wonderland")  # even the right one
        assert status == 303
        assert where.startswith("/login?error=too many failed sign-ins: try again in ")
        api = await socket_token(port, "alice")
        assert api["status"] == 429
        assert api["error"].startswith("too many failed sign-ins: try again in ")
        body = b"username=alice&password=wonderland"
        _, headers, _, _ = await fetch(port, post_form("/api/token", body))
        assert 0 < int(headers["retry-after"]) <= 30
        # bob, from the same address, is not held back by alice's account
        assert (await post_login(port, "bob", "wonderland"))[1] == "/"


async def test_failed_sign_ins_and_attempts_are_limited_per_address(tmp_path: Path) -> None:
    limits: dict[str, web.Limit | web.Backoff] = {
        "signin_address": web.Backoff(free=3, base=30.0, what="failed sign-ins"),
        "login": web.Limit(6, 60.0, "sign-in attempts"),
    }
    async with chat_server(tmp_path, limits=limits) as port:
        for name in ("carol", "dave", "erin"):  # one guess per account: spraying
            assert (await post_login(port, name, "password1"))[1].endswith(
                "wrong username or password"
            )
        _, where = await post_login(port, "bob", "wonderland")
        assert where.startswith("/login?error=too many failed sign-ins: try again in ")
        for _ in range(2):  # attempts count whatever their outcome
            await post_login(port, "bob", "wonderland")
        _, where = await post_login(port, "bob", "wonderland")
        assert where.startswith(
            "/login?error=slow down: at most 6 sign-in attempts per minute; try again in "
        )


async def test_a_name_nobody_has_is_still_hashed_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[tuple[str, bool]] = []
    real = accounts.check_password

    def counting(password: str, stored: str) -> bool:
        checked.append((stored, threading.current_thread() is threading.main_thread()))
        return real(password, stored)

    monkeypatch.setattr(accounts, "check_password", counting)
    async with chat_server(tmp_path) as port:
        alice = (await Chat.read(User, filter={"username": "alice"}))[0]
        assert (await post_login(port, "nobody", "wonderland"))[1].endswith(
            "wrong username or password"
        )
        assert (await post_login(port, "alice", "wrong-one"))[1].endswith(
            "wrong username or password"
        )
        assert (await socket_token(port, "nobody"))["status"] == 401
    assert len(checked) == 3  # the unknown name was hashed too, against a dummy hash
    assert checked[0][0].startswith("scrypt$")
    assert checked[0][0] != alice.password_hash
    assert checked[1][0] == alice.password_hash
    assert not any(on_loop for _, on_loop in checked)  # on worker threads, never the loop


async def test_signing_out_revokes_the_session_and_closes_its_pages(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        cookie = await sign_in(port, "alice")
        other = await sign_in(port, "alice")  # alice in another browser
        async with open_page(port, cookie) as page, open_page(port, other) as elsewhere:
            token = cookie.split("chat_session=")[1].split(";")[0]
            status, _, page_html = await load_page(port, cookie)
            form = page_html.split('id="logout"', 1)[1]
            csrf = form.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]
            body = f"_csrf_token={quote(csrf)}".encode()
            status, _, cleared, _ = await fetch(port, post_form("/logout", body, cookie))
            assert status == 303
            assert any(c.startswith("chat_session=;") and "Max-Age=0" in c for c in cleared)
            await closed(page.client.client)  # its open page closes
            # the other browser's session stays signed in
            assert (
                await elsewhere.client.push(
                    elsewhere.join_ref,
                    elsewhere.topic,
                    "event",
                    {
                        "type": "click",
                        "event": "toggle_notifications",
                        "value": {},
                    },
                )
            )["status"] == "ok"
        # the old cookie is refused from now on, the row is gone
        status, headers, _ = await load_page(port, cookie)
        assert (status, headers["location"]) == (303, "/login")
        digest = accounts.token_digest(token)
        assert await Chat.read(UserToken, filter={"token_hash": digest}) == []
        assert (await load_page(port, other))[0] == 200


async def test_old_sessions_expire_and_revoked_socket_tokens_stop_working(tmp_path: Path) -> None:
    from examples.chat import sessions

    async with chat_server(tmp_path) as port:
        cookie = await sign_in(port, "bob")
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'chat.db'}")
        old = datetime.now(UTC) - timedelta(days=15)
        with engine.begin() as conn:
            conn.execute(UserToken.__table__.update().values(inserted_at=old))
        engine.dispose()
        status, headers, _ = await load_page(port, cookie)
        assert (status, headers["location"]) == (303, "/login")  # older than 14 days

        alice = await socket_token(port, "alice")
        path = f"/socket/websocket?vsn=2.0.0&token={alice['token']}"
        async with phx.connect(port, f"token={alice['token']}") as client:
            _, reply = await client.join(f"user:{alice['user_id']}")
            assert reply["status"] == "ok"
            (record,) = await Chat.read(UserToken, filter={"context": "api"}, load=("user",))
            await sessions.sign_out(record)  # revoke it: the open socket closes
            await closed(client.client)
        with pytest.raises(wsclient.Rejected) as refused:
            async with wsclient.connect(port, path):
                pass
        assert refused.value.status == 403


async def test_without_demo_mode_the_admin_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(app.ADMIN_USERNAME, raising=False)
    monkeypatch.delenv(app.ADMIN_PASSWORD, raising=False)
    with pytest.raises(SystemExit) as refused:
        async with chat_server(tmp_path, demo=False):
            pass
    message = str(refused.value)
    assert "refusing to start: there is no admin account" in message
    assert app.ADMIN_USERNAME in message
    assert app.ADMIN_PASSWORD in message
    assert "--demo" in message

    monkeypatch.setenv(app.ADMIN_USERNAME, "root")
    with pytest.raises(SystemExit, match="CHAT_ADMIN_PASSWORD"):
        async with chat_server(tmp_path, demo=False):
            pass

    monkeypatch.setenv(app.ADMIN_PASSWORD, "correct horse battery")
    async with chat_server(tmp_path, demo=False) as port:
        names = {u.username: u.admin for u in await Chat.read(User)}
        assert names == {"root": True}  # no demo users
        assert (await post_login(port, "alice", "wonderland"))[1].endswith(
            "wrong username or password"
        )
        cookie = await sign_in(port, "root", "correct horse battery")
        assert (await load_page(port, cookie, "/admin"))[0] == 200
    # once an admin exists, the chat starts without the variables
    monkeypatch.delenv(app.ADMIN_USERNAME)
    monkeypatch.delenv(app.ADMIN_PASSWORD)
    async with chat_server(tmp_path, demo=False):
        assert [u.username for u in await Chat.read(User, filter={"admin": True})] == ["root"]


async def test_a_database_seeded_by_the_demo_is_refused_outside_demo_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with chat_server(tmp_path):  # demo mode: alice and bob, password wonderland
        pass
    monkeypatch.setenv(app.ADMIN_USERNAME, "root")
    monkeypatch.setenv(app.ADMIN_PASSWORD, "correct horse battery")
    with pytest.raises(SystemExit) as refused:
        async with chat_server(tmp_path, demo=False):
            pass
    assert "the demo user 'alice' still has the demo password" in str(refused.value)


async def test_the_admin_page_refuses_to_kill_the_application_supervisor(
    tmp_path: Path,
) -> None:
    async with chat_server(tmp_path) as port:
        bob = await sign_in(port, "bob")
        status, headers, _ = await load_page(port, bob, "/admin")  # not an admin: sent back
        assert (status, headers["location"]) == (303, "/")
        assert 'href="/admin"' not in (await load_page(port, bob))[2]

        alice = await sign_in(port, "alice")
        async with open_page(port, alice, "/admin") as page:
            chat_sup = beam.whereis("chat.sup")
            assert chat_sup is not None
            assert f'phx-value-id="{chat_sup.id}"' not in page.html  # no button for it
            await page.event("kill", {"id": str(chat_sup.id)}, kind="click")
            assert "refused: chat.sup is the application supervisor" in page.html
            pool = next(
                pid
                for pid in beam.processes()
                if (info := beam.process_info(pid)) is not None
                and info.parent == chat_sup
                and info.initial_call.endswith("._SupervisorServer")
            )
            await page.event("kill", {"id": str(pool.id)}, kind="click")
            assert "is a supervisor" in page.html  # asked to confirm first
            assert beam.process_info(pool) is not None
            await page.event("kill", {"id": "999999"}, kind="click")
            assert "refused: &lt;0.999999.0&gt; is not a live process" in page.html
        assert beam.whereis("chat.sup") == chat_sup


async def test_secrets_and_the_database_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAT_SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    data = tmp_path / "data"
    key = app.secret_key(data)
    assert (data / "secret_key").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    assert app.secret_key(data) == key
    (data / "secret_key").chmod(0o644)  # from an older chat: tightened on start
    app.secret_key(data)
    assert (data / "secret_key").stat().st_mode & 0o777 == 0o600
    url = app.database_url(data)
    async with beam.open_node():
        await app.upgrade_database(url)
    assert (data / "chat.db").stat().st_mode & 0o777 == 0o600


async def test_a_failed_migration_does_not_show_the_database_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: domain.Migrations) -> None:
        raise domain.MigrationError("the database is at a revision the scripts do not know")

    monkeypatch.setattr(domain.Migrations, "upgrade", refuse)
    with pytest.raises(SystemExit) as refused:
        await app.upgrade_database("postgresql://chat:hunter2@db.example:5432/chat")
    assert "hunter2" not in str(refused.value)
    assert "postgresql://chat:***@db.example:5432/chat" in str(refused.value)


async def test_rooms_edits_and_typing_are_rate_limited(tmp_path: Path) -> None:
    limits = {
        "room": web.Limit(2, 3600.0, "new rooms"),
        "edit": web.Limit(2, 60.0, "edits"),
        "typing": web.Limit(1, 3600.0, "typing notices"),
    }
    async with chat_server(tmp_path, limits=limits) as port:
        cookie = await sign_in(port, "alice")
        async with open_page(port, cookie) as page:
            for name in ("one", "two", "three"):
                await page.event("new_room", f"room%5Bname%5D={name}")
            assert "slow down: at most 2 new rooms per hour; try again in " in page.html
        assert {r.name for r in await Chat.rooms(actor=await _user("alice"))} >= {"one", "two"}
        assert not await Chat.read(Room, filter={"name": "three"}, authorize=False)

        alice = await socket_token(port, "alice")
        bob = await socket_token(port, "bob")
        async with (
            phx.connect(port, f"token={alice['token']}") as a,
            phx.connect(port, f"token={bob['token']}") as b,
        ):
            me = f"user:{alice['user_id']}"
            await a.join(me)
            lobby = next(
                r for r in (await a.event(me, "initial_state"))[4]["rooms"] if r["name"] == "lobby"
            )
            topic = f"room:{lobby['id']}"
            a_ref, _ = await a.join(topic)
            b_ref, _ = await b.join(topic)
            sent = await a.push(a_ref, topic, "new_message", {"content": "v0"})
            message_id = sent["response"]["id"]
            for text in ("v1", "v2"):
                edited = await a.push(
                    a_ref, topic, "edit_message", {"id": message_id, "content": text}
                )
                assert edited["status"] == "ok"
            refused = await a.push(
                a_ref, topic, "edit_message", {"id": message_id, "content": "v3"}
            )
            assert refused["status"] == "error"
            assert refused["response"]["reason"].startswith("slow down: at most 2 edits per minute")

            for _ in range(3):  # one notice goes through, the others are dropped
                await b.send(b_ref, topic, "typing", {})
            await b.push(b_ref, topic, "new_message", {"content": "done typing"})
            await a.expect(lambda f: f[3] == "new_message" and f[4]["content"] == "done typing")
            typing = [f for f in a.pending if f[3] == "typing"]
            assert [f[4] for f in typing] == [{"user": "bob"}]


async def _user(name: str) -> User:
    return (await Chat.read(User, filter={"username": name}))[0]


async def test_secure_cookies_are_marked_secure_when_asked(tmp_path: Path) -> None:
    async with beam.open_node():
        database = f"sqlite:///{tmp_path / 'chat.db'}"
        endpoint = await app.build(tmp_path, database=database, demo=True, secure_cookies=True)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            raw = b"GET /login HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            _, _, page_cookies, body = await fetch(port, raw)
            token = body.decode().split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]
            form = f"_csrf_token={quote(token)}&username=alice&password=wonderland"
            _, _, session_cookies, _ = await fetch(
                port, post_form("/login", form.encode(), jar(*page_cookies))
            )
            nursery.cancel_scope.cancel()
    cookies = page_cookies + session_cookies
    assert {c.split("=")[0] for c in cookies} == {"_csrf", "chat_session"}
    assert all(c.endswith("; Secure") for c in cookies), cookies
