"""The errors of the presence API, each naming the value at fault and the fix."""

from __future__ import annotations

from typing import Any

__all__ = ["AlreadyTracked", "NoTracker", "NotTracked"]


class AlreadyTracked(ValueError):
    """``track`` was asked to track a pid that is tracked under that key in that topic already
    (Phoenix's ``{:error, {:already_tracked, pid, topic, key}}``).

    ``pid``, ``topic`` and ``key`` name the presence.
    """

    def __init__(self, pid: Any, topic: str, key: str) -> None:
        super().__init__(
            f"{pid} is already tracked as {key!r} in {topic!r}; change its meta with "
            "presence.update(...), or untrack it first"
        )
        self.pid = pid
        self.topic = topic
        self.key = key


class NotTracked(LookupError):
    """``update`` was asked to change a presence that does not exist (Phoenix's
    ``{:error, :nopresence}``)."""

    def __init__(self, pid: Any, topic: str, key: str) -> None:
        super().__init__(
            f"{pid} is not tracked as {key!r} in {topic!r}; track it with presence.track(...) "
            "first"
        )
        self.pid = pid
        self.topic = topic
        self.key = key


class NoTracker(LookupError):
    """No presence tracker of that name runs on this node."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no presence tracker named {name!r} is running on this node; start one with "
            f"`await presence.Tracker.start_link(name={name!r})` (under your supervisor)"
        )
        self.name = name
