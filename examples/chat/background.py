"""The chat's background jobs (:mod:`domain.jobs`, Oban's model): what runs outside a request.

* **Mention digests.** A mention's notification and a :class:`MentionDigest` job scheduled
  ``digest_after`` seconds later (``CHAT_DIGEST_MINUTES``, 10 minutes by default) are
  written in one transaction: the job exists exactly when the notification does. Reading
  the mention (or marking all read) cancels the waiting job. If it still runs and the
  mention is still unread, the user gets one ``digest`` notification listing their unread
  mentions (at most :data:`DIGEST_LINES` lines), and the waiting digest jobs of the
  mentions it covers are cancelled in the same transaction: a burst of mentions makes one
  digest, not one per mention. The job also checks the mention is unread when it runs, so a
  read that lands between the two steps (or a cancel that failed) costs nothing.
* **Nightly pruning.** A cron entry on the application (``0 3 * * *`` in ``CHAT_TIMEZONE``,
  UTC by default; one job per night for the whole cluster) runs :class:`PruneEphemeral`:
  it deletes expired sign-in tokens (older than their context allows, which
  :mod:`examples.chat.sessions` refuses anyway) and read notifications older than
  :data:`READ_NOTIFICATIONS_KEPT_DAYS`, and sweeps the attachments directory
  (:func:`examples.chat.attachments.sweep`): the files of messages deleted elsewhere than
  on the page (the JSON API, a channel's ``delete_message``) and uploads never sent with
  a message (stored, but the message was not written) are removed once no message refers
  to them and they are :data:`ORPHANED_FILES_KEPT_DAYS` old (a file being sent is not
  referred to yet). Ended jobs themselves are pruned by the job system after a week.

The job system is one per node, made by :func:`setup` (called by
:func:`examples.chat.app.build`) and running under the chat's supervisor; its queue
``chat`` runs :data:`CONCURRENCY` jobs at once per node. On PostgreSQL the nodes share the
queue (``FOR UPDATE SKIP LOCKED``, woken by ``NOTIFY``); on SQLite it polls::

    jobs = setup(digest_after=600, media=data_dir / "attachments")
    app = Application("chat.sup", [Chat.child_spec(url), jobs.child_spec(), ...])
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
import trio

import domain
from domain.jobs import Cancel, Cron, Job, Jobs, Worker

from . import attachments
from .accounts import API_MAX_AGE, SESSION_MAX_AGE
from .model import Chat, Message, Notification, User, UserToken

__all__ = [
    "CONCURRENCY",
    "DIGEST_LINES",
    "ORPHANED_FILES_KEPT_DAYS",
    "READ_NOTIFICATIONS_KEPT_DAYS",
    "MentionDigest",
    "PruneEphemeral",
    "cancel_digests",
    "current",
    "digest_after",
    "schedule_digest",
    "setup",
]

logger = logging.getLogger("examples.chat.background")

#: Minutes a mention stays unread before its digest (the environment's default).
DIGEST_MINUTES_ENV: Final = "CHAT_DIGEST_MINUTES"
#: The time zone of the nightly pruning's ``0 3 * * *``.
TIMEZONE_ENV: Final = "CHAT_TIMEZONE"
#: Jobs of the ``chat`` queue run at once on each node.
CONCURRENCY: Final = 5
#: At most this many mentions are listed in a digest's body.
DIGEST_LINES: Final = 5
#: Read notifications are deleted by the nightly pruning after this many days.
READ_NOTIFICATIONS_KEPT_DAYS: Final = 30
#: An attachment file no message refers to is deleted by the nightly pruning once it is this
#: many days old (younger, it may be a file whose message is being written).
ORPHANED_FILES_KEPT_DAYS: Final = 1
#: Seconds a token of each context lives (as :mod:`examples.chat.sessions` checks).
TOKEN_MAX_AGE: Final = {"session": SESSION_MAX_AGE, "api": API_MAX_AGE}

_current: dict[str, Any] = {}


def digest_minutes(environ: dict[str, str] | None = None) -> float:
    """``CHAT_DIGEST_MINUTES`` (a positive number), else 10; raises :class:`SystemExit`
    naming a bad value.

    >>> digest_minutes({"CHAT_DIGEST_MINUTES": "2.5"})
    2.5
    """
    raw = (os.environ if environ is None else environ).get(DIGEST_MINUTES_ENV, "").strip()
    if not raw:
        return 10.0
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise SystemExit(
            f"chat: {DIGEST_MINUTES_ENV}={raw!r} is not a positive number of minutes; set it "
            "to e.g. 10, or unset it"
        )
    return minutes


class MentionDigest(Worker):
    """The digest of a user's unread mentions, due ``digest_after`` seconds after a mention
    (args: ``notification_id``, ``user_id``, as text)."""

    queue = "chat"
    max_attempts = 5

    async def perform(self, job: Job) -> Cancel | None:
        user_id = uuid.UUID(str(job.args["user_id"]))
        mention_id = uuid.UUID(str(job.args["notification_id"]))
        users = await Chat.read(User, filter={"id": user_id}, limit=1)
        if not users:
            return Cancel("the user no longer exists")
        user = users[0]
        table = Notification.__table__
        unread = await Chat.read(
            Notification,
            actor=user,
            filter=(table.c.kind == "mention") & table.c.is_read.is_(False),
            sort=("inserted_at",),
        )
        if not any(n.id == mention_id for n in unread):
            return Cancel("the mention was read (or removed) before its digest was due")
        count = len(unread)
        lines = [f"{n.title}: {n.body}"[:200] for n in unread[:DIGEST_LINES]]
        if count > DIGEST_LINES:
            lines.append(f"and {count - DIGEST_LINES} more")
        jobs = current()
        try:
            async with Chat.transaction():
                await Chat.mention(
                    user_id=user.id,
                    kind="digest",
                    title=f"{count} unread mention{'s' if count != 1 else ''}",
                    body="\n".join(lines)[:2000],
                    action_url=unread[0].action_url,
                    # Named after the newest mention it covers: digest jobs running at once
                    # (due together) see the same mentions and write one digest.
                    idempotency_key=f"digest:{unread[-1].id}",
                    authorize=False,
                )
                for n in unread:  # covered by this digest: theirs would say the same
                    await jobs.cancel_waiting(MentionDigest, {"notification_id": str(n.id)})
        except domain.Invalid as exc:
            if "idempotency_key" not in exc.errors:
                raise
            return Cancel("another digest job covered these mentions")
        return None


class PruneEphemeral(Worker):
    """The nightly pruning: expired tokens, old read notifications, orphaned attachment
    files (see the module doc). Args (for tests): ``read_days``, ``orphan_days``."""

    queue = "chat"
    max_attempts = 3
    timeout = 300.0

    async def perform(self, job: Job) -> None:
        now = datetime.now(UTC)
        tokens, notes = UserToken.__table__, Notification.__table__
        kept = timedelta(days=int(job.args.get("read_days", READ_NOTIFICATIONS_KEPT_DAYS)))

        def prune(tx: Any) -> tuple[int, int]:
            expired = sa.or_(
                *(
                    (tokens.c.context == context) & (tokens.c.inserted_at < now - timedelta(0, age))
                    for context, age in TOKEN_MAX_AGE.items()
                )
            )
            gone = tx.execute(sa.delete(tokens).where(expired)).rowcount
            old = notes.c.is_read.is_(True) & (notes.c.read_at < now - kept)
            read = tx.execute(sa.delete(notes).where(old)).rowcount
            return int(gone), int(read)

        (gone, read), _ = await Chat.repo().run(prune)
        logger.info("pruned %d expired tokens and %d old read notifications", gone, read)
        grace = timedelta(days=float(job.args.get("orphan_days", ORPHANED_FILES_KEPT_DAYS)))
        await _sweep_attachments(now - grace)


async def _sweep_attachments(before: datetime) -> None:
    """Delete the attachment files no message refers to and not modified since *before*
    (nothing when :func:`setup` was not told the directory)."""
    media: Path | None = _current.get("media")
    if media is None:
        return
    messages = Message.__table__

    def referenced(tx: domain.Tx) -> set[str]:
        has_files = messages.c.attachments.is_not(None)
        rows = tx.execute(sa.select(messages.c.attachments).where(has_files))
        return {str(a.get("key")) for (files,) in rows for a in files or () if isinstance(a, dict)}

    keep, _ = await Chat.repo().run(referenced, read_only=True)
    swept = await trio.to_thread.run_sync(attachments.sweep, media, keep, before.timestamp())
    logger.info("swept %d orphaned attachment files from %s", len(swept), media)


def setup(
    *,
    digest_after: float | None = None,
    timezone: str | None = None,
    media: Path | None = None,
    **options: Any,
) -> Jobs:
    """Make this node's job system for the chat and remember it (see :func:`current`):
    mention digests after *digest_after* seconds (default ``CHAT_DIGEST_MINUTES``), the
    nightly pruning in *timezone* (default ``CHAT_TIMEZONE``, else UTC), which sweeps the
    attachments directory *media* (``None``: no sweep). *options* go to
    :class:`domain.jobs.Jobs`; scheduled jobs are claimed at most ``poll_interval`` late
    (default a tenth of *digest_after*, between 0.05 and 1 s).

    >>> jobs = setup(digest_after=0.2, media=Path(".chat-data/attachments"))
    """
    after = digest_minutes() * 60 if digest_after is None else float(digest_after)
    if not after > 0:
        raise ValueError(f"digest_after must be a positive number of seconds, not {after!r}")
    zone = timezone or os.environ.get(TIMEZONE_ENV, "").strip() or "UTC"
    try:
        nightly = Cron("0 3 * * *", PruneEphemeral, timezone=zone)
    except Exception as exc:
        raise SystemExit(
            f"chat: {TIMEZONE_ENV}={zone!r} is not a time zone ({exc}); use a name such as "
            "Europe/Paris, or unset it for UTC"
        ) from None
    options.setdefault("poll_interval", max(0.05, min(1.0, after / 10)))
    jobs = Jobs(Chat, queues={"chat": CONCURRENCY}, crons=[nightly], name="chat.jobs", **options)
    _current.update(jobs=jobs, digest_after=after, media=media)
    return jobs


def current() -> Jobs:
    """The job system :func:`setup` made on this node; :class:`RuntimeError` before."""
    try:
        jobs: Jobs = _current["jobs"]
    except KeyError:
        raise RuntimeError("the chat's jobs are not set up: call background.setup()") from None
    return jobs


def digest_after() -> float:
    """Seconds a mention stays unread before its digest (as :func:`setup` was told)."""
    current()
    return float(_current["digest_after"])


async def schedule_digest(mention: Any) -> None:
    """Insert the digest job of the notification *mention*: inside a ``Chat.transaction``
    (as :func:`examples.chat.notifications.notify_mentions` calls it) it joins it.

    >>> async with Chat.transaction():
    ...     note = await Chat.mention(...)
    ...     await schedule_digest(note)
    """
    args = {"notification_id": str(mention.id), "user_id": str(mention.user_id)}
    await current().insert(MentionDigest.new(args, schedule_in=digest_after()))


async def cancel_digests(user: User, mention_id: uuid.UUID | None = None) -> list[int]:
    """Cancel the waiting digest jobs of *user*'s mention *mention_id* (all of the user's
    when ``None``: everything was read); the jobs' ids.

    >>> await cancel_digests(bob, note.id)
    """
    if not _current:
        return []
    args = {"user_id": str(user.id)}
    if mention_id is not None:
        args["notification_id"] = str(mention_id)
    return await current().cancel_waiting(MentionDigest, args)
