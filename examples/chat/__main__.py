"""``python -m examples.chat [--host H] [--port P] [--data-dir D]``: run the chat."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

import trio

import beam
import web

from .app import DEMO_PASSWORD, DEMO_USERS, build


async def main(host: str, port: int, data_dir: Path) -> None:
    endpoint = await build(data_dir)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(web.serve, endpoint, host, port)
        print(f"chat running at http://{host}:{bound}/", flush=True)
        print(f"sign in as {' or '.join(DEMO_USERS)} (password {DEMO_PASSWORD!r})", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--data-dir", type=Path, default=Path(".chat-data"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    beam.run(main, args.host, args.port, args.data_dir)


if __name__ == "__main__":
    cli()
