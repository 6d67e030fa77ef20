"""How every suite measures: sizes, alternating repetitions, medians and fresh interpreters.

A measurement runs each contender (ours and its baselines) once to warm up, then several
rounds in alternating order (A B, B A, A B...) so slow drift of a shared box hits every side
alike, and keeps the median of each side. A contender's repetition returns a :data:`Sample`:
named numbers such as ``{"rate": 61_000.0}``.

Work that must not inherit a warm heap or tuned GC runs in a fresh interpreter with
:func:`run_fresh`; the function there reports with :func:`report_and_exit`, which skips
tearing down 10^5 live tasks (nothing is measured after the report).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

__all__ = [
    "TINY_ENV",
    "Arg",
    "Config",
    "Contender",
    "Sample",
    "fresh",
    "log",
    "measure",
    "report_and_exit",
    "rss_bytes",
    "run_fresh",
]

#: One repetition's result: named numbers (a rate, seconds per item, bytes per item...).
Sample = dict[str, float]

#: An argument passed to a fresh interpreter (as JSON).
Arg = int | float | bool | str

#: Set to 1 to shrink every size so a whole suite takes seconds (the smoke test uses it).
TINY_ENV = "BEAM_BENCH_TINY"

_REPO = Path(__file__).resolve().parent.parent
_CHILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class Config:
    """How big and how often: the full run, ``--quick``, or tiny (``BEAM_BENCH_TINY=1``)."""

    quick: bool = False
    tiny: bool = False

    @classmethod
    def from_env(cls, *, quick: bool) -> Config:
        """The config for this run; tiny when ``BEAM_BENCH_TINY`` is set to a non-zero value."""
        return cls(quick=quick, tiny=os.environ.get(TINY_ENV, "") not in ("", "0"))

    @property
    def reps(self) -> int:
        """Repetitions per contender after the warm-up: 3 with ``--quick``, else 5."""
        return 3 if self.quick else 5

    def size(self, full: int, quick: int, tiny: int) -> int:
        """Pick the size for this run."""
        if self.tiny:
            return tiny
        return quick if self.quick else full


@dataclass(frozen=True)
class Contender:
    """One side of a comparison: *run* does one timed repetition and returns its sample.

    *warmup* (default: *run*) is called once first and its result thrown away; give a smaller
    job for contenders that start a fresh interpreter, where only caches need warming.
    """

    label: str
    run: Callable[[], Sample]
    warmup: Callable[[], object] | None = None


def log(message: str) -> None:
    """Progress for the person waiting: stderr, so stdout keeps only the table."""
    print(message, file=sys.stderr, flush=True)


def measure(what: str, contenders: Sequence[Contender], reps: int) -> dict[str, Sample]:
    """Warm up, run *reps* alternating rounds, and return each contender's median sample."""
    started = time.perf_counter()
    for contender in contenders:
        (contender.warmup or contender.run)()
    runs: dict[str, list[Sample]] = {c.label: [] for c in contenders}
    for round_ in range(reps):
        order = contenders if round_ % 2 == 0 else contenders[::-1]
        for contender in order:
            runs[contender.label].append(contender.run())
    medians = {label: _median(samples) for label, samples in runs.items()}
    log(f"{what} ({time.perf_counter() - started:.1f} s)")
    for label, samples in runs.items():
        for key in samples[0]:
            spread = ", ".join(f"{s[key]:.4g}" for s in samples)
            log(f"  {label:<28} {key:<14} median {medians[label][key]:<10.4g} [{spread}]")
    return medians


def _median(samples: Sequence[Sample]) -> Sample:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def run_fresh(target: Callable[..., object], **kwargs: Arg) -> Sample:
    """Run ``target(**kwargs)`` in a new Python interpreter and return the sample it reports.

    *target* must be a module-level function of the ``bench`` package that ends with
    :func:`report_and_exit` (or returns its sample). It runs with this interpreter and an
    untouched heap and GC: nothing of the parent's state reaches it.
    """
    spec = f"{target.__module__}:{target.__qualname__}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "bench._child", spec, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        cwd=_REPO,
        env=env,
        timeout=_CHILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(
            f"benchmark child {spec}({kwargs}) exited with {done.returncode}:\n{done.stderr}"
        )
    sample: Sample = json.loads(done.stdout.splitlines()[-1])
    return sample


def fresh(
    label: str, target: Callable[..., object], warm: Mapping[str, Arg], **kwargs: Arg
) -> Contender:
    """A contender that runs ``target(**kwargs)`` in a fresh interpreter each repetition and
    warms up with the same call, its arguments updated by *warm* (a smaller size)."""
    return Contender(
        label,
        partial(run_fresh, target, **kwargs),
        partial(run_fresh, target, **{**kwargs, **warm}),
    )


def report_and_exit(sample: Sample) -> NoReturn:
    """Hand *sample* to the parent and end this interpreter at once (no teardown)."""
    sys.stdout.write(json.dumps(sample) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def rss_bytes() -> int:
    """This process's resident set size, from ``/proc/self/statm``."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")
