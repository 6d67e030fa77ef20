"""PubSub across nodes through Redis, as phoenix_pubsub_redis does it.

Every node of a cluster subscribes to one Redis channel per PubSub (``<namespace>:pubsub``)
and to one of its own (``<namespace>:pubsub:node:<name>``, for ``direct_broadcast``). A
broadcast is dispatched to this node's subscribers first (by beam, as always), then published
once, fire-and-forget, as an :class:`beam.cluster.Envelope` ``("except", this node, topic,
message, dispatcher)``; every other node decodes it and dispatches it to its own subscribers.
A node ignores its own envelopes without decoding their bodies::

    async with beam.open_node():
        await beam.cluster.start_pubsub("redis://127.0.0.1:6379/0", node="chat1")
        beam.broadcast("room:lobby", ("new_msg", "hi"))     # every node's subscribers

The node's cluster connection is a small supervision tree of processes, visible in
``beam.processes()``, started by :func:`start_pubsub`: its root (``adapter.connection``)
links four workers and restarts one that exits (at most 10 times in 10 s): the
*publisher* (``adapter.pid``; senders hand it encoded envelopes as messages, and it
pipelines them to Redis in arrival order, so each sender's messages keep their order), the
*subscriber* (dispatches what other nodes publish), the *heartbeat* (announces the node
and keeps its name) and the *prober* (tells a dead node quickly, below). Encoding happens
in the sender, so a message that cannot travel fails there, with a
:class:`beam.cluster.CodecError` naming its type.

A node that dies without a word (SIGKILL, a crash, a power loss) closes its connections, and
Redis drops its subscription to its own channel at once. Every ``probe`` seconds (default
0.1) the prober asks Redis how many subscribers each live peer's channel has (``PUBSUB
NUMSUB``, with this node's own channel as a control: no conclusion while this node's own
subscription is not in place); a peer whose channel, once seen subscribed since the prober
(re)connected, has had no subscriber at ``probe_misses`` probes in a row (default 2; after a
miss the next probe comes after a quarter of the period) lost its connection: it goes down
at once, as a node in Erlang does when its connection closes (links and monitors fire with
``"noconnection"``, calls to its processes end, ``NodeDown`` is told), and its name key is
deleted in Redis (if it still holds that incarnation), which frees its name and its global
names for the survivors. A peer that is only cut off for a moment comes back up with its
next heartbeat; what such a node published before it was declared down and that arrives
afterwards (its signals, its broadcasts) is dropped, as what a lost connection had not
delivered yet. A peer heard before its channel had a subscriber (starting, or not yet
resubscribed after Redis came back) is not judged by the prober until it has one. A node
that hangs with its connections open, or that never subscribes, is still declared down
``timeout`` seconds after its last heartbeat.

When Redis is unreachable, local work goes on: publishes are dropped with a warning (at most
one per ``warn_interval`` seconds, with the count), never an exception in the sender; the
publisher reconnects with a growing delay, and the subscriber reconnects and resubscribes by
itself. Malformed messages on the channels (from a buggy or hostile publisher) are dropped
with a warning, never a crash.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from ._api import exit as exit_process
from ._api import make_ref, monitor, receive, send, trap_exit
from ._api import self as self_pid
from ._call import CallRequest, call, reply
from ._codec import (
    CodecError,
    Delivery,
    Envelope,
    Hello,
    Signal,
    decode_frame,
    dispatcher_name,
    encode_delivery,
    encode_envelope,
    encode_hello,
    encode_signal,
    lookup_dispatcher,
)
from ._dist import Distribution
from ._errors import CallTimeout, ProcessExit, ReceiveTimeout
from ._node import Node, current_node, set_cluster_joiner
from ._pubsub import Dispatcher, LocalAdapter, Topic, _pubsub, set_pubsub_adapter
from ._resp import RedisConnection, RedisError, connect, parse_url, subscribe
from ._types import KILL, SHUTDOWN, Down, Exit, From, NodeId, Pid
from .lowlevel import spawn_opt

__all__ = [
    "NodeNameTaken",
    "RedisPubSub",
    "add_cluster_service",
    "identity",
    "node",
    "nodes",
    "start_pubsub",
]

logger = logging.getLogger("beam.cluster")

_BATCH: Final = 1000  # envelopes pipelined to Redis in one round trip, at most
_SUBSCRIBED: Final = "beam.cluster.subscribed"


class _Throttle:
    """Log a warning at most once per *interval* seconds, counting what it held back."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -math.inf
        self.held = 0

    def warn(self, message: str, *args: Any, count: int = 1) -> None:
        self.held += count
        now = trio.current_time()
        if now - self.last >= self.interval:
            logger.warning(message + " (%d in the last %.0f s)", *args, self.held, self.interval)
            self.last = now
            self.held = 0


