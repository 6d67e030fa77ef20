"""Notifiers (run after the outermost commit) and AshDispatch-style counters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import beam

if TYPE_CHECKING:
    from ._changeset import Changeset
    from ._resource import Resource

__all__ = [
    "COUNTER_EVENT",
    "COUNTER_TOPIC",
    "Counter",
    "Notification",
    "PubSubNotifier",
    "counter",
    "pubsub",
]


@dataclass(frozen=True)
class Notification:
    """What a notifier receives after commit: the ``resource``, ``action`` name, ``actor``,
    the resulting record ``data`` and the ``changeset``.

    >>> class Audit:                     # a notifier: notifiers = (Audit(),)
    ...     def notify(self, n: Notification) -> None:
    ...         log.info("%s ran %s.%s", n.actor, n.resource.__name__, n.action)
    """

    resource: type[Resource]
    action: str
    actor: Any
    data: Resource
    changeset: Changeset | None = None


@dataclass(frozen=True)
class PubSubNotifier:
    """Broadcast ``(event, record)`` to a topic templated from the record, for the listed
    actions (all create/update/destroy actions when empty).

    >>> notifier = pubsub("room:{room_id}", actions=("send",), event="new_message")
    >>> beam.subscribe(f"room:{room.id}")   # then receives ("new_message", message)
    """

    topic: str
    actions: tuple[str, ...] = ()
    event: str | None = None

    def notify(self, n: Notification) -> None:
        """Broadcast *n* (called after commit, in the caller's process)."""
        if self.actions and n.action not in self.actions:
            return
        topic = self.topic.format(**n.data.__dict__)
        beam.broadcast(topic, (self.event or n.action, n.data))


def pubsub(topic: str, *, actions: Sequence[str] = (), event: str | None = None) -> PubSubNotifier:
    """``pubsub("room:{room_id}", actions=("send",), event="new_message")``.

    >>> notifiers = (pubsub("room:{room_id}", actions=("send",), event="new_message"),
    ...              pubsub("room:{room_id}", actions=("delete",), event="message_deleted"))
    """
    return PubSubNotifier(topic, tuple(actions), event)


#: AshDispatch's defaults: where a counter's new value goes, and the event it is sent as.
COUNTER_TOPIC = "user:{id}"
COUNTER_EVENT = "counter_updated"


@dataclass(frozen=True)
class Counter:
    """A counter declared on a resource (AshDispatch): after a commit of one of ``trigger_on``,
    ``COUNT(*)`` of the records matching ``where`` is recomputed for each audience member
    (the value of ``audience``, an attribute naming the user, in the written records) and
    broadcast as ``(event, {"counter": name, "value": n})`` to ``topic`` formatted with the
    member as ``id`` (by default ``("counter_updated", ...)`` to ``user:<id>``).

    >>> unread = Notification.counters[0]
    >>> await Chat.counter_values(Notification, unread, [alice.id])     # {alice.id: 3}
    """

    name: str
    trigger_on: tuple[str, ...]
    audience: str
    where: Callable[[], Any] | None = None
    topic: str = COUNTER_TOPIC
    event: str = COUNTER_EVENT

    def topic_for(self, member: Any) -> str:
        """The topic of *member*'s value: ``counter.topic_for(user.id) == f"user:{user.id}"``."""
        return self.topic.format(id=member)


def counter(
    name: str,
    *,
    trigger_on: Sequence[str],
    audience: str,
    where: Callable[[], Any] | None = None,
    topic: str = COUNTER_TOPIC,
    event: str = COUNTER_EVENT,
) -> Counter:
    """``counter("unread", trigger_on=("create", "mark_as_read"), audience="user_id",
    where=lambda: Notice.read.is_(False))``; *topic* (``{id}`` is the audience member) and
    *event* say where each new value is broadcast: ``topic="inbox:{id}", event="unread"``.

    >>> counters = (counter("unread_notices", trigger_on=("create", "mark_as_read"),
    ...                     audience="user_id", where=lambda: Notice.is_read.is_(False)),)
    """
    if "{id}" not in topic:
        raise ValueError(
            f"counter {name!r}: topic {topic!r} must contain {{id}} (the audience member), "
            'as in "user:{id}"'
        )
    return Counter(name, tuple(trigger_on), audience, where, topic, event)
