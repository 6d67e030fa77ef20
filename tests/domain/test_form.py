"""domain.Form: a form bound to an action (validate without writing, submit with policies)."""

from __future__ import annotations

import pytest

import beam
from domain import Form, Nested

from ..support.backends import Backend
from .app import Chat, ChatUser, Message, Room


async def start(backend: Backend) -> None:
    await Chat.start_link(backend.url, schema=backend.schema)
    await Chat.create_tables()


async def test_validate_casts_and_checks_without_writing_or_notifying(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        room = await Chat.open_room("lobby")
        beam.subscribe(f"room:{room.id}")
        form = Form.for_create(Chat, Message, "send", actor=alice)
        assert form.name == "message"
        assert form.fields == ("content", "room_id")
        assert form.value("content") is None

        # The user typed into content; room_id is still untouched (the client marks it).
        typed = {"content": "<b>", "room_id": "", "_unused_room_id": ""}
        form = form.validate(typed)
        assert form.errors("content") == ("no html",)
        assert form.errors("room_id") == ()  # required, but not touched: not shown yet
        assert form.all_errors["room_id"] == ("is required",)
        assert form.value("content") == "<b>"  # what was typed stays
        assert not form.valid

        form = form.validate({"content": "x" * 201, "room_id": str(room.id)})
        assert form.errors("content") == ("must be at most 200 characters",)
        assert form.errors("room_id") == ()

        form = form.validate({"content": "hello", "room_id": str(room.id)})
        assert form.valid
        assert await Chat.list_messages(actor=alice) == []  # nothing written
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(timeout=0.2)  # nothing notified


async def test_submit_writes_or_answers_errors_in_the_same_shape(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        room = await Chat.open_room("lobby")
        form = Form.for_create(Chat, Message, "send", actor=alice)

        record, failed = await form.submit({"content": "", "room_id": str(room.id)})
        assert record is None
        assert failed.submitted
        assert failed.errors("content") == ("is required",)  # shown: the form was submitted
        assert failed.value("room_id") == str(room.id)

        beam.subscribe(f"room:{room.id}")
        record, done = await failed.submit({"content": "hi", "room_id": str(room.id)})
        assert record is not None
        assert (record.content, record.author_id) == ("hi", alice.id)
        assert done.valid
        event, data = await beam.receive(timeout=2)
        assert (event, data.id) == ("new_message", record.id)


async def test_policies_refuse_a_submit_as_an_error_of_the_whole_form(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        room = await Chat.open_room("lobby")
        form = Form.for_create(Chat, Message, "send", actor=None)  # no actor: forbidden
        record, refused = await form.submit({"content": "hi", "room_id": str(room.id)})
        assert record is None
        assert refused.errors("") == ("you are not allowed to do this",)
        assert refused.value("content") == "hi"


async def test_update_forms_start_from_the_record_and_identities_speak_per_field(
    backend: Backend,
) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        room = await Chat.open_room("lobby")
        message = await Chat.send_message(content="first", room_id=room.id, actor=alice)
        form = Form.for_update(Chat, message, "edit", actor=alice)
        assert form.fields == ("content",)
        assert form.value("content") == "first"
        record, _ = await form.submit({"content": "second"})
        assert record is not None
        assert record.content == "second"

        signup = Form.for_create(Chat, ChatUser, "create", name="user")
        assert signup.validate({"name": "bob", "is_admin": "false"}).valid
        record, taken = await signup.submit({"name": "alice", "is_admin": ""})
        assert record is None
        assert taken.errors("name") == ("has already been taken",)


async def test_nested_forms_create_related_records_all_or_none(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        alice = await Chat.register("alice")
        nested = {"messages": Nested(Message, "send", link="room_id")}
        form = Form.for_create(Chat, Room, "create", actor=alice, nested=nested)
        form = form.add("messages").add("messages")
        first, second = form.forms("messages")
        assert (first.name, first.id) == ("room[messages][0]", "room_messages_0")
        assert second.fields == ("content",)  # the link is the parent's to set

        typed = {
            "name": "ops",
            "messages": {"0": {"content": "<b>"}, "1": {"content": "", "_unused_content": ""}},
        }
        form = form.validate(typed)
        first, second = form.forms("messages")
        assert first.errors("content") == ("no html",)
        assert second.errors("content") == ()  # untouched
        assert second.all_errors == {"content": ("is required",)}  # no error for room_id

        record, refused = await form.submit(typed)
        assert record is None
        assert [f.errors("content") for f in refused.forms("messages")] == [
            ("no html",),
            ("is required",),
        ]
        assert refused.forms("messages")[0].value("content") == "<b>"
        assert await Chat.read(Room) == []  # the room was rolled back with its messages

        typed["messages"] = {"1": {"content": "second"}, "0": {"content": "first"}}
        record, done = await refused.submit(typed)
        assert record is not None
        assert done.valid
        got = await Chat.read(Room, actor=alice, load=("messages",))
        assert [r.name for r in got] == ["ops"]
        assert sorted(m.content for m in got[0].messages) == ["first", "second"]
        assert len(refused.remove("messages", 0).forms("messages")) == 1
