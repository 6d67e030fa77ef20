"""A Phoenix V2 client for tests, on :mod:`wsclient`: join, push, and wait for frames."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from . import wsclient


class Phx:
    """One Phoenix socket connection speaking V2 JSON arrays."""

    def __init__(self, client: wsclient.Client) -> None:
        self.client = client
        self._ref = 0
        self.pending: list[list[Any]] = []

    def next_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    async def send(self, join_ref: str | None, topic: str, event: str, payload: Any) -> str:
        ref = self.next_ref()
        await self.client.send(json.dumps([join_ref, ref, topic, event, payload]))
        return ref

    async def join(self, topic: str, payload: Any = None) -> tuple[str, dict[str, Any]]:
        """Join *topic*; returns ``(join_ref, reply payload)``."""
        ref = self.next_ref()
        await self.client.send(json.dumps([ref, ref, topic, "phx_join", payload or {}]))
        reply = await self.reply(ref)
        return ref, reply

    async def push(self, join_ref: str, topic: str, event: str, payload: Any) -> dict[str, Any]:
        """Push and wait for the reply's ``{"status", "response"}``."""
        ref = await self.send(join_ref, topic, event, payload)
        return await self.reply(ref)

    async def reply(self, ref: str) -> dict[str, Any]:
        frame = await self.expect(lambda f: f[3] == "phx_reply" and f[1] == ref)
        payload: dict[str, Any] = frame[4]
        return payload

    async def expect(self, match: Any, timeout: float = 5) -> list[Any]:
        """The first frame (kept or new) that *match* accepts; others are kept for later."""
        for i, frame in enumerate(self.pending):
            if match(frame):
                return self.pending.pop(i)
        with trio.fail_after(timeout):
            while True:
                frame = json.loads(await self.client.receive())
                if match(frame):
                    return frame
                self.pending.append(frame)

    async def event(self, topic: str, event: str, timeout: float = 5) -> list[Any]:
        return await self.expect(lambda f: f[2] == topic and f[3] == event, timeout)


@asynccontextmanager
async def connect(
    port: int, query: str = "", *, path: str = "/socket/websocket", **kwargs: Any
) -> AsyncIterator[Phx]:
    target = f"{path}?vsn=2.0.0" + (f"&{query}" if query else "")
    async with wsclient.connect(port, target, **kwargs) as client:
        yield Phx(client)
