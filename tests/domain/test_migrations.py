"""Migrations: Alembic autogenerate against a domain's metadata, on SQLite and PostgreSQL.

Schema changes between "versions" of a domain come from Domain subclasses whose
``metadata()`` returns an altered copy (resources share one global MetaData, so two resource
classes cannot declare the same table). ``Migrations`` only ever reads ``metadata()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from domain import (
    Domain,
    DropsRefused,
    MigrationError,
    Migrations,
    MigrationsOutOfDate,
    Resource,
    attribute,
    belongs_to,
    create_timestamp,
    identity,
    read,
    uuid_primary_key,
)

from ..support.backends import Backend

REPO_ROOT = Path(__file__).resolve().parents[2]


class MigAuthor(Resource):
    __tablename__ = "mig_authors"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute(max_length=40)
    identities = (identity("unique_name", "name"),)
    actions = (read("read"),)


class MigNote(Resource):
    __tablename__ = "mig_notes"
    id: uuid.UUID = uuid_primary_key()
    body: str = attribute(max_length=200)
    summary: str | None = attribute(max_length=80)
    author = belongs_to("MigAuthor", allow_nil=False)
    inserted_at: datetime = create_timestamp()
    actions = (read("read"),)


class MigV1(Domain):
    resources = (MigAuthor, MigNote)


def _variant(name: str, edit: Callable[[sa.MetaData], None]) -> type[Domain]:
    """MigV1 with its metadata changed by *edit* (the next version of the code)."""

    def metadata(cls: type[Domain]) -> sa.MetaData:
        md = MigV1.metadata()
        edit(md)
        return md

    return type(name, (Domain,), {"resources": (), "metadata": classmethod(metadata)})


def _add_title(md: sa.MetaData) -> None:
    md.tables["mig_notes"].append_column(sa.Column("title", sa.String(60), nullable=True))


def _summary_required(md: sa.MetaData) -> None:
    md.tables["mig_notes"].c.summary.nullable = False


def _wider_body(md: sa.MetaData) -> None:
    md.tables["mig_notes"].c.body.type = sa.String(400)


MigV2 = _variant("MigV2", _add_title)
MigV1Strict = _variant("MigV1Strict", _summary_required)
MigV1Wide = _variant("MigV1Wide", _wider_body)


def _migrations(domain: type[Domain], backend: Backend, directory: Path) -> Migrations:
    return Migrations(domain, backend.url, directory, schema=backend.schema)


def _inspector(backend: Backend) -> tuple[sa.Engine, str | None]:
    return sa.create_engine(backend.url, poolclass=sa.pool.NullPool), backend.schema


def _tables(backend: Backend) -> set[str]:
    engine, schema = _inspector(backend)
    try:
        return set(sa.inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()


def _columns(backend: Backend, table: str) -> dict[str, bool]:
    """Column name -> nullable, as the database reports it."""
    engine, schema = _inspector(backend)
    try:
        cols = sa.inspect(engine).get_columns(table, schema=schema)
        return {c["name"]: bool(c["nullable"]) for c in cols}
    finally:
        engine.dispose()


def _execute(backend: Backend, sql: str) -> None:
    engine, schema = _inspector(backend)
    try:
        with engine.begin() as conn:
            if schema is not None:
                conn.execute(sa.text(f'SET LOCAL search_path TO "{schema}"'))
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def _insert(backend: Backend, table: str, row: dict[str, object]) -> None:
    engine = sa.create_engine(backend.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn = conn.execution_options(schema_translate_map={None: backend.schema})
            conn.execute(MigV1.metadata().tables[table].insert(), [row])
    finally:
        engine.dispose()


def _count(backend: Backend, table: str) -> int:
    engine = sa.create_engine(backend.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(schema_translate_map={None: backend.schema})
            query = sa.select(sa.func.count()).select_from(MigV1.metadata().tables[table])
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _revisions(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.py"))


def test_generate_upgrade_check_downgrade(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    migrations = _migrations(MigV1, backend, versions)
    assert migrations.current() is None

    path = migrations.generate("create notes")
    assert path is not None
    assert _revisions(versions) == [path]
    text = path.read_text()
    assert "op.create_table('mig_authors'" in text
    assert "op.create_table('mig_notes'" in text
    assert "domain._resource" not in text  # the timestamp type is rendered as plain sa.DateTime
    # Nothing ran yet: generating against an empty database only wrote the file.
    assert "mig_notes" not in _tables(backend)

    migrations.upgrade()
    assert {"mig_authors", "mig_notes"} <= _tables(backend)
    revision = migrations.current()
    assert revision is not None
    assert path.name.startswith(revision)
    cols = _columns(backend, "mig_notes")
    assert set(cols) == {"id", "body", "summary", "author_id", "inserted_at"}
    assert cols["summary"] is True
    assert cols["body"] is False

    assert migrations.generate("nothing changed") is None
    assert _revisions(versions) == [path]
    migrations.check()

    migrations.downgrade("base")
    assert migrations.current() is None
    assert not {"mig_authors", "mig_notes"} & _tables(backend)


def test_added_column_is_detected_generated_and_reverted(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    v1 = _migrations(MigV1, backend, versions)
    first = v1.generate("create notes")
    v1.upgrade()

    v2 = _migrations(MigV2, backend, versions)
    with pytest.raises(MigrationsOutOfDate) as info:
        v2.check()
    assert "add column mig_notes.title" in info.value.differences
    assert "mig_notes.title" in str(info.value)

    second = v2.generate("add title")
    assert second is not None
    assert first is not None
    text = second.read_text()
    assert "'title'" in text
    assert f"down_revision = {first.name.split('_')[0]!r}" in text
    # The database stayed at v1 until the upgrade: check says revisions are pending.
    with pytest.raises(MigrationsOutOfDate, match="behind"):
        v2.check()
    with pytest.raises(MigrationError, match="run upgrade first"):
        v2.generate("too early")

    v2.upgrade()
    assert "title" in _columns(backend, "mig_notes")
    v2.check()
    assert v2.generate("again") is None
    # The v1 code now lags the database: check fails the other way round.
    with pytest.raises(MigrationsOutOfDate, match=r"remove column mig_notes\.title"):
        v1.check()

    v2.downgrade("-1")
    assert "title" not in _columns(backend, "mig_notes")
    assert v2.current() == first.name.split("_")[0]
    with pytest.raises(MigrationsOutOfDate, match="behind"):
        v1.check()  # matches v1's code, but a revision is pending
    second.unlink()
    v1.check()


def test_drops_are_refused_unless_allowed(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    v2 = _migrations(MigV2, backend, versions)
    v2.generate("create notes with a title")
    v2.upgrade()

    v1 = _migrations(MigV1, backend, versions)
    with pytest.raises(DropsRefused) as info:
        v1.generate("drop title")
    assert info.value.drops == ["mig_notes.title"]
    assert "allow_drops=True" in str(info.value)
    assert len(_revisions(versions)) == 1

    path = v1.generate("drop title", allow_drops=True)
    assert path is not None
    if backend.name == "sqlite":
        assert "batch_alter_table('mig_notes'" in path.read_text()
    v1.upgrade()
    assert "title" not in _columns(backend, "mig_notes")
    v1.check()


def test_dropped_table_is_refused(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    v1 = _migrations(MigV1, backend, versions)
    v1.generate("create notes")
    v1.upgrade()
    _execute(backend, "CREATE TABLE mig_leftover (id INTEGER PRIMARY KEY)")
    with pytest.raises(DropsRefused, match="mig_leftover"):
        v1.generate("forget leftover")
    with pytest.raises(MigrationsOutOfDate, match="remove table mig_leftover"):
        v1.check()


def test_nullability_change_uses_batch_mode_on_sqlite(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    v1 = _migrations(MigV1, backend, versions)
    v1.generate("create notes")
    v1.upgrade()
    author_id = uuid.uuid4()
    _insert(backend, "mig_authors", {"id": author_id, "name": "ann"})
    _insert(
        backend,
        "mig_notes",
        {
            "id": uuid.uuid4(),
            "body": "hello",
            "summary": "greeting",
            "author_id": author_id,
            "inserted_at": datetime.now(UTC),
        },
    )

    strict = _migrations(MigV1Strict, backend, versions)
    with pytest.raises(MigrationsOutOfDate, match=r"mig_notes\.summary"):
        strict.check()
    path = strict.generate("summary required")
    assert path is not None
    text = path.read_text()
    assert "nullable=False" in text
    # SQLite cannot ALTER a column's nullability: the revision must copy the table instead.
    assert ("batch_alter_table" in text) == (backend.name == "sqlite")
    strict.upgrade()
    assert _columns(backend, "mig_notes")["summary"] is False
    assert _count(backend, "mig_notes") == 1  # the batch copy kept the rows
    strict.check()

    strict.downgrade("-1")
    assert _columns(backend, "mig_notes")["summary"] is True
    path.unlink()
    v1.check()


def test_type_change_is_detected(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    v1 = _migrations(MigV1, backend, versions)
    v1.generate("create notes")
    v1.upgrade()
    wide = _migrations(MigV1Wide, backend, versions)
    with pytest.raises(MigrationsOutOfDate, match=r"modify type mig_notes\.body"):
        wide.check()
    path = wide.generate("longer body")
    assert path is not None
    assert "type_=sa.String(length=400)" in path.read_text()
    wide.upgrade()
    wide.check()


def test_check_sees_changes_made_outside_migrations(backend: Backend, tmp_path: Path) -> None:
    v1 = _migrations(MigV1, backend, tmp_path / "versions")
    v1.generate("create notes")
    v1.upgrade()
    v1.check()
    _execute(backend, "ALTER TABLE mig_notes ADD COLUMN stray INTEGER")
    with pytest.raises(MigrationsOutOfDate) as info:
        v1.check()
    assert info.value.differences == ["remove column mig_notes.stray"]


def test_check_upgrades_an_empty_database(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    v1 = _migrations(MigV1, backend, versions)
    v1.generate("create notes")
    assert v1.current() is None
    v1.check()  # CI's fresh database: brought to head, then compared
    assert v1.current() is not None


def test_database_with_tables_but_no_revision_is_refused(backend: Backend, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    _migrations(MigV1, backend, versions).generate("create notes")
    _execute(backend, "CREATE TABLE mig_unmanaged (id INTEGER PRIMARY KEY)")
    with pytest.raises(MigrationError, match="no migration revision"):
        _migrations(MigV1, backend, versions).generate("more")
    with pytest.raises(MigrationError, match="no migration revision"):  # not a raw SQL error
        _migrations(MigV1, backend, versions).upgrade()


def test_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="needs PostgreSQL"):
        Migrations(MigV1, f"sqlite:///{tmp_path / 'x.db'}", tmp_path, schema="s")
    with pytest.raises(MigrationError, match="Domain subclass"):
        Migrations(MigNote, "sqlite://", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(MigrationError, match="plain identifier"):
        Migrations(MigV1, "postgresql+psycopg://x@localhost/db", tmp_path, schema='a"b')


# -- the command line ---------------------------------------------------------------------------

CLI_APP = """
import uuid
from domain import Domain, Resource, attribute, read, uuid_primary_key

