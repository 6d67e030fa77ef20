"""A burst of presence changes merged into one ``presence_diff`` per topic, written sans-I/O.

A shard does not publish each join and leave on its own: it adds them to a :class:`DiffBatch`
and publishes the batch when its mailbox is empty (at once when it is idle), so a thousand
sockets joining one room cost their subscribers a few merged diffs instead of a thousand.

Merging keeps only the last change of each presence (each ``phx_ref``): one that joined and
then left within the batch is a leave only, one that left and came back (a replica marked down
and up again) is a join only. Applied by phoenix.js ``Presence.syncDiff`` (joins first, then
leaves, by ``phx_ref``) the merged diff gives what the single diffs give, whichever state the
client started from between the first change and the last::

    batch = DiffBatch()
    batch.add([alice], [])            # alice joins
    batch.add([bob], [alice])         # bob joins, alice leaves
    batch.take()                      # {"room:lobby": {"joins": {bob}, "leaves": {alice}}}
"""

from __future__ import annotations

from collections.abc import Iterable

from ._state import Diff, Entry, presence_diffs

__all__ = ["DiffBatch"]


class DiffBatch:
    """Joins and leaves waiting to be published, the last change of each presence kept.

    >>> batch = DiffBatch()
    >>> batch.add([entry], [])
    >>> len(batch), list(batch.take())
    (1, ['room:lobby'])
    """

    __slots__ = ("_changes",)

    def __init__(self) -> None:
        # (topic, phx_ref) -> (joined?, entry), in the order of each presence's last change
        self._changes: dict[tuple[str, str], tuple[bool, Entry]] = {}

    def __len__(self) -> int:
        return len(self._changes)

    def add(self, joins: Iterable[Entry], leaves: Iterable[Entry]) -> None:
        """Add the changes of one step, *leaves* after *joins* (as one diff applies them)."""
        changes = self._changes
        for joined, entries in ((True, joins), (False, leaves)):
            for entry in entries:
                key = (entry.topic, entry.phx_ref)
                changes.pop(key, None)  # the last change goes last: dicts keep insertion order
                changes[key] = (joined, entry)

    def take(self) -> dict[str, Diff]:
        """The merged ``presence_diff`` payload of each topic; the batch starts empty again."""
        changes, self._changes = self._changes, {}
        joins = [entry for joined, entry in changes.values() if joined]
        leaves = [entry for joined, entry in changes.values() if not joined]
        return presence_diffs(joins, leaves)
