"""Child specs: how a supervisor starts, restarts and stops each child.

A :class:`ChildSpec` is a frozen value, checked field by field when it is made, so a bad
spec fails where it is written, not when a supervisor first restarts it::

    spec = ChildSpec(id="cache", start=Cache.start_link, args=({},), restart="transient")

Two helpers make specs without boilerplate, and a supervisor's child list also accepts a
GenServer class, or a ``(GenServer class, argument)`` pair, as Elixir's ``{Stack, arg}``::

    children = [
        child_spec(Counter, 0, name="counter"),     # Counter.start_link(0, name="counter")
        worker(heartbeat, 1.0, id="heartbeat"),     # beam.spawn_link(heartbeat, 1.0)
        Cache,                                      # Cache.start_link(None)
        (Stack, ["hello"]),                         # Stack.start_link(["hello"])
    ]
    specs = validate_child_specs(children)          # what Supervisor.start_link does first

A GenServer class may define a classmethod ``child_spec(arg) -> ChildSpec`` to choose its
own defaults (restart type, shutdown, id); the bare-class and pair forms then use it.

Units: ``shutdown`` is in seconds (OTP counts milliseconds); beam measures time in seconds
everywhere.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import beam

from ._errors import InvalidSpec
from ._strategy import CHILD_TYPES, RESTART_TYPES, ChildType, Restart

__all__ = [
    "Bound",
    "ChildLike",
    "ChildSpec",
    "Shutdown",
    "bind",
    "child_spec",
    "describe_start",
    "spawn_linked",
    "validate_child_specs",
    "worker",
]

#: A shutdown: seconds to wait after ``"shutdown"`` before killing, ``"brutal_kill"``
#: (kill at once) or ``"infinity"`` (wait as long as it takes; for child supervisors).
Shutdown: TypeAlias = float | Literal["brutal_kill", "infinity"]
StartFn: TypeAlias = Callable[..., Awaitable[beam.Pid | None]]

#: The default shutdown of a worker, in seconds (OTP's 5000 ms).
WORKER_SHUTDOWN: Final = 5.0

_RESTARTS = "'permanent', 'transient' or 'temporary'"
_TYPES = "'worker' or 'supervisor'"
_SHUTDOWNS = "'brutal_kill', 'infinity', or a number of seconds >= 0"


def _check_shutdown(value: object) -> bool:
    if value in ("brutal_kill", "infinity"):
        return True
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not math.isnan(value)
        and value >= 0
        and value != math.inf
    )


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child, and how to treat it when it exits and when it must stop.

    * ``id``: names the child within its supervisor (any hashable value, not ``None``).
    * ``start``, ``args``: ``await start(*args)`` must start the child *linked to the
      caller* (the supervisor) and return its pid, or ``None`` to say "ignore" (nothing to
      run; the spec is kept, stopped). Raising is a start error.
    * ``restart``: ``"permanent"`` (always restarted), ``"transient"`` (restarted only after
      an abnormal exit) or ``"temporary"`` (never restarted, forgotten once it exits).
    * ``shutdown``: seconds to wait after the ``"shutdown"`` exit signal before killing,
      ``"brutal_kill"`` or ``"infinity"``. Defaults to 5 s for a worker and ``"infinity"``
      for a supervisor.
    * ``type``: ``"worker"`` or ``"supervisor"``.
    * ``significant``: whether the child's own exit (one that is not restarted) may stop
      its supervisor, per the supervisor's ``auto_shutdown``. Only ``transient`` and
      ``temporary`` children can be significant, as in OTP.

    Every field is checked when the spec is made; :class:`InvalidSpec` names the field, the
    value and what is allowed.

    >>> spec = ChildSpec(id="repo", start=Repo.start_link, args=("db.sqlite",))
    >>> spec.shutdown, spec.restart
    (5.0, 'permanent')
    """

    id: Hashable
    start: StartFn
    args: tuple[Any, ...] = ()
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    type: ChildType = "worker"
    significant: bool = False

    def __post_init__(self) -> None:
        owner = f"child spec {beam.bounded_repr(self.id)}"
        if self.id is None:
            raise InvalidSpec("child spec", "id", None, "given (any hashable value but None)")
        try:
            hash(self.id)
        except TypeError:
            raise InvalidSpec("child spec", "id", self.id, "hashable") from None
        if not callable(self.start):
            raise InvalidSpec(
                owner, "start", self.start, "an async callable that starts and links the child"
            )
        if not isinstance(self.args, tuple):
            raise InvalidSpec(owner, "args", self.args, "a tuple")
        if self.restart not in RESTART_TYPES:
            raise InvalidSpec(owner, "restart", self.restart, _RESTARTS)
        if self.type not in CHILD_TYPES:
            raise InvalidSpec(owner, "type", self.type, _TYPES)
        if type(self.significant) is not bool:
            raise InvalidSpec(owner, "significant", self.significant, "True or False")
        if self.significant and self.restart == "permanent":
            raise InvalidSpec(
                owner,
                "significant",
                True,
                "False for a permanent child (only transient and temporary children can be "
                "significant: a permanent one is always restarted)",
            )
        if self.shutdown is None:
            default = "infinity" if self.type == "supervisor" else WORKER_SHUTDOWN
            object.__setattr__(self, "shutdown", default)
        elif not _check_shutdown(self.shutdown):
            raise InvalidSpec(owner, "shutdown", self.shutdown, _SHUTDOWNS)