class CliNote(Resource):
    __tablename__ = "cli_notes"
    id: uuid.UUID = uuid_primary_key()
    body: str = attribute(max_length=100)
    actions = (read("read"),)

class CliApp(Domain):
    resources = (CliNote,)
"""


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "domain", "migrations", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_cli_generate_upgrade_check_current(tmp_path: Path) -> None:
    (tmp_path / "cli_app.py").write_text(textwrap.dedent(CLI_APP))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    common = ["--domain", "cli_app:CliApp", "--dir", str(tmp_path / "versions"), "--url", url]

    gen = _cli(tmp_path, "generate", "create notes", *common)
    assert gen.returncode == 0, gen.stderr
    path = Path(gen.stdout.strip())
    assert path.exists()
    assert path.parent == tmp_path / "versions"

    up = _cli(tmp_path, "upgrade", *common)
    assert up.returncode == 0, up.stderr
    revision = path.name.split("_")[0]
    assert up.stdout.strip() == f"at revision {revision}"

    cur = _cli(tmp_path, "current", *common)
    assert (cur.returncode, cur.stdout.strip()) == (0, revision)

    ok = _cli(tmp_path, "check", *common)
    assert ok.returncode == 0, ok.stderr
    assert "in sync" in ok.stdout

    again = _cli(tmp_path, "generate", "again", *common)
    assert again.returncode == 0, again.stderr
    assert "nothing to generate" in again.stdout

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE cli_notes ADD COLUMN stray INTEGER"))
    engine.dispose()
    bad = _cli(tmp_path, "check", *common)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert "remove column cli_notes.stray" in lines[0]

    refused = _cli(tmp_path, "generate", "drop stray", *common)
    assert refused.returncode == 1
    assert "--allow-drops" in refused.stderr
    allowed = _cli(tmp_path, "generate", "drop stray", "--allow-drops", *common)
    assert allowed.returncode == 0, allowed.stderr

    down = _cli(tmp_path, "downgrade", "base", *common)
    assert (down.returncode, down.stdout.strip()) == (0, "at revision base")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_module_xyz:App", "cannot import 'no_such_module_xyz'"),
        ("cli_app", "must look like module:Class"),
        ("cli_app:Missing", "has no 'Missing'"),
        ("cli_app:CliNote", "is not a Domain subclass"),
    ],
)
def test_cli_bad_domain(tmp_path: Path, spec: str, expected: str) -> None:
    (tmp_path / "cli_app.py").write_text(textwrap.dedent(CLI_APP))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = _cli(tmp_path, "check", "--domain", spec, "--dir", str(tmp_path / "v"), "--url", url)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert repr(spec) in lines[0]


def test_cli_usage_error_exits_1(tmp_path: Path) -> None:
    result = _cli(tmp_path, "downgrade", "--domain", "x:Y", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
