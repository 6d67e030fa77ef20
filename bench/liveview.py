"""The ``liveview`` suite: what an event costs a LiveView, on the wire and in the server.

Figures (goals from the issue):

* a 1,000-row table where an event changes one field of one row: the bytes of the event's reply
  frame and the server time per event (the event handler's new assigns, the diff, the JSON
  frame) against a full re-render of the same page in the same run (the full rendered tree of
  the new assigns, in the same frame): <= 1% of the bytes and <= 0.2x the time. In-process,
  straight on the view's compiled template (what the view's process does per event), after
  checking that the diff brings the client's tree to exactly the full render;
* 100 concurrent sessions clicking a counter, each clicking again as soon as its reply comes
  back: events per second through our server against pyview (``pyview-web``) running the same
  counter in the same run, in pyview's documented deployment (``uvicorn[standard]``: the
  ``websockets`` library with its C speedups, httptools, uvloop; the log says what uvicorn
  picked): >= 2x, with a lower 99th percentile round trip. Twice: on a minimal counter, and
  on a counter card shaped as pyview's own count example (``count``);
* the memory of one joined session of the count card in our server (1,000 of them, 100 with
  ``--quick``): <= 29 KiB, shown against pyview's for the same sessions (or a bare trio TCP
  server's per plain connection when pyview is not installed).

Each server runs in its own interpreter and the load generator in another (the two cores of
the box are shared by the two processes), see :mod:`bench._liveview_work`.
"""

from __future__ import annotations

import importlib.util
from functools import partial

from . import _liveview_work as work
from ._measure import Config, Contender, fresh, log, measure
from ._report import Figure

__all__ = ["run"]

PEER = "pyview"
#: How the peer is deployed (its documentation's way: ``uvicorn[standard]``).
PEER_DEPLOYMENT = "pyview on uvicorn[standard]"


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite."""
    return [*_table(config), *_clicks(config), *_memory(config)]


def _has_pyview() -> bool:
    if importlib.util.find_spec("pyview") is None:
        log("pyview is not installed (pip install pyview-web): its figures are unavailable")
        return False
    return True


def _table(config: Config) -> list[Figure]:
    rows = 1_000
    events = config.size(100, 40, 3)
    work.check_table_diff(rows)
    contenders = [
        Contender(
            "diff (ours)",
            partial(work.table_event, rows, events, full=False),
            partial(work.table_event, rows, 2, full=False),
        ),
        Contender(
            "full re-render",
            partial(work.table_event, rows, events, full=True),
            partial(work.table_event, rows, 2, full=True),
        ),
    ]
    medians = measure(
        f"{rows:,}-row table, one field of one row changed, {events} events",
        contenders,
        1 if config.tiny else config.reps,
    )
    ours, full = medians["diff (ours)"], medians["full re-render"]
    return [
        Figure.measured(
            f"{rows:,}-row table, one field changed: reply bytes",
            ours["bytes"],
            "B",
            "full re-render",
            full["bytes"],
            "<= 0.01x",
        ),
        Figure.measured(
            f"{rows:,}-row table, one field changed: server time per event",
            ours["s_per_event"] * 1e6,
            "µs",
            "full re-render",
            full["s_per_event"] * 1e6,
            "<= 0.2x",
        ),
    ]


def _clicks(config: Config) -> list[Figure]:
    figures = []
    for template in ("minimal", "count"):
        figures.extend(_clicks_on(config, template))
    return figures


def _clicks_on(config: Config, template: str) -> list[Figure]:
    sessions = config.size(100, 100, 30)  # tiny: 10 would pass our 200 msg/s limit
    seconds = config.size(5, 3, 1) * 1.0
    warm_up = 0.2 if config.tiny else 0.5
    short = {"sessions": min(sessions, 10), "seconds": 0.5, "warm_up": 0.2}
    kinds = ["ours", PEER] if _has_pyview() else ["ours"]
    contenders = []
    for kind in kinds:
        contender = fresh(
            kind,
            work.clicks,
            short,
            kind=kind,
            sessions=sessions,
            seconds=seconds,
            warm_up=warm_up,
            template=template,
        )
        if config.tiny:  # a smoke run: no warm-up interpreters
            contender = Contender(contender.label, contender.run, lambda: None)
        contenders.append(contender)
    medians = measure(
        f"{sessions} sessions clicking the {template} counter for {seconds:.0f} s",
        contenders,
        1 if config.tiny else min(config.reps, 3),
    )
    peer = medians.get(PEER)
    ours = medians["ours"]
    return [
        Figure.measured(
            f"{template} counter clicks, {sessions} concurrent sessions",
            ours["per_s"],
            "events/s",
            PEER_DEPLOYMENT,
            None if peer is None else peer["per_s"],
            ">= 2.0x",
        ),
        Figure.measured(
            f"{template} counter clicks: p99 round trip",
            ours["p99_ms"],
            "ms",
            PEER_DEPLOYMENT,
            None if peer is None else peer["p99_ms"],
            "<= 0.99x",
        ),
        Figure.measured(
            f"{template} counter clicks: server CPU per click",
            ours["server_us_per_event"],
            "µs",
            PEER_DEPLOYMENT,
            None if peer is None else peer["server_us_per_event"],
            "<= 0.5x",
        ),
    ]


def _memory(config: Config) -> list[Figure]:
    sessions = config.size(1_000, 100, 50)
    baseline = PEER if _has_pyview() else "bare trio TCP"
    warm = {"sessions": min(sessions, 20)}
    contenders = []
    for label, kind in (("ours", "ours"), (baseline, PEER if baseline == PEER else "raw")):
        contender = fresh(
            label, work.session_memory, warm, kind=kind, sessions=sessions, template="count"
        )
        if config.tiny:
            contender = Contender(contender.label, contender.run, lambda: None)
        contenders.append(contender)
    medians = measure(
        f"{sessions:,} joined sessions of the count counter", contenders, 1 if config.tiny else 2
    )
    return [
        Figure.measured(
            f"memory per joined session ({sessions:,}, count counter)",
            medians["ours"]["bytes"],
            "B",
            baseline,
            medians[baseline]["bytes"],
            "<= 29696 B",
        )
    ]