#: What every node starts once it has joined a cluster (see :func:`add_cluster_service`).
_services: list[Callable[[RedisPubSub], Awaitable[None]]] = []


def add_cluster_service(start: Callable[[RedisPubSub], Awaitable[None]]) -> None:
    """Have every node that joins a cluster await ``start(adapter)`` once it has subscribed.

    For the cluster-wide services built on the adapter (process groups, global names): each
    starts its node's server process there. Adding the same function twice is a no-op.

    >>> async def start_groups(adapter):
    ...     spawn_opt(groups_server, adapter, detached=True)
    >>> add_cluster_service(start_groups)
    """
    if start not in _services:
        _services.append(start)


class NodeNameTaken(RuntimeError):
    """Another live node of the cluster already has the name this node asked for.

    >>> async def main():
    ...     try:
    ...         await beam.cluster.start_pubsub(url, node="chat1")
    ...     except beam.cluster.NodeNameTaken as error:
    ...         print(error)
    """


class RedisPubSub:
    """The PubSub adapter that carries broadcasts to the other nodes through Redis.

    Made and installed by :func:`start_pubsub`; ``pid`` is its publisher process.
    ``broadcast``/``direct_broadcast`` are called by beam's PubSub after the local dispatch:
    they encode an envelope (raising :class:`beam.cluster.CodecError` for a message or a
    dispatcher that cannot travel) and hand it to the publisher, never blocking and never
    failing because of Redis.

    >>> async def main():
    ...     adapter = await beam.cluster.start_pubsub("redis://127.0.0.1:6379/0", node="chat1")
    ...     print(adapter.node_name, adapter.channel)      # chat1 beam:pubsub
    """

    def __init__(
        self,
        url: str,
        *,
        node: str,
        namespace: str = "beam",
        warn_interval: float = 5.0,
        max_reconnect_delay: float = 1.0,
        heartbeat: float = 1.0,
        timeout: float = 5.0,
        probe: float = 0.1,
        probe_misses: int = 2,
    ) -> None:
        if not node or not isinstance(node, str):
            raise ValueError(f"a cluster node needs a non-empty str name, not {node!r}")
        if not 0 < heartbeat < timeout:
            raise ValueError(f"need 0 < heartbeat < timeout, got {heartbeat} and {timeout}")
        if not 0 < probe < timeout or probe_misses < 1:
            raise ValueError(
                f"need 0 < probe < timeout and probe_misses >= 1, got probe={probe!r}, "
                f"timeout={timeout!r}, probe_misses={probe_misses!r}"
            )
        self.url = url
        #: Where the cluster's Redis is, as logs show it (a password never appears).
        self.address = parse_url(url)
        self.node_name = node
        #: This node's name and incarnation (a random 63-bit number, new at every start).
        self.identity = NodeId(node, secrets.randbits(63))
        self.heartbeat = heartbeat
        self.timeout = timeout
        #: How often the prober asks Redis which peers are still connected, and after how
        #: many probes in a row without a subscriber on its channel a peer is down.
        self.probe = probe
        self.probe_misses = probe_misses
        #: The remote half of links and monitors, and the table of live nodes (made when
        #: the node joins, by :func:`start_pubsub`).
        self.dist: Distribution | None = None
        self.namespace = namespace
        self.channel = f"{namespace}:pubsub"
        self.warn_interval = warn_interval
        self.max_reconnect_delay = max_reconnect_delay
        self._bad_signals = _Throttle(warn_interval)
        #: The root of the connection's processes, and its publisher (senders hand to it).
        self.connection: Pid | None = None
        self.pid: Pid | None = None

    def node_channel(self, node: str) -> str:
        """The Redis channel of envelopes addressed to the node called *node* only.

        >>> adapter.node_channel("chat2")
        'beam:pubsub:node:chat2'
        """
        return f"{self.channel}:node:{node}"

    @property
    def name_key(self) -> str:
        """The Redis key that holds this node's name while it is live (``SET NX`` with expiry).

        >>> adapter.name_key
        'beam:node:chat1'
        """
        return self.node_key(self.node_name)

    def node_key(self, node: str) -> str:
        """The Redis key that holds the name of the node called *node* while it is live.

        >>> adapter.node_key("chat2")
        'beam:node:chat2'
        """
        return f"{self.namespace}:node:{node}"

    def nodes(self) -> list[str]:
        """The other nodes heard from within the last ``timeout`` seconds, sorted by name.

        >>> adapter.nodes()
        ['chat2']
        """
        return [] if self.dist is None else self.dist.nodes()

    # -- the adapter interface (called by the sender) --------------------------------------

    def send_remote(self, dest: Pid | tuple[str, str], message: Any) -> None:
        """Publish *message* for a pid of another node or a ``(name, node)`` (fire-and-forget).

        A pid of an older incarnation of this node is stale: the message is dropped.
        """
        if type(dest) is Pid:
            target = dest.node
            if target is None or target.name == self.node_name:
                return  # a stale pid of this node (a local pid never comes here)
            data = encode_delivery(dest.id, target.incarnation, message, local=self.identity)
            self._hand_over(self.node_channel(target.name), data)
        else:
            name, where = dest
            data = encode_delivery(name, None, message, local=self.identity)
            self._hand_over(self.node_channel(where), data)

    def broadcast(self, topic: Topic, message: Any, dispatcher: Dispatcher | None) -> None:
        """Publish the broadcast for every other node (fire-and-forget)."""
        name = None if dispatcher is None else dispatcher_name(dispatcher)
        envelope = Envelope("except", self.node_name, topic, message, name)
        data = encode_envelope(envelope, local=self.identity)
        self._hand_over(self.channel, data)

    def direct_broadcast(
        self, node_name: str, topic: Topic, message: Any, dispatcher: Dispatcher | None
    ) -> None:
        """Publish the broadcast for the node called *node_name* only (fire-and-forget)."""
        name = None if dispatcher is None else dispatcher_name(dispatcher)
        envelope = Envelope("only", node_name, topic, message, name)
        data = encode_envelope(envelope, local=self.identity)
        self._hand_over(self.node_channel(node_name), data)

    def send_signal(self, node_name: str, content: tuple[Any, ...]) -> None:
        """Publish a signal between processes for the node called *node_name* (see
        :mod:`beam._dist`); :class:`beam.cluster.CodecError` if it cannot travel."""
        self._hand_over(self.node_channel(node_name), encode_signal(content, local=self.identity))

    def _hand_over(self, channel: str, data: bytes) -> None:
        if self.pid is not None:
            send(self.pid, (_PUBLISH, channel, data))

    # -- the processes ------------------------------------------------------------------

    async def _connect(self) -> RedisConnection:
        """A new connection to the cluster's Redis (``OSError`` if it cannot be reached)."""
        return await connect(self.url, connect_timeout=min(2.0, self.timeout))

    async def _connection(self, starter: Pid, ref: object) -> None:
        """The root of the node's cluster connection: start its three workers (publisher,
        subscriber, heartbeat, prober), linked, and restart one that exits (one for one), at most
        :data:`_MAX_RESTARTS` times in :data:`_RESTART_PERIOD` seconds, as a supervisor."""
        trap_exit(True)
        roles: dict[Pid, str] = {}
        workers: dict[str, Callable[..., Awaitable[None]]] = {
            "publisher": self._publisher,
            "subscriber": self._subscriber,
            "heartbeat": self._heartbeat,
            "prober": self._prober,
        }

        def start(role: str, *args: Any) -> None:
            pid = spawn_opt(workers[role], *args, link=True, initial_call=workers[role])
            roles[pid] = role
            if role == "publisher":
                self.pid = pid

        start("publisher")
        start("subscriber", starter, ref)
        start("heartbeat")
        start("prober")
        restarts: list[float] = []
        while True:
            message = await receive()
            if message == _STOP:
                await self._stop_publisher()
                raise ProcessExit(SHUTDOWN)  # the links take the other workers down
            if type(message) is not Exit:
                continue
            role = roles.pop(message.pid, None)
            if role is None:
                raise ProcessExit(message.reason)
            now = trio.current_time()
            restarts = [t for t in restarts if now - t < _RESTART_PERIOD] + [now]
            if len(restarts) > _MAX_RESTARTS:
                logger.error(
                    "beam.cluster: the %s exited (%r), the %d-th restart in %s s: giving up; "
                    "this node goes on alone (restart it to rejoin the cluster)",
                    role,
                    message.reason,
                    len(restarts),
                    _RESTART_PERIOD,
                )
                raise ProcessExit(("shutdown", "reached_max_restart_intensity"))
            logger.error("beam.cluster: the %s exited (%r); restarting it", role, message.reason)
            await trio.sleep(0.1)
            if role == "subscriber":
                start(role, None, None)
            else:
                start(role)

    async def _stop_publisher(self) -> None:
        """Have the publisher send what was handed over before now, then stop (killed if
        Redis keeps it waiting longer than ``timeout``)."""
        publisher = self.pid
        if publisher is None:
            return
        send(publisher, _STOP)
        try:
            await receive(lambda m: type(m) is Exit and m.pid == publisher, timeout=self.timeout)
        except ReceiveTimeout:
            exit_process(publisher, KILL)

    async def _publisher(self) -> None:
        """Pipeline the envelopes senders hand over to Redis, in order, in batches."""
        state = _PublisherState()
        throttle = _Throttle(self.warn_interval)
        delay = 0.0
        while True:
            lost = 0
            try:
                async with await self._connect() as connection:
                    while True:
                        batch = await self._next_batch(state)
                        lost = len(batch)
                        if batch:
                            with trio.fail_after(self.timeout):
                                await connection.pipeline([("PUBLISH", *item) for item in batch])
                        lost = 0
                        delay = 0.0
                        state.answer_flushes(True)
                        if state.stopping:  # everything handed over before the stop is out
                            raise ProcessExit(SHUTDOWN)
            except BaseException as error:
                await _reraise_unless_failure(error)
                state.answer_flushes(False)
                throttle.warn(
                    "beam.cluster: Redis at %s unreachable (%s); publishes dropped",
                    self.address,
                    _describe(error),
                    count=max(lost, 1),
                )
            # Reconnect after a growing delay; what is handed over meanwhile is dropped.
            delay = min(max(delay * 2, 0.05), self.max_reconnect_delay)
            with trio.move_on_after(delay):
                while True:
                    dropped = len(await self._next_batch(state))
                    state.answer_flushes(False)
                    throttle.warn(
                        "beam.cluster: Redis at %s unreachable; publishes dropped",
                        self.address,
                        count=dropped,
                    )

    async def _next_batch(self, state: _PublisherState) -> list[tuple[str, bytes]]:
        """Wait for envelopes to publish; take what is queued (in order), up to a batch
        (or up to a stop request: the batch is then the last one)."""
        batch: list[tuple[str, bytes]] = []
        timeout: float | None = None
        while len(batch) < _BATCH:
            try:
                message = await receive(timeout=timeout)
            except ReceiveTimeout:
                break
            if type(message) is tuple and len(message) == 3 and message[0] == _PUBLISH:
                batch.append((message[1], message[2]))
                timeout = 0
            elif type(message) is CallRequest and message.request == _FLUSH:
                state.flushes.append(message.from_)  # answered once this batch is written
                timeout = 0
            elif message == _STOP:
                state.stopping = True
                break
        return batch

    async def _subscriber(self, starter: Pid | None, ref: object) -> None:
        """Subscribe to the channels and dispatch other nodes' envelopes to local subscribers."""
        node = current_node("beam.cluster subscriber")
        pubsub = _pubsub(node)
        throttle = _Throttle(self.warn_interval)
        garbage = _Throttle(self.warn_interval)
        channels = [self.channel, self.node_channel(self.node_name)]
        delay = 0.0
        while True:
            try:
                async with await subscribe(
                    self.url, channels, connect_timeout=min(2.0, self.timeout)
                ) as subscription:
                    if delay:
                        logger.warning(
                            "beam.cluster: resubscribed to %s at %s", channels, self.address
                        )
                    delay = 0.0
                    # Announce this node now that its answers can be heard: every peer new
                    # to it (or it to them) answers on this node's channel at once.
                    self._hand_over(self.channel, encode_hello(self.identity, discover=True))
                    if starter is not None:
                        send(starter, (_SUBSCRIBED, ref))
                        starter = None
                    while True:
                        # This node hears its own heartbeat on the cluster channel: silence
                        # for a whole timeout means the connection died without a word.
                        with trio.fail_after(self.timeout):
                            batch = await subscription.next_batch()
                        for _, data in batch:
                            self._dispatch(pubsub, data, garbage)
            except BaseException as error:
                await _reraise_unless_failure(error)
                throttle.warn(
                    "beam.cluster: PubSub subscription to %s lost (%s); reconnecting",
                    self.address,
                    _describe(error),
                )
            delay = min(max(delay * 2, 0.05), self.max_reconnect_delay)
            await trio.sleep(delay)

    async def _heartbeat(self) -> None:
        """Every ``heartbeat`` seconds: keep this node's name and announce it on the channel."""
        throttle = _Throttle(self.warn_interval)
        hello = encode_hello(self.identity)
        incarnation = str(self.identity.incarnation)
        expiry = max(1, round(self.timeout * 1000))
        while True:
            try:
                async with await self._connect() as connection:
                    while True:
                        with trio.fail_after(self.timeout):
                            await connection.pipeline(
                                [
                                    ("SET", self.name_key, incarnation, "PX", expiry),
                                    ("PUBLISH", self.channel, hello),
                                ]
                            )
                        await trio.sleep(self.heartbeat)
                        self._expire()
            except BaseException as error:
                await _reraise_unless_failure(error)
                throttle.warn(
                    "beam.cluster: heartbeat to Redis at %s failed (%s)",
                    self.address,
                    _describe(error),
                )
            await trio.sleep(self.heartbeat)
            self._expire()

    async def _prober(self) -> None:
        """Every ``probe`` seconds: ask Redis which peers still subscribe to their channel;
        take down a peer whose channel has had no subscriber ``probe_misses`` times in a row
        (its connection closed), after freeing its name in Redis."""
        throttle = _Throttle(self.warn_interval)
        own = self.node_channel(self.node_name)
        misses: dict[NodeId, int] = {}
        # The peers whose channel this prober has seen subscribed since it (re)connected
        # and while this node's own subscription was in place: only their misses count. A
        # peer heard before it subscribed (its heartbeat goes on a connection of its own),
        # or not yet resubscribed after Redis came back, is not dead; the heartbeat
        # timeout still takes it down if it never subscribes.
        seen: set[NodeId] = set()
        while True:
            try:
                async with await self._connect() as connection:
                    while True:
                        # A peer just found without a subscriber is probed again sooner.
                        await trio.sleep(self.probe / 4 if misses else self.probe)
                        dist = self.dist
                        if dist is None:
                            continue
                        peers = [*dist.up.values(), *dist.cut]
                        if not peers:
                            misses.clear()
                            continue
                        channels = [self.node_channel(peer.name) for peer in peers]
                        with trio.fail_after(self.timeout):
                            reply = await connection.execute("PUBSUB", "NUMSUB", own, *channels)
                        counts = reply[1::2]
                        if not counts or counts[0] < 1:
                            misses.clear()  # this node is not subscribed: conclude nothing
                            seen.clear()
                            continue
                        lost: list[NodeId] = []
                        for peer, count in zip(peers, counts[1:], strict=True):
                            if peer in dist.cut:
                                if count:
                                    dist.reconnected(peer.name)
                            elif count:
                                misses.pop(peer, None)
                                seen.add(peer)
                            elif peer in seen:
                                misses[peer] = misses.get(peer, 0) + 1
                                if misses[peer] >= self.probe_misses:
                                    lost.append(peer)
                        for peer in misses.keys() - dist.up.values():
                            del misses[peer]
                        seen.intersection_update(dist.up.values())
                        for peer in lost:
                            # Free its name first: a survivor that takes over its global
                            # names on the NodeDown finds them free in Redis.
                            with trio.fail_after(self.timeout):
                                await connection.execute(
                                    "EVAL",
                                    _FORGET_NODE,
                                    1,
                                    self.node_key(peer.name),
                                    str(peer.incarnation),
                                )
                            if dist.connection_lost(peer):
                                logger.warning(
                                    "beam.cluster: node %s lost its connection to the cluster "
                                    "(no subscriber on its channel for %d probes): it is down",
                                    peer.name,
                                    self.probe_misses,
                                )
            except BaseException as error:
                await _reraise_unless_failure(error)
                throttle.warn(
                    "beam.cluster: probing the nodes through Redis at %s failed (%s)",
                    self.address,
                    _describe(error),
                )
            misses.clear()
            seen.clear()
            await trio.sleep(self.heartbeat)

    def _expire(self) -> None:
        if self.dist is not None:
            self.dist.expire(self.timeout)

    def _dispatch(self, pubsub: Any, data: bytes, garbage: _Throttle) -> None:
        try:
            frame = decode_frame(data, for_node=self.node_name, local=self.identity)
            if frame is None:
                return
            if isinstance(frame, Hello):
                self._hello(frame)
                return
            if isinstance(frame, Delivery):
                self._deliver(pubsub.node, frame)
                return
            if isinstance(frame, Signal):
                self._signal(frame)
                return
            envelope = frame
            if self._from_cut(envelope):
                return
            dispatcher = (
                None if envelope.dispatcher is None else lookup_dispatcher(envelope.dispatcher)
            )
        except CodecError as error:
            garbage.warn("beam.cluster: dropped a malformed PubSub message: %s", error)
            return
        try:
            pubsub.local(envelope.topic, envelope.payload, None, dispatcher)
        except Exception:
            logger.exception(
                "beam.cluster: dispatching a broadcast from %s on %r failed",
                envelope.node,
                envelope.topic,
            )

    def _from_cut(self, envelope: Envelope) -> bool:
        """Whether *envelope* is a broadcast of a node declared down because its connection
        closed, and not heard from since: it was sent before it died and arrives late, and
        is dropped, as what a lost connection had not delivered yet."""
        dist = self.dist
        if dist is None or not dist.cut or envelope.mode != "except":
            return False
        name = envelope.node
        return name not in dist.up and any(node.name == name for node in dist.cut)

    def _signal(self, frame: Signal) -> None:
        if self.dist is None:
            return
        try:
            self.dist.on_signal(frame.sender, frame.content)
        except ValueError as error:
            self._bad_signals.warn(
                "beam.cluster: dropped a signal from %s: %s", frame.sender.name, error
            )

    def _hello(self, hello: Hello) -> None:
        node = hello.node
        if node.name != self.node_name:
            dist = self.dist
            if dist is None:
                return
            if hello.leaving:
                dist.node_down(node)
            elif dist.heard(node) or hello.discover:
                # A node new to us, or one that just subscribed: answer at once on its own
                # channel, so it knows its peers after one round trip, not after a heartbeat.
                self._hand_over(self.node_channel(node.name), encode_hello(self.identity))
        elif node != self.identity and not hello.leaving:
            logger.error(
                "beam.cluster: another live node calls itself %r (incarnation %d, this one %d)",
                node.name,
                node.incarnation,
                self.identity.incarnation,
            )

    def _deliver(self, node: Node, delivery: Delivery) -> None:
        incarnation = delivery.incarnation
        if incarnation is not None and incarnation != self.identity.incarnation:
            return  # to a pid of an older incarnation of this node: stale
        to = delivery.to
        pid = node._names.get(to) if isinstance(to, str) else Pid(to)
        proc = None if pid is None else node._procs.get(pid.id)
        if proc is None:
            return  # a dead process, or a name nobody holds: dropped, as Erlang does
        if node._slow_send:
            node._send_to(proc, delivery.message)
        else:
            proc.deliver(delivery.message)


