"""Application: a named supervision tree that starts, runs and stops as one unit.

This is how programs start (OTP applications, Elixir's ``Application``)::

    app = Application("shop", [child_spec(Repo, name="repo"), child_spec(Web)],
                      type="permanent")

    async def main():
        ...                                   # the tree runs; "shop" is its supervisor

    app.run(main)                             # start the node, the tree, main; stop all

Or, inside a running node, ``await app.start()`` and ``await app.stop()``.

The top supervisor is registered under the application's name and watched by a small
*application master* process. ``stop()`` shuts the tree down cleanly (children in reverse
start order). If the top supervisor dies on its own (its restart intensity was exceeded),
the application's ``type`` decides what happens, as in OTP:

* ``"temporary"`` (default): the exit is logged; the rest of the node keeps running.
* ``"transient"``: a ``"normal"`` exit is logged; any other reason (``"shutdown"``
  included: that is how a supervisor that gave up exits) stops the node.
* ``"permanent"``: any exit stops the node.

*Stopping the node* means: the process that called :meth:`Application.start` gets the exit
signal ``("application_terminated", name, reason)`` (Erlang's node dies with
``{application_terminated, Name, Reason}``). Unless it traps exits, it dies with that
reason; when it is the main process of ``beam.run`` (as with :meth:`Application.run`),
``beam.run`` raises :class:`beam.ProcessExit` with it and the node stops. A starter that
traps exits receives it as ``beam.Exit`` and decides itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import trio

import beam

from ._common import check_flags
from ._errors import InvalidSpec
from ._report import logger
from ._spec import ChildLike, ChildSpec, validate_child_specs
from ._strategy import STRATEGIES, Strategy
from ._supervisor import Supervisor

__all__ = ["Application"]

T = TypeVar("T")
AppType = Literal["temporary", "transient", "permanent"]
_APP_TYPES = ("temporary", "transient", "permanent")


@dataclass(frozen=True, slots=True)
class _Config:
    name: str
    type: AppType
    specs: tuple[ChildSpec, ...]
    strategy: Strategy
    max_restarts: int
    max_seconds: float
    starter: beam.Pid


@dataclass(frozen=True, slots=True)
class _MasterState:
    config: _Config
    sup: beam.Pid


@dataclass(frozen=True, slots=True)
class _StopApp:
    pass


@dataclass(frozen=True, slots=True)
class _WhichSupervisor:
    pass


class _Master(beam.GenServer[_MasterState]):
    async def init(self, config: _Config) -> beam.Ok[_MasterState] | beam.Stop[_MasterState]:
        beam.trap_exit(True)
        try:
            sup = await Supervisor.start_link(
                config.specs,
                strategy=config.strategy,
                max_restarts=config.max_restarts,
                max_seconds=config.max_seconds,
                name=config.name,
            )
        except beam.StartError as exc:
            logger.error(
                "application %s failed to start: %s", config.name, beam.bounded_repr(exc.reason)
            )
            return beam.Stop(exc.reason)
        logger.info("application %s started at %s (type %s)", config.name, sup, config.type)
        return beam.Ok(_MasterState(config, sup))

    async def handle_call(
        self, request: Any, from_: beam.From, state: _MasterState
    ) -> beam.Reply[_MasterState] | beam.NoReply[_MasterState] | beam.Stop[_MasterState]:
        if type(request) is _WhichSupervisor:
            return beam.Reply(state.sup, state)
        if type(request) is _StopApp:
            sup = state.sup
            beam.exit(sup, beam.SHUTDOWN)  # from its parent: it stops its children, in reverse
            await beam.receive(lambda m: type(m) is beam.Exit and m.pid == sup)
            logger.info(
                "application %s exited: stopped (type %s)", state.config.name, state.config.type
            )
            return beam.Stop.replying(beam.NORMAL, None, state)
        return await super().handle_call(request, from_, state)

    async def handle_info(
        self, message: Any, state: _MasterState
    ) -> beam.NoReply[_MasterState] | beam.Stop[_MasterState]:
        if type(message) is beam.Exit and message.pid == state.sup:
            config = state.config
            reason = message.reason
            stops_node = config.type == "permanent" or (
                config.type == "transient" and reason != beam.NORMAL
            )
            shown = beam.bounded_repr(reason)
            if stops_node:
                logger.error(
                    "application %s exited: %s (type %s); stopping the node: exit signal "
                    "to its starter %s",
                    config.name,
                    shown,
                    config.type,
                    config.starter,
                )
                beam.exit(config.starter, ("application_terminated", config.name, reason))
            else:
                logger.info("application %s exited: %s (type %s)", config.name, shown, config.type)
            return beam.Stop(beam.NORMAL, state)
        return await super().handle_info(message, state)


class Application:
    """A named supervision tree with a start, a stop and a restart type for the node.

    *children*, *strategy*, *max_restarts* and *max_seconds* are those of the top
    :class:`Supervisor`, registered as *name*; *type* is ``"temporary"``, ``"transient"``
    or ``"permanent"`` (see the module docs). Everything is checked here, eagerly.

    >>> app = Application("shop", [child_spec(Counter, 0, name="counter")],
    ...                   type="transient")
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildLike],
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        type: AppType = "temporary",  # noqa: A002 - OTP's word
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidSpec("Application", "name", name, "a non-empty str")
        if type not in _APP_TYPES:
            raise InvalidSpec(
                f"Application {name!r}", "type", type, "'temporary', 'transient' or 'permanent'"
            )
        if strategy not in STRATEGIES:
            raise InvalidSpec(
                f"Application {name!r}",
                "strategy",
                strategy,
                "'one_for_one', 'one_for_all' or 'rest_for_one'",
            )
        check_flags(f"Application {name!r}", max_restarts, max_seconds)
        self.name = name
        self.type: AppType = type
        self.specs = validate_child_specs(children)
        self.strategy: Strategy = strategy
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self._master: beam.Pid | None = None

    def __repr__(self) -> str:
        return f"<Application {self.name!r} type={self.type} master={self._master}>"

    async def start(self) -> beam.Pid:
        """Start the tree; return the top supervisor's pid (also registered as the name).

        The caller becomes the application's *starter* (see "stopping the node"). Raises
        :class:`beam.StartError` if the tree fails to start, and :class:`RuntimeError` if
        it is already running.

        >>> sup = await app.start()
        """
        if self._master is not None and beam.is_alive(self._master):
            raise RuntimeError(f"application {self.name!r} is already running")
        config = _Config(
            self.name,
            self.type,
            self.specs,
            self.strategy,
            self.max_restarts,
            self.max_seconds,
            beam.self(),
        )
        master = await _Master.start(config, timeout=None)
        if master is None:  # pragma: no cover - init never ignores
            raise beam.StartError("ignore")
        self._master = master
        sup: beam.Pid = await beam.call(master, _WhichSupervisor(), timeout=None)
        return sup

    async def stop(self) -> None:
        """Stop the tree: every child in reverse start order, then the top supervisor.

        Waits as long as the children's shutdowns take. Stopping an application that is
        not running (or whose tree already exited) does nothing.

        >>> await app.stop()
        """
        master, self._master = self._master, None
        if master is None:
            return
        # ProcessExit: the tree had already exited (a temporary or transient application).
        with contextlib.suppress(beam.ProcessExit):
            await beam.call(master, _StopApp(), timeout=None)

    def run(
        self,
        main: Callable[..., Awaitable[T]] | None = None,
        *args: Any,
        clock: trio.abc.Clock | None = None,
    ) -> T | None:
        """Run a node with this application: start it, ``await main(*args)``, stop it.

        Returns what *main* returned. Without *main* it runs until the tree exits. If the
        tree dies and the type says to stop the node, this raises :class:`beam.ProcessExit`
        with ``("application_terminated", name, reason)``.

        >>> Application("shop", children).run(serve_forever)
        """

        async def root() -> T | None:
            await self.start()
            if main is None:
                master = self._master
                assert master is not None
                ref = beam.monitor(master)
                await beam.receive(lambda m: type(m) is beam.Down and m.ref == ref)
                self._master = None
                return None
            result = await main(*args)
            await self.stop()
            return result

        return beam.run(root, clock=clock)
