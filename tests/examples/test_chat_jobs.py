"""The chat's background jobs (examples/chat/background.py), on SQLite and PostgreSQL: a
mention left unread produces one digest notification, a mention read first cancels its
digest job, a burst of mentions makes one digest, a rolled-back mention leaves no job, and
the nightly cron entry prunes expired tokens and old read notifications, and sweeps the
attachment files no message refers to (those of a message deleted as the API does).

Digests are due a fraction of a second after the mention here (``digest_after``); the
waits are bounded by ``fail_after``, and nothing asserts how long a step took. Files are
aged by setting their times (``os.utime``), not by waiting.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import trio

import beam
import domain
import web
from domain.jobs import JOB_STATES, Job, Worker
from domain.notifications import BaseNotification
from examples.chat import attachments, background, notifications, sending
from examples.chat.app import build
from examples.chat.model import Chat, Message, Notification, Room, User, UserToken

from ..support.backends import PG_URL, pg_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The chat's database: a SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chat.db'}"
        return
    engine = pg_engine()
    if engine is None:
        pytest.skip("PostgreSQL is not reachable")
    engine.dispose()
    name = f"chat_jobs_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def chat(tmp_path: Path, database: str, digest_after: float) -> AsyncIterator[None]:
    async with beam.open_node():
        with trio.fail_after(60):
            await build(tmp_path, database=database, demo=True, digest_after=digest_after)
        yield
        with trio.fail_after(30):
            await background.current().stop()


async def _users() -> tuple[User, User, Room]:
    users = {u.username: u for u in await Chat.read(User)}
    [lobby] = await Chat.read(Room, actor=users["alice"], filter={"name": "lobby"})
    return users["alice"], users["bob"], lobby


async def _notes(user: User, kind: str) -> list[BaseNotification]:
    found: list[BaseNotification] = await Chat.read(
        Notification, actor=user, filter={"kind": kind}, sort=("inserted_at",)
    )
    return found


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    with trio.move_on_after(timeout):
        while not await check():  # noqa: ASYNC110 - the database changes, no event to wait on
            await trio.sleep(0.02)
        return
    raise AssertionError(f"still waiting for {what} after {timeout} s")


async def test_an_unread_mention_produces_one_digest(tmp_path: Path, database: str) -> None:
    async with chat(tmp_path, database, digest_after=0.2):
        alice, bob, lobby = await _users()
        await sending.send(alice, lobby.id, "hi @bob, the deploy is at 3", None)
        [mention] = await _notes(bob, "mention")

        async def digested() -> bool:
            return bool(await _notes(bob, "digest"))

        await until(digested, "bob's digest")
        jobs = background.current()

        async def completed() -> bool:
            return [j.state for j in await jobs.list_jobs()] == ["completed"]

        await until(completed, "the digest job to complete")  # the notification comes first
        [digest] = await _notes(bob, "digest")
        assert digest.title == "1 unread mention"
        assert "alice mentioned you: hi @bob, the deploy is at 3" in digest.body
        assert digest.action_url == mention.action_url
        assert not await _notes(alice, "digest")  # the author is not notified
        [job] = await jobs.list_jobs()
        assert job.worker.endswith("MentionDigest")
        assert job.args == {"notification_id": str(mention.id), "user_id": str(bob.id)}
        assert job.state == "completed"
        assert job.scheduled_at - job.inserted_at == timedelta(seconds=0.2)


async def test_a_mention_read_first_cancels_its_digest(tmp_path: Path, database: str) -> None:
    async with chat(tmp_path, database, digest_after=3600):
        alice, bob, lobby = await _users()
        await sending.send(alice, lobby.id, "@bob look", None)
        await sending.send(alice, lobby.id, "@bob and this", None)
        first, second = await _notes(bob, "mention")
        jobs = background.current()
        waiting = await jobs.list_jobs(state="scheduled")
        assert len(waiting) == 2
        await notifications.mark_read(bob, str(first.id))
        states = {j.args["notification_id"]: j.state for j in await jobs.list_jobs()}
        assert states == {str(first.id): "cancelled", str(second.id): "scheduled"}
        await notifications.mark_all_read(bob)
        assert {j.state for j in await jobs.list_jobs()} == {"cancelled"}
        # a digest job that starts anyway (its cancel lost) finds the mention read
        again = await jobs.insert(
            background.MentionDigest.new({"notification_id": str(first.id), "user_id": str(bob.id)})
        )

        async def ended() -> bool:
            job = await jobs.get_job(again.id)
            return job is not None and job.state == "cancelled"

        await until(ended, "the late digest job to cancel itself")
        [job] = [j for j in await jobs.list_jobs() if j.id == again.id]
        assert "read (or removed) before its digest" in job.errors[-1]["error"]
        assert not await _notes(bob, "digest")


async def test_a_burst_of_mentions_makes_one_digest(tmp_path: Path, database: str) -> None:
    async with chat(tmp_path, database, digest_after=0.3):
        alice, bob, lobby = await _users()
        async with Chat.transaction():  # all three exist before any digest is due
            for i in range(3):
                await sending.send(alice, lobby.id, f"@bob ping {i}", None)
        jobs = background.current()

        async def all_ended() -> bool:
            states = {j.state for j in await jobs.list_jobs()}
            return states <= {"completed", "cancelled"}

        await until(all_ended, "the three digest jobs to end")
        [digest] = await _notes(bob, "digest")
        assert digest.title == "3 unread mentions"
        assert [f"ping {i}" in digest.body for i in range(3)] == [True] * 3


async def test_a_rolled_back_mention_leaves_no_job(tmp_path: Path, database: str) -> None:
    async with chat(tmp_path, database, digest_after=3600):
        alice, bob, lobby = await _users()
        message = await Chat.send_message(
            content="@bob never mind", client_id="c1", room_id=lobby.id, actor=alice
        )
        inside: list[int] = []

        async def failing_request() -> None:
            async with Chat.transaction():
                await notifications.notify_mentions(message)
                inside.append(len(await background.current().list_jobs()))
                raise RuntimeError("the request failed after the mention")

        with pytest.raises(RuntimeError):
            await failing_request()
        assert inside == [1]  # inside the transaction the job was there
        assert await background.current().list_jobs() == []
        assert await _notes(bob, "mention") == []


async def test_the_nightly_cron_prunes_ephemeral_data(tmp_path: Path, database: str) -> None:
    async with chat(tmp_path, database, digest_after=3600):
        alice, bob, lobby = await _users()
        long_ago = datetime.now(UTC) - timedelta(days=60)
        for context in ("session", "api"):
            for label in ("old", "new"):
                await Chat.issue_token(f"{label}{context}".ljust(64, "0"), context, actor=bob)
        await sending.send(alice, lobby.id, "@bob old news", None)
        await sending.send(alice, lobby.id, "@bob fresh news", None)
        old, fresh = await _notes(bob, "mention")
        await notifications.mark_read(bob, str(old.id))
        await notifications.mark_read(bob, str(fresh.id))
        tokens, notes = UserToken.__table__, Notification.__table__

        def age(tx: domain.Tx) -> None:
            tx.execute(
                sa.update(tokens)
                .where(tokens.c.token_hash.like("old%"))
                .values(inserted_at=long_ago)
            )
            tx.execute(sa.update(notes).where(notes.c.id == old.id).values(read_at=long_ago))

        await Chat.repo().run(age)
        jobs = background.current()
        # 03:00 UTC is the entry's tick (CHAT_TIMEZONE unset); 03:01 is not one.
        assert await jobs.insert_cron(datetime(2026, 12, 4, 3, 1, tzinfo=UTC)) == []
        [job] = await jobs.insert_cron(datetime(2026, 12, 4, 3, 0, tzinfo=UTC))
        assert job.worker.endswith("PruneEphemeral")
        again = await jobs.insert_cron(datetime(2026, 12, 4, 3, 0, tzinfo=UTC))
        assert [j.id for j in again] == [job.id]  # once per tick, whoever inserts it

        async def pruned() -> bool:
            ended = await jobs.get_job(job.id)
            return ended is not None and ended.state == "completed"

        await until(pruned, "the pruning job")
        left = await Chat.read(UserToken, filter=tokens.c.user_id == bob.id, authorize=False)
        assert sorted(t.token_hash[:10] for t in left) == ["newapi0000", "newsession"]
        assert [n.id for n in await _notes(bob, "mention")] == [fresh.id]


def _stored(key: str, kind: str = "file") -> dict[str, Any]:
    """What a message keeps of a file the chat stored (attachments.inspect_file's shape)."""
    return {
        "key": key, "name": key, "type": "", "size": 1, "kind": kind, "width": None,
        "height": None,
    }  # fmt: skip


async def test_the_nightly_pruning_sweeps_orphaned_attachment_files(
    tmp_path: Path, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with chat(tmp_path, database, digest_after=3600):
        alice, _, lobby = await _users()
        media = tmp_path / "attachments"  # where build() stores them
        media.mkdir()
        kept, deleted = f"{uuid.uuid4().hex}.pdf", f"{uuid.uuid4().hex}.png"
        fresh, odd = f"{uuid.uuid4().hex}.txt", "not a key.txt"
        for name in (kept, deleted, deleted + ".thumb.webp", fresh, odd):
            (media / name).write_bytes(b"x")
        two_days_ago = time.time() - 2 * 86400
        for name in (kept, deleted, deleted + ".thumb.webp", odd):
            os.utime(media / name, (two_days_ago, two_days_ago))
        await Chat.share_message(
            content="", client_id="c1", room_id=lobby.id, files=[_stored(kept)], actor=alice
        )
        record: Message = await Chat.share_message(
            content="look", client_id="c2", room_id=lobby.id, files=[_stored(deleted, "image")],
            actor=alice,
        )  # fmt: skip
        await sending.send(alice, lobby.id, "no files here", None)
        await Chat.delete_message(record, actor=alice)  # as the JSON API's delete does
        everything = sorted([kept, deleted, deleted + ".thumb.webp", fresh, odd])
        jobs = background.current()

        async def prune(args: dict[str, Any]) -> None:
            job = await jobs.insert(background.PruneEphemeral.new(args))

            async def done() -> bool:
                ended = await jobs.get_job(job.id)
                return ended is not None and ended.state == "completed"

            await until(done, "the pruning job")

        await prune({"orphan_days": 3})  # a longer grace: nothing is old enough yet
        assert sorted(os.listdir(media)) == everything
        with caplog.at_level(logging.INFO, logger="examples.chat.background"):
            await prune({})
        assert sorted(os.listdir(media)) == sorted([kept, fresh, odd])
        assert "swept 2 orphaned attachment files" in caplog.text  # the picture, its thumbnail


NOW = 1_800_000_000.0
DAY = 86400.0
PHOTO, PDF = "Xy3kQ1w2e3r4.png", "Ab9z_-8y7x6w.pdf"


@pytest.mark.parametrize(
    ("files", "keep", "swept"),
    [
        pytest.param({PHOTO: 2 * DAY, f"{PHOTO}.thumb.webp": 2 * DAY, PDF: 2 * DAY}, (),
                     [PDF, PHOTO, f"{PHOTO}.thumb.webp"], id="unreferenced-and-old"),
        pytest.param({PHOTO: 2 * DAY, f"{PHOTO}.thumb.webp": 2 * DAY, PDF: 2 * DAY}, (PHOTO,),
                     [PDF], id="referenced-stays-with-its-thumbnail"),
        pytest.param({PDF: 60.0}, (), [], id="fresh-stays"),
        pytest.param({PDF: DAY}, (), [], id="modified-at-the-cutoff-stays"),
        pytest.param({PHOTO: 2 * DAY, f"{PHOTO}.thumb.webp": 60.0}, (), [],
                     id="a-fresh-thumbnail-keeps-its-image"),
        pytest.param({f"{PHOTO}.thumb.webp": 2 * DAY}, (), [f"{PHOTO}.thumb.webp"],
                     id="a-thumbnail-left-alone-goes"),
        pytest.param({"secret": 2 * DAY, "has space.png": 2 * DAY, ".hidden12345": 2 * DAY,
                      "Xy3kQ1w2e3r4.PNG": 2 * DAY, f"{PHOTO}.bak": 2 * DAY,
                      f"{PHOTO}.bak.thumb.webp": 2 * DAY, "x" * 41: 2 * DAY}, (), [],
                     id="names-not-like-a-key-stay"),
    ],
)  # fmt: skip
def test_sweep_deletes_old_files_no_message_refers_to(
    tmp_path: Path, files: dict[str, float], keep: tuple[str, ...], swept: list[str]
) -> None:
    for name, age in files.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (NOW - age, NOW - age))
    assert attachments.sweep(tmp_path, set(keep), NOW - DAY) == swept
    assert sorted(os.listdir(tmp_path)) == sorted(set(files) - set(swept))


def test_sweep_leaves_directories_and_links_alone(tmp_path: Path) -> None:
    assert attachments.sweep(tmp_path / "never-made", set(), NOW) == []
    media, outside = tmp_path / "attachments", tmp_path / "outside.txt"
    media.mkdir()
    outside.write_bytes(b"not the chat's")
    (media / "Dir45678abcd").mkdir()
    (media / PDF).symlink_to(outside)
    for path in (media / "Dir45678abcd", outside):
        os.utime(path, (NOW - 2 * DAY, NOW - 2 * DAY))
    assert attachments.sweep(media, set(), NOW - DAY) == []
    assert sorted(os.listdir(media)) == sorted(["Dir45678abcd", PDF])
    assert outside.read_bytes() == b"not the chat's"


def test_digest_minutes_names_a_bad_value() -> None:
    assert background.digest_minutes({}) == 10.0
    assert background.digest_minutes({"CHAT_DIGEST_MINUTES": "0.5"}) == 0.5
    with pytest.raises(SystemExit, match="'soon' is not a positive number of minutes"):
        background.digest_minutes({"CHAT_DIGEST_MINUTES": "soon"})


class SmtpDown(Worker):
    """Always fails (the admin page's failures)."""

    queue = "chat"
    max_attempts = 1

    async def perform(self, job: Job) -> None:
        raise ValueError(f"smtp down for {job.args['to']}")


async def test_the_admin_jobs_tab_shows_counts_failures_and_acts(
    tmp_path: Path, database: str
) -> None:
    from examples.chat.admin import AdminLive

    async with chat(tmp_path, database, digest_after=3600):
        alice, bob, lobby = await _users()
        jobs = background.current()
        failing = await jobs.insert(SmtpDown.new({"to": "bob"}))

        async def discarded() -> bool:
            job = await jobs.get_job(failing.id)
            return job is not None and job.state == "discarded"

        await until(discarded, "the failing job to be discarded")
        await sending.send(alice, lobby.id, "@bob later", None)
        [digest_job] = await jobs.list_jobs(state="scheduled")

        session = {"user_id": str(alice.id), "admin": True}
        view = await web.testing.live(AdminLive, session=session)
        assert "<h1>Processes" in view.html
        await view.click("tab", {"tab": "jobs"})
        assert view.navigation is not None
        assert view.navigation[0] == "live_patch"
        assert view.navigation[1]["to"] == "/admin?tab=jobs"
        html = view.html
        assert "<h1>Jobs <small>2 in the database" in html
        counts = re.search(r'<tr id="queue-chat">(.*?)</tr>', html, re.DOTALL)
        assert counts is not None
        cells = re.findall(r"<td[^>]*>(\w+)</td>", counts.group(1))
        assert cells == ["chat", *(str(int(s in ("scheduled", "discarded"))) for s in JOB_STATES)]
        failure = _row(html, failing.id)
        assert "SmtpDown" in failure
        assert "ValueError: smtp down for bob" in failure
        assert 'phx-click="retry_job"' in failure
        assert 'phx-click="cancel_job"' not in failure  # a discarded job has ended
        waiting = _row(html, digest_job.id)
        assert "MentionDigest" in waiting
        assert 'phx-click="cancel_job"' in waiting

        await view.click("cancel_job", {"id": str(digest_job.id)})
        assert f"job {digest_job.id} cancelled" in view.html
        cancelled = await jobs.get_job(digest_job.id)
        assert cancelled is not None
        assert cancelled.state == "cancelled"
        assert 'phx-click="retry_job"' in _row(view.html, digest_job.id)

        await view.click("retry_job", {"id": str(failing.id)})
        assert f"job {failing.id} will run again now" in view.html

        async def failed_twice() -> bool:
            job = await jobs.get_job(failing.id)
            return job is not None and job.state == "discarded" and len(job.errors) == 2

        await until(failed_twice, "the retried job to fail again")
        # the page follows by itself (a job event, or its timer)
        with trio.fail_after(10):
            row = rf'<tr id="job-{failing.id}">((?!</tr>).)*attempt 2'
            while not re.search(row, view.html, re.DOTALL):
                await view.sync(timeout=5)
        assert "ValueError: smtp down for bob" in _row(view.html, failing.id)

        await view.click("retry_job", {"id": "nope"})
        assert "does not name a job" in view.html
        await view.click("cancel_job", {"id": str(failing.id)})
        assert f"not cancelled: job {failing.id} has ended already" in view.html

        # not an admin: refused at mount, and no event acts
        with pytest.raises(web.testing.JoinRefused):
            await web.testing.live(
                AdminLive, "http://localhost/?tab=jobs", session={"user_id": str(bob.id)}
            )


def _row(html: str, job_id: int) -> str:
    found = re.search(rf'<tr id="job-{job_id}">(.*?)</tr>', html, re.DOTALL)
    assert found is not None, f"no row for job {job_id}"
    return found.group(1)


async def test_digest_and_jobs_tab_in_chromium(tmp_path: Path) -> None:
    """In a real browser: bob's bell counts the mention, then its digest; alice opens the
    admin page's Jobs tab (the URL follows), sees a failed job's error and retries it."""
    from ..support.browser import in_browser
    from ..support.chat import TIMEOUT_MS
    from ..support.chat import sign_in_browser as sign_in

    async with beam.open_node():
        database = f"sqlite:///{tmp_path / 'chat.db'}"
        endpoint = await build(tmp_path, database=database, demo=True, digest_after=0.5)
        jobs = background.current()
        failing = await jobs.insert(SmtpDown.new({"to": "carol"}))
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            base = f"http://127.0.0.1:{port}"

            def steps(browser: Any) -> str:
                alice = sign_in(browser.new_context(), base, "alice")
                bob = sign_in(browser.new_context(), base, "bob")
                alice.fill("#content", "@bob the digest will tell you")
                alice.press("#content", "Enter")
                bob.wait_for_selector("#notification-count:has-text('1')", timeout=TIMEOUT_MS)
                bob.wait_for_selector("#notification-count:has-text('2')", timeout=TIMEOUT_MS)
                bob.click("#bell")
                bob.wait_for_selector(".notification.unread:has-text('1 unread mention')")

                alice.goto(f"{base}/admin")
                alice.wait_for_selector("#processes", timeout=TIMEOUT_MS)
                # The dead render shows the tab already: a click before the socket joins is lost.
                alice.wait_for_selector("[data-phx-main].phx-connected", timeout=TIMEOUT_MS)
                alice.click("#tab-jobs")
                alice.wait_for_selector("#job-counts #queue-chat", timeout=TIMEOUT_MS)
                row = f"#job-failures #job-{failing.id}"
                alice.wait_for_selector(f"{row}:has-text('smtp down for carol')")
                alice.click(f"{row} button.retry")
                alice.wait_for_selector(f"#said:has-text('job {failing.id} will run again')")
                alice.wait_for_selector(f"{row}:has-text('attempt 2')", timeout=TIMEOUT_MS)
                return str(alice.url)

            url = await in_browser(steps)
            assert url.endswith("/admin?tab=jobs")
            nursery.cancel_scope.cancel()
        await jobs.stop()