class _PublisherState:
    """What the publisher process alone keeps."""

    __slots__ = ("flushes", "stopping")

    def __init__(self) -> None:
        self.stopping = False  # asked to publish what it has, then stop
        self.flushes: list[From] = []  # flush calls waiting for the current batch

    def answer_flushes(self, written: bool) -> None:
        """Tell the processes waiting in :func:`flush` whether the batch reached Redis."""
        for caller in self.flushes:
            reply(caller, written)
        self.flushes.clear()


_PUBLISH: Final = "beam.cluster.publish"
#: Delete a node's name key (KEYS[1]) if it still holds the incarnation ARGV[1].
_FORGET_NODE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_FLUSH: Final = "beam.cluster.flush"
#: The connection's workers are restarted at most this many times in this many seconds.
_MAX_RESTARTS: Final = 10
_RESTART_PERIOD: Final = 10.0
_STOP: Final = "beam.cluster.stop"


async def _reraise_unless_failure(error: BaseException) -> None:
    """Let cancellation, interrupts and exits through; return for a Redis failure to recover
    from (a lost or refused connection, an error reply, a wait past the timeout)."""
    await trio.lowlevel.checkpoint_if_cancelled()
    if not isinstance(error, OSError | RedisError | trio.TooSlowError | trio.ClosedResourceError):
        raise error


