"""phoenix.js ``Presence.syncState`` and ``Presence.syncDiff``, transcribed to Python.

Written from the digest in phoenix_protocols.md section 2.1 and npm ``phoenix`` 1.8.16's
``assets/js/phoenix/presence.js`` (read, not imported), step by step, so that tests can check
that our ``presence_diff`` payloads, applied the way the browser applies them, give exactly
what ``presence.list`` gives. Like the JS, both functions clone their input through JSON
first (which also proves the payloads are JSON), and mutate and return *state*.

The JS visits object keys with ``Object.getOwnPropertyNames``; the order of keys does not
change the result (each key is handled on its own), so Python's dict order stands in for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

State = dict[str, Any]
Callback = Callable[[str, Any, Any], None]


def _clone(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _noop(key: str, current: Any, other: Any) -> None:
    pass


def sync_diff(
    state: State,
    diff: dict[str, Any],
    on_join: Callback | None = None,
    on_leave: Callback | None = None,
) -> State:
    """``Presence.syncDiff(state, {joins, leaves}, onJoin, onLeave)``."""
    cloned = _clone(diff)
    joins, leaves = cloned["joins"], cloned["leaves"]
    on_join = on_join or _noop
    on_leave = on_leave or _noop
    for key, new_presence in joins.items():
        current_presence = state.get(key)
        state[key] = new_presence
        if current_presence is not None:
            joined_refs = [m["phx_ref"] for m in state[key]["metas"]]
            cur_metas = [m for m in current_presence["metas"] if m["phx_ref"] not in joined_refs]
            state[key]["metas"][0:0] = cur_metas  # metas.unshift(...curMetas)
        on_join(key, current_presence, new_presence)
    for key, left_presence in leaves.items():
        current_presence = state.get(key)
        if current_presence is None:
            continue
        refs_to_remove = [m["phx_ref"] for m in left_presence["metas"]]
        current_presence["metas"] = [
            p for p in current_presence["metas"] if p["phx_ref"] not in refs_to_remove
        ]
        on_leave(key, current_presence, left_presence)
        if len(current_presence["metas"]) == 0:
            del state[key]
    return state


def sync_state(
    current_state: State,
    new_state: State,
    on_join: Callback | None = None,
    on_leave: Callback | None = None,
) -> State:
    """``Presence.syncState(currentState, newState, onJoin, onLeave)``."""
    state = _clone(current_state)
    new_state = _clone(new_state)  # the JS reuses newState's objects; keep the caller's intact
    joins: State = {}
    leaves: State = {}
    for key, presence in state.items():
        if key not in new_state:
            leaves[key] = presence
    for key, new_presence in new_state.items():
        current_presence = state.get(key)
        if current_presence is not None:
            new_refs = [m["phx_ref"] for m in new_presence["metas"]]
            cur_refs = [m["phx_ref"] for m in current_presence["metas"]]
            joined_metas = [m for m in new_presence["metas"] if m["phx_ref"] not in cur_refs]
            left_metas = [m for m in current_presence["metas"] if m["phx_ref"] not in new_refs]
            if joined_metas:
                joins[key] = new_presence
                joins[key]["metas"] = joined_metas
            if left_metas:
                leaves[key] = _clone(current_presence)
                leaves[key]["metas"] = left_metas
        else:
            joins[key] = new_presence
    return sync_diff(state, {"joins": joins, "leaves": leaves}, on_join, on_leave)
