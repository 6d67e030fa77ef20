"""A counter's topic and event are part of its declaration (AshDispatch's are the default)."""

from __future__ import annotations

import uuid

import pytest

import beam
from domain import Domain, Resource, attribute, counter, create, define, read, uuid_primary_key

from ..support.backends import Backend


class Task(Resource):
    __tablename__ = "counted_tasks"
    id: uuid.UUID = uuid_primary_key()
    owner_id: uuid.UUID = attribute()
    done: bool = attribute(default=False)
    actions = (create("create", accept=("owner_id", "done")), read("read"))
    counters = (
        counter(
            "open_tasks",
            trigger_on=("create",),
            audience="owner_id",
            where=lambda: Task.__table__.c.done.is_(False),
            topic="tasks:{id}",
            event="open_tasks_changed",
        ),
        counter("all_tasks", trigger_on=("create",), audience="owner_id"),
    )


class Tasks(Domain):
    resources = (Task,)
    add = define(Task, "create")


async def test_a_counter_goes_to_its_own_topic_as_its_own_event(backend: Backend) -> None:
    owner = uuid.uuid4()
    async with beam.open_node():
        await Tasks.start_link(backend.url, schema=backend.schema)
        await Tasks.create_tables()
        beam.subscribe(f"tasks:{owner}")
        beam.subscribe(f"user:{owner}")
        await Tasks.add(owner_id=owner, done=False)
        got = sorted([await beam.receive(timeout=2), await beam.receive(timeout=2)])
        assert got == [
            ("counter_updated", {"counter": "all_tasks", "value": 1}),  # the defaults
            ("open_tasks_changed", {"counter": "open_tasks", "value": 1}),
        ]


def test_a_counter_topic_must_name_the_member() -> None:
    with pytest.raises(ValueError, match="must contain"):
        counter("n", trigger_on=("create",), audience="owner_id", topic="tasks")
