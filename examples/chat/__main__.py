"""``python -m examples.chat [--demo] [--secure-cookies] [--host H] [--port P] [--data-dir D]``:
run the chat.

``--demo`` (or ``CHAT_DEMO=1``; ``scripts/example`` passes it) seeds the demo users alice
(an admin) and bob, password ``wonderland``: for trying it out on your own machine only.
Otherwise the admin's account comes from ``CHAT_ADMIN_USERNAME`` and ``CHAT_ADMIN_PASSWORD``
(created, or its password updated, at start; needed until an admin exists).
``--secure-cookies`` (or ``CHAT_SECURE_COOKIES=1``) marks the cookies ``Secure``: use it
when the chat is served over TLS (behind a proxy that terminates it, say).
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

import trio

import beam
import web

from .app import DEMO_PASSWORD, DEMO_USERS, build, flag


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
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--data-dir", type=Path, default=Path(".chat-data"))
    parser.add_argument(
        "--demo", action="store_true", help="seed the demo users alice and bob (wonderland)"
    )
    parser.add_argument(
        "--secure-cookies", action="store_true", help="mark cookies Secure (serving over TLS)"
    )
    args = parser.parse_args()
    demo = args.demo or flag("CHAT_DEMO")
    secure = args.secure_cookies or flag("CHAT_SECURE_COOKIES")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    beam.run(main, args.host, args.port, args.data_dir, demo, secure)


if __name__ == "__main__":
    cli()