@dataclass(frozen=True, slots=True)
class Bound:
    """A start function with leading arguments and keywords bound, like
    ``functools.partial`` but a value: two are equal when their parts are, so are specs."""

    fn: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()
    keywords: tuple[tuple[str, Any], ...] = ()

    def __call__(self, *more: Any) -> Awaitable[Any]:
        return self.fn(*self.args, *more, **dict(self.keywords))


def bind(fn: Callable[..., Awaitable[Any]], *args: Any, **keywords: Any) -> StartFn:
    """*fn* with *args* and *keywords* bound (see :class:`Bound`)."""
    return Bound(fn, args, tuple(keywords.items()))


#: What a supervisor's child list accepts: a spec, a GenServer class, or (class, argument).
ChildLike: TypeAlias = ChildSpec | type[beam.GenServer[Any]] | tuple[type[beam.GenServer[Any]], Any]


def child_spec(
    server: type[beam.GenServer[Any]],
    arg: Any = None,
    *,
    id: Hashable | None = None,  # noqa: A002 - OTP's field name
    name: str | None = None,
    restart: Restart = "permanent",
    shutdown: Shutdown | None = None,
    type: ChildType = "worker",  # noqa: A002
    significant: bool = False,
) -> ChildSpec:
    """The spec of a GenServer child: starting it runs ``server.start_link(arg, name=name)``.

    ``id`` defaults to *name*, else to the class's name.

    >>> child_spec(Counter, 0, name="counter", restart="transient").id
    'counter'
    """
    if not (inspect.isclass(server) and issubclass(server, beam.GenServer)):
        raise InvalidSpec(
            "child_spec",
            "server",
            server,
            "a beam.GenServer subclass (for a plain async function use supervisors.worker)",
        )
    start: StartFn = server.start_link if name is None else bind(server.start_link, name=name)
    if id is None:
        id = name if name is not None else server.__qualname__  # noqa: A001
    return ChildSpec(id, start, (arg,), restart, shutdown, type, significant)


async def spawn_linked(fn: Callable[..., Awaitable[Any]], *args: Any) -> beam.Pid:
    """The start function of :func:`worker` specs: ``beam.spawn_link(fn, *args)``."""
    return beam.spawn_link(fn, *args)


