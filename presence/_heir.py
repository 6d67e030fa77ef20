"""The tracker's heir: the process that keeps the shards' states while the tracker restarts.

An ETS table can name an *heir*, a process that inherits the table when its owner dies. The
tracker does the same with its shards' states: :class:`Vault` (a shard's CRDT replica, its
replication bookkeeping and the diffs it had not published yet) is handed to an heir process,
which :meth:`~presence.Tracker.start_link` starts beside the tracker, linked to the same
caller (the tracker's supervisor, so the heir shows up in the tree under it and stops with
it). A shard only *monitors* what it tracks (Phoenix links), so a killed tracker takes no
tracked process down; the restarted tracker claims the vaults, its shards monitor the tracked
pids again (one that exited meanwhile is reported ``noproc`` and leaves), publish the diffs the
dead shards had pending, and go on with the same replicas: ``presence.list`` is unchanged and
no diff is lost.

The heir hands the vaults over only once every old shard has exited (two writers never share
a state), and a state is only ever changed in one step between two awaits, so a kill never
leaves a vault half-changed. Where that cannot be trusted, Phoenix's guarantee (no process
stays alive but untracked) is kept the Phoenix way, by exiting the tracked processes:

* the tracker stopped because a shard *crashed* (an exception: the state may be half-changed);
* no new tracker claimed the vaults within :data:`GRACE` seconds of the old one's death;
* the new tracker has another number of shards.

A tracker stopped on purpose (a normal reason) releases its vaults, and its shards exit
their tracked processes with that reason, as links would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

import beam

from ._batch import DiffBatch
from ._replication import Replication
from ._state import State

__all__ = ["GRACE", "Claim", "Discard", "Hoard", "Hold", "Vault", "ensure_heir", "heir_name"]

logger = logging.getLogger("presence")

#: Seconds the heir keeps the vaults of a dead tracker for a successor to claim.
GRACE: Final = 5.0


@dataclass(slots=True)
class Vault:
    """What one shard holds that must outlive it. Only the shard owning it changes it."""

    state: State
    batch: DiffBatch = field(default_factory=DiffBatch)
    core: Replication | None = None


@dataclass(frozen=True, slots=True)
class Hoard:
    """A tracker's vaults, one per shard, and the incarnation their replicas are named by."""

    incarnation: str
    vaults: tuple[Vault, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    """Tracker -> heir (call): I am the owner now; give me the hoard (``None`` if none)."""

    owner: beam.Pid
    shards: int


@dataclass(frozen=True, slots=True)
class Hold:
    """Tracker -> heir (call): keep *hoard*; *shards* are the processes writing it."""

    owner: beam.Pid
    hoard: Hoard
    shards: tuple[beam.Pid, ...]


@dataclass(frozen=True, slots=True)
class Discard:
    """Tracker -> heir (call): forget the hoard; with a *reason*, exit the tracked pids with it
    first (``None``: the shards do that themselves)."""

    owner: beam.Pid
    reason: Any


@dataclass(frozen=True, slots=True)
class _Grace:
    owner: beam.Pid


@dataclass
class _HeirState:
    hoard: Hoard | None = None
    owner: beam.Pid | None = None
    #: Monitors of the owner and of the shards writing the hoard.
    watching: dict[beam.Ref, beam.Pid] = field(default_factory=dict)
    #: A claim waiting for the old shards to be gone.
    claim: tuple[beam.From, Claim] | None = None


class _Heir(beam.GenServer[_HeirState]):
    async def init(self, arg: None) -> beam.Ok[_HeirState]:
        beam.trap_exit(True)
        return beam.Ok(_HeirState())

    async def handle_call(
        self, request: Any, from_: beam.From, state: _HeirState
    ) -> beam.Reply[_HeirState] | beam.NoReply[_HeirState]:
        kind = type(request)
        if kind is Claim:
            return self._claim(request, from_, state)
        if kind is Hold:
            self._unwatch(state)
            state.hoard, state.owner = request.hoard, request.owner
            for pid in (request.owner, *request.shards):
                state.watching[beam.monitor(pid)] = pid
            return beam.Reply("ok", state)
        if kind is Discard:
            if request.owner == state.owner:
                _drop(state, request.reason)
            return beam.Reply("ok", state)
        raise TypeError(f"presence heir got an unknown request {request!r:.100}")

    def _claim(
        self, claim: Claim, from_: beam.From, state: _HeirState
    ) -> beam.Reply[_HeirState] | beam.NoReply[_HeirState]:
        hoard = state.hoard
        if hoard is not None and len(hoard.vaults) != claim.shards:
            _drop(state, beam.SHUTDOWN)
        if state.hoard is None:
            self._unwatch(state)
            state.owner = claim.owner
            return beam.Reply(None, state)
        if state.owner is not None and state.owner != claim.owner and beam.is_alive(state.owner):
            return beam.Reply(None, state)  # another tracker of this name runs: start afresh
        alive = [pid for pid in state.watching.values() if beam.is_alive(pid)]
        if alive:
            # Answered once the old shards are gone; they are obsolete now: make sure of it.
            state.claim = (from_, claim)
            for pid in alive:
                beam.exit(pid, beam.KILL)
            return beam.NoReply(state)
        return self._hand_over(claim, state)

    def _hand_over(self, claim: Claim, state: _HeirState) -> beam.Reply[_HeirState]:
        self._unwatch(state)
        state.owner = claim.owner
        state.watching[beam.monitor(claim.owner)] = claim.owner
        return beam.Reply(state.hoard, state)

    def _unwatch(self, state: _HeirState) -> None:
        for ref in state.watching:
            beam.demonitor(ref)
        state.watching.clear()

    async def handle_info(
        self, message: Any, state: _HeirState
    ) -> beam.NoReply[_HeirState] | beam.Stop[_HeirState]:
        if type(message) is beam.Down and message.ref in state.watching:
            pid = state.watching.pop(message.ref)
            if state.claim is not None:
                if not any(beam.is_alive(p) for p in state.watching.values()):
                    from_, claim = state.claim
                    state.claim = None
                    reply = self._hand_over(claim, state)
                    beam.reply(from_, reply.reply)
                    return beam.NoReply(reply.state)
                return beam.NoReply(state)
            if pid == state.owner and state.hoard is not None:
                beam.send_after(beam.self(), _Grace(pid), GRACE)
            return beam.NoReply(state)
        if type(message) is _Grace:
            if message.owner == state.owner and state.hoard is not None:
                logger.warning(
                    "presence: no tracker took over from %s within %s s: its tracked "
                    "processes exit, as they would have with it",
                    message.owner,
                    GRACE,
                )
                _drop(state, beam.KILLED)
            return beam.NoReply(state)
        return await super().handle_info(message, state)

    async def terminate(self, reason: Any, state: _HeirState) -> None:
        if state.hoard is not None and (state.owner is None or not beam.is_alive(state.owner)):
            _drop(state, reason if not beam.is_normal_exit(reason) else beam.SHUTDOWN)


def _drop(state: _HeirState, reason: Any) -> None:
    """Forget the hoard; with a reason, exit every process it tracks with it first."""
    hoard, state.hoard = state.hoard, None
    if hoard is None or reason is None:
        return
    for vault in hoard.vaults:
        for pid in vault.state.local_pids():
            if isinstance(pid, beam.Pid):
                beam.exit(pid, reason)


def heir_name(tracker: str) -> str:
    """The registered name of the heir of the tracker called *tracker*.

    >>> heir_name("presence")
    'presence.heir'
    """
    return f"{tracker}.heir"


async def ensure_heir(tracker: str, *, link: bool = True) -> beam.Pid:
    """The heir of *tracker*, started (linked to the caller, the tracker's supervisor, unless
    *link* is false) if it does not run.

    >>> heir = await ensure_heir("presence")
    """
    name = heir_name(tracker)
    pid = beam.whereis(name)
    if pid is not None:
        return pid
    start = _Heir.start_link if link else _Heir.start
    started = await start(None, name=name)
    assert started is not None
    return started
