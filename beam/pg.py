"""Process groups, as OTP's ``pg``: named groups of processes, known on every node.

A process of any node joins a group (any hashable value that can cross nodes); every node
of the cluster then lists it among the group's members, until it leaves, exits, or its node
goes down. Reading a group sends no message: each node keeps its own replicated view::

    import beam

    async def worker():
        await beam.pg.join("workers", beam.self())
        while True:
            job = await beam.receive()
            ...

    async def dispatch(job):
        for pid in beam.pg.members("workers"):       # on every node
            beam.send(pid, job)

:func:`members` lists the members on every node, :func:`local_members` those of this node
only; a process may join a group several times and is then listed once per join.
:func:`monitor` returns a group's members and sends the caller a :class:`GroupChanged` for
every later join and leave (:func:`monitor_scope`: for every group).

Only a node's own processes join and leave through it. Each node runs one server per
*scope* (``"pg"`` by default, registered under that name): it owns the node's view, monitors
the local members, and exchanges joins and leaves with the server of the same scope on every
other node, as OTP's ``pg`` does (a discover and a full sync when a node comes up, then each
change as it happens; a node that goes down takes its members with it). The default scope
starts on every node that joins a cluster (:mod:`beam.cluster`), and on a node alone at its
first join, so groups work the same on one node. Other scopes are started with
:func:`start` on each node that uses them; the functions take ``scope=``.

Membership is eventually consistent, as in OTP: just after a change, nodes may briefly
disagree, and may list concurrent joins in different orders.
"""

from __future__ import annotations

import contextlib

from ._pg import (
    DEFAULT_SCOPE,
    GroupChanged,
    demonitor,
    join,
    leave,
    local_members,
    members,
    monitor,
    monitor_scope,
    start,
    which_groups,
)

__all__ = [
    "DEFAULT_SCOPE",
    "GroupChanged",
    "demonitor",
    "join",
    "leave",
    "local_members",
    "members",
    "monitor",
    "monitor_scope",
    "start",
    "which_groups",
]

# Reprs, tracebacks and docs say beam.pg.join, not beam._pg.join.
for _name in __all__:
    with contextlib.suppress(AttributeError, TypeError):
        globals()[_name].__module__ = __name__
