"""Agent: a process that holds one value, read and changed with functions.

The functions run inside the agent process, one at a time, so updates never race::

    counter = await beam.Agent.start_link(lambda: 0)
    await beam.Agent.update(counter, lambda n: n + 1)
    assert await beam.Agent.get(counter, lambda n: n) == 1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ._call import DEFAULT_TIMEOUT, call, cast
from ._errors import StartError
from ._gen_server import GenServer, NoReply, Ok, Reply
from ._types import NORMAL, From, Pid

__all__ = ["Agent"]

S = TypeVar("S")
R = TypeVar("R")


class _AgentServer(GenServer[Any]):
    async def init(self, make_state: Callable[[], Any]) -> Ok[Any]:
        return Ok(make_state())

    async def handle_call(self, request: Any, from_: From, state: Any) -> Reply[Any]:
        kind, fn = request
        if kind == "get":
            return Reply(fn(state), state)
        if kind == "update":
            return Reply(None, fn(state))
        value, new_state = fn(state)
        return Reply(value, new_state)

    async def handle_cast(self, request: Any, state: Any) -> NoReply[Any]:
        return NoReply(request(state))


class Agent:
    """Start and use agents; every method takes the agent's pid or registered name."""

    @staticmethod
    async def start_link(make_state: Callable[[], Any], *, name: str | None = None) -> Pid:
        """Start an agent linked to the caller, its value ``make_state()``.

        >>> async def main():
        ...     agent = await beam.Agent.start_link(dict, name="settings")
        """
        pid = await _AgentServer.start_link(make_state, name=name)
        if pid is None:  # pragma: no cover - _AgentServer.init never ignores
            raise StartError("ignore")
        return pid

    @staticmethod
    async def get(
        agent: Pid | str, fn: Callable[[S], R], *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> R:
        """``fn(value)``, computed in the agent.

        >>> async def main():
        ...     size = await beam.Agent.get("settings", len)
        """
        result: R = await call(agent, ("get", fn), timeout=timeout)
        return result

    @staticmethod
    async def update(
        agent: Pid | str, fn: Callable[[S], S], *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Replace the value with ``fn(value)``, waiting until it is done.

        >>> async def main():
        ...     await beam.Agent.update("settings", lambda d: {**d, "theme": "dark"})
        """
        await call(agent, ("update", fn), timeout=timeout)

    @staticmethod
    async def get_and_update(
        agent: Pid | str,
        fn: Callable[[S], tuple[R, S]],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> R:
        """``fn(value)`` returns ``(result, new_value)``: store the new value, return result.

        >>> async def main():
        ...     ticket = await beam.Agent.get_and_update(counter, lambda n: (n, n + 1))
        """
        result: R = await call(agent, ("get_and_update", fn), timeout=timeout)
        return result

    @staticmethod
    def cast(agent: Pid | str, fn: Callable[[S], S]) -> None:
        """Replace the value with ``fn(value)`` without waiting.

        >>> async def main():
        ...     beam.Agent.cast(counter, lambda n: n + 1)
        """
        cast(agent, fn)

    @staticmethod
    async def stop(agent: Pid | str, reason: Any = NORMAL) -> None:
        """Stop the agent with *reason*.

        >>> async def main():
        ...     await beam.Agent.stop(counter)
        """
        await GenServer.stop(agent, reason)
