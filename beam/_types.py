"""The plain values of the runtime: pids, references, exit reasons and signal messages.

Everything here is immutable and hashable, so it can travel in messages, be used as a
dictionary key and be compared across processes. None of it holds a live object::

    >>> Pid(42)
    <0.42.0>
    >>> Exit(Pid(7), "killed")
    Exit(pid=<0.7.0>, reason='killed')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple, final

__all__ = [
    "KILL",
    "KILLED",
    "NOCONNECTION",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "Down",
    "Exit",
    "From",
    "NodeDown",
    "NodeId",
    "NodeUp",
    "Pid",
    "Ref",
    "is_normal_exit",
]

#: A process whose body returned exits with this reason. It does not kill linked processes.
NORMAL: Final = "normal"
#: Sent with :func:`beam.exit`, this reason cannot be trapped; the target dies as ``KILLED``.
KILL: Final = "kill"
#: The reason a process dies with after an untrappable ``KILL``.
KILLED: Final = "killed"
#: An orderly stop (supervisors send it). Like ``("shutdown", detail)`` it writes no crash
#: report and does not restart a transient child, but it kills non-trapping linked processes.
SHUTDOWN: Final = "shutdown"
#: The reason given for a process that did not exist (linking or monitoring a dead pid).
NOPROC: Final = "noproc"
#: The reason given when the node of a linked or monitored process went down or is unknown.
NOCONNECTION: Final = "noconnection"


def is_normal_exit(reason: object) -> bool:
    """Tell whether *reason* is a clean exit in OTP's sense.

    ``"normal"``, ``"shutdown"`` and ``("shutdown", anything)`` are clean: they write no crash
    report and a transient child exiting with them is not restarted.

    >>> is_normal_exit("normal"), is_normal_exit(("shutdown", "bye")), is_normal_exit("kill")
    (True, True, False)
    """
    if reason in (NORMAL, SHUTDOWN):
        return True
    return isinstance(reason, tuple) and len(reason) == 2 and reason[0] == SHUTDOWN


@dataclass(frozen=True, slots=True)
class NodeId:
    """The identity of a node in a cluster: its name and its incarnation.

    The incarnation is a random 64-bit number the node picks when it starts, so a restarted
    node (same name) is a new incarnation: pids of the old one never alias its processes.

    >>> NodeId("chat1", 7)
    NodeId(name='chat1', incarnation=7)
    """

    name: str
    incarnation: int


# The small index this OS process gives each remote node it has seen, as Erlang prints
# <N.x.y>: 0 is this node, other nodes are numbered from 1 in the order first seen.
_node_indexes: dict[NodeId, int] = {}


def node_index(node: NodeId) -> int:
    """The index printed in the pids of the remote node *node* (assigned on first sight).

    >>> node_index(NodeId("far", 1)) == node_index(NodeId("far", 1))
    True
    """
    index = _node_indexes.get(node)
    if index is None:
        index = _node_indexes[node] = len(_node_indexes) + 1
    return index


@final
class Pid:
    """The identity of a process: small, immutable, hashable, never reused within a node.

    A pid of this node has ``node=None`` and prints as Erlang prints local pids; a pid of a
    process on another node carries that node's :class:`NodeId` and prints ``<N.x.0>``, with
    ``N`` the small index this node gives the remote node (:func:`node_index`). Two pids are
    equal only if they have the same number on the same node incarnation. Only the runtime
    creates meaningful pids; a pid of a process that has exited stays a valid value (sending
    to it drops the message).

    >>> Pid(42) == Pid(42), str(Pid(42))
    (True, '<0.42.0>')
    >>> Pid(42, NodeId("far", 1)) == Pid(42)
    False
    """

    __slots__ = ("id", "node")
    id: int
    node: NodeId | None

    def __init__(self, id: int, node: NodeId | None = None) -> None:  # noqa: A002
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "node", node)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Pid is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        if self.node is None:
            return f"<0.{self.id}.0>"
        return f"<{node_index(self.node)}.{self.id}.0>"

    def __eq__(self, other: object) -> bool:
        return type(other) is Pid and other.id == self.id and other.node == self.node

    def __hash__(self) -> int:
        return self.id if self.node is None else hash((self.id, self.node))

    def __lt__(self, other: Pid) -> bool:
        if self.node is None and other.node is None:
            return self.id < other.id
        return _order(self) < _order(other)

    def __reduce__(self) -> tuple[type[Pid], tuple[int, NodeId | None]]:
        return (Pid, (self.id, self.node))


def _order(pid: Pid) -> tuple[int, str, int, int]:
    node = pid.node
    if node is None:
        return (0, "", 0, pid.id)
    return (1, node.name, node.incarnation, pid.id)


@final
class Ref:
    """A unique reference, as made by :func:`beam.make_ref`, :func:`beam.monitor` or a timer.

    A reference made on this node has ``node=None``; one that came from another node carries
    that node's :class:`NodeId` (so it never equals a reference made here) and prints with
    the node's index, as pids do.

    >>> Ref(5)
    #Ref<0.5>
    >>> Ref(5) == Ref(5, NodeId("far", 1))
    False
    """

    __slots__ = ("id", "node")
    id: int
    node: NodeId | None

    def __init__(self, id: int, node: NodeId | None = None) -> None:  # noqa: A002
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "node", node)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Ref is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        if self.node is None:
            return f"#Ref<0.{self.id}>"
        return f"#Ref<{node_index(self.node)}.{self.id}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is Ref and other.id == self.id and other.node == self.node

    def __hash__(self) -> int:
        return -self.id - 1 if self.node is None else hash((-self.id - 1, self.node))

    def __reduce__(self) -> tuple[type[Ref], tuple[int, NodeId | None]]:
        return (Ref, (self.id, self.node))


@dataclass(frozen=True, slots=True)
class Exit:
    """The message a process that traps exits receives instead of dying.

    ``pid`` is the process the exit signal came from (a linked process that exited, or the
    sender of :func:`beam.exit`); ``reason`` is its exit reason.

    >>> Exit(Pid(3), "normal").reason
    'normal'
    """

    pid: Pid
    reason: Any


@dataclass(frozen=True, slots=True)
class Down:
    """The message a monitor delivers when the monitored process exits.

    ``ref`` is the reference :func:`beam.monitor` returned, ``pid`` the monitored process (or
    the name, or ``(name, node)``, that was monitored), ``reason`` its exit reason
    (``"noproc"`` if it did not exist, ``"noconnection"`` if its node went down).

    >>> Down(Ref(1), Pid(2), "noproc").reason
    'noproc'
    """

    ref: Ref
    pid: Pid | str | tuple[str, str]
    reason: Any


class From(NamedTuple):
    """Who is waiting for a reply: given to ``handle_call`` and to :func:`beam.reply`.

    >>> From(Pid(1), Ref(2)).pid
    <0.1.0>
    """

    pid: Pid
    ref: Ref


#: The sender of exit signals that come from outside any process (a plain trio task).
NODE_PID: Final = Pid(0)


@dataclass(frozen=True, slots=True)
class NodeUp:
    """A node of the cluster came up (to subscribers of :func:`beam.monitor_nodes`).

    >>> NodeUp("chat2").node
    'chat2'
    """

    node: str


@dataclass(frozen=True, slots=True)
class NodeDown:
    """A node of the cluster went down or became unreachable (:func:`beam.monitor_node`,
    :func:`beam.monitor_nodes`).

    >>> NodeDown("chat2").node
    'chat2'
    """

    node: str
