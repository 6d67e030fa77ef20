"""``python -m web module:app``: run an endpoint in a node until interrupted.

*app* names an :class:`~web.Endpoint`, or a function (sync or async) that returns one; a
function runs inside the node, so it can start what the endpoint needs first (a presence
tracker, a supervision tree). SIGINT and SIGTERM stop the server gracefully: sockets close
with 1001, so clients reconnect to the next instance, and every process stops.

``--nodes N`` (``auto``: one per core) serves the app from N node processes that share the
port (``SO_REUSEPORT``: the kernel spreads connections among them) and one cluster, under a
parent that starts again a node that dies (see :mod:`web.http._nodes`). The nodes must share
a cluster (``--cluster redis://...`` or ``BEAM_CLUSTER``), else a broadcast or a
``web.disconnect`` on one node would miss the sockets of the others: without one, several
nodes are refused. They are named ``--name`` plus their index (``web1``, ``web2``...; by
default the prefix is this host and the port, ``myhost:4000/1``), and every log line of a
node starts with its name. Give the endpoint a fixed ``secret_key`` (the same on every node):
a LiveView page rendered by one node then connects to any other::

    python -m web myapp.web:endpoint --nodes auto --port 4000 --cluster redis://127.0.0.1:6379/0

One node (the default) runs in this process, as a node of a cluster if ``--cluster`` (or
``BEAM_CLUSTER``) is given, named ``--name`` (or ``BEAM_NODE``, else this host and port).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import importlib
import inspect
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import trio

import beam
import beam.cluster

from ._endpoint import SECRET_KEY_ENV, Endpoint
from ._nodes import READY, NodeGroup, cores, default_prefix, reserve_port, supervise
from ._server import serve

__all__ = ["load_app", "main"]

logger = logging.getLogger("web")

_NODE_ENV: Final = "BEAM_NODE"
_CLUSTER_ENV: Final = "BEAM_CLUSTER"
#: The first and the longest pause between two requests for a node name still held by a
#: node that died (it is freed within the cluster's timeout, 5 s by default).
_NAME_RETRY_FIRST: Final = 0.1
_NAME_RETRY_MAX: Final = 0.5


def load_app(spec: str) -> Any:
    """The object *spec* (``"package.module:attribute"``) names.

    >>> load_app("examples.chat.web:endpoint")
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"expected module:attribute (e.g. myapp.web:endpoint), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"cannot import {module_name!r} for {spec!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"module {module_name!r} has no attribute {attribute!r}") from None


@dataclass(frozen=True, slots=True)
class _NodeOptions:
    """How one node serves: where, under which name, in which cluster."""

    host: str
    port: int
    reuse_port: bool
    name: str | None
    cluster: str | None
    name_wait: float
    control_fd: int | None


class _Stop:
    """Set once the node should stop, with why (a signal's name, or the parent gone)."""

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


async def _endpoint_of(target: Any) -> Endpoint:
    endpoint = target
    if not isinstance(endpoint, Endpoint) and callable(endpoint):
        endpoint = target()
        if inspect.isawaitable(endpoint):
            endpoint = await endpoint
    if not isinstance(endpoint, Endpoint):
        raise SystemExit(f"the app must be a web.Endpoint or return one; got {endpoint!r:.100}")
    return endpoint


def _fingerprint(secret_key: str) -> str:
    """A short digest that is the same for two equal keys and reveals nothing of them."""
    digest = hmac.new(secret_key.encode(), b"web node key fingerprint", hashlib.sha256)
    return digest.hexdigest()[:16]


async def _serve(
    target: Any, options: _NodeOptions, stop: _Stop, control: trio.socket.SocketType | None
) -> None:
    """The node's first process: build the endpoint, serve it until *stop*."""
    endpoint = await _endpoint_of(target)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(
            partial(serve, endpoint, options.host, options.port, reuse_port=options.reuse_port)
        )
        logger.info("serving on http://%s:%d", options.host, bound)
        if control is not None:
            await control.send(READY + f" {_fingerprint(endpoint.secret_key)}\n".encode())
        await stop.event.wait()
        logger.info("stopping on %s", stop.reason)
        nursery.cancel_scope.cancel()


