"""Nodes that act as one system: what crosses between them, and PubSub through Redis.

A node is one OS process. To make it part of a cluster, give it a name of its own and the
cluster's Redis URL (``redis://[:password@]host:port/db``, or ``rediss://`` for TLS);
``beam.broadcast`` then reaches subscribers on every node, ``beam.local_broadcast`` stays on
this one::

    import beam

    async def main():
        async with beam.open_node(name="chat1", cluster="redis://127.0.0.1:6379/0"):
            beam.broadcast("room:lobby", ("new_msg", "hi"))

``beam.run(main, name=..., cluster=...)`` takes the same options, and without them both read
the environment variables ``BEAM_NODE`` and ``BEAM_CLUSTER``. The node joins (as
:func:`start_pubsub` does, which can also be called directly from a process of a node) before
its body runs, and leaves when it ends, freeing its name at once. A URL that is not Redis's
is refused with a ``ValueError``; without a cluster URL the node runs alone, needs no Redis,
and a name is just what ``beam.node()`` answers.

Values travel through a safe codec (msgpack with extension types; nothing decoded runs code
the bytes choose): plain values, pids, refs, and the frozen dataclasses, named tuples and
enums registered with :func:`register` on every node.

Once joined, the node has an identity (``beam.node()``; ``"nonode@nohost"`` alone) and
knows its peers (``beam.nodes()``): each node announces itself on the cluster channel every
``heartbeat`` seconds (default 1.0) and is dropped from ``nodes()`` when not heard from for
``timeout`` seconds (default 5.0). A node's name is unique: it is claimed in Redis with
``SET NX`` expiring after ``timeout`` (renewed by each heartbeat), so a second live node with
the same name refuses to start with :class:`NodeNameTaken`; the name is free again
``timeout`` seconds after its holder's last heartbeat. Pids carry their node
(``beam.NodeId``: name and a random incarnation), and ``beam.send`` reaches a pid on another
node, or ``(name, node)``, through the node's Redis channel, in send order per sender.
"""

from __future__ import annotations

import contextlib

from ._codec import (
    ENVELOPE_VERSION,
    CodecError,
    Delivery,
    Envelope,
    Hello,
    Signal,
    decode,
    decode_envelope,
    decode_frame,
    encode,
    encode_delivery,
    encode_envelope,
    encode_hello,
    encode_signal,
    register,
    register_dispatcher,
)
from ._redis_pubsub import (
    NodeNameTaken,
    RedisPubSub,
    add_cluster_service,
    flush,
    identity,
    start_pubsub,
)

__all__ = [
    "ENVELOPE_VERSION",
    "CodecError",
    "Delivery",
    "Envelope",
    "Hello",
    "NodeNameTaken",
    "RedisPubSub",
    "Signal",
    "add_cluster_service",
    "decode",
    "decode_envelope",
    "decode_frame",
    "encode",
    "encode_delivery",
    "encode_envelope",
    "encode_hello",
    "encode_signal",
    "flush",
    "identity",
    "register",
    "register_dispatcher",
    "start_pubsub",
]

# Reprs, tracebacks and docs say beam.cluster.CodecError, not beam._codec.CodecError.
for _name in __all__:
    with contextlib.suppress(AttributeError, TypeError):
        globals()[_name].__module__ = __name__
