"""``python -m domain migrations ...``: the command line for :class:`domain.Migrations`.

Usage::

    python -m domain migrations generate "add rooms" --domain app.chat:Chat --dir migrations
    python -m domain migrations upgrade [REV]     --domain app.chat:Chat --dir migrations
    python -m domain migrations downgrade REV     --domain app.chat:Chat --dir migrations
    python -m domain migrations check             --domain app.chat:Chat --dir migrations
    python -m domain migrations current           --domain app.chat:Chat --dir migrations

``--url`` defaults to :func:`domain.database_url` (``DATABASE_URL``, else SQLite under
``data/``); ``--schema`` picks a PostgreSQL schema; ``generate --allow-drops`` lets a revision
drop tables and columns. Errors (a failed check included) print one line and exit with 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from alembic.util import CommandError

from ._data_layer import database_url
from ._domain import Domain
from ._migrations import MigrationError, Migrations

PROG = "python -m domain"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see {PROG} migrations --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Tools for domain resources.")
    tools = parser.add_subparsers(dest="tool", required=True, parser_class=_Parser)
    migrations = tools.add_parser("migrations", help="Alembic migrations for a Domain")
    commands = migrations.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_)
        sub.add_argument(
            "--domain", required=True, metavar="MODULE:CLASS", help="e.g. app.chat:Chat"
        )
        sub.add_argument("--dir", required=True, metavar="PATH", help="the revision files")
        sub.add_argument("--url", default=None, help="SQLAlchemy URL (default: DATABASE_URL)")
        sub.add_argument("--schema", default=None, help="PostgreSQL schema")
        return sub

    generate = command("generate", "write a revision for what differs (nothing when in sync)")
    generate.add_argument("message")
    generate.add_argument("--allow-drops", action="store_true", help="allow dropping data")
    upgrade = command("upgrade", "apply revisions (default: up to head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = command("downgrade", "revert revisions (a revision id, -1 or base)")
    downgrade.add_argument("revision")
    command("check", "exit 1 when the database and the resources differ")
    command("current", "print the database's revision")
    return parser


def load_domain(spec: str) -> type[Domain]:
    """Import ``"module:Class"`` and return that Domain subclass.

    Example::

        load_domain("app.chat:Chat")    # <class 'app.chat.Chat'>
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise MigrationError(f"--domain {spec!r} must look like module:Class (e.g. app.chat:Chat)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MigrationError(
            f"--domain {spec!r}: cannot import {module_name!r} ({exc}); run from the directory "
            "that holds it or add that directory to PYTHONPATH"
        ) from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise MigrationError(f"--domain {spec!r}: module {module_name!r} has no {attr!r}")
    if not (isinstance(obj, type) and issubclass(obj, Domain)):
        raise MigrationError(f"--domain {spec!r}: {attr!r} is not a Domain subclass")
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0, or 1 after printing one error line).

    Example::

        main(["migrations", "check", "--domain", "app.chat:Chat", "--dir", "migrations"])
    """
    try:
        args = _parser().parse_args(argv)
        migrations = Migrations(
            load_domain(args.domain),
            args.url or database_url(),
            args.dir,
            schema=args.schema,
        )
        if args.command == "generate":
            path = migrations.generate(args.message, allow_drops=args.allow_drops)
            print(path if path is not None else "nothing to generate: already in sync")
        elif args.command == "upgrade":
            migrations.upgrade(args.revision)
            print(f"at revision {migrations.current() or 'base'}")
        elif args.command == "downgrade":
            migrations.downgrade(args.revision)
            print(f"at revision {migrations.current() or 'base'}")
        elif args.command == "check":
            migrations.check()
            print("in sync: the database matches the resources")
        else:
            print(migrations.current() or "base")
    except (_UsageError, MigrationError, CommandError) as exc:
        print(f"{PROG} migrations: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
