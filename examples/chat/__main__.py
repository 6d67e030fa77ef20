"""``python -m examples.chat [--demo] [--secure-cookies] [--host H] [--port P] [--data-dir D]``:
run the chat.

``--demo`` (or ``CHAT_DEMO=1``; ``scripts/example`` passes it) seeds the demo users alice
(an admin) and bob, password ``wonderland``: for trying it out on your own machine only.
Otherwise the admin's account comes from ``CHAT_ADMIN_USERNAME`` and ``CHAT_ADMIN_PASSWORD``
(created, or its password updated, at start; needed until an admin exists).
``--secure-cookies`` (or ``CHAT_SECURE_COOKIES=1``) marks the cookies ``Secure``: use it
when the chat is served over TLS (behind a proxy that terminates it, say).

``--nodes N`` (or ``auto``, one per core) serves the chat from N nodes on the same port,
joined in the cluster at ``--cluster`` (a Redis URL, or ``BEAM_CLUSTER``), through
``python -m web examples.chat.serve:endpoint`` (see :mod:`examples.chat.serve`); give them a
PostgreSQL ``DATABASE_URL`` (SQLite works on one machine, one writer at a time).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from pathlib import Path

import trio

import beam
import web

from .app import DEMO_PASSWORD, DEMO_USERS, build, flag
from .serve import DATA_DIR_ENV


async def main(host: str, port: int, data_dir: Path, demo: bool, secure: bool) -> None:
    endpoint = await build(data_dir, demo=demo, secure_cookies=secure)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(web.serve, endpoint, host, port)
        print(f"chat running at http://{host}:{bound}/", flush=True)
        if demo:
            print(
                f"DEMO MODE: sign in as {' or '.join(DEMO_USERS)} (password {DEMO_PASSWORD!r}; "
                "alice is an admin). Not for a chat others can reach.",
                flush=True,
            )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def cli() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.chat",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=4000, help="the port (default: 4000)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".chat-data"),
        help="where the SQLite file and the signing key live (default: .chat-data)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="seed the demo users alice and bob (wonderland)"
    )
    parser.add_argument(
        "--secure-cookies", action="store_true", help="mark cookies Secure (serving over TLS)"
    )
    parser.add_argument(
        "--nodes", default="1", help="serve from N node processes on one port (or 'auto')"
    )
    parser.add_argument("--cluster", help="the cluster's Redis URL (default: BEAM_CLUSTER)")
    args = parser.parse_args()
    demo = args.demo or flag("CHAT_DEMO")
    secure = args.secure_cookies or flag("CHAT_SECURE_COOKIES")
    if args.nodes != "1":
        _exec_nodes(args, demo, secure)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        beam.run(main, args.host, args.port, args.data_dir, demo, secure)
    except (OSError, RuntimeError, BaseExceptionGroup) as exc:
        said = why_not(exc, args.port)
        if said is None:
            raise
        raise SystemExit(said) from None


def why_not(exc: BaseException, port: int) -> str | None:
    """One line for a start-up failure a person can fix (a busy port, the JavaScript clients
    not installed), found in *exc* or the groups holding it; ``None`` for anything else.

    >>> why_not(OSError(errno.EADDRINUSE, "in use"), 4000)
    'chat: port 4000 is in use (is the chat running already?); pick another: --port 4001'
    """
    if isinstance(exc, BaseExceptionGroup):
        found = (why_not(inner, port) for inner in exc.exceptions)
        return next((said for said in found if said is not None), None)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"chat: port {port} is in use (is the chat running already?); "
            f"pick another: --port {port + 1}"
        )
    if isinstance(exc, RuntimeError) and "phoenix_live_view client is not installed" in str(exc):
        return (
            "chat: the Phoenix JavaScript clients are not installed: install Node.js and npm, "
            "then run `npm ci` in the repository (scripts/example does it when npm is there)"
        )
    return None


def _exec_nodes(args: argparse.Namespace, demo: bool, secure: bool) -> None:
    """Become ``python -m web examples.chat.serve:endpoint --nodes N``, with this command's
    options passed on through the environment (a cluster URL may hold a password)."""
    env = {**os.environ, DATA_DIR_ENV: str(args.data_dir)}
    env.update({"CHAT_DEMO": "1"} if demo else {})
    env.update({"CHAT_SECURE_COOKIES": "1"} if secure else {})
    if args.cluster:
        env["BEAM_CLUSTER"] = args.cluster
    argv = [sys.executable, "-m", "web", "examples.chat.serve:endpoint"]
    argv += ["--host", args.host, "--port", str(args.port), "--nodes", args.nodes]
    os.execve(sys.executable, argv, env)


if __name__ == "__main__":
    cli()
