"""The ready-made notification resource, mark_all_as_read and the initial-state loader."""

from __future__ import annotations

from typing import Any

import pytest

import beam
from domain import Domain, Forbidden, Invalid, define, define_read
from domain.notifications import initial_state, mark_all_as_read, notification_resource

from ..support.backends import Backend
from .app import ChatUser, Notice

InboxNote = notification_resource("InboxNote", user="ChatUser", tablename="inbox_notes")


class Inbox(Domain):
    resources = (ChatUser, Notice, InboxNote)
    register = define(ChatUser, "create", args=("name",))
    notify = define(InboxNote, "notify")
    notes = define_read(InboxNote, "read")
    mark_as_read = define(InboxNote, "mark_as_read")


async def start(backend: Backend) -> None:
    await Inbox.start_link(backend.url, schema=backend.schema)
    await Inbox.create_tables()


async def next_event(event: str) -> Any:
    """The payload of the next *event* on a subscribed topic (others are skipped)."""
    while True:
        got = await beam.receive(timeout=2)
        if got[0] == event:
            return got[1]


async def test_notify_mark_one_and_all_with_counters(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice, bob = await Inbox.register("alice"), await Inbox.register("bob")
        beam.subscribe(f"user:{alice.id}")
        first = await Inbox.notify(
            user_id=alice.id, title="hello", action_url="/rooms/1", authorize=False
        )
        assert (await next_event("new_notification")).id == first.id
        assert await next_event("counter_updated") == {
            "counter": "unread_notifications",
            "value": 1,
        }
        for i in range(3):
            await Inbox.notify(user_id=alice.id, title=f"n{i}", kind="mention", authorize=False)
        await Inbox.notify(user_id=bob.id, title="for bob", authorize=False)
        assert first.is_read is False
        assert first.read_at is None
        assert first.kind == "info"

        assert [n.title for n in await Inbox.notes(actor=bob)] == ["for bob"]
        with pytest.raises(Forbidden):
            await Inbox.mark_as_read(first, actor=bob)
        with pytest.raises(Forbidden):  # no actor may notify: only trusted code
            await Inbox.notify(user_id=bob.id, title="spam", actor=alice)
        marked = await Inbox.mark_as_read(first, actor=alice)
        assert marked.is_read is True
        assert marked.read_at is not None

        beam.unsubscribe(f"user:{alice.id}")
        beam.subscribe(f"user:{alice.id}")
        assert await mark_all_as_read(Inbox, InboxNote, actor=alice) == 3
        assert await next_event("all_notifications_read") == {"count": 3}
        assert await next_event("counter_updated") == {
            "counter": "unread_notifications",
            "value": 0,
        }
        assert all(n.is_read for n in await Inbox.notes(actor=alice))
        bobs = await Inbox.notes(actor=bob)
        assert [n.is_read for n in bobs] == [False]  # bob's are not alice's to mark
        assert await mark_all_as_read(Inbox, InboxNote, actor=alice) == 0


async def test_initial_state_loads_counters_and_recent(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Inbox.register("alice")
        for i in range(5):
            await Inbox.notify(user_id=alice.id, title=f"n{i}", authorize=False)
        await Inbox.create(Notice, input={"user_id": alice.id, "title": "a notice"})
        state = await initial_state(Inbox, alice, notifications=InboxNote, recent=3)
        assert state["counters"] == {"unread_notices": 1, "unread_notifications": 5}
        assert [n.title for n in state["notifications"]] == ["n4", "n3", "n2"]


async def test_idempotency_key_and_validation(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Inbox.register("alice")
        await Inbox.notify(
            user_id=alice.id, title="once", idempotency_key="mention:1", authorize=False
        )
        with pytest.raises(Invalid) as taken:
            await Inbox.notify(
                user_id=alice.id, title="again", idempotency_key="mention:1", authorize=False
            )
        assert taken.value.errors == {"idempotency_key": ["has already been taken"]}
        with pytest.raises(Invalid) as empty:
            await Inbox.notify(user_id=alice.id, title="", authorize=False)
        assert "title" in empty.value.errors
        assert len(await Inbox.notes(actor=alice)) == 1


async def test_equality_with_none_filters_is_null(backend: Backend) -> None:
    """``{"field": None}`` means IS NULL on every read path (cached statement or not)."""
    async with beam.open_node():
        await start(backend)
        alice = await Inbox.register("alice")
        await Inbox.notify(user_id=alice.id, title="plain", authorize=False)
        await Inbox.notify(user_id=alice.id, title="linked", action_url="/rooms/1", authorize=False)
        for actor, authorize in ((alice, True), (None, False)):
            found = await Inbox.read(
                InboxNote, filter={"action_url": None}, actor=actor, authorize=authorize
            )
            assert [n.title for n in found] == ["plain"]
