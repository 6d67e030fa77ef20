"""``python -m web module:app``: run an endpoint in a node until interrupted.

*app* names an :class:`~web.Endpoint`, or a function (sync or async) that returns one; a
function runs inside the node, so it can start what the endpoint needs first (a presence
tracker, a supervision tree). SIGINT and SIGTERM stop the server gracefully: sockets close
with 1001, so clients reconnect to the next instance, and every process stops.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import signal
from collections.abc import Sequence
from typing import Any

import trio

import beam

from ._endpoint import Endpoint
from ._server import serve

__all__ = ["load_app", "main"]

logger = logging.getLogger("web")


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


async def _run(target: Any, host: str, port: int) -> None:
    endpoint = target
    if not isinstance(endpoint, Endpoint) and callable(endpoint):
        endpoint = target()
        if inspect.isawaitable(endpoint):
            endpoint = await endpoint
    if not isinstance(endpoint, Endpoint):
        raise SystemExit(f"the app must be a web.Endpoint or return one; got {endpoint!r:.100}")
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve, endpoint, host, port)
        logger.info("serving on http://%s:%d", host, bound)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                logger.info("stopping on %s", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: ``python -m web module:app [--host H] [--port P]``.

    >>> main(["examples.chat.web:endpoint", "--port", "4000"])
    """
    parser = argparse.ArgumentParser(prog="python -m web", description=__doc__.split("\n")[0])
    parser.add_argument("app", help="module:attribute naming an Endpoint or a factory of one")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=4000, help="port (0: any free port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    target = load_app(args.app)
    beam.run(_run, target, args.host, args.port)
