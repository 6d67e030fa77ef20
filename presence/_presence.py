"""The Presence API: track processes in topics under keys, list who is there.

Each function takes ``tracker=`` (the name of a running :class:`~presence.Tracker`,
``"presence"`` by default). Writes are calls to the shard that owns the topic, so they are
async and cancel points; reads are plain functions that read the shard's state directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import beam

from ._errors import AlreadyTracked, NotTracked
from ._state import Meta, Metas, Presences
from ._tracker import DEFAULT_TRACKER, Answer, Track, Untrack, Update, table

__all__ = ["get_by_key", "list", "track", "untrack", "update"]


async def track(
    pid: beam.Pid,
    topic: str,
    key: str,
    meta: Mapping[str, Any] | None = None,
    *,
    tracker: str = DEFAULT_TRACKER,
) -> str:
    """Track *pid* in *topic* as *key* with *meta*; return the presence's ``phx_ref``.

    Subscribers of *topic* receive a :class:`~presence.PresenceDiff` with the join. The
    presence lasts until :func:`untrack` or until *pid* exits (then its leave is published
    too). One pid may be tracked under several keys and topics, and one key may have several
    presences (one per pid: a user with two tabs). Raises :class:`~presence.AlreadyTracked`
    if *pid* is tracked as *key* in *topic* already, :class:`TypeError` for a wrong argument.

    >>> async def join(socket_pid, user_id):
    ...     ref = await presence.track(socket_pid, "room:lobby", user_id, {"status": "away"})
    """
    _check(pid, topic, key)
    checked = _meta(meta, "meta")
    answer = await _ask(tracker, topic, Track(pid, topic, key, checked))
    if answer[0] == "already_tracked":
        raise AlreadyTracked(pid, topic, key)
    return _ok(answer)


async def untrack(
    pid: beam.Pid, topic: str, key: str, *, tracker: str = DEFAULT_TRACKER
) -> None:
    """Stop tracking *pid* in *topic* as *key* (and publish the leave); a presence that does
    not exist is ignored.

    >>> async def leave(socket_pid, user_id):
    ...     await presence.untrack(socket_pid, "room:lobby", user_id)
    """
    _check(pid, topic, key)
    await _ask(tracker, topic, Untrack(pid, topic, key))


async def update(
    pid: beam.Pid,
    topic: str,
    key: str,
    meta: Mapping[str, Any] | Callable[[Meta], Mapping[str, Any]],
    *,
    tracker: str = DEFAULT_TRACKER,
) -> str:
    """Replace the meta of a presence with *meta*, or with ``meta(old_meta)``; return the new
    ``phx_ref``.

    As in Phoenix this is a leave of the old meta and a join of the new one, which carries
    ``"phx_ref_prev"`` (the old ``phx_ref``); both are published in one diff. A function runs
    in the shard and gets a copy of the current meta (``phx_ref`` included); if it raises,
    the exception is raised here and nothing changes. Raises :class:`~presence.NotTracked` if
    there is no such presence.

    >>> async def typing(socket_pid, user_id):
    ...     await presence.update(socket_pid, "room:lobby", user_id,
    ...                           lambda meta: {**meta, "typing": True})
    """
    _check(pid, topic, key)
    change: Meta | Callable[[Meta], Mapping[str, Any]]
    change = meta if callable(meta) else _meta(meta, "meta")
    answer = await _ask(tracker, topic, Update(pid, topic, key, change))
    if answer[0] == "not_tracked":
        raise NotTracked(pid, topic, key)
    return _ok(answer)


def list(topic: str, *, tracker: str = DEFAULT_TRACKER) -> Presences:  # noqa: A001 - Phoenix's name
    """The presences of *topic*: ``{key: {"metas": [meta, ...]}}``, the ``presence_state``
    payload a channel pushes after a join. Each meta has its ``"phx_ref"``.

    Does not block: it reads the shard's state. The result is a fresh copy.

    >>> async def after_join(topic):
    ...     state = presence.list(topic)       # {"alice": {"metas": [{"phx_ref": ...}]}}
    """
    _check_topic(topic)
    found = table(tracker)
    return found.states[found.index(topic)].list(topic)


def get_by_key(topic: str, key: str, *, tracker: str = DEFAULT_TRACKER) -> Metas | None:
    """``{"metas": [...]}`` of *key* in *topic*, or ``None`` if *key* has no presence there.

    >>> async def is_online(user_id):
    ...     return presence.get_by_key("room:lobby", user_id) is not None
    """
    _check_topic(topic)
    _check_key(key)
    found = table(tracker)
    return found.states[found.index(topic)].get_by_key(topic, key)


async def _ask(tracker: str, topic: str, request: Track | Untrack | Update) -> Answer:
    found = table(tracker)
    answer: Answer = await beam.call(found.pids[found.index(topic)], request)
    return answer


def _ok(answer: Answer) -> str:
    status, value = answer
    if status == "error":
        raise value
    ref: str = value
    return ref


def _check(pid: beam.Pid, topic: str, key: str) -> None:
    if not isinstance(pid, beam.Pid):
        raise TypeError(
            f"presence tracks processes: pid must be a beam.Pid, got {type(pid).__name__} "
            f"{pid!r}"
        )
    _check_topic(topic)
    _check_key(key)


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic:
        raise TypeError(
            f"a presence topic must be a non-empty str such as 'room:lobby', got {topic!r}"
        )


def _check_key(key: str) -> None:
    if not isinstance(key, str):
        raise TypeError(
            f"a presence key must be a str (it is a JSON object key on the wire): got "
            f"{type(key).__name__} {key!r}; convert it, e.g. str(user.id)"
        )


def _meta(meta: Mapping[str, Any] | None, what: str) -> Meta:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise TypeError(
            f"presence {what} must be a dict of str keys (it travels as a JSON object), got "
            f"{type(meta).__name__} {meta!r:.100}"
        )
    wrong = [k for k in meta if not isinstance(k, str)]
    if wrong:
        raise TypeError(
            f"presence {what} keys must be str (it travels as a JSON object); these are not: "
            f"{wrong!r:.100}"
        )
    return dict(meta)
