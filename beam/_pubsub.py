"""PubSub: topics that processes subscribe to, and broadcasts that reach every subscriber.

``subscribe(topic)`` puts the caller in the topic's subscriber set; ``broadcast(topic,
message)`` sends *message* to every subscriber. A broadcast does not hop through any process:
the broadcaster reads the subscriber set and delivers to each subscriber directly (Phoenix's
fast path), so one broadcaster's messages reach every subscriber in broadcast order::

    async def listener():
        beam.subscribe("room:lobby")
        while True:
            print(await beam.receive())

    beam.broadcast("room:lobby", ("new_message", "hi"))

Each topic with subscribers has a *topic process*, the janitor of its subscriber set: it
monitors every subscriber, drops the ones that exit, and exits itself when the topic is empty.
If a topic process is killed, a new one takes over the same subscribers, so subscriptions are
never silently lost.

Two hooks serve the layers above:

* a *dispatcher* passed to :func:`broadcast` receives the subscriber entries and decides how
  to deliver (the web layer encodes a broadcast once and writes the same bytes to every
  socket; subscribers carry the socket details as their subscription *metadata*);
* an *adapter* (:class:`PubSubAdapter`) carries broadcasts to other nodes; the default one is
  local only, and a cluster adapter can replace it without changing callers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol, runtime_checkable

from ._node import Node, current_node, current_process, unwatch, watch
from ._process import Process
from ._types import Down, Pid, Ref

__all__ = [
    "Dispatcher",
    "LocalAdapter",
    "PubSubAdapter",
    "broadcast",
    "broadcast_from",
    "direct_broadcast",
    "local_broadcast",
    "local_broadcast_from",
    "node_name",
    "set_pubsub_adapter",
    "subscribe",
    "subscribers",
    "unsubscribe",
]

Topic = Hashable
#: ``dispatcher(entries, from_pid, message)``: deliver *message* to ``[(pid, metadata)]``.
Dispatcher = Callable[[list[tuple[Pid, Any]], Pid | None, Any], None]


@runtime_checkable
class PubSubAdapter(Protocol):
    """What carries broadcasts to other nodes (local delivery is always done by beam).

    ``node_name`` names this node; ``broadcast`` forwards a broadcast to every other node;
    ``direct_broadcast`` to the node named *node_name* only.
    """

    node_name: str

    def broadcast(self, topic: Topic, message: Any, dispatcher: Dispatcher | None) -> None:
        """Forward a broadcast to the other nodes of the cluster."""

    def direct_broadcast(
        self, node_name: str, topic: Topic, message: Any, dispatcher: Dispatcher | None
    ) -> None:
        """Forward a broadcast to the node called *node_name*."""


class LocalAdapter:
    """The default adapter: a cluster of one node."""

    node_name = "nonode@nohost"

    def broadcast(self, topic: Topic, message: Any, dispatcher: Dispatcher | None) -> None:
        """Nothing to forward: there are no other nodes."""

    def direct_broadcast(
        self, node_name: str, topic: Topic, message: Any, dispatcher: Dispatcher | None
    ) -> None:
        """Refuse: without a cluster adapter no other node can be reached."""
        raise LookupError(
            f"no node named {node_name!r} is reachable: this node ({self.node_name!r}) has no "
            "cluster adapter; install one with beam.set_pubsub_adapter(...)"
        )


class _Topic:
    __slots__ = ("janitor", "name", "refs", "subscribers")

    def __init__(self, name: Topic) -> None:
        self.name = name
        self.subscribers: dict[Pid, list[Any]] = {}
        self.refs: dict[Pid, Ref] = {}
        self.janitor: Process | None = None


class _PubSub:
    """The topic table of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.topics: dict[Topic, _Topic] = {}
        self.adapter: PubSubAdapter = LocalAdapter()

    def subscribe(self, proc: Process, topic: Topic, metadata: Any) -> None:
        entry = self.topics.get(topic)
        if entry is None:
            entry = self.topics[topic] = _Topic(topic)
        if entry.janitor is None:
            self._hire_janitor(entry)
        metas = entry.subscribers.get(proc.pid)
        if metas is None:
            entry.subscribers[proc.pid] = [metadata]
            janitor = entry.janitor
            assert janitor is not None
            ref = self.node._make_ref()
            entry.refs[proc.pid] = ref
            watch(janitor, ref, proc)
        else:
            metas.append(metadata)

    def unsubscribe(self, pid: Pid, topic: Topic) -> None:
        entry = self.topics.get(topic)
        if entry is None or entry.subscribers.pop(pid, None) is None:
            return
        ref = entry.refs.pop(pid)
        janitor = entry.janitor
        if janitor is not None:
            unwatch(self.node, janitor, ref)
            if not entry.subscribers:
                janitor.deliver(_CHECK)

    def local(self, topic: Topic, message: Any, exclude: Pid | None, dispatcher: Any) -> None:
        entry = self.topics.get(topic)
        if entry is None:
            return
        if dispatcher is not None:
            entries = [(pid, meta) for pid, metas in entry.subscribers.items() for meta in metas]
            dispatcher(entries, exclude, message)
            return
        node = self.node
        procs = node._procs
        if node._slow_send:
            for pid, metas in entry.subscribers.items():
                proc = procs.get(pid.id)
                if proc is not None and pid != exclude:
                    for _ in metas:
                        node._send_to(proc, message)
            return
        exclude_id = -1 if exclude is None else exclude.id
        for pid, metas in entry.subscribers.items():
            proc = procs.get(pid.id)
            if proc is not None and pid.id != exclude_id:
                proc.deliver(message)
                if len(metas) > 1:
                    for _ in metas[1:]:
                        proc.deliver(message)

    # -- topic processes -------------------------------------------------------------------

    def _hire_janitor(self, entry: _Topic) -> None:
        node = self.node
        pid, _ = node._spawn(self._janitor, (entry,), parent=None)
        janitor = node._procs[pid.id]
        entry.janitor = janitor
        if janitor.cleanups is None:
            janitor.cleanups = []
        janitor.cleanups.append(lambda _pid: self._janitor_gone(entry, janitor))
        # A new janitor (after a killed one) takes over the existing subscribers.
        for sub_pid in entry.subscribers:
            sub = node._procs.get(sub_pid.id)
            ref = node._make_ref()
            entry.refs[sub_pid] = ref
            if sub is not None:
                watch(janitor, ref, sub)
            else:
                janitor.deliver(Down(ref, sub_pid, "noproc"))

    def _janitor_gone(self, entry: _Topic, janitor: Process) -> None:
        if entry.janitor is not janitor:
            return
        entry.janitor = None
        if self.topics.get(entry.name) is not entry:
            return
        if entry.subscribers and not self.node._closing:
            self._hire_janitor(entry)
        else:
            del self.topics[entry.name]

    async def _janitor(self, entry: _Topic) -> None:
        proc = current_process()
        while True:
            message = await proc.receive(None, None)
            if type(message) is Down:
                pid = message.pid
                if isinstance(pid, Pid) and entry.refs.get(pid) == message.ref:
                    del entry.refs[pid]
                    entry.subscribers.pop(pid, None)
            if not entry.subscribers:
                if self.topics.get(entry.name) is entry:
                    del self.topics[entry.name]
                entry.janitor = None
                return