def worker(
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    id: Hashable | None = None,  # noqa: A002 - OTP's field name
    restart: Restart = "permanent",
    shutdown: Shutdown | None = None,
    significant: bool = False,
) -> ChildSpec:
    """The spec of a plain async function as a child: starting it is
    ``beam.spawn_link(fn, *args)``. ``id`` defaults to the function's name. (Under a
    DynamicSupervisor with ``extra_arguments``, those come before *args*.)

    >>> async def heartbeat(interval):
    ...     while True:
    ...         await trio.sleep(interval)
    >>> worker(heartbeat, 1.0, restart="transient").id
    'heartbeat'
    """
    if not callable(fn):
        raise InvalidSpec("worker", "fn", fn, "an async function")
    if id is None:
        id = getattr(fn, "__qualname__", None) or repr(fn)  # noqa: A001
    # fn is bound in the start function, so a DynamicSupervisor's extra_arguments go to fn.
    start = bind(spawn_linked, fn)
    return ChildSpec(id, start, args, restart, shutdown, "worker", significant)


def _as_spec(child: object, index: int) -> ChildSpec:
    if isinstance(child, ChildSpec):
        return child
    server: object = child
    arg: Any = None
    if isinstance(child, tuple) and len(child) == 2:
        server, arg = child
    if isinstance(server, type) and issubclass(server, beam.GenServer):
        custom = getattr(server, "child_spec", None)
        if custom is None:
            return child_spec(server, arg)
        spec = custom(arg)
        if not isinstance(spec, ChildSpec):
            raise InvalidSpec(
                f"{server.__qualname__}.child_spec", "result", spec, "a supervisors.ChildSpec"
            )
        return spec
    raise InvalidSpec(
        "child list",
        f"children[{index}]",
        child,
        "a ChildSpec, a beam.GenServer subclass, or a (GenServer subclass, argument) pair; "
        "for a plain async function use supervisors.worker(fn, *args)",
    )


def validate_child_specs(children: Iterable[ChildLike]) -> tuple[ChildSpec, ...]:
    """Check a child list without starting anything; return it as ChildSpecs.

    Converts GenServer classes and ``(class, arg)`` pairs, and rejects duplicate ids and
    anything else with :class:`InvalidSpec` naming the entry. Every supervisor runs this on
    its child list first; call it in tests to check a tree's specs cheaply.

    >>> specs = validate_child_specs([child_spec(Counter, 0), worker(ticker, id="tick")])
    >>> [spec.id for spec in specs]
    ['Counter', 'tick']
    """
    if isinstance(children, ChildSpec | type) or not isinstance(children, Iterable):
        raise InvalidSpec("child list", "children", children, "a list of child specs")
    specs = tuple(_as_spec(child, index) for index, child in enumerate(children))
    seen: dict[Hashable, int] = {}
    for index, spec in enumerate(specs):
        first = seen.setdefault(spec.id, index)
        if first != index:
            raise InvalidSpec(
                "child list",
                f"children[{index}].id",
                spec.id,
                f"unique within a supervisor (children[{first}] has the same id)",
            )
    return specs


def describe_start(spec: ChildSpec) -> str:
    """How *spec* starts its child, for reports: ``Counter.start_link(0, name='counter')``.

    >>> describe_start(worker(heartbeat, 1.0))
    'beam.spawn_link(heartbeat, 1.0)'
    """
    start: Any = spec.start
    args = list(spec.args)
    keywords: dict[str, Any] = {}
    if isinstance(start, Bound):
        args = [*start.args, *args]
        keywords = dict(start.keywords)
        start = start.fn
    elif isinstance(start, functools.partial):
        args = [*start.args, *args]
        keywords = dict(start.keywords)
        start = start.func
    if start is spawn_linked and args:
        label = "beam.spawn_link"
        args[0] = _name_of(args[0])
        shown = [str(args[0]), *map(beam.bounded_repr, args[1:])]
    else:
        label = _name_of(start)
        shown = [beam.bounded_repr(a) for a in args]
    shown += [f"{key}={beam.bounded_repr(value)}" for key, value in keywords.items()]
    return f"{label}({', '.join(shown)})"


def _name_of(fn: object) -> str:
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__qualname__", None)
    if name is None:
        return beam.bounded_repr(fn)
    if isinstance(owner, type):  # a classmethod bound to a subclass: Counter.start_link
        return f"{owner.__qualname__}.{getattr(fn, '__name__', name)}"
    return str(name)
