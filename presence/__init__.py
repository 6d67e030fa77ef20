"""presence: Phoenix-style Presence.

Will hold the Presence tracker (track, untrack, update, list, presence_diff broadcasts) and its
state, an add-wins observed-remove CRDT written sans-I/O. Not written yet.
"""

__all__: tuple[str, ...] = ()
