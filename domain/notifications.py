"""Notifications for users, in the AshDispatch manner (optional: the engine never imports
this module): a ready-made resource, marking all as read in one statement, and the initial
state a user's channel pushes after join. It is built only from what any application could
write with ``domain``'s public pieces: a resource, actions, a policy, a ``pubsub`` notifier
and a counter.

:func:`notification_resource` declares the resource (one row per notification, owned by a
user, only its owner may read or mark it); its ``notify`` action broadcasts
``("new_notification", record)`` to ``user:<id>`` after commit, and its
``unread_notifications`` counter is recomputed and broadcast as ``counter_updated``.
:func:`mark_all_as_read` updates all of an actor's unread notifications in one ``UPDATE``
and sends one counter update; :func:`initial_state` loads a user's counters and recent
notifications concurrently::

    Notification = notification_resource("Notification", user="User")

    class App(Domain):
        resources = (User, Notification)
        notify = define(Notification, "notify")

    await App.notify(user_id=bob.id, title="alice mentioned you", authorize=False)
    state = await initial_state(App, bob)      # {"counters": {...}, "notifications": [...]}
    await mark_all_as_read(App, Notification, actor=bob)
"""

from __future__ import annotations

import inspect
import sys
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

import beam

from ._actions import create, read, set_attribute, update
from ._data import Tx
from ._domain import Domain
from ._notifiers import Counter, counter, pubsub
from ._policy import action_type, authorize_if, policy, relates_to_actor_via
from ._resource import (
    Resource,
    _utcnow,
    attribute,
    belongs_to,
    create_timestamp,
    identity,
    index,
    uuid_primary_key,
)

__all__ = [
    "UNREAD_COUNTER",
    "BaseNotification",
    "initial_state",
    "mark_all_as_read",
    "notification_resource",
]

#: The name of the counter a notification resource declares.
UNREAD_COUNTER = "unread_notifications"


class BaseNotification(Resource):
    """The shape of every :func:`notification_resource` record, for type checkers::

    def payload(record: BaseNotification) -> dict[str, str]:
        return {"title": record.title, "body": record.body}
    """

    __abstract__ = True
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    title: str
    body: str
    action_url: str | None
    idempotency_key: str | None
    is_read: bool
    read_at: datetime | None
    inserted_at: datetime


def notification_resource(
    name: str = "Notification",
    *,
    user: str = "User",
    tablename: str | None = None,
    module: str | None = None,
) -> type[BaseNotification]:
    """Declare a notification resource owned by the resource named *user*.

    Attributes: ``id``, ``user_id``, ``kind`` (``"info"`` unless given), ``title``, ``body``,
    ``action_url``, ``idempotency_key`` (unique: a retried ``notify`` with the same key is
    refused as taken, never stored twice), ``is_read``, ``read_at``, ``inserted_at``.
    Actions: ``notify`` (create; no policy allows it to an actor: trusted code, the server
    itself, calls it with ``authorize=False``), ``read`` (the owner's only), ``mark_as_read``
    (the owner's only). The resource lives in *module* (the caller's, by default), so
    ``"User"`` resolves there first::

        Notification = notification_resource("Notification", user="User")
    """
    if module is None:
        module = sys._getframe(1).f_globals.get("__name__", __name__)
    holder: list[type[BaseNotification]] = []

    def unread() -> Any:
        return holder[0].__table__.c.is_read.is_(False)

    namespace: dict[str, Any] = {
        "__module__": module,
        "__qualname__": name,
        "__doc__": f"A notification for one {user} (declared by notification_resource).",
        # The same fields as the typed shape, evaluated here (this module imports the types).
        "__annotations__": inspect.get_annotations(
            BaseNotification, globals=globals(), eval_str=True
        ),
        "id": uuid_primary_key(),
        "user_id": attribute(),
        "user": belongs_to(user, source_attribute="user_id", allow_nil=False),
        "kind": attribute(max_length=40, default="info"),
        "title": attribute(min_length=1, max_length=200),
        "body": attribute(max_length=2000, default="", allow_empty=True),
        "action_url": attribute(max_length=500),
        "idempotency_key": attribute(max_length=200),
        "is_read": attribute(default=False),
        "read_at": attribute(),
        "inserted_at": create_timestamp(),
        "identities": (identity("unique_idempotency_key", "idempotency_key"),),
        "indexes": (index("user_id", "inserted_at"),),  # a user's latest
        "actions": (
            create(
                "notify",
                accept=("user_id", "kind", "title", "body", "action_url", "idempotency_key"),
            ),
            read("read"),
            update(
                "mark_as_read",
                set_attribute("is_read", True),
                set_attribute("read_at", lambda _cs: _utcnow()),
                accept=(),
            ),
        ),
        "policies": (
            policy(action_type("read", "update"), authorize_if(relates_to_actor_via("user"))),
        ),
        "notifiers": (pubsub("user:{user_id}", actions=("notify",), event="new_notification"),),
        "counters": (
            counter(
                UNREAD_COUNTER,
                trigger_on=("notify", "mark_as_read"),
                audience="user_id",
                where=unread,
            ),
        ),
    }
    if tablename is not None:
        namespace["__tablename__"] = tablename
    cls = type(name, (BaseNotification,), namespace)
    holder.append(cls)
    return cls


