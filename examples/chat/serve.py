"""The chat as an app for ``python -m web``, configured by the environment, so that one command
serves it from several nodes (one per core, or more machines) sharing one port::

    DATABASE_URL=postgresql://127.0.0.1/chat CHAT_DEMO=1 \\
        python -m web examples.chat.serve:endpoint --nodes 2 --cluster redis://127.0.0.1:6379/0

(``python -m examples.chat --nodes 2 --cluster ...`` runs exactly that.) Every node reads
``CHAT_DATA_DIR`` (default ``.chat-data``: the secret key, and the SQLite file when there is
no ``DATABASE_URL``), ``CHAT_DEMO``, ``CHAT_SECURE_COOKIES`` and the variables of
:func:`examples.chat.app.build`. Nodes on one machine share the data directory, so they sign
sessions with the same key; nodes on several machines need the same ``CHAT_SECRET_KEY``, and
a PostgreSQL database (SQLite is one machine's file).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

import web

from .app import build

__all__ = ["DATA_DIR_ENV", "endpoint"]

#: Where the nodes keep the secret key (and SQLite's file): shared by the nodes of a machine.
DATA_DIR_ENV: Final = "CHAT_DATA_DIR"


async def endpoint() -> web.Endpoint:
    """Start the chat in this node and return its endpoint (see the module doc).

    >>> # python -m web examples.chat.serve:endpoint --port 4000
    """
    for chatty in ("alembic", "supervisors"):  # progress reports: off, as OTP's default
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return await build(Path(os.environ.get(DATA_DIR_ENV, ".chat-data")))
