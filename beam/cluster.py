"""Nodes that act as one system: what crosses between them, and PubSub through Redis.

A node is one OS process. To share PubSub with other nodes, start the Redis adapter in each
(every node with a name of its own); ``beam.broadcast`` then reaches subscribers on every
node, ``beam.local_broadcast`` stays on this one::

    import beam

    async def main():
        async with beam.open_node():
            await beam.cluster.start_pubsub("redis://127.0.0.1:6379/0", node="chat1")
            beam.broadcast("room:lobby", ("new_msg", "hi"))

Values travel through a safe codec (msgpack with extension types; nothing decoded runs code
the bytes choose): plain values, pids, refs, and the frozen dataclasses, named tuples and
enums registered with :func:`register` on every node.
"""

from __future__ import annotations

import contextlib

from ._codec import (
    ENVELOPE_VERSION,
    CodecError,
    Envelope,
    decode,
    decode_envelope,
    encode,
    encode_envelope,
    register,
    register_dispatcher,
)
from ._redis_pubsub import RedisPubSub, start_pubsub

__all__ = [
    "ENVELOPE_VERSION",
    "CodecError",
    "Envelope",
    "RedisPubSub",
    "decode",
    "decode_envelope",
    "encode",
    "encode_envelope",
    "register",
    "register_dispatcher",
    "start_pubsub",
]

# Reprs, tracebacks and docs say beam.cluster.CodecError, not beam._codec.CodecError.
for _name in __all__:
    with contextlib.suppress(AttributeError, TypeError):
        globals()[_name].__module__ = __name__