def _unread_counter(resource: type[Resource]) -> Counter:
    for c in resource.counters:
        if c.name == UNREAD_COUNTER:
            return c
    raise TypeError(
        f"{resource.__name__} declares no {UNREAD_COUNTER!r} counter; declare it with "
        "notification_resource(...)"
    )


async def mark_all_as_read(domain: type[Domain], resource: type[Resource], *, actor: Any) -> int:
    """Mark every unread notification of *actor* as read in one ``UPDATE``; returns how many.

    After the commit the actor's ``user:<id>`` topic gets ``("all_notifications_read",
    {"count": n})`` and one ``counter_updated`` (not one per row)::

        n = await mark_all_as_read(App, Notification, actor=bob)
    """
    if actor is None or getattr(actor, "id", None) is None:
        raise TypeError("mark_all_as_read needs an actor with an id (whose notifications)")
    table = resource.__table__
    stmt = (
        sa.update(table)
        .where(table.c.user_id == actor.id, table.c.is_read.is_(False))
        .values(is_read=True, read_at=_utcnow())
    )

    def unit(tx: Tx) -> int:
        return tx.execute(stmt, final=True).rowcount

    count, _ = await domain.repo().run(unit)
    unread = _unread_counter(resource)
    beam.broadcast(unread.topic_for(actor.id), ("all_notifications_read", {"count": count}))
    await domain.broadcast_counter(resource, unread, [actor.id])
    return int(count)


async def _counters(domain: type[Domain], user_id: Any) -> dict[str, int]:
    values: dict[str, int] = {}
    for resource in domain.resources:
        for c in resource.counters:
            found = await domain.counter_values(resource, c, [user_id])
            values[c.name] = found[user_id]
    return values


async def _recent(
    domain: type[Domain], resource: type[Resource], actor: Any, limit: int
) -> list[Resource]:
    return await domain.read(resource, actor=actor, sort=("-inserted_at",), limit=limit)


async def initial_state(
    domain: type[Domain],
    actor: Any,
    *,
    notifications: type[Resource] | None = None,
    recent: int = 20,
) -> dict[str, Any]:
    """*actor*'s counters (every counter the domain's resources declare, for this user) and
    the *recent* latest notifications (newest first, as *actor* may read them), loaded
    concurrently: ``{"counters": {name: n}, "notifications": [record, ...]}``.

    Call it from a beam process (each half runs in a task process of its own)::

        state = await initial_state(App, bob, notifications=Notification)
    """
    counters: beam.Task[Any] = beam.Task.async_(_counters, domain, actor.id)
    if notifications is None:
        return {"counters": await counters.await_(), "notifications": []}
    latest: beam.Task[Any] = beam.Task.async_(_recent, domain, notifications, actor, recent)
    values, records = await beam.Task.await_many([counters, latest])
    return {"counters": values, "notifications": records}
