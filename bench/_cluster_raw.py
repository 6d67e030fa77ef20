"""The raw Redis client of the ``cluster`` suite's baselines: the engine's own limit.

The baselines publish and subscribe with the same client library the cluster adapter
(:mod:`beam._redis_pubsub`) uses, with nothing of beam in between. Everything that depends
on that library is in :func:`raw_client`: if the adapter moves to another client, only that
function changes, and the baselines keep measuring the client the adapter uses::

    async with raw_client(url, subscribe=["replies"]) as redis:
        await redis.publish_all("requests", [b"ping"] * 1000)   # one pipelined batch
        reply = await redis.next_message()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import coredis
from coredis.retry import NoRetryPolicy

__all__ = ["CLIENT", "RawRedis", "raw_client"]

#: The client library :func:`raw_client` uses, as the figures name it.
CLIENT = "coredis"


class RawRedis(Protocol):
    """What the baselines need of a client: publish (pipelined or one) and read messages."""

    async def publish_all(self, channel: str, payloads: Sequence[bytes]) -> None:
        """Publish every payload to *channel* in one pipelined round trip."""
        ...

    async def publish(self, channel: str, payload: bytes) -> None:
        """Publish one payload and wait for Redis to take it."""
        ...

    async def next_message(self) -> bytes:
        """The next message published on a subscribed channel (its data)."""
        ...


class _Coredis:
    """A :class:`RawRedis` on coredis, as the adapter uses it (pipeline without
    transaction, a pubsub iterated as an async iterator)."""

    def __init__(self, client: coredis.Redis[bytes], messages: AsyncIterator[Any] | None) -> None:
        self._client = client
        self._messages = messages

    async def publish_all(self, channel: str, payloads: Sequence[bytes]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(channel, payload)

    async def publish(self, channel: str, payload: bytes) -> None:
        await self._client.publish(channel, payload)

    async def next_message(self) -> bytes:
        assert self._messages is not None, "raw_client(..., subscribe=[...]) to read messages"
        while True:
            item = await anext(self._messages)
            data = item.get("data")
            if isinstance(data, bytes):
                return data


@asynccontextmanager
async def raw_client(url: str, *, subscribe: Sequence[str] = ()) -> AsyncIterator[RawRedis]:
    """A connected client to Redis at *url*, subscribed to *subscribe* (in place on entry).

    The one function to change if the cluster adapter changes its Redis client.

    >>> async with raw_client("redis://127.0.0.1:6379/0") as redis:
    ...     await redis.publish("bench:x", b"hi")
    """
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url, retry_policy=NoRetryPolicy(), connect_timeout=2.0, stream_timeout=30.0
    )
    async with client:
        if not subscribe:
            yield _Coredis(client, None)
            return
        async with client.pubsub(
            channels=list(subscribe), ignore_subscribe_messages=True, retry_policy=NoRetryPolicy()
        ) as subscription:
            yield _Coredis(client, aiter(subscription))
