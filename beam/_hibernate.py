"""Hibernation: what a GenServer result with ``hibernate=True`` does to its process.

Erlang's ``hibernate`` throws away the process's call stack and garbage-collects its heap to
the size of its live data, so a server that will idle for long costs as little as it can.
A Python process has no private heap; what it holds past its live data is the slack of
containers that grew and shrank (a ``dict`` or ``set`` never gives back its table when
entries are deleted, a ``list`` keeps over-allocation) and bookkeeping tables left empty.
Hibernating therefore:

* drops the process's empty mailbox, reply-slot, link, monitor and timer tables (they are
  made again on first use) and rebuilds the non-empty ones at their current size;
* rebuilds the state's built-in containers (``dict``, ``list``, ``set``, and ``tuple``\\ s
  holding them), depth first, at their current size. Other objects are kept as they are
  (their identity too); shared containers stay shared and cycles are preserved.

Like Erlang's, it costs time proportional to the live state, so use it for servers that
go idle after a burst, not on every message.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ._process import Process

__all__ = ["compact", "hibernate"]


def hibernate(proc: Process, state: Any) -> Any:
    """Shrink *proc*'s tables and return *state* compacted (see the module docstring)."""
    if not proc.queue:
        proc.queue = None
    else:
        proc.queue = deque(proc.queue)
    proc.replies = dict(proc.replies) if proc.replies else None
    proc.monitors = dict(proc.monitors) if proc.monitors else None
    proc.monitored_by = dict(proc.monitored_by) if proc.monitored_by else None
    proc.links = set(proc.links) if proc.links else None
    proc.timers = set(proc.timers) if proc.timers else None
    return compact(state)


def compact(value: Any) -> Any:
    """*value* with its built-in containers rebuilt at their current size.

    >>> big = {n: n for n in range(1000)}
    >>> for n in range(999):
    ...     del big[n]
    >>> small = compact(big)
    >>> small == big and small.__sizeof__() < big.__sizeof__()
    True
    """
    return _compact(value, {})


def _compact(value: Any, memo: dict[int, Any]) -> Any:
    kind = type(value)
    if kind is not dict and kind is not list and kind is not set and kind is not tuple:
        return value
    key = id(value)
    done = memo.get(key)
    if done is not None:
        return done
    if kind is dict:
        new_dict: dict[Any, Any] = {}
        memo[key] = new_dict
        for k, v in value.items():
            new_dict[k] = _compact(v, memo)
        return new_dict
    if kind is list:
        new_list: list[Any] = []
        memo[key] = new_list
        new_list.extend([_compact(item, memo) for item in value])
        return new_list
    if kind is set:  # set members are hashable: usually immutable, kept as they are
        new_set = set(value)
        memo[key] = new_set
        return new_set
    items = tuple(_compact(item, memo) for item in value)
    result = value if all(a is b for a, b in zip(items, value, strict=True)) else items
    memo[key] = result
    return result