def _describe(error: BaseException) -> str:
    if isinstance(error, trio.TooSlowError):
        return "no answer in time"
    return f"{type(error).__name__}: {error}"


async def start_pubsub(
    url: str,
    *,
    node: str,
    namespace: str = "beam",
    wait: float = 5.0,
    warn_interval: float = 5.0,
    heartbeat: float = 1.0,
    timeout: float = 5.0,
    probe: float = 0.1,
    probe_misses: int = 2,
) -> RedisPubSub:
    """Join this node's PubSub to the cluster at Redis *url*, as the node called *node*.

    Starts the adapter's processes (detached, at the top of the process tree), installs it
    with :func:`beam.set_pubsub_adapter`, and waits up to *wait* seconds for the subscription
    to be in place and every live node of the cluster to answer (so they are in
    ``beam.nodes()`` and can be called at once); if Redis is unreachable it returns anyway
    and keeps retrying: local work goes on. Call it from a process of the node; every node
    of the cluster uses the same *namespace* and a *node* name of its own. A peer is
    declared down *timeout* seconds after its last heartbeat (sent every *heartbeat*
    seconds), or once its channel has had no subscriber at *probe_misses* probes in a row,
    one every *probe* seconds (see the module's docs).

    >>> async def main():
    ...     async with beam.open_node():
    ...         await beam.cluster.start_pubsub("redis://127.0.0.1:6379/0", node="chat1")
    ...         beam.broadcast("room:lobby", "hello, every node")
    """
    adapter = RedisPubSub(
        url,
        node=node,
        namespace=namespace,
        warn_interval=warn_interval,
        heartbeat=heartbeat,
        timeout=timeout,
        probe=probe,
        probe_misses=probe_misses,
    )
    await _claim_name(adapter, wait)
    this = current_node("beam.cluster.start_pubsub")
    adapter.dist = this._dist = Distribution(this, adapter.identity, adapter.send_signal)
    ref = make_ref()
    adapter.connection = spawn_opt(
        adapter._connection, self_pid(), ref, detached=True, initial_call=RedisPubSub
    )
    set_pubsub_adapter(adapter)
    try:
        await receive(lambda m: m == (_SUBSCRIBED, ref), timeout=wait)
    except ReceiveTimeout:
        logger.warning(
            "beam.cluster: not subscribed to Redis at %s after %s s; retrying in the background",
            adapter.address,
            wait,
        )
    else:
        await _meet_peers(adapter, min(wait, adapter.timeout))
    for start in _services:
        await start(adapter)
    return adapter


