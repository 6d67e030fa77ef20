"""Who each connection process serves, for the admin page: a LiveView or channel process says
so when it starts (its user, and its view or topic), and the page shows it beside the pid.

The notes live in this node's memory, one per process; the page reads only those of live
processes, and drops the others as it goes.

>>> note("alice · chat page #lobby")
>>> serving(beam.self())
'alice · chat page #lobby'
"""

from __future__ import annotations

from collections.abc import Iterable

import beam

__all__ = ["forget_dead", "note", "serving"]

_NOTES: dict[beam.Pid, str] = {}


def note(what: str) -> None:
    """Say what the calling process serves (replacing what it said before).

    >>> note("bob · channel room:lobby")
    """
    _NOTES[beam.self()] = what


def serving(pid: beam.Pid) -> str:
    """What *pid* said it serves, or ``""``.

    >>> serving(beam.self())
    'bob · channel room:lobby'
    """
    return _NOTES.get(pid, "")


def forget_dead(alive: Iterable[beam.Pid]) -> None:
    """Drop the notes of processes not in *alive*.

    >>> forget_dead(beam.processes())
    """
    keep = set(alive)
    for pid in [pid for pid in _NOTES if pid not in keep]:
        del _NOTES[pid]
