"""Schema migrations for a :class:`~domain.Domain`, driven by Alembic from Python (no env.py).

The live database is the baseline: :meth:`Migrations.generate` reflects it, compares it with
``Domain.metadata()`` (types included) and writes a revision file only when something differs.
Column and table drops are refused unless ``allow_drops=True``; on SQLite the revision uses
Alembic's batch mode, since SQLite cannot run most ``ALTER TABLE`` statements.

Everything here is blocking (plain SQLAlchemy engines): it is a development and deployment
tool, meant for the command line (``python -m domain migrations ...``), scripts and CI, not for
code running inside trio processes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.autogenerate.api import AutogenContext
from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import rev_id

from ._data_layer import database_url, ensure_sqlite_directory
from ._domain import Domain
from ._errors import DomainError

__all__ = ["DropsRefused", "MigrationError", "Migrations", "MigrationsOutOfDate"]

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

_TEMPLATE = '''"""{message}

Revision ID: {revision}
Revises: {down_revision}
Create Date: {created}
"""

{imports}

revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


class MigrationError(DomainError):
    """A migration command cannot run as asked; the message says why and what to do.

    >>> try:
    ...     Migrations(Chat, "sqlite:///chat.db", "migrations").generate("add rooms")
    ... except MigrationError as exc:
    ...     print(exc)     # e.g. "database is at 1a2b, the scripts' head is 3c4d; ..."
    """


class MigrationsOutOfDate(MigrationError):
    """The database (upgraded to the scripts' head) does not match the domain's resources.

    ``differences`` lists one readable line per difference::

        try:
            Migrations(Chat, url, "migrations").check()
        except MigrationsOutOfDate as exc:
            exc.differences     # ["add column chat_users.email", ...]
    """

    def __init__(self, message: str, differences: Sequence[str]) -> None:
        self.differences = list(differences)
        detail = "; ".join(self.differences)
        super().__init__(f"{message}: {detail}" if detail else message)


class DropsRefused(MigrationError):
    """A generated revision would drop tables or columns, and ``allow_drops`` was not given.

    ``drops`` names each one (``"notes"`` for a table, ``"notes.body"`` for a column)::

        try:
            migrations.generate("remove body")
        except DropsRefused as exc:
            exc.drops           # ["notes.body"]
            migrations.generate("remove body", allow_drops=True)   # after review
    """

    def __init__(self, drops: Sequence[str]) -> None:
        self.drops = list(drops)
        super().__init__(
            "the new revision would drop "
            + ", ".join(self.drops)
            + " (data would be lost); a rename shows up as a drop plus an add. If the drop is"
            " intended, pass allow_drops=True (CLI: --allow-drops), then review the revision"
        )


class Migrations:
    """Alembic migrations for one domain: generate, upgrade, downgrade, check, current.

    *url* is an SQLAlchemy URL (default: :func:`domain.database_url`); *directory* holds the
    revision files (created when missing); *schema* is a PostgreSQL schema that must exist
    already: the tables and the version table land there (it becomes the ``search_path``).
    The database belongs to the domain: tables it does not declare count as drops.
    All calls block; run them from a CLI, a script or CI, not from trio processes::

        migrations = Migrations(Chat, "sqlite:///chat.db", "migrations/versions")
        migrations.generate("create chat")     # Path of the new revision, or None
        migrations.upgrade()                   # to "head"
        migrations.check()                     # raises MigrationsOutOfDate on drift
        migrations.current()                   # e.g. "3f2a9c1b7d0e"
        migrations.downgrade("base")
    """

    def __init__(
        self,
        domain: type[Domain],
        url: str | None = None,
        directory: str | Path = "migrations",
        *,
        schema: str | None = None,
        version_table: str = "alembic_version",
    ) -> None:
        if not (isinstance(domain, type) and issubclass(domain, Domain)):
            raise MigrationError(f"expected a Domain subclass, got {domain!r}")
        self.domain = domain
        self.url = url or database_url()
        self.directory = Path(directory)
        self.schema = schema
        self.version_table = version_table
        backend = sa.engine.make_url(self.url).get_backend_name()
        self._sqlite = backend == "sqlite"
        if schema is not None:
            if backend != "postgresql":
                raise MigrationError(
                    f"schema={schema!r} needs PostgreSQL, but the URL is for {backend}; "
                    "leave schema out"
                )
            if not _SCHEMA_NAME.match(schema):
                raise MigrationError(
                    f"schema={schema!r} is not a plain identifier (letters, digits, _ and $)"
                )

    # -- public operations ---------------------------------------------------------------------

    def generate(self, message: str, *, allow_drops: bool = False) -> Path | None:
        """Write a revision for what differs between the database and the domain; None when
        nothing does (no file is written). An empty database is upgraded to head first; one
        that is behind the scripts is refused (upgrade it, or use an empty one)::

            path = migrations.generate("add rooms")    # migrations/versions/ab12..._add_rooms.py
            migrations.generate("again")               # None: already in sync

        Raises :class:`DropsRefused` when the revision would drop a table or column and
        *allow_drops* is false.
        """
        script = self._script()
        heads = script.get_heads()
        if len(heads) > 1:
            raise MigrationError(
                f"the scripts in {self.directory} have several heads ({', '.join(heads)}); "
                "merge them into one first"
            )
        with self._engine() as engine:
            self._prepare(engine, script)
            with engine.connect() as conn:
                context = self._context(conn)
                produced = produce_migrations(context, self._metadata())
                upgrade_ops, downgrade_ops = produced.upgrade_ops, produced.downgrade_ops
                assert upgrade_ops is not None
                assert downgrade_ops is not None
                if upgrade_ops.is_empty():
                    return None
                drops = _drops(upgrade_ops)
                if drops and not allow_drops:
                    raise DropsRefused(drops)
                imports: set[str] = set()
                render = _type_renderer(imports)
                code_up = render_python_code(
                    upgrade_ops,
                    render_as_batch=self._sqlite,
                    render_item=render,
                    migration_context=context,
                )
                code_down = render_python_code(
                    downgrade_ops,
                    render_as_batch=self._sqlite,
                    render_item=render,
                    migration_context=context,
                )
        revision = rev_id()
        down_revision = heads[0] if heads else None
        self.directory.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40] or "revision"
        path = self.directory / f"{revision}_{slug}.py"
        code = code_up + code_down
        if "postgresql." in code:  # dialect types (JSONB, ARRAY), as Alembic renders them
            imports.add("from sqlalchemy.dialects import postgresql")
        if re.search(r"(?<![.\w])Text\(", code):  # JSONB(astext_type=Text())
            imports.add("from sqlalchemy import Text")
        lines = ["import sqlalchemy as sa", "from alembic import op", *sorted(imports)]
        path.write_text(
            _TEMPLATE.format(
                message=message.replace('"""', "'''"),
                revision=revision,
                down_revision=down_revision,
                created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                imports="\n".join(lines),
                upgrade=_body(code_up),
                downgrade=_body(code_down),
            ),
            encoding="utf-8",
        )
        return path

    def upgrade(self, revision: str = "head") -> None:
        """Apply the revisions up to *revision* (``"head"``, a revision id, or ``"+1"``).

        Example::

            migrations.upgrade()
            migrations.upgrade("3f2a9c1b7d0e")
        """
        script = self._script()
        with self._engine() as engine:
            self._refuse_unversioned(engine)
            self._run(engine, lambda rev, _ctx: script._upgrade_revs(revision, rev))

    def downgrade(self, revision: str) -> None:
        """Revert the revisions down to *revision* (a revision id, ``"-1"`` or ``"base"``).

        Example::

            migrations.downgrade("-1")
            migrations.downgrade("base")    # drops everything the revisions created
        """
        script = self._script()
        with self._engine() as engine:
            self._run(engine, lambda rev, _ctx: script._downgrade_revs(revision, rev))

    def check(self) -> None:
        """Return when the database matches the domain; raise :class:`MigrationsOutOfDate`
        listing the differences otherwise, or when revisions are pending. An empty database
        is upgraded to head first, so CI can check against a fresh one::

            migrations.check()    # MigrationsOutOfDate: ... add column notes.title
        """
        script = self._script()
        with self._engine() as engine:
            try:
                self._prepare(engine, script)
            except _Behind as exc:
                raise MigrationsOutOfDate(
                    "the database is behind the migration scripts", [str(exc)]
                ) from None
            with engine.connect() as conn:
                diffs = compare_metadata(self._context(conn), self._metadata())
        if diffs:
            raise MigrationsOutOfDate(
                f"the database differs from {self.domain.__name__}'s resources; generate a "
                "revision",
                [_describe(d) for d in diffs],
            )

    def current(self) -> str | None:
        """The database's revision id, or None when no revision was applied.

        Example::

            migrations.current()    # "3f2a9c1b7d0e"
        """
        with self._engine() as engine, engine.connect() as conn:
            return self._context(conn).get_current_revision()

    # -- internals -----------------------------------------------------------------------------

    def _metadata(self) -> sa.MetaData:
        return self.domain.metadata()

    def _script(self) -> ScriptDirectory:
        if self.directory.exists() and not self.directory.is_dir():
            raise MigrationError(f"{self.directory} is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        return ScriptDirectory(self.directory, version_locations=[str(self.directory)])

    @contextmanager
    def _engine(self) -> Iterator[sa.Engine]:
        connect_args: dict[str, Any] = {}
        if self.schema is not None:
            # The schema becomes the default one: unqualified DDL lands there, reflection and
            # the version table look there, and revision files stay schema-neutral.
            connect_args["options"] = f'-csearch_path="{self.schema}"'
        ensure_sqlite_directory(self.url)
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool, connect_args=connect_args)
        try:
            yield engine
        finally:
            engine.dispose()

    def _context(self, conn: sa.Connection, **opts: Any) -> MigrationContext:
        return MigrationContext.configure(
            connection=conn,
            opts={
                "target_metadata": self._metadata(),
                "compare_type": True,
                "render_as_batch": self._sqlite,
                "version_table": self.version_table,
                **opts,
            },
        )

    def _run(self, engine: sa.Engine, fn: Any) -> None:
        with engine.connect() as conn:
            context = self._context(conn, fn=fn)
            with Operations.context(context), context.begin_transaction():
                context.run_migrations()
            conn.commit()

    def _state(self, engine: sa.Engine) -> tuple[set[str], set[str]]:
        """The database's current revisions and its tables (the version table aside)."""
        with engine.connect() as conn:
            current = set(self._context(conn).get_current_heads())
            tables = set(sa.inspect(conn).get_table_names()) - {self.version_table}
        return current, tables

    def _refuse_unversioned(self, engine: sa.Engine) -> None:
        """Tables but no revision: made some other way (``create_tables``, by hand)."""
        current, tables = self._state(engine)
        if tables and not current:
            raise MigrationError(
                f"the database has tables ({', '.join(sorted(tables))}) but no migration "
                f"revision, while {self.directory} has revisions; start from an empty database "
                "or drop those tables"
            )

    def _prepare(self, engine: sa.Engine, script: ScriptDirectory) -> None:
        """Bring an empty database to head; refuse one that is not at head."""
        heads = set(script.get_heads())
        current, tables = self._state(engine)
        if current == heads:
            return
        if not current and not tables:
            self._run(engine, lambda rev, _ctx: script._upgrade_revs("heads", rev))
            return
        self._refuse_unversioned(engine)
        raise _Behind(
            f"the database is at {', '.join(sorted(current))} but the scripts' head is "
            f"{', '.join(sorted(heads)) or 'base'}; run upgrade first"
        )


