"""Command line: ``python -m bench <suite>... [--quick] [--nodes N] [--json PATH]``.

Prints one aligned table of every figure (met or missed) on stdout and progress with the raw
samples on stderr. The exit code is 0 whether goals are met or not; it is non-zero only when a
benchmark fails to run. To add a suite, write ``bench/<name>.py`` with
``run(config: Config) -> list[Figure]`` and add one line to :data:`SUITES`; a suite whose
``run`` also takes ``nodes`` gets ``--nodes`` (the suites that run several nodes: how many).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ._measure import TINY_ENV, Config, log
from ._report import Figure, format_table, write_json

#: Suite name -> module that implements it (imported only when the suite is asked for).
SUITES: dict[str, str] = {
    "runtime": "bench.runtime",
    "pubsub": "bench.pubsub",
    "presence": "bench.presence",
    "supervisors": "bench.supervisors",
    "channels": "bench.channels",
    "domain": "bench.domain",
    "liveview": "bench.liveview",
    "chat": "bench.chat",
    "cluster": "bench.cluster",
    "api": "bench.api",
    "jobs": "bench.jobs",
}


class Suite(Protocol):
    """What a suite module provides."""

    def run(self, config: Config) -> list[Figure]:
        """Measure the suite's figures."""
        ...


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark trio-beam against baselines measured in the same run.",
        epilog=f"Set {TINY_ENV}=1 to shrink every size (a smoke run of a few seconds).",
    )
    parser.add_argument(
        "suites",
        nargs="+",
        choices=sorted(SUITES),
        metavar="suite",
        help=f"one or more of: {', '.join(sorted(SUITES))}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes and 3 repetitions instead of 5 (under a minute)",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        metavar="N",
        help="nodes of the multi-node runs, for the suites that have them (channels: the "
        "nodes on one port against one node, default 2; chat: the soak on N nodes with one "
        "killed, instead of the one-node soak with crashes)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write the figures to PATH as a JSON list of records",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suites named in *argv*; print the table and optionally write JSON."""
    parser = _parser()
    args = parser.parse_args(argv)
    config = Config.from_env(quick=args.quick)
    suites: dict[str, Suite] = {
        name: importlib.import_module(SUITES[name]) for name in dict.fromkeys(args.suites)
    }
    options = {} if args.nodes is None else {"nodes": args.nodes}
    if options:
        refused = [
            n for n, s in suites.items() if "nodes" not in inspect.signature(s.run).parameters
        ]
        if refused:
            parser.error(f"--nodes does not apply to: {', '.join(refused)}")
    figures: list[Figure] = []
    started = time.perf_counter()
    for name, suite in suites.items():
        log(f"== suite {name} ({'tiny' if config.tiny else 'quick' if config.quick else 'full'})")
        figures.extend(suite.run(config, **options))
    log(f"== done in {time.perf_counter() - started:.0f} s")
    print(format_table(figures))
    if args.json is not None:
        write_json(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