_CHECK = ("beam.pubsub", "check")


def _pubsub(node: Node) -> _PubSub:
    pubsub: _PubSub | None = node._pubsub
    if pubsub is None:
        pubsub = node._pubsub = _PubSub(node)
    return pubsub


def subscribe(topic: Topic, *, metadata: Any = None) -> None:
    """Subscribe the calling process to *topic*; broadcasts reach it from now on.

    Subscribing twice means receiving each broadcast twice. The subscription ends with
    :func:`unsubscribe` or when the process exits. *metadata* is handed to dispatchers.

    >>> async def main():
    ...     beam.subscribe("room:lobby")
    """
    proc = current_process("beam.subscribe")
    _pubsub(proc.node).subscribe(proc, topic, metadata)


def unsubscribe(topic: Topic) -> None:
    """Remove every subscription of the calling process to *topic*.

    >>> async def main():
    ...     beam.unsubscribe("room:lobby")
    """
    proc = current_process("beam.unsubscribe")
    _pubsub(proc.node).unsubscribe(proc.pid, topic)


def broadcast(topic: Topic, message: Any, *, dispatcher: Dispatcher | None = None) -> None:
    """Send *message* to every subscriber of *topic*, on this node and (through the adapter)
    on the others. Never blocks; a topic without subscribers drops it.

    >>> async def main():
    ...     beam.broadcast("room:lobby", ("new_message", "hi"))
    """
    pubsub = _pubsub(current_node("beam.broadcast"))
    pubsub.local(topic, message, None, dispatcher)
    pubsub.adapter.broadcast(topic, message, dispatcher)


