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

from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from beam._resp import RedisConnection, Subscription, connect
from beam._resp import subscribe as open_subscription

__all__ = ["CLIENT", "RawRedis", "raw_client"]

#: The client library :func:`raw_client` uses, as the figures name it.
CLIENT = "beam._resp (hiredis)"


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


class _Resp:
    """A :class:`RawRedis` on beam's own client, as the adapter uses it: PUBLISH batches in
    one pipeline on a command connection, and a subscription read a batch at a time."""

    def __init__(self, commands: RedisConnection, subscription: Subscription | None) -> None:
        self._commands = commands
        self._subscription = subscription
        self._pending: deque[bytes] = deque()

    async def publish_all(self, channel: str, payloads: Sequence[bytes]) -> None:
        await self._commands.pipeline([("PUBLISH", channel, data) for data in payloads])

    async def publish(self, channel: str, payload: bytes) -> None:
        await self._commands.execute("PUBLISH", channel, payload)

    async def next_message(self) -> bytes:
        assert self._subscription is not None, "raw_client(..., subscribe=[...]) to read"
        while not self._pending:
            self._pending.extend(data for _, data in await self._subscription.next_batch())
        return self._pending.popleft()


@asynccontextmanager
async def raw_client(url: str, *, subscribe: Sequence[str] = ()) -> AsyncIterator[RawRedis]:
    """A connected client to Redis at *url*, subscribed to *subscribe* (in place on entry).

    The one function to change if the cluster adapter changes its Redis client.

    >>> async with raw_client("redis://127.0.0.1:6379/0") as redis:
    ...     await redis.publish("bench:x", b"hi")
    """
    async with await connect(url) as commands:
        if not subscribe:
            yield _Resp(commands, None)
            return
        async with await open_subscription(url, list(subscribe)) as subscription:
            yield _Resp(commands, subscription)
