"""A jobs node as an OS process of its own, for the SIGKILL test: ``python -m
tests.domain.jobs_node URL SCHEMA NODE`` starts the test domain's repo on the schema and a
``Jobs`` (queue ``default``, limit 5, heartbeat every 0.2 s), prints ``ready`` and runs until
it is killed."""

from __future__ import annotations

import sys

import trio

import beam
from domain import jobs as dj

from .app import Chat
from .jobs_support import Exclusive

__all__ = ["Exclusive", "main"]


async def main(url: str, schema: str, node: str) -> None:
    await Chat.start_link(url, schema=schema)
    jobs = dj.Jobs(
        Chat, name=node, node=node, queues={"default": 5}, poll_interval=0.05,
        heartbeat_interval=0.2,
    )  # fmt: skip
    await jobs.start_link()
    print("ready", flush=True)
    await trio.sleep_forever()


if __name__ == "__main__":
    beam.run(main, *sys.argv[1:4])
