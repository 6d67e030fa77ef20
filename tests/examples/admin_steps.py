"""Node-side steps of the chat admin page's multi-node test (``run`` command of
:mod:`tests.support.nodes`): a node with the chat's application supervisor, its admin agent
and one supervised worker to kill."""

from __future__ import annotations

from typing import Any

import beam
from examples.chat.admin import AGENT, AdminAgent
from supervisors import Application, child_spec


class Worker(beam.GenServer[None]):
    """A supervised process of the chat's tree, there to be killed and restarted."""

    async def init(self, arg: Any) -> beam.Ok[None]:
        return beam.Ok(None)


async def start_chat_tree() -> int:
    """Start ``chat.sup`` with the admin agent and a worker named ``worker``; answer the
    worker's pid number."""
    app = Application(
        "chat.sup",
        [child_spec(AdminAgent, name=AGENT), child_spec(Worker, name="worker")],
        strategy="one_for_one",
    )
    await app.start()
    worker = beam.whereis("worker")
    assert worker is not None
    return worker.id


async def worker() -> int | None:
    """The pid number of the process now named ``worker``."""
    pid = beam.whereis("worker")
    return None if pid is None else pid.id
