"""How a :class:`~presence.Delta` travels between nodes: packed into plain lists; sans-I/O.

The codec could carry a ``Delta`` of ``Entry`` records as they are, but each record and each
pid would be an extension value encoded on its own: about 170 bytes and 16 µs (encoding and
decoding) per presence, so a transfer of 10,000 presences would hold the sender's and the
receiver's event loops for 80 ms each. Packed, a presence is a short list of plain values
(its replica and its pid's node as indexes into small tables), which msgpack handles in C:
about 75 bytes and 4 µs (measured on this project's 2-core machine)::

    packed = pack(delta, local=beam.NodeId("chat1", 7))
    assert unpack(packed, local=beam.NodeId("chat2", 9)) == delta   # pids now remote ones

:func:`unpack` checks everything it rebuilds and raises :class:`ValueError` for anything
malformed, so a shard never takes a broken delta in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import beam

from ._state import Delta, Entry, Tag

__all__ = ["PackedDelta", "pack", "unpack"]

#: Pid node indexes that are not into the node table: the pid is not a beam pid (it travels
#: as it is), or it is a local pid of a sender that has no node identity.
_PLAIN = -1
_LOCAL = -2


@dataclass(frozen=True, slots=True)
class PackedDelta:
    """A :class:`~presence.Delta` in its wire form (see the module docs).

    ``replicas`` and ``nodes`` (``[name, incarnation]``) are tables the rest refers to by
    index. Each entry is ``[replica, clock, topic, key, meta, node, pid]``; ``cloud`` and
    ``elided`` hold ``[replica, clock, clock, ...]`` per replica.
    """

    replica: str
    replicas: list[str]
    nodes: list[list[Any]]
    entries: list[list[Any]]
    context: dict[str, int]
    cloud: list[list[Any]]
    elided: list[list[Any]]

    @property
    def size(self) -> int:
        """How many presences it carries."""
        return len(self.entries)


beam.cluster.register(PackedDelta, "presence.PackedDelta")


def pack(delta: Delta, *, local: beam.NodeId | None) -> PackedDelta:
    """The wire form of *delta*, made by the node *local* (``None``: not in a cluster).

    >>> pack(state.take_delta(), local=beam.NodeId("chat1", 7)).size
    1
    """
    replicas: dict[str, int] = {}
    nodes: dict[beam.NodeId, int] = {}
    entries: list[list[Any]] = []
    for (replica, clock), entry in delta.values.items():
        r = replicas.get(replica)
        if r is None:
            r = replicas[replica] = len(replicas)
        pid = entry.pid
        value: Any
        if type(pid) is beam.Pid:
            node = pid.node if pid.node is not None else local
            if node is None:
                n, value = _LOCAL, pid.id
            else:
                n = nodes.get(node, -3)
                if n == -3:
                    n = nodes[node] = len(nodes)
                value = pid.id
        else:
            n, value = _PLAIN, pid
        entries.append([r, clock, entry.topic, entry.key, entry.meta, n, value])
    return PackedDelta(
        delta.replica,
        list(replicas),
        [[node.name, node.incarnation] for node in nodes],
        entries,
        dict(delta.context),
        _pack_dots(delta.cloud),
        _pack_dots(delta.elided),
    )


def _pack_dots(dots: frozenset[Tag]) -> list[list[Any]]:
    by_replica: dict[str, list[Any]] = {}
    for replica, clock in dots:
        group = by_replica.get(replica)
        if group is None:
            by_replica[replica] = [replica, clock]
        else:
            group.append(clock)
    return list(by_replica.values())


def unpack(packed: PackedDelta, *, local: beam.NodeId | None) -> Delta:
    """The :class:`~presence.Delta` *packed* carries, received by the node *local*: pids of
    that very node become local pids. Raises :class:`ValueError` if it is malformed.

    >>> unpack(packed, local=beam.NodeId("chat2", 9))
    Delta(replica='...', values={...}, ...)
    """
    if type(packed) is not PackedDelta or type(packed.replica) is not str:
        raise ValueError("not a packed delta")
    replicas, nodes_raw, rows = packed.replicas, packed.nodes, packed.entries
    if type(replicas) is not list or not all(type(r) is str for r in replicas):
        raise ValueError("bad replica table")
    if type(nodes_raw) is not list or type(rows) is not list:
        raise ValueError("bad node table or entries")
    nodes: list[beam.NodeId | None] = []
    for node in nodes_raw:
        if type(node) is not list or len(node) != 2:
            raise ValueError("bad node")
        name, incarnation = node
        if type(name) is not str or type(incarnation) is not int:
            raise ValueError("bad node")
        same = local is not None and local.name == name and local.incarnation == incarnation
        nodes.append(None if same else beam.NodeId(name, incarnation))
    values: dict[Tag, Entry] = {}
    count = len(nodes)
    for row in rows:
        if type(row) is not list or len(row) != 7:
            raise ValueError("bad entry")
        r, clock, topic, key, meta, n, pid = row
        if (
            type(r) is not int
            or not 0 <= r < len(replicas)
            or type(clock) is not int
            or type(topic) is not str
            or type(key) is not str
            or type(meta) is not dict
            or type(meta.get("phx_ref")) is not str
            or type(n) is not int
        ):
            raise ValueError("bad entry")
        if n >= 0:
            if n >= count or type(pid) is not int:
                raise ValueError("bad pid")
            pid = beam.Pid(pid, nodes[n])
        elif n == _LOCAL:
            if type(pid) is not int:
                raise ValueError("bad pid")
            pid = beam.Pid(pid)
        elif n != _PLAIN:
            raise ValueError("bad pid")
        tag = (replicas[r], clock)
        values[tag] = Entry(topic, key, pid, meta, tag)
    context = packed.context
    if type(context) is not dict or not all(
        type(r) is str and type(c) is int for r, c in context.items()
    ):
        raise ValueError("bad context")
    return Delta(
        packed.replica,
        values,
        context,
        _unpack_dots(packed.cloud),
        _unpack_dots(packed.elided),
    )


def _unpack_dots(groups: Any) -> frozenset[Tag]:
    if type(groups) is not list:
        raise ValueError("bad dots")
    dots: list[Tag] = []
    for group in groups:
        if type(group) is not list or not group or type(group[0]) is not str:
            raise ValueError("bad dots")
        replica = group[0]
        for clock in group[1:]:
            if type(clock) is not int:
                raise ValueError("bad dots")
            dots.append((replica, clock))
    return frozenset(dots)