async def _meet_peers(adapter: RedisPubSub, wait: float) -> None:
    """Wait (at most *wait* seconds) until every node whose name is live in Redis has
    answered this node's discover, so that a program can call them as soon as it joined."""
    prefix = f"{adapter.namespace}:node:"
    try:
        with trio.fail_after(wait):
            async with await adapter._connect() as redis:
                keys = await redis.execute("KEYS", prefix.replace("*", "\\*") + "*")
            names = {key.decode()[len(prefix) :] for key in keys} - {adapter.node_name}
            dist = adapter.dist
            assert dist is not None
            while not names <= dist.up.keys():  # noqa: ASYNC110 - answers come through Redis
                await trio.sleep(0.005)
    except BaseException as error:
        await _reraise_unless_failure(error)
        logger.info("beam.cluster: joined before every peer answered (%s)", _describe(error))


async def _claim_name(adapter: RedisPubSub, wait: float) -> None:
    """Take the node's name in Redis (``SET NX`` with expiry ``timeout``), or refuse to start.

    If Redis cannot be reached within *wait* seconds the node starts anyway (alone until
    Redis returns; its heartbeats then hold the name).
    """
    expiry = max(1, round(adapter.timeout * 1000))
    value = str(adapter.identity.incarnation)
    holder: bytes | None = None
    try:
        with trio.fail_after(wait):
            async with await adapter._connect() as connection:
                key = adapter.name_key
                taken = await connection.execute("SET", key, value, "NX", "PX", expiry)
                if taken is not None:
                    return
                holder = await connection.execute("GET", key)
    except BaseException as error:
        await _reraise_unless_failure(error)
        logger.warning(
            "beam.cluster: could not claim the node name %r at %s (%s); starting anyway",
            adapter.node_name,
            adapter.address,
            _describe(error),
        )
        return
    if holder is None:  # expired between SET and GET: try once more
        await _claim_name(adapter, wait)
        return
    raise NodeNameTaken(
        f"cannot start node {adapter.node_name!r}: a live node of the cluster at "
        f"{adapter.address} already has that name (incarnation {holder.decode()}); choose "
        "another name, or wait until "
        f"that node stops (its name is freed {adapter.timeout} s after its last heartbeat)"
    )


