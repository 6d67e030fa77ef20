"""What the layers above the runtime need of its internals, and ordinary code does not.

As ``trio.lowlevel`` is to trio: these functions are public and stable, but they bend rules
that the rest of ``beam`` keeps, so application code should rarely need them. The web layer
does: a connection's transport process is spawned by the server's connection task, which is
not a process itself, and each channel process is reported as started by its channel class
rather than by the function that runs it::

    import beam
    from beam import lowlevel

    async def transport(stream):
        ...

    async def on_connection(stream):            # a plain trio task of the server
        pid = lowlevel.spawn_opt(transport, stream, detached=True, initial_call=UserSocket)

Everything else about a node (its process table, names, timers) stays private: upper layers
hold pids and call functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._node import _node_var, current_node, current_process
from ._process import NOT_EXITING
from ._types import Pid

__all__ = [
    "add_send_hook",
    "fixup_module_metadata",
    "idle_in_receive",
    "in_node",
    "spawn_linked_to",
    "spawn_opt",
]


def spawn_opt(
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    link: bool = False,
    detached: bool = False,
    initial_call: object = None,
) -> Pid:
    """Start ``fn(*args)`` as a process, with the options plain :func:`beam.spawn` lacks.

    *initial_call* is what introspection (``process_info``, crash reports, the process tree)
    reports as started, as OTP's ``proc_lib`` reports ``Module:init/1``: a behaviour passes its
    callback class. ``detached=True`` starts a process with no parent, from any code of the
    node, a process or not (it appears at the top of the process tree); otherwise the caller
    must be a process, becomes the parent, and with ``link=True`` is linked to the new process
    before it runs (as :func:`beam.spawn_link`).

    >>> async def main():
    ...     pid = lowlevel.spawn_opt(worker, 1, link=True, initial_call=Worker)
    """
    if detached:
        if link:
            raise ValueError(
                "a detached process has no parent to link to: pass link=False, or spawn from "
                "the process that should be linked (detached=False)"
            )
        node = current_node("beam.lowlevel.spawn_opt")
        return node._spawn(fn, args, parent=None, initial_call=initial_call)[0]
    parent = current_process("beam.lowlevel.spawn_opt (without detached=True)")
    return parent.node._spawn(fn, args, parent=parent, link=link, initial_call=initial_call)[0]


def idle_in_receive(pid: Pid) -> bool:
    """Whether the local process *pid* is blocked in a receive that takes any message, with
    an empty mailbox and no exit pending: a server between two requests.

    A server's own code may then answer a request *inline*, in the caller, when doing so is
    indistinguishable from the server taking it next (the server must also know that none
    of its callbacks is in progress: this cannot tell its loop's receive from a callback's).

    >>> beam.lowlevel.idle_in_receive(server_pid)
    True
    """
    node = current_node("beam.lowlevel.idle_in_receive")
    if pid.node is not None:
        return False
    proc = node._procs.get(pid.id)
    return (
        proc is not None
        and proc.waiter is not None
        and proc.wait_ref is None
        and proc.match is None
        and not proc.queue
        and proc.pending_exit is NOT_EXITING
    )


def spawn_linked_to(parent: Pid, fn: Callable[..., Awaitable[Any]], *args: Any) -> Pid:
    """Start ``fn(*args)`` as if the live local process *parent* had called
    :func:`beam.spawn_link`: *parent* is its parent and is linked to it. For a server that
    answers a request inline (see :func:`idle_in_receive`).

    >>> pid = lowlevel.spawn_linked_to(supervisor_pid, worker, 1)
    """
    node = current_node("beam.lowlevel.spawn_linked_to")
    proc = node._procs.get(_pid_id(parent))
    if proc is None:
        raise LookupError(f"cannot spawn linked to {parent}: it is not alive")
    return node._spawn(fn, args, parent=proc, link=True)[0]


def _pid_id(pid: Pid) -> int:
    if pid.node is not None:
        raise ValueError(f"{pid} is a process of another node")
    return pid.id


def add_send_hook(hook: Callable[[Pid, Any], None]) -> Callable[[], None]:
    """Call ``hook(pid, message)`` after every delivery to a process of this node, for tools
    that watch traffic (fault injection "with probability p per message", tracing); returns
    the function that removes it. Hooks run in the sender's context and must not raise or
    block; while any is installed, every send takes the slower, hooked path.

    >>> remove = lowlevel.add_send_hook(lambda pid, message: seen.append(pid))
    >>> remove()
    """
    return current_node("beam.lowlevel.add_send_hook")._add_send_hook(hook)


def in_node() -> bool:
    """Whether the calling code runs inside a node (``beam.run`` or ``beam.open_node``): a
    server may also run outside one, and then serves without processes.

    >>> beam.lowlevel.in_node()
    False
    """
    try:
        _node_var.get()
    except LookupError:
        return False
    return True


def fixup_module_metadata(package: str, namespace: Mapping[str, Any]) -> None:
    """Make the public objects of *package* (the names in ``namespace["__all__"]``) say they
    live in *package* rather than in its modules and sub-packages, so reprs, tracebacks and
    docs show ``web.Endpoint``, not ``web.http._endpoint.Endpoint``. Each package's
    ``__init__`` calls it last.

    >>> fixup_module_metadata(__name__, globals())
    """
    inside = package + "."
    for name in namespace["__all__"]:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(inside):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = package
