"""Thread actors: blocking resources on their own OS thread, supervised like processes.

A database connection or a blocking client library must never run on the event loop. A
:class:`ThreadActor` is a ``pykka.ThreadingActor`` (one pinned OS thread with a FIFO inbox)
owned by a beam process, its *owner*. The owner links and monitors like any process, so a
supervisor restarts it; stopping the owner stops the thread. Asking goes through the owner's
pid, and the answer comes back through a trio token straight into the caller's reply slot: no
trio worker thread is held while the actor works, and the loop never blocks (BEAM's dirty
schedulers, in Python)::

    class Database(beam.ThreadActor):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.conn = sqlite3.connect(path, check_same_thread=False)

        def query(self, sql: str) -> list[tuple]:
            return self.conn.execute(sql).fetchall()

        def on_stop(self) -> None:
            self.conn.close()

    db = await Database.start_link("app.db")
    rows = await beam.ask(db, "query", "select 1")

If an asked method raises, the caller gets the exception *and* the owner exits with it
("let it crash"): the resource may be in an unknown state, and its supervisor starts a fresh
one. Return expected failures as values instead.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import outcome
import pykka
import trio

from ._call import DEFAULT_TIMEOUT, CallRequest, request
from ._errors import ProcessExit, StartError
from ._gen_server import GenServer, NoReply, Ok, Stop
from ._node import current_process
from ._types import From, Pid

__all__ = ["ThreadActor", "ask"]

logger = logging.getLogger("beam.threads")


@dataclass(frozen=True, slots=True)
class _Ask:
    """Caller -> owner (as a call): run ``method(*args, **kwargs)`` on the actor."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Work:
    """Owner -> actor thread (a pykka message)."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    done: Any  # called in the actor thread with an outcome.Outcome


@dataclass(frozen=True, slots=True)
class _Failed:
    """Actor thread -> owner: an asked method raised, or the actor thread failed."""

    error: BaseException


class ThreadActor(pykka.ThreadingActor):
    """Base class of thread actors; subclass it and add ordinary (blocking) methods.

    ``__init__`` runs on a worker thread (so opening a connection there is fine), the
    methods run on the actor's own thread, one at a time. ``on_start``/``on_stop`` are pykka's
    hooks. Start it with :meth:`start_link`, ask it with :func:`ask`.
    """

    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Work):
            try:
                method = getattr(self, message.method)
                result: outcome.Outcome[Any] = outcome.Value(
                    method(*message.args, **message.kwargs)
                )
            except BaseException as exc:
                result = outcome.Error(exc)
            message.done(result)
            return None
        return super().on_receive(message)

    @classmethod
    async def start_link(cls, *args: Any, name: str | None = None, **kwargs: Any) -> Pid:
        """Start the actor (constructed off the loop) and its owner, linked to the caller.

        Returns the owner's pid, to pass to :func:`ask` or to supervise.

        >>> async def main():
        ...     db = await Database.start_link("app.db", name="db")
        """
        pid = await _Owner.start_link((cls, args, kwargs), name=name)
        if pid is None:  # pragma: no cover - _Owner.init never ignores
            raise StartError("ignore")
        return pid


async def ask(
    actor: Pid | str,
    method: str,
    *args: Any,
    timeout: float | None = DEFAULT_TIMEOUT,
    **kwargs: Any,
) -> Any:
    """Run ``method(*args, **kwargs)`` on the thread actor *actor* and return its result.

    The loop keeps running meanwhile. Raises what the method raised; :class:`CallTimeout`
    after *timeout* seconds (the method still runs to completion on its thread, and its
    late result is dropped).

    >>> async def main():
    ...     rows = await beam.ask("db", "query", "select 1")
    """
    result: outcome.Outcome[Any] = await request(
        actor, CallRequest, _Ask(method, args, kwargs), timeout, "beam.ask"
    )
    return result.unwrap()


class _Owner(GenServer[Any]):
    """The beam process that owns one pykka actor."""

    async def init(self, spec: tuple[type[ThreadActor], tuple[Any, ...], dict[str, Any]]) -> Any:
        cls, args, kwargs = spec
        proc = current_process()
        self._token = trio.lowlevel.current_trio_token()
        self._node = proc.node
        self._pid = proc.pid
        try:
            ref: pykka.ActorRef[Any] = await trio.to_thread.run_sync(
                lambda: cls.start(*args, **kwargs)
            )
        except Exception as exc:
            return Stop(exc)
        self._ref = ref
        # However the owner ends (stopped, crashed, killed), its actor thread stops with it.
        if proc.cleanups is None:
            proc.cleanups = []

        def stop_actor(_: Pid) -> None:
            ref.stop(block=False)

        proc.cleanups.append(stop_actor)
        return Ok(None)

    async def handle_call(self, request_: Any, from_: From, state: Any) -> Any:
        if isinstance(request_, _Ask):
            self._submit(request_, from_)
            return NoReply(state)
        raise TypeError(f"thread actor owner got an unexpected call {request_!r:.100}")

    async def handle_info(self, message: Any, state: Any) -> Any:
        if isinstance(message, _Failed):
            return Stop(message.error, state)
        return await super().handle_info(message, state)

    def _submit(self, ask_: _Ask, from_: From) -> None:
        token, node, owner = self._token, self._node, self._pid

        def deliver(result: outcome.Outcome[Any]) -> None:  # in the trio thread
            # A caller on another node gets nothing: an outcome cannot travel (ask is local).
            caller = None if from_.pid.node is not None else node._procs.get(from_.pid.id)
            if caller is not None:
                caller.deliver_reply(from_.ref, result)
            if isinstance(result, outcome.Error):
                target = node._procs.get(owner.id)
                if target is not None:
                    node._send_to(target, _Failed(result.error))

        def done(result: outcome.Outcome[Any]) -> None:  # in the actor thread
            with contextlib.suppress(trio.RunFinishedError):  # the node is gone: drop it
                token.run_sync_soon(deliver, result)

        try:
            self._ref.tell(_Work(ask_.method, ask_.args, ask_.kwargs, done))
        except pykka.ActorDeadError as exc:
            raise ProcessExit(("actor_dead", repr(exc))) from exc
