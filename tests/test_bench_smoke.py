"""Smoke test of the benchmark suite: ``python -m bench runtime --quick --json PATH`` runs.

``BEAM_BENCH_TINY=1`` shrinks every size, so this checks the plumbing (suites, fresh
interpreters, the table, the JSON records and how goals are judged), not performance.
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "goal", "met"}
RUNTIME_FIGURES = [
    "ping-pong round trips (vs trio)",
    "ping-pong round trips (vs pykka)",
    "GenServer call round trips",
    "one-way send+receive (vs trio)",
    "one-way send+receive (vs pykka)",
    "spawn to waiting in receive (vs trio)",
    "spawn to waiting in receive (vs tuned trio)",
    "memory per idle process",
    "call with 10,000 messages queued",
    "skynet, 1,111 processes",  # the tiny tree: 1,000 leaves
]


def goal_met(goal: str, value: float, ratio: float) -> bool:
    """The goal text applied by hand: '>= 1.0x' judges the ratio, '<= 2600 B' the value."""
    found = re.match(r"(>=|<=)\s*([0-9.]+)\s*(x?)", goal)
    assert found is not None, f"unreadable goal {goal!r}"
    op, threshold, on_ratio = found.groups()
    compare = operator.ge if op == ">=" else operator.le
    return compare(ratio if on_ratio else value, float(threshold))


def test_runtime_quick_tiny_writes_one_judged_record_per_figure(tmp_path: Path) -> None:
    out = tmp_path / "runtime.json"
    env = {**os.environ, "BEAM_BENCH_TINY": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "runtime", "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    records = json.loads(out.read_text())
    assert [r["name"] for r in records] == RUNTIME_FIGURES
    for record in records:
        assert set(record) == KEYS, record
        for key in ("value", "baseline_value", "ratio"):
            number = record[key]
            assert isinstance(number, float | int), record
            assert math.isfinite(number), record
            assert number > 0, record
        assert math.isclose(record["ratio"], record["value"] / record["baseline_value"])
        assert record["met"] is goal_met(record["goal"], record["value"], record["ratio"]), record
        assert record["name"] in done.stdout  # the table shows every figure


def require_postgres_for(suite: str) -> None:
    """The domain suite measures on PostgreSQL: skip it when the server is unreachable, or
    fail when ``BEAM_REQUIRE_POSTGRES=1``."""
    if suite != "domain":
        return
    from bench.domain import postgres_url, unreachable_reason

    reason = unreachable_reason(postgres_url())
    if reason is None:
        return
    if os.environ.get("BEAM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (BEAM_REQUIRE_POSTGRES=1)")
    pytest.skip(f"the domain benchmarks need PostgreSQL: {reason}")


@pytest.mark.parametrize(
    "suite",
    ["pubsub", "presence", "supervisors", "channels", "domain", "liveview", "chat", "cluster"],
)
def test_other_suites_run_tiny_and_judge_every_figure(tmp_path: Path, suite: str) -> None:
    require_postgres_for(suite)
    out = tmp_path / f"{suite}.json"
    env = {**os.environ, "BEAM_BENCH_TINY": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", suite, "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(out.read_text())
    assert records
    for record in records:
        assert set(record) == KEYS, record
        assert record["ratio"] >= 0, record  # a count of lost messages may be 0
        assert record["met"] is goal_met(record["goal"], record["value"], record["ratio"]), record


def test_chat_on_two_nodes_runs_tiny_and_judges_every_figure(tmp_path: Path) -> None:
    from bench._chat_nodes import postgres_unreachable

    reason = postgres_unreachable()
    if reason is not None:
        if os.environ.get("BEAM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (BEAM_REQUIRE_POSTGRES=1)")
        pytest.skip(f"the chat soak on two nodes needs PostgreSQL: {reason}")
    out = tmp_path / "chat-nodes.json"
    env = {**os.environ, "BEAM_BENCH_TINY": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "chat", "--nodes", "2", "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(out.read_text())
    names = [r["name"] for r in records]
    assert any("node 2 killed" in n for n in names), names
    assert any("node 1 (globals) killed" in n for n in names), names
    for record in records:
        assert set(record) == KEYS, record
        assert record["ratio"] >= 0, record
        assert record["met"] is goal_met(record["goal"], record["value"], record["ratio"]), record
    by_name = {r["name"]: r for r in records}
    for what in ("lost (acked, not stored)", "duplicated (stored twice)"):
        assert by_name[f"chat on nodes, messages {what}"]["value"] == 0, done.stderr


def test_nodes_option_is_refused_by_suites_without_nodes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "runtime", "--nodes", "2"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--nodes does not apply to: runtime" in done.stderr
