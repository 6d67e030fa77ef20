"""Links, monitors, exit signals and replies between processes of different nodes.

Erlang makes a pid on another node behave like a local one: it can be linked, monitored,
sent exit signals, called. Here the node-local bookkeeping of :mod:`._node` handles local
pids, and a :class:`Distribution` (one per node that joined a cluster) handles the remote
side: it turns each operation on a remote pid into a *signal* published on the target
node's channel (:class:`beam.cluster.Signal`), applies the signals other nodes send, and
remembers, per remote node, every link and monitor that crosses to it. When that node goes
down (its connection to the cluster closes, its heartbeats stop, it says goodbye, or it
restarts as a new incarnation), every such link delivers an exit signal and every such
monitor a ``Down``, with reason ``"noconnection"``, as Erlang does when a connection is lost.
A node whose connection closed is *cut* (:meth:`Distribution.connection_lost`): what it sent
before it died and arrives late does not bring it back up; it is heard again once it is
connected again (:meth:`Distribution.reconnected`).

Signals between two nodes travel through the same channel as messages, in order, so a
message sent before an exit signal arrives before it, as Erlang guarantees per pair of
processes.

The signals (``kind``, arguments), each sent to the node of the process it concerns:

- ``("link", from_pid, to_pid)`` / ``("unlink", from_pid, to_pid)``
- ``("exit", from_pid, to_pid, reason, linked)``: an exit signal; ``linked`` when it comes
  from the end of a link (ignored if the link is gone, as in Erlang)
- ``("monitor", watcher_pid, ref, target)``: *target* a pid or a registered name
- ``("demonitor", ref)``
- ``("down", ref, reason)``: to the watcher's node
- ``("reply", to_pid, ref, value)``: the answer to a call
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from ._codec import CodecError, encode
from ._crash import bounded_repr
from ._node import Node
from ._process import Died, Process
from ._types import NOCONNECTION, NOPROC, Down, Exit, NodeDown, NodeId, NodeUp, Pid, Ref

__all__ = ["Distribution", "Target"]

logger = logging.getLogger("beam.cluster")

#: What a remote monitor watches: a pid of another node, or ``(name, node name)``.
Target = Pid | tuple[str, str]

Publish = Callable[[str, tuple[Any, ...]], None]


class Distribution:
    """The remote half of a node's links and monitors, and its table of live nodes.

    Made by the cluster adapter when the node joins; *publish* ``(node_name, signal)``
    encodes a signal and hands it to the node's publisher (never blocking, never failing for
    an unreachable node; :class:`beam.cluster.CodecError` for a value that cannot travel).

    >>> dist = Distribution(node, NodeId("chat1", 7), publish)
    >>> dist.nodes()
    []
    """

    def __init__(self, node: Node, identity: NodeId, publish: Publish) -> None:
        self.node = node
        self.identity = identity
        self._publish = publish
        #: The live nodes: name -> identity (the incarnation heard last).
        self.up: dict[str, NodeId] = {}
        # When each live node was last heard from (trio's clock).
        self._heard_at: dict[str, float] = {}
        # Links from a local process to a process of a remote node: node -> {(local, remote)}.
        self._links: dict[NodeId, set[tuple[Pid, Pid]]] = {}
        # Monitors held by local processes on remote ones: node -> ref number -> (watcher,
        # what was monitored).
        self._monitors: dict[NodeId, dict[int, tuple[Pid, Target]]] = {}
        # Monitors held by remote processes on local ones: node -> watcher's ref -> (local
        # target, remote watcher); and per local target, the refs that watch it.
        self._watchers: dict[NodeId, dict[Ref, tuple[Pid, Pid]]] = {}
        self._watched: dict[int, set[Ref]] = {}
        # monitor_node: node name -> local watchers (a process may appear several times).
        self._node_monitors: dict[str, list[Pid]] = {}
        # monitor_nodes: the local processes told of every node up and down.
        self._node_subscribers: set[Pid] = set()
        #: The incarnations declared down because their connection closed, and when.
        self.cut: dict[NodeId, float] = {}

    def nodes(self) -> list[str]:
        """The names of the live nodes, sorted.

        >>> dist.nodes()
        ['chat2']
        """
        return sorted(self.up)

    # -- node up and down -----------------------------------------------------------------

    def heard(self, node: NodeId) -> bool:
        """Note that *node* is alive; true if it is new (an older incarnation goes down).

        >>> dist.heard(NodeId("chat2", 9))
        True
        """
        if node.name == self.identity.name or node in self.cut:
            return False
        self._heard_at[node.name] = trio.current_time()
        known = self.up.get(node.name)
        if known == node:
            return False
        if known is not None:
            self.node_down(known)
        self.up[node.name] = node
        for subscriber in list(self._node_subscribers):
            self._tell(subscriber, NodeUp(node.name))
        return True

    def expire(self, timeout: float) -> None:
        """Take down every node not heard from for *timeout* seconds.

        >>> dist.expire(5.0)
        """
        now = trio.current_time()
        for name, when in list(self._heard_at.items()):
            if now - when >= timeout and name in self.up:
                self.node_down(self.up[name])
        for node, when in list(self.cut.items()):
            if now - when >= timeout:  # its name has expired: it can only come back anew
                del self.cut[node]

    def connection_lost(self, node: NodeId) -> bool:
        """*node*'s connection to the cluster closed (a SIGKILL, a crash, a lost network):
        take it down now rather than after the heartbeat timeout, and ignore what it sent
        before that and arrives late, until :meth:`reconnected`; true if it was up.

        >>> dist.connection_lost(NodeId("chat2", 9))
        True
        """
        if self.up.get(node.name) != node:
            return False
        self.cut[node] = trio.current_time()
        self.node_down(node)
        return True

    def reconnected(self, name: str) -> None:
        """The node called *name* is connected to the cluster again: its next heartbeat
        brings it back up (a node only cut off for a moment, as a node in Erlang whose
        connection is lost and made again).

        >>> dist.reconnected("chat2")
        """
        for node in [node for node in self.cut if node.name == name]:
            del self.cut[node]

    def node_down(self, node: NodeId) -> None:
        """*node* is gone: fire every link and monitor that crosses to it with
        ``"noconnection"`` and tell who asked with :class:`beam.NodeDown`.

        >>> dist.node_down(NodeId("chat2", 9))
        """
        if self.up.get(node.name) != node:
            return
        del self.up[node.name]
        self._heard_at.pop(node.name, None)
        procs = self.node._procs
        for local, remote in self._links.pop(node, ()):
            proc = procs.get(local.id)
            if proc is not None and proc.links and remote in proc.links:
                proc.links.discard(remote)
                self.node._exit_signal(proc, remote, NOCONNECTION, linked=True)
        for ref_id, (watcher, target) in self._monitors.pop(node, {}).items():
            self._fire_monitor(watcher, ref_id, target, NOCONNECTION)
        for ref, (local, _) in self._watchers.pop(node, {}).items():
            self._forget_watcher(local, ref)
        for watcher in self._node_monitors.pop(node.name, ()):
            self._tell(watcher, NodeDown(node.name))
        for subscriber in list(self._node_subscribers):
            self._tell(subscriber, NodeDown(node.name))

    def leave(self) -> None:
        """This node leaves the cluster: every other node is down for it.

        >>> dist.leave()
        """
        for node in list(self.up.values()):
            self.node_down(node)

    def _is_up(self, node: NodeId) -> bool:
        return self.up.get(node.name) == node

    # -- operations of local processes on remote ones -------------------------------------

    def link(self, proc: Process, remote: Pid) -> None:
        """Link *proc* to the process *remote* of another node (see :func:`beam.link`).

        >>> dist.link(proc, remote_pid)
        """
        node = remote.node
        assert node is not None
        if proc.links is None:
            proc.links = set()
        if remote in proc.links:
            return
        proc.links.add(remote)
        if not self._is_up(node):
            proc.links.discard(remote)
            self.node._exit_signal(proc, remote, NOCONNECTION, linked=True)
            return
        self._links.setdefault(node, set()).add((proc.pid, remote))
        self._publish(node.name, ("link", proc.pid, remote))

    def unlink(self, proc: Process, remote: Pid) -> None:
        """Remove the link between *proc* and *remote*, on both nodes.

        >>> dist.unlink(proc, remote_pid)
        """
        node = remote.node
        assert node is not None
        if proc.links:
            proc.links.discard(remote)
        pairs = self._links.get(node)
        if pairs is not None and (proc.pid, remote) in pairs:
            pairs.discard((proc.pid, remote))
            self._publish(node.name, ("unlink", proc.pid, remote))

    def exit(self, sender: Pid, remote: Pid, reason: Any) -> None:
        """Send the exit signal *reason* from *sender* to *remote* (see :func:`beam.exit`).

        >>> dist.exit(beam.self(), remote_pid, "shutdown")
        """
        node = remote.node
        assert node is not None
        if self._is_up(node):
            self._publish(node.name, ("exit", sender, remote, _portable(reason), False))

    def monitor(self, proc: Process, ref: Ref, target: Target) -> None:
        """Make *proc* monitor *target* (a remote pid or ``(name, node)``) under *ref*.

        If the node is not up the monitor fires at once with ``"noconnection"``.

        >>> dist.monitor(proc, ref, ("echo", "chat2"))
        """
        if type(target) is Pid:
            node: NodeId | None = target.node
            marker = target
            remote_target: Pid | str = target
        else:
            name, node_name = target
            node = self.up.get(node_name)
            marker = Pid(0, node or NodeId(node_name, 0))
            remote_target = name
        if proc.monitors is None:
            proc.monitors = {}
        proc.monitors[ref.id] = marker
        if node is None or not self._is_up(node):
            self._fire_monitor(proc.pid, ref.id, target, NOCONNECTION)
            return
        self._monitors.setdefault(node, {})[ref.id] = (proc.pid, target)
        self._publish(node.name, ("monitor", proc.pid, ref, remote_target))

    def demonitor(self, proc: Process, ref: Ref) -> bool:
        """Turn off *proc*'s remote monitor *ref*; false if it had already fired.

        >>> dist.demonitor(proc, ref)
        True
        """
        marker = proc.monitors.pop(ref.id, None) if proc.monitors else None
        if marker is None or marker.node is None:
            return False
        for node, monitors in self._monitors.items():
            if node.name == marker.node.name and monitors.pop(ref.id, None) is not None:
                self._publish(node.name, ("demonitor", ref))
                return True
        return True

    def reply(self, to: Pid, ref: Ref, value: Any) -> None:
        """Answer the call *ref* of the remote process *to* (see :func:`beam.reply`).

        >>> dist.reply(from_.pid, from_.ref, "ok")
        """
        node = to.node
        assert node is not None
        if self._is_up(node):
            self._publish(node.name, ("reply", to, ref, value))

    # -- monitor_node / monitor_nodes -----------------------------------------------------

    def monitor_node(self, proc: Process, name: str, flag: bool) -> None:
        """See :func:`beam.monitor_node`.

        >>> dist.monitor_node(proc, "chat2", True)
        """
        if not flag:
            watchers = self._node_monitors.get(name)
            if watchers and proc.pid in watchers:
                watchers.remove(proc.pid)
            return
        if name == self.identity.name:
            return
        if name not in self.up:
            self._tell(proc.pid, NodeDown(name))
            return
        self._node_monitors.setdefault(name, []).append(proc.pid)
        self._forget_on_exit(proc)

    def monitor_nodes(self, proc: Process, flag: bool) -> None:
        """See :func:`beam.monitor_nodes`.

        >>> dist.monitor_nodes(proc, True)
        """
        if flag:
            self._node_subscribers.add(proc.pid)
            self._forget_on_exit(proc)
        else:
            self._node_subscribers.discard(proc.pid)

    def _forget_on_exit(self, proc: Process) -> None:
        if proc.cleanups is None:
            proc.cleanups = []
        if self._forget_process not in proc.cleanups:
            proc.cleanups.append(self._forget_process)

    def _forget_process(self, pid: Pid) -> None:
        self._node_subscribers.discard(pid)
        for name, watchers in list(self._node_monitors.items()):
            if pid in watchers:
                watchers[:] = [watcher for watcher in watchers if watcher != pid]
                if not watchers:
                    del self._node_monitors[name]

    # -- a local process exits ------------------------------------------------------------

    def link_exited(self, pid: Pid, remote: Pid, reason: Any) -> None:
        """The local *pid*, linked to *remote*, exited with *reason*: signal the other end."""
        node = remote.node
        assert node is not None
        pairs = self._links.get(node)
        if pairs is not None and (pid, remote) in pairs:
            pairs.discard((pid, remote))
            self._publish(node.name, ("exit", pid, remote, _portable(reason), True))

    def monitor_ended(self, ref_id: int, marker: Pid) -> None:
        """The local watcher of the remote monitor *ref_id* exited: drop it there too."""
        node = marker.node
        assert node is not None
        for known, monitors in self._monitors.items():
            if known.name == node.name and monitors.pop(ref_id, None) is not None:
                self._publish(known.name, ("demonitor", Ref(ref_id)))
                return

    def watched_exited(self, pid: Pid, reason: Any) -> None:
        """The local *pid* exited: send ``down`` to every remote process monitoring it."""
        refs = self._watched.pop(pid.id, None)
        if not refs:
            return
        reason = _portable(reason)
        for ref in refs:
            node = ref.node
            assert node is not None
            watchers = self._watchers.get(node)
            if watchers is not None and watchers.pop(ref, None) is not None:
                self._publish(node.name, ("down", ref, reason))

    # -- signals from other nodes ---------------------------------------------------------

    def on_signal(self, sender: NodeId, content: tuple[Any, ...]) -> None:
        """Apply the signal *content* sent by the node *sender*.

        A malformed signal raises :class:`ValueError`; the caller logs and drops it.

        >>> dist.on_signal(NodeId("chat2", 9), ("unlink", remote_pid, local_pid))
        """
        if sender in self.cut:
            return  # sent before its connection closed, arriving late: it is down
        kind = content[0]
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise ValueError(f"unknown signal kind {kind!r}")
        try:
            handler(self, sender, *content[1:])
        except TypeError as error:
            raise ValueError(f"malformed {kind!r} signal: {error}") from None
        # A node whose signal arrives before its heartbeat is alive all the same.
        self.heard(sender)

    def _on_link(self, sender: NodeId, remote: Any, local: Any) -> None:
        remote, local = _remote_pid(remote, sender), _pid(local)
        proc = self._local(local)
        if proc is None:
            self._publish(sender.name, ("exit", local, remote, NOPROC, True))
            return
        if proc.links is None:
            proc.links = set()
        proc.links.add(remote)
        self._links.setdefault(sender, set()).add((local, remote))

    def _on_unlink(self, sender: NodeId, remote: Any, local: Any) -> None:
        remote, local = _remote_pid(remote, sender), _pid(local)
        proc = self._local(local)
        if proc is not None and proc.links:
            proc.links.discard(remote)
        pairs = self._links.get(sender)
        if pairs is not None:
            pairs.discard((local, remote))

    def _on_exit(self, sender: NodeId, remote: Any, local: Any, reason: Any, linked: Any) -> None:
        remote, local = _remote_pid(remote, sender), _pid(local)
        proc = self._local(local)
        if proc is None:
            return
        if linked:
            if not proc.links or remote not in proc.links:
                return  # unlinked meanwhile: the signal is dropped, as in Erlang
            proc.links.discard(remote)
            pairs = self._links.get(sender)
            if pairs is not None:
                pairs.discard((local, remote))
        self.node._exit_signal(proc, remote, reason, linked=bool(linked))

    def _on_monitor(self, sender: NodeId, watcher: Any, ref: Any, target: Any) -> None:
        watcher = _remote_pid(watcher, sender)
        if type(ref) is not Ref or ref.node != sender:
            raise TypeError(f"bad monitor reference {ref!r}")
        if isinstance(target, str):
            pid = self.node._whereis(target)
            proc = None if pid is None else self.node._procs.get(pid.id)
        else:
            proc = self._local(_pid(target))
        if proc is None:
            self._publish(sender.name, ("down", ref, NOPROC))
            return
        self._watchers.setdefault(sender, {})[ref] = (proc.pid, watcher)
        self._watched.setdefault(proc.pid.id, set()).add(ref)

    def _on_demonitor(self, sender: NodeId, ref: Any) -> None:
        watchers = self._watchers.get(sender)
        entry = None if watchers is None else watchers.pop(ref, None)
        if entry is not None:
            self._forget_watcher(entry[0], ref)

    def _on_down(self, sender: NodeId, ref: Any, reason: Any) -> None:
        if type(ref) is not Ref or ref.node is not None:
            raise TypeError(f"bad down reference {ref!r}")
        entry = self._monitors.get(sender, {}).pop(ref.id, None)
        if entry is not None:
            watcher, target = entry
            self._fire_monitor(watcher, ref.id, target, reason)

    def _on_reply(self, sender: NodeId, to: Any, ref: Any, value: Any) -> None:
        if type(ref) is not Ref or ref.node is not None:
            raise TypeError(f"bad reply reference {ref!r}")
        proc = self._local(_pid(to))
        if proc is not None:
            proc.deliver_reply(ref, value)

    # -- helpers ----------------------------------------------------------------------------

    def _local(self, pid: Pid) -> Process | None:
        return None if pid.node is not None else self.node._procs.get(pid.id)

    def _forget_watcher(self, local: Pid, ref: Ref) -> None:
        refs = self._watched.get(local.id)
        if refs is not None:
            refs.discard(ref)
            if not refs:
                del self._watched[local.id]

    def _fire_monitor(self, watcher: Pid, ref_id: int, target: Target, reason: Any) -> None:
        proc = self.node._procs.get(watcher.id)
        if proc is None:
            return
        if proc.monitors:
            proc.monitors.pop(ref_id, None)
        ref = Ref(ref_id)
        # A monitor whose ref tags an open reply slot (a remote call) reports there.
        if not proc.deliver_reply(ref, Died(reason)):
            self.node._send_to(proc, Down(ref, target, reason))

    def _tell(self, pid: Pid, message: NodeUp | NodeDown | Exit) -> None:
        proc = self.node._procs.get(pid.id)
        if proc is not None:
            self.node._send_to(proc, message)


def _portable(reason: Any) -> Any:
    """*reason* if it can travel, else its (bounded) ``repr``: an exception that ended a
    process reaches the other node's links and monitors as text, never as an object."""
    try:
        encode(reason)
    except CodecError:
        return bounded_repr(reason)
    return reason


def _pid(value: Any) -> Pid:
    if type(value) is not Pid:
        raise TypeError(f"expected a pid, got {value!r:.80}")
    return value


def _remote_pid(value: Any, sender: NodeId) -> Pid:
    pid = _pid(value)
    if pid.node != sender:
        raise TypeError(f"{pid!r} is not a process of the sending node {sender.name!r}")
    return pid


_HANDLERS: dict[str, Callable[..., None]] = {
    "link": Distribution._on_link,
    "unlink": Distribution._on_unlink,
    "exit": Distribution._on_exit,
    "monitor": Distribution._on_monitor,
    "demonitor": Distribution._on_demonitor,
    "down": Distribution._on_down,
    "reply": Distribution._on_reply,
}