def broadcast_from(
    pid: Pid, topic: Topic, message: Any, *, dispatcher: Dispatcher | None = None
) -> None:
    """Like :func:`broadcast`, skipping the subscriber *pid* (usually the sender).

    >>> async def main():
    ...     beam.broadcast_from(beam.self(), "room:lobby", ("typing", "alice"))
    """
    pubsub = _pubsub(current_node("beam.broadcast_from"))
    pubsub.local(topic, message, pid, dispatcher)
    pubsub.adapter.broadcast(topic, message, dispatcher)


def local_broadcast(topic: Topic, message: Any, *, dispatcher: Dispatcher | None = None) -> None:
    """Like :func:`broadcast`, to this node's subscribers only.

    >>> async def main():
    ...     beam.local_broadcast("cache:invalidate", "users")
    """
    _pubsub(current_node("beam.local_broadcast")).local(topic, message, None, dispatcher)


def local_broadcast_from(
    pid: Pid, topic: Topic, message: Any, *, dispatcher: Dispatcher | None = None
) -> None:
    """Like :func:`local_broadcast`, skipping the subscriber *pid*.

    >>> async def main():
    ...     beam.local_broadcast_from(beam.self(), "cache:invalidate", "users")
    """
    _pubsub(current_node("beam.local_broadcast_from")).local(topic, message, pid, dispatcher)


def direct_broadcast(
    node_name: str, topic: Topic, message: Any, *, dispatcher: Dispatcher | None = None
) -> None:
    """Broadcast on the node called *node_name* only (this node if it is its name).

    >>> async def main():
    ...     beam.direct_broadcast("nonode@nohost", "room:lobby", "hi")
    """
    pubsub = _pubsub(current_node("beam.direct_broadcast"))
    if node_name == pubsub.adapter.node_name:
        pubsub.local(topic, message, None, dispatcher)
    else:
        pubsub.adapter.direct_broadcast(node_name, topic, message, dispatcher)


def subscribers(topic: Topic) -> list[tuple[Pid, Any]]:
    """The ``(pid, metadata)`` subscriptions of *topic* on this node.

    >>> async def main():
    ...     print(len(beam.subscribers("room:lobby")))
    """
    entry = _pubsub(current_node("beam.subscribers")).topics.get(topic)
    if entry is None:
        return []
    return [(pid, meta) for pid, metas in entry.subscribers.items() for meta in metas]


def set_pubsub_adapter(adapter: PubSubAdapter) -> None:
    """Install the adapter that carries broadcasts to other nodes (a cluster adapter).

    >>> async def main():
    ...     beam.set_pubsub_adapter(MyPostgresAdapter(...))
    """
    _pubsub(current_node("beam.set_pubsub_adapter")).adapter = adapter


def node_name() -> str:
    """The name this node has in the cluster (its PubSub adapter's ``node_name``).

    >>> async def main():
    ...     print(beam.node_name())       # "nonode@nohost" without a cluster adapter
    """
    return _pubsub(current_node("beam.node_name")).adapter.node_name