class _Alone(LocalAdapter):
    """The adapter of a node that has a name but no cluster: local only, under that name."""

    def __init__(self, name: str) -> None:
        self.node_name = name


async def _join(name: str, cluster: str | None) -> Callable[[], Awaitable[None]] | None:
    """What ``open_node(name=, cluster=)`` calls in its first process (see
    :func:`beam.set_cluster_joiner`): name the node, and join the cluster at *cluster*."""
    if cluster is None:
        set_pubsub_adapter(_Alone(name))
        return None
    adapter = await start_pubsub(cluster, node=name)

    async def leave() -> None:
        await _leave(adapter)

    return leave


async def _leave(adapter: RedisPubSub) -> None:
    """Stop the adapter's processes, then free the node's name in Redis if it still holds it.

    Best effort (Redis may be gone): the name otherwise expires ``timeout`` seconds after the
    last heartbeat, as when a node dies.
    """
    node = current_node("beam.cluster leave")
    dist = adapter.dist
    if dist is not None:
        dist.leave()  # links and monitors across nodes fire here with "noconnection"
        node._dist = None
    connection = adapter.connection
    if connection is not None:
        # The publisher sends what was handed over before this; then the whole connection
        # (subscriber and heartbeat too) stops.
        ref = monitor(connection)
        send(connection, _STOP)
        await receive(lambda m: type(m) is Down and m.ref == ref)
    try:
        with trio.fail_after(adapter.timeout):
            async with await adapter._connect() as redis:
                key, bye = adapter.name_key, encode_hello(adapter.identity, leaving=True)
                await redis.execute("PUBLISH", adapter.channel, bye)
                if await redis.execute("GET", key) == str(adapter.identity.incarnation).encode():
                    await redis.execute("DEL", key)
    except BaseException as error:
        await _reraise_unless_failure(error)
        logger.info(
            "beam.cluster: could not free the node name %r (%s); it expires in %s s",
            adapter.node_name,
            _describe(error),
            adapter.timeout,
        )