class _Behind(MigrationError):
    """The database is at a revision other than the scripts' head."""


def _body(code: str) -> str:
    """Alembic's rendered commands as a function body, without its banner comments."""
    lines = [line.strip("\n") for line in code.splitlines()]
    kept = [line for line in lines if line.strip() and not line.strip().startswith("# ###")]
    return "\n".join(line if line.startswith("    ") else "    " + line for line in kept)


def _drops(upgrade_ops: alembic_ops.UpgradeOps) -> list[str]:
    found: list[str] = []

    def walk(ops: Sequence[alembic_ops.MigrateOperation]) -> None:
        for op in ops:
            if isinstance(op, alembic_ops.DropTableOp):
                found.append(op.table_name)
            elif isinstance(op, alembic_ops.DropColumnOp):
                found.append(f"{op.table_name}.{op.column_name}")
            elif isinstance(op, alembic_ops.OpContainer):
                walk(op.ops)

    walk(upgrade_ops.ops)
    return found


def _type_renderer(imports: set[str]) -> Any:
    """Render a TypeDecorator over a plain SQLAlchemy type as that type (revision files must
    not import private domain classes); import the module of any other non-SQLAlchemy type."""

    def render(kind: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
        if kind != "type" or type(obj).__module__.startswith("sqlalchemy."):
            return False
        if isinstance(obj, sa.types.TypeDecorator):
            impl = obj.impl_instance
            if type(impl).__module__.startswith("sqlalchemy.") and not type(
                impl
            ).__module__.startswith("sqlalchemy.dialects"):
                return f"sa.{impl!r}"
        imports.add(f"import {type(obj).__module__}")
        return False

    return render


def _name(obj: Any) -> str:
    table = getattr(obj, "table", None)
    name = getattr(obj, "name", None) or "(unnamed)"
    if table is not None and isinstance(table, sa.Table):
        return f"{name} on {table.name}"
    return str(name)


def _describe(diff: Any) -> str:
    """One readable line for an Alembic diff entry."""
    if isinstance(diff, list):
        return "; ".join(_describe(d) for d in diff)
    kind = str(diff[0]).replace("_", " ")
    if diff[0] in ("add_table", "remove_table"):
        return f"{kind} {diff[1].name}"
    if diff[0] in ("add_column", "remove_column"):
        return f"{kind} {diff[2]}.{diff[3].name}"
    if str(diff[0]).startswith("modify_") and len(diff) == 7:
        _, _schema, table, column, _kw, old, new = diff
        return f"{kind} {table}.{column}: {old!r} -> {new!r}"
    if len(diff) == 2:
        return f"{kind} {_name(diff[1])}"
    return f"{kind} {diff[1:]!r}"
