"""The ``domain`` suite: domain actions on PostgreSQL against raw psycopg on trio, synchronous
SQLAlchemy Core, and psycopg in 50 threads.

Figures (goals from the issue), every side measured in the same run on the same database, in a
schema of its own that the suite creates and drops (``bench_<random>``, reached through the
connection's ``search_path`` on every side, so no side pays for schema translation):

* create action, one row per transaction: microseconds per create through the code interface
  (cast and validate the input, build the changeset, authorize, check a connection out of
  the pool, ``INSERT ... RETURNING``, commit, build the record), against two baselines
  running the same ``INSERT ... RETURNING`` with the same values: raw psycopg with
  hand-written SQL on the same trio-native connection (``domain._pg_conn.TrioConnection``),
  each statement prepared and its own transaction, the floor on trio: <= 1.3x; and
  SQLAlchemy Core on one held synchronous connection, ``with conn.begin():`` per row, what a
  Flask or Django developer has: <= 1.2x;
* read action, a filter returning 10 rows, and ``get`` by primary key: the domain's
  ``SELECT`` against the same ``SELECT`` (same WHERE, same ORDER BY and LIMIT the domain
  adds) on both baselines, one transaction per read: <= 1.3x and <= 1.2x;
* 50 beam processes doing create actions at once through the domain's pool (its default size,
  10 connections, and again with 50, as many as the baseline has): creates per second against
  50 OS threads, each with its own psycopg 3 connection in autocommit, doing the same
  ``INSERT ... RETURNING``, each its own transaction: >= 1.0x. Same work on both sides: a row
  per create, durable when the caller is answered. How it is committed differs: the domain's
  concurrent creates fly together (``domain/_pg_batch.py``: at most 4 connections at a time,
  each flight the creates queued meanwhile in one round trip and one commit; a create that
  fails runs again alone), the threads commit each INSERT alone (the server's group commit
  shares WAL flushes among them). The log also shows each side's CPU time per create (this
  interpreter, all threads), which says where the difference goes;
* during those 50-process runs a long-schedule monitor (``beam.system_monitor``, threshold
  10 ms) counts trio task steps that held the loop longer: the worst run's count, goal 0.

Why the baselines are fair: they use the same table object (``BenchItem.__table__``: same
columns and types), values made the same way in Python (``uuid4()``, ``datetime.now(UTC)``),
the statements built once (as hand-written code would), a connection held open (as a pooled
connection is; no connect per call), the same GC settings, and the same warm-up before the
clock starts. Each repetition of each side runs in a fresh interpreter, and sides alternate so
a busy database slows all alike. Nothing of the domain's work is left out: the figure is what
a caller of ``await Domain.action(...)`` waits for.

Needs PostgreSQL: ``DATABASE_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``. When it
is unreachable the figures are reported unavailable (``BEAM_REQUIRE_POSTGRES=1``: an error).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from domain import database_url

from . import _domain_work as work
from ._measure import Arg, Config, Contender, Sample, log, measure, run_fresh
from ._report import Figure

__all__ = ["run"]

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUIRE_ENV = "BEAM_REQUIRE_POSTGRES"
PROCS = 50
#: The domain's default PostgreSQL pool size, and the baseline's connection count.
DEFAULT_POOL = 10
POOLS = (DEFAULT_POOL, PROCS)
RAW_GOAL = "<= 1.3x"
CORE_GOAL = "<= 1.2x"
RAW = "raw psycopg on trio"
CORE = "SQLAlchemy Core (sync)"


def postgres_url() -> str:
    """The SQLAlchemy URL of the benchmark database (``DATABASE_URL`` or the local server)."""
    return database_url(DEFAULT_URL)


def unreachable_reason(url: str) -> str | None:
    """Why PostgreSQL at *url* cannot be used, or ``None`` when it answers."""
    if not url.startswith("postgresql"):
        return f"the domain suite needs PostgreSQL; DATABASE_URL is {url.split(':')[0]}"
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect():
            return None
    except Exception as exc:  # any driver error means: not usable here
        return f"PostgreSQL unreachable at {url}: {exc.__class__.__name__}: {exc}"
    finally:
        engine.dispose()


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite in a schema created for this run and dropped after."""
    url = postgres_url()
    reason = unreachable_reason(url)
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            raise RuntimeError(f"{reason} ({REQUIRE_ENV}=1)")
        log(f"  {reason}: every figure of the suite is unavailable")
        return _figures(None, None, None, config)
    groups = config.size(1_000, 300, 20)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = (
            sa.engine.make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        _create_and_fill(scoped, groups)
        sequential = _sequential(scoped, groups, config)
        concurrent, beam_runs = _concurrent(scoped, config)
        return _figures(sequential, concurrent, beam_runs, config)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _create_and_fill(url: str, groups: int) -> None:
    """The table, an index for the filtered read, and *groups* groups of 10 rows to read."""
    engine = sa.create_engine(url, poolclass=NullPool)
    table = work.TABLE
    now = datetime.now(UTC)
    rows = [
        {"id": uuid.uuid4(), "grp": g, "title": f"row {i}", "body": work.BODY, "inserted_at": now}
        for g in range(1, groups + 1)
        for i in range(work.GROUP_SIZE)
    ]
    with engine.begin() as conn:
        table.metadata.create_all(conn, tables=[table])
        conn.execute(sa.text("CREATE INDEX ix_bench_items_grp ON bench_items (grp)"))
        conn.execute(sa.insert(table), rows)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE bench_items"))
    engine.dispose()


def _fresh(
    label: str,
    target: Callable[..., object],
    warm: dict[str, Arg],
    kwargs: dict[str, Arg],
    keep: list[Sample] | None = None,
) -> Contender:
    """A contender in fresh interpreters (like ``_measure.fresh``), optionally keeping every
    timed sample in *keep* (for figures that want the worst run, not the median)."""

    def timed() -> Sample:
        sample = run_fresh(target, **kwargs)
        if keep is not None:
            keep.append(sample)
        return sample

    return Contender(label, timed, partial(run_fresh, target, **{**kwargs, **warm}))


def _sequential(url: str, groups: int, config: Config) -> dict[str, Sample]:
    creates = config.size(3_000, 1_000, 30)
    reads = config.size(3_000, 1_000, 30)
    kwargs: dict[str, Arg] = {"url": url, "creates": creates, "reads": reads, "groups": groups}
    warm: dict[str, Arg] = {"creates": 20, "reads": 20}
    return measure(
        f"{creates:,} creates, {reads:,} filtered reads and gets, one at a time",
        [
            _fresh("domain actions", work.sequential_domain, warm, kwargs),
            _fresh(RAW, work.sequential_raw, warm, kwargs),
            _fresh(CORE, work.sequential_core, warm, kwargs),
        ],
        config.reps,
    )


def _concurrent(url: str, config: Config) -> tuple[dict[str, Sample], list[Sample]]:
    per_proc = config.size(100, 40, 4)
    runs: list[Sample] = []
    beam_sides = [
        _fresh(
            f"beam, pool of {pool}",
            work.concurrent_domain,
            {"per_proc": 2},
            {"url": url, "procs": PROCS, "per_proc": per_proc, "pool_size": pool},
            runs,
        )
        for pool in POOLS
    ]
    medians = measure(
        f"{PROCS} concurrent creators x {per_proc} creates",
        [
            *beam_sides,
            _fresh(
                "psycopg threads",
                work.concurrent_psycopg,
                {"per_thread": 2},
                {"url": url, "threads": PROCS, "per_thread": per_proc},
            ),
        ],
        config.reps,
    )
    return medians, runs


def _figures(
    sequential: dict[str, Sample] | None,
    concurrent: dict[str, Sample] | None,
    beam_runs: list[Sample] | None,
    config: Config,
) -> list[Figure]:
    ours = sequential["domain actions"] if sequential else {}
    raw = sequential[RAW] if sequential else {}
    core = sequential[CORE] if sequential else {}
    rates = {label: s["rate"] for label, s in (concurrent or {}).items()}
    per_proc = config.size(100, 40, 4)
    stalls = max((r["stalls"] for r in beam_runs), default=None) if beam_runs else None
    operations = (
        ("create action, 1 row/transaction", "create_us", "INSERT..RETURNING"),
        (f"read action, filter -> {work.GROUP_SIZE} rows", "read_us", "SELECT"),
        ("get by primary key", "get_us", "SELECT"),
    )
    sequential_figures = [
        Figure.measured(
            f"{name} vs {baseline}",
            ours.get(key),
            "µs/op",
            f"{baseline}, {statement}, same statement",
            side.get(key),
            goal,
        )
        for name, key, statement in operations
        for baseline, side, goal in ((RAW, raw, RAW_GOAL), (CORE, core, CORE_GOAL))
    ]
    return [
        *sequential_figures,
        *(
            Figure.measured(
                f"{PROCS} processes creating, pool of {pool}"
                + (" (default)" if pool == DEFAULT_POOL else ""),
                rates.get(f"beam, pool of {pool}"),
                "creates/s",
                f"psycopg 3, {PROCS} threads, own conns",
                rates.get("psycopg threads"),
                ">= 1.0x",
            )
            for pool in POOLS
        ),
        Figure.measured(
            f"trio-loop stalls > 10 ms, {PROCS}-process runs",
            stalls,
            "stalls (worst run)",
            "create actions in that run",
            float(PROCS * per_proc),
            "<= 0 stalls",
        ),
    ]
