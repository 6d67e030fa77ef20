"""pytest support: the ``fault_injector`` fixture, seeded and replayable.

Load it as a plugin (``-p supervisors.testing``, or ``pytest_plugins =
["supervisors.testing"]`` in the root ``conftest.py``), or import the fixture and the
report hook into a ``conftest.py``::

    from supervisors.testing import fault_injector, pytest_runtest_makereport

Then::

    async def test_tree_survives(fault_injector):
        async with beam.open_node():
            sup = await Supervisor.start_link(children, name="tree")
            fault_injector.every(0.05, Subtree("tree"), limit=10)
            ...

The seed comes from the environment variable ``SUPERVISORS_CHAOS_SEED`` (default 0). It is
printed when the fixture is set up (pytest shows it for failing tests), and a failing
test's report gets a "fault injection" section with the seed and every injection, so the
run can be replayed with ``SUPERVISORS_CHAOS_SEED=<seed> pytest ...``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from ._chaos import FaultInjector

__all__ = ["DEFAULT_SEED", "SEED_VARIABLE", "fault_injector", "pytest_runtest_makereport"]

#: The environment variable that seeds the ``fault_injector`` fixture.
SEED_VARIABLE = "SUPERVISORS_CHAOS_SEED"
#: The seed used when the variable is not set.
DEFAULT_SEED = 0

_INJECTOR = pytest.StashKey[FaultInjector]()


def _seed() -> int:
    text = os.environ.get(SEED_VARIABLE)
    if text is None or not text.strip():
        return DEFAULT_SEED
    try:
        return int(text)
    except ValueError:
        raise pytest.UsageError(
            f"{SEED_VARIABLE}={text!r} is not an integer seed (e.g. {SEED_VARIABLE}=1234)"
        ) from None


@pytest.fixture
def fault_injector(request: pytest.FixtureRequest) -> Iterator[FaultInjector]:
    """A :class:`supervisors.FaultInjector` seeded from ``SUPERVISORS_CHAOS_SEED``.

    Its schedules and send hooks are stopped after the test.
    """
    seed = _seed()
    injector = FaultInjector(seed)
    print(f"fault_injector seed: {seed} (replay with {SEED_VARIABLE}={seed})")
    request.node.stash[_INJECTOR] = injector
    yield injector
    injector.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    """Add a "fault injection" section (seed and injections) to a failing test's report."""
    report = yield
    injector = item.stash.get(_INJECTOR, None)
    if injector is not None and report.failed:
        lines = [f"seed: {injector.seed} (replay with {SEED_VARIABLE}={injector.seed})"]
        lines += [
            f"#{i.seq} t={i.time:.6f} {i.trigger}: {i.action} {i.target} ({i.pid}): {i.reason}"
            for i in injector.log
        ]
        report.sections.append(("fault injection", "\n".join(lines)))
    return report
