"""presence: who is online where, pushed to clients as joins and leaves (Phoenix.Presence).

Start a :class:`Tracker` once per node, then track processes (a channel, a LiveView) in topics
under keys (a user id) with a meta dict. Subscribers of the topic receive every change as a
:class:`PresenceDiff` whose payload is the ``presence_diff`` event phoenix.js applies, and
:func:`list` gives the ``presence_state`` payload to push after a join::

    import beam
    import presence

    async def member(user_id):
        await presence.track(beam.self(), "room:lobby", user_id, {"status": "online"})
        await beam.receive()                      # online until told otherwise

    async def main():
        await presence.Tracker.start_link()
        beam.subscribe("room:lobby")
        beam.spawn(member, "alice")
        diff = await beam.receive(presence.PresenceDiff)
        print(diff.event, list(diff.joins))      # presence_diff ['alice']
        print(presence.list("room:lobby")["alice"]["metas"][0]["status"])   # online

    beam.run(main)

A tracked process that exits leaves by itself. The state is a CRDT (:class:`State`, an
add-wins observed-remove set tagged by replica and clock, as Phoenix.Tracker's), written
without I/O, so replicas on several nodes merge their :class:`Delta`\\ s and converge. On a
node that joined a cluster, the trackers of the same name on every node replicate to each
other as Phoenix.Tracker does (see :class:`Tracker` for the periods): ``list`` gives the
same view on every node, and each node's subscribers receive the diffs that lead there.
"""

import beam

from ._errors import AlreadyTracked as AlreadyTracked
from ._errors import NoTracker as NoTracker
from ._errors import NotTracked as NotTracked
from ._presence import get_by_key as get_by_key
from ._presence import list as list  # noqa: A004 - Phoenix's name, used as presence.list
from ._presence import track as track
from ._presence import untrack as untrack
from ._presence import update as update
from ._state import Delta as Delta
from ._state import Entry as Entry
from ._state import State as State
from ._state import phx_ref as phx_ref
from ._state import presence_diffs as presence_diffs
from ._tracker import DEFAULT_TRACKER as DEFAULT_TRACKER
from ._tracker import PresenceDiff as PresenceDiff
from ._tracker import Tracker as Tracker

__all__ = (
    "DEFAULT_TRACKER",
    "AlreadyTracked",
    "Delta",
    "Entry",
    "NoTracker",
    "NotTracked",
    "PresenceDiff",
    "State",
    "Tracker",
    "get_by_key",
    "list",
    "phx_ref",
    "presence_diffs",
    "track",
    "untrack",
    "update",
)


beam.lowlevel.fixup_module_metadata(__name__, globals())