async def _join_and_serve(
    target: Any, options: _NodeOptions, stop: _Stop, control: trio.socket.SocketType | None
) -> str | None:
    """Run the node until *stop*; an error message if it could not start (else ``None``).

    A name still held by a node that died without leaving (its claim expires with the
    cluster's timeout) is asked for again until *options.name_wait* seconds have passed.
    """
    deadline = trio.current_time() + options.name_wait
    delay = _NAME_RETRY_FIRST
    while not stop.event.is_set():
        try:
            async with beam.open_node(
                name=options.name, cluster=options.cluster, tune_gc=True, initial_call=target
            ):
                await _serve(target, options, stop, control)
            return None
        except SystemExit as error:
            return str(error.code)
        except beam.cluster.NodeNameTaken as error:
            if trio.current_time() + delay > deadline:
                return f"{error} (waited {options.name_wait} s: see --name-wait)"
            if delay == _NAME_RETRY_FIRST:
                logger.info(
                    "node name %r is still taken (by a node that died without leaving the "
                    "cluster?); asking for it again for up to %s s",
                    options.name,
                    options.name_wait,
                )
            with trio.move_on_after(delay):
                await stop.event.wait()
            delay = min(delay * 2, _NAME_RETRY_MAX)
    return None


async def _stop_on_signals(signals: AsyncIterator[int], stop: _Stop, has_parent: bool) -> None:
    """The first signal stops the node gracefully; a second one ends it at once, unless the
    node has a parent (which may pass on a signal its process group got too, e.g. from a
    service manager, and kills the nodes itself when they take too long)."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if not stop.event.is_set():
            stop.set(name)
        elif not has_parent:
            logger.warning("%s again: exiting at once", name)
            logging.shutdown()
            os._exit(128 + signum)


async def _stop_when_parent_gone(control: trio.socket.SocketType, stop: _Stop) -> None:
    while await control.recv(64):
        pass
    stop.set("the end of the parent process")


async def _node(target: Any, options: _NodeOptions) -> str | None:
    """One node from start to stop, watching signals (and its parent, if it has one)."""
    stop = _Stop()
    control = None
    if options.control_fd is not None:
        raw = socket.socket(fileno=options.control_fd)
        raw.set_inheritable(False)
        control = trio.socket.from_stdlib_socket(raw)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as watchers:
            watchers.start_soon(_stop_on_signals, signals, stop, control is not None)
            if control is not None:
                watchers.start_soon(_stop_when_parent_gone, control, stop)
            error = await _join_and_serve(target, options, stop, control)
            watchers.cancel_scope.cancel()
    # Stopping already: another SIGTERM (a service manager signals every process of the
    # service, and the parent of ``--nodes`` passes its own on) must not kill the node
    # while its node closes. A second Ctrl-C still does.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if control is not None:
        control.close()
    return error


def _log_format(name: str | None) -> str:
    prefix = "" if name is None else "[" + name.replace("%", "%%") + "] "
    return prefix + "%(levelname)s %(name)s: %(message)s"


def _node_count(value: str) -> int:
    if value == "auto":
        return cores()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number of nodes >= 1 or 'auto', got {value!r}"
        )
    return count


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m web", description=__doc__.split("\n")[0])
    parser.add_argument("app", help="module:attribute naming an Endpoint or a factory of one")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=4000, help="port (0: any free port)")
    parser.add_argument(
        "--nodes",
        type=_node_count,
        default=1,
        help="node processes serving the port, or 'auto' (one per core); default 1",
    )
    parser.add_argument(
        "--cluster",
        help="Redis URL of the cluster to join (default: $BEAM_CLUSTER); needed by --nodes > 1",
    )
    parser.add_argument(
        "--name",
        help="the node's name (default: $BEAM_NODE, else HOST:PORT); with --nodes > 1, the "
        "prefix of the nodes' names, numbered from 1 (default: HOST:PORT/)",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="open the port with SO_REUSEPORT (implied by --nodes > 1)",
    )
    parser.add_argument(
        "--name-wait",
        type=float,
        default=10.0,
        help="seconds to keep asking for a node name held by a node that died without "
        "leaving the cluster (default 10; the cluster frees it 5 s after its last heartbeat)",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=5,
        help="with --nodes > 1: node restarts allowed within --max-seconds before the parent "
        "gives up and stops them all (default 5)",
    )
    parser.add_argument("--max-seconds", type=float, default=30.0, help="see --max-restarts")
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        help="with --nodes > 1: seconds the nodes get to stop after SIGTERM before they are "
        "killed (default 10)",
    )
    # The control socket a node started by the parent of --nodes shares with it.
    parser.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)
    return parser


def _run_one(args: argparse.Namespace) -> None:
    cluster = args.cluster or os.environ.get(_CLUSTER_ENV) or None
    name = args.name or os.environ.get(_NODE_ENV) or None
    if cluster is not None and name is None:
        name = f"{socket.gethostname().split('.')[0]}:{args.port}"
    logging.basicConfig(level=logging.INFO, format=_log_format(name))
    target = load_app(args.app)
    options = _NodeOptions(
        args.host, args.port, args.reuse_port, name, cluster, args.name_wait, args.control_fd
    )
    error = trio.run(_node, target, options)
    if error is not None:
        logger.error("%s", error)
        raise SystemExit(1)


def _run_many(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    cluster = args.cluster or os.environ.get(_CLUSTER_ENV) or None
    if cluster is None:
        parser.error(
            f"--nodes {args.nodes} starts {args.nodes} nodes that must share one cluster (for "
            f"broadcasts and web.disconnect to reach every node's sockets): pass --cluster "
            f"redis://HOST:6379/0 (e.g. --cluster redis://127.0.0.1:6379/0 for a Redis server "
            f"on this machine) or set {_CLUSTER_ENV}"
        )
    logging.basicConfig(level=logging.INFO, format=_log_format("parent"))
    load_app(args.app)  # a bad spec or module is one clear error, not N dying nodes
    try:
        reserved, port = reserve_port(args.host, args.port)
    except OSError as error:
        raise SystemExit(f"cannot listen on {args.host}:{args.port}: {error}") from None
    prefix = args.name or default_prefix(port)
    names = [f"{prefix}{index}" for index in range(1, args.nodes + 1)]

    def command(name: str, control_fd: int) -> list[str]:
        return [
            *(sys.executable, "-m", "web", args.app, "--host", args.host, "--port", str(port)),
            *("--name", name, "--reuse-port", "--name-wait", str(args.name_wait)),
            *("--control-fd", str(control_fd)),
        ]

    group = NodeGroup(
        names,
        command,
        f"http://{args.host}:{port}",
        # The URL goes through the environment: it may hold a password, which argv would show.
        # One secret key for every node (unless the app sets its own), so that a LiveView
        # page rendered on one node connects on another.
        env={
            SECRET_KEY_ENV: secrets.token_urlsafe(32),
            **os.environ,
            _CLUSTER_ENV: cluster,
        },
        max_restarts=args.max_restarts,
        max_seconds=args.max_seconds,
        stop_timeout=args.stop_timeout,
    )
    with reserved:
        status = trio.run(supervise, group)
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: ``python -m web module:app [--host H] [--port P] [--nodes N]``.

    >>> main(["examples.chat.web:endpoint", "--port", "4000"])
    >>> main(["examples.chat.web:endpoint", "--nodes", "auto", "--cluster", "redis://:6379/0"])
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.nodes > 1:
        _run_many(parser, args)
    else:
        _run_one(args)