set_cluster_joiner(_join)


def node() -> str:
    """This node's name: its cluster name, or ``"nonode@nohost"`` when it runs alone.

    >>> async def main():
    ...     async with beam.open_node():
    ...         print(beam.node())      # nonode@nohost
    """
    return _pubsub(current_node("beam.node")).adapter.node_name


def identity() -> NodeId | None:
    """This node's identity in its cluster (name and incarnation), or ``None`` when it has
    joined none.

    >>> async def main():
    ...     async with beam.open_node(name="chat1", cluster="redis://127.0.0.1:6379/0"):
    ...         print(beam.cluster.identity())   # NodeId(name='chat1', incarnation=...)
    """
    adapter = _pubsub(current_node("beam.cluster.identity")).adapter
    found = getattr(adapter, "identity", None)
    return found if isinstance(found, NodeId) else None


async def flush(timeout: float = 5.0) -> bool:
    """Wait until everything the calling process has broadcast or sent to other nodes so
    far has been written to the cluster's Redis; ``True`` once it has, ``False`` if it was
    dropped (Redis unreachable) or *timeout* seconds passed first. Alone, ``True`` at once.

    ``beam.broadcast`` and a ``send`` to another node only hand their message to the node's
    publisher, which writes in batches: a node killed (SIGKILL, power loss) just after
    handing a message over takes it along. Call ``flush`` before acknowledging something
    that other nodes must see, so that an acknowledged message has left the node:

    >>> async def post(room, text):
    ...     await store(room, text)
    ...     beam.broadcast(f"room:{room}", ("new_msg", text))
    ...     await beam.cluster.flush()     # now other nodes get it even if this node dies
    ...     return "ok"
    """
    adapter = _pubsub(current_node("beam.cluster.flush")).adapter
    publisher = getattr(adapter, "pid", None)
    if not isinstance(adapter, RedisPubSub) or publisher is None:
        return True
    try:
        return bool(await call(publisher, _FLUSH, timeout=timeout))
    except (CallTimeout, ProcessExit):  # the publisher restarted or stopped meanwhile
        return False


def nodes() -> list[str]:
    """The names of the other nodes of the cluster currently known alive, sorted.

    A node announces itself on the cluster channel every ``heartbeat`` seconds (1.0 by
    default) and is dropped from this list when not heard from for ``timeout`` seconds (5.0
    by default); both are arguments of :func:`beam.cluster.start_pubsub`. Alone: ``[]``.

    >>> async def main():
    ...     print(beam.nodes())         # e.g. ['chat2', 'chat3']
    """
    adapter = _pubsub(current_node("beam.nodes")).adapter
    known = getattr(adapter, "nodes", None)
    return [] if known is None else list(known())
