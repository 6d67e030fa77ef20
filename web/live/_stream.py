"""Streams: long lists the server does not keep, only the inserts and deletes it sends.

A stream is an assign that iterates, in a template, as ``(dom_id, item)`` pairs of the items
inserted since the last render; the rendered tree carries them with the operations the client
applies to its DOM (append or prepend, delete, reset, limit). After every render the pending
operations are dropped, so a chat of a million messages costs the server nothing per message
kept. The container needs ``phx-update="stream"`` and each child the ``id`` it is given::

    <div id="messages" phx-update="stream">
      {% for dom_id, m in messages %}<p id="{{ dom_id }}">{{ m.body }}</p>{% endfor %}
    </div>

    socket.stream("messages", latest)             # in mount
    socket.stream_insert("messages", message)     # later, as they come
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stream", "default_dom_id"]


def default_dom_id(name: str) -> Callable[[Any], str]:
    """``"<name>-<id>"`` from an item's ``id`` (a key or an attribute)."""

    def dom_id(item: Any) -> str:
        key = item.get("id") if isinstance(item, dict) else getattr(item, "id", None)
        if key is None:
            raise ValueError(
                f"stream {name!r}: item {item!r:.80} has no id; pass dom_id= to socket.stream"
            )
        return f"{name}-{key}"

    return dom_id


@dataclass(eq=False)
class Stream:
    """One stream's pending operations (see the module documentation)."""

    name: str
    ref: str
    dom_id: Callable[[Any], str]
    inserts: list[tuple[str, int, int | None, bool, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    reset: bool = False

    def insert(
        self, item: Any, *, at: int = -1, limit: int | None = None, update_only: bool = False
    ) -> None:
        """Queue *item* for insertion at *at* (-1 appends, 0 prepends)."""
        self.inserts.append((self.dom_id(item), at, limit, update_only, item))

    def delete(self, item: Any) -> None:
        """Queue the removal of *item* (or of the DOM id given as a string)."""
        self.deletes.append(item if isinstance(item, str) else self.dom_id(item))

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter([(dom_id, item) for dom_id, _, _, _, item in self.inserts])

    def __len__(self) -> int:
        return len(self.inserts)

    @property
    def pending(self) -> bool:
        """Whether there is anything to send."""
        return bool(self.inserts or self.deletes or self.reset)

    def operations(self) -> list[Any]:
        """The ``stream`` entry of the rendered tree: ``[ref, inserts, deletes(, reset)]``."""
        ops: list[Any] = [
            self.ref,
            [
                [dom_id, at, limit, update_only]
                for dom_id, at, limit, update_only, _ in self.inserts
            ],
            list(self.deletes),
        ]
        if self.reset:
            ops.append(True)
        return ops

    def sent(self) -> None:
        """Forget what was rendered: the client has it now."""
        self.inserts.clear()
        self.deletes.clear()
        self.reset = False
