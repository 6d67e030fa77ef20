"""The ``api`` suite: :mod:`web.api` against the same endpoints written by hand in FastAPI on
uvicorn[standard], over the same PostgreSQL table.

Figures (goals from the issue), both servers measured in the same run, alternating:

* requests per second for ``GET /api/entries/<id>`` (one row by primary key) and for
  ``GET /api/entries?filter[grp]=<n>&page[limit]=20`` (a filtered list of 20 rows with its
  next-page cursor): ours against FastAPI's, >= 1.0x;
* the p99 latency of each, ours against FastAPI's: <= 1.0x (lower is better).

The servers (``bench/_api_server.py``) run in their own interpreters, each with 10 database
connections; the load generator (here, on trio) holds 16 keep-alive connections to one
server at a time, each sending its next request when the last answer is in, over the ids and
groups of a seeded table (``bench_api_entries`` in a schema created for the run and dropped
after). Both answer the same JSON:API documents, so the figure is what the declarative API
costs (query-string parsing, the domain's read query and policies, documents) against code
written for exactly these two requests. On a machine shared with other work the ratio is what
to read, not the absolute rates.

Needs PostgreSQL (``DATABASE_URL`` or the local server) and FastAPI; without either the
figures are reported unavailable.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import sqlalchemy as sa
import trio
from sqlalchemy.pool import NullPool

from ._measure import Config, Contender, Sample, log, measure
from ._report import Figure
from .domain import postgres_url, unreachable_reason

__all__ = ["run"]

_REPO = Path(__file__).resolve().parent.parent
CONNECTIONS = 16
GROUP_ROWS = 25
REQUIRE_ENV = "BEAM_REQUIRE_POSTGRES"
BASELINE = "FastAPI on uvicorn[standard]"
_ACCEPT = "accept: application/vnd.api+json"


def run(config: Config) -> list[Figure]:
    """Measure the suite's figures (unavailable without PostgreSQL or FastAPI)."""
    url = postgres_url()
    reason = unreachable_reason(url)
    if reason is None and importlib.util.find_spec("fastapi") is None:
        reason = "FastAPI is not installed (pip install fastapi)"
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1" and "PostgreSQL" in reason:
            raise RuntimeError(f"{reason} ({REQUIRE_ENV}=1)")
        log(f"  {reason}: every figure of the suite is unavailable")
        return _figures({})
    groups = config.size(400, 100, 10)
    requests = config.size(4_000, 1_500, 200)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    servers: list[subprocess.Popen[str]] = []
    try:
        ids = _create_and_fill(url, schema, groups)
        ports = {}
        for kind in ("ours", "fastapi"):
            process, port = _start(kind, url, schema)
            servers.append(process)
            ports[kind] = port
        rng = random.Random(22)
        targets = {
            "get": [f"/api/entries/{rng.choice(ids)}" for _ in range(requests)],
            "list": [
                f"/api/entries?filter[grp]={rng.randint(1, groups)}&page[limit]=20"
                for _ in range(requests)
            ],
        }
        results: dict[str, dict[str, Sample]] = {}
        for name, paths in targets.items():
            contenders = [
                Contender(
                    label,
                    partial(_load, ports[kind], paths),
                    partial(_load, ports[kind], paths[:200]),
                )
                for label, kind in (("ours", "ours"), (BASELINE, "fastapi"))
            ]
            results[name] = measure(f"api: {name}, {requests} requests", contenders, config.reps)
        return _figures(results)
    finally:
        for process in servers:
            process.kill()
            process.wait()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _scoped(url: str, schema: str) -> str:
    return (
        sa.engine.make_url(url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


def _create_and_fill(url: str, schema: str, groups: int) -> list[str]:
    """The table, an index on the filtered column, *groups* groups of rows; their ids."""
    table = sa.Table(
        "bench_api_entries",
        sa.MetaData(),
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("grp", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("inserted_at", sa.DateTime(timezone=True), nullable=False),
    )
    now = datetime.now(UTC)
    rows = [
        {"id": uuid.uuid4(), "grp": g, "title": f"entry {g}.{i}", "n": i, "inserted_at": now}
        for g in range(1, groups + 1)
        for i in range(GROUP_ROWS)
    ]
    engine = sa.create_engine(_scoped(url, schema), poolclass=NullPool)
    with engine.begin() as conn:
        table.metadata.create_all(conn)
        conn.execute(
            sa.text("CREATE INDEX ix_bench_api_entries_grp ON bench_api_entries (grp, id)")
        )
        conn.execute(sa.insert(table), rows)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            sa.text("ANALYZE bench_api_entries")
        )
    engine.dispose()
    return [str(r["id"]) for r in rows]


def _start(kind: str, url: str, schema: str) -> tuple[subprocess.Popen[str], int]:
    """Start one server; its process and port once it listens."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._api_server", kind, url, schema],
        stdout=subprocess.PIPE,
        text=True,
        cwd=_REPO,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the {kind} server did not start (it said {line!r})")
    port = int(line.split()[1])
    trio.run(_until_ready, port)
    return process, port


async def _until_ready(port: int) -> None:
    with trio.fail_after(30):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


def _load(port: int, paths: list[str]) -> Sample:
    """Send every request of *paths* over :data:`CONNECTIONS` keep-alive connections; the
    rate (requests/s) and the p99 latency (ms)."""
    latencies: list[float] = []
    started = time.perf_counter()
    trio.run(_drive, port, paths, latencies)
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {"rate": len(paths) / elapsed, "p99_ms": p99 * 1000}


async def _drive(port: int, paths: list[str], latencies: list[float]) -> None:
    queue = iter(paths)

    async def client() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        buffer = b""
        async with stream:
            for path in queue:
                request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{_ACCEPT}\r\n\r\n"
                sent = time.perf_counter()
                await stream.send_all(request.encode())
                while b"\r\n\r\n" not in buffer:
                    buffer += await _receive(stream)
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = _content_length(head)
                while len(buffer) < length:
                    buffer += await _receive(stream)
                buffer = buffer[length:]
                latencies.append(time.perf_counter() - sent)
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}")

    async with trio.open_nursery() as nursery:
        for _ in range(CONNECTIONS):
            nursery.start_soon(client)


async def _receive(stream: trio.SocketStream) -> bytes:
    chunk = await stream.receive_some(65_536)
    if not chunk:
        raise RuntimeError("the server closed the connection")
    return chunk


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"no content-length in {head!r}")


def _pick(sample: Sample | None, key: str) -> float | None:
    return None if sample is None else sample[key]


def _figures(results: dict[str, dict[str, Sample]]) -> list[Figure]:
    figures = []
    names = {"get": "get by id", "list": "filtered list of 20 rows"}
    for key, name in names.items():
        ours = results.get(key, {}).get("ours")
        theirs = results.get(key, {}).get(BASELINE)
        figures.append(
            Figure.measured(
                f"API {name}: requests/s",
                _pick(ours, "rate"),
                "req/s",
                BASELINE,
                _pick(theirs, "rate"),
                ">= 1.0x",
            )
        )
        figures.append(
            Figure.measured(
                f"API {name}: p99 latency",
                _pick(ours, "p99_ms"),
                "ms",
                BASELINE,
                _pick(theirs, "p99_ms"),
                "<= 1.0x",
            )
        )
    return figures
