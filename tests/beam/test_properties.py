"""Property tests (hypothesis) of the core runtime.

1. Per-sender FIFO: whatever the interleaving of several senders (random checkpoints, and
   trio's scheduler shuffled by hypothesis), each sender's messages reach the receiver in the
   order it sent them.
2. Selective receive: receiving every match of a random predicate returns the matches in
   arrival order and leaves exactly the non-matching messages, in order, whether they were
   queued before the receive or arrived while it waited.
3. Exit propagation: random link graphs, trap flags and exit reasons, checked against a small
   model written here from the reference table (section 1.2), not from ``beam``'s own rules.

Each test is a plain function calling ``trio.run``; importing hypothesis makes trio's
scheduling order come from hypothesis's seeded random, and ``derandomize=True`` fixes the
seed, so every run checks the same examples.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import beam

from .conftest import receive_all

PROPERTY_SETTINGS = settings(max_examples=75, deadline=None, derandomize=True, database=None)


@contextmanager
def quiet_crash_reports() -> Iterator[None]:
    """Crash reports are expected by the hundred here; keep them out of the test log."""
    logger = logging.getLogger("beam.crash")
    old = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = old


# -- 1. per-sender FIFO ----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    plans=st.lists(
        st.lists(st.integers(min_value=0, max_value=3), max_size=8), min_size=1, max_size=4
    ),
    receiver_pauses=st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=10),
)
def test_per_sender_fifo_under_random_interleavings(
    plans: list[list[int]], receiver_pauses: list[int]
) -> None:
    """``plans[i][k]``: checkpoints sender *i* makes after its message *k*."""
    total = sum(len(plan) for plan in plans)

    async def main() -> list[Any]:
        async with beam.open_node():
            me = beam.self()

            async def receiver() -> None:
                got = []
                for k in range(total):
                    got.append(await beam.receive())
                    for _ in range(receiver_pauses[k % len(receiver_pauses)]):
                        await trio.lowlevel.checkpoint()
                beam.send(me, got)

            sink = beam.spawn(receiver)
            beam.register("sink", sink)

            async def sender(index: int, plan: list[int]) -> None:
                for seq, pauses in enumerate(plan):
                    # By pid and by name: both are the same sender -> receiver channel.
                    beam.send(sink if seq % 2 else "sink", (index, seq))
                    for _ in range(pauses):
                        await trio.lowlevel.checkpoint()

            for index, plan in enumerate(plans):
                beam.spawn(sender, index, plan)
            result: list[Any] = await beam.receive()
            return result

    got = trio.run(main)
    assert sorted(got) == sorted((i, k) for i, plan in enumerate(plans) for k in range(len(plan)))
    for index, plan in enumerate(plans):
        assert [seq for sender, seq in got if sender == index] == list(range(len(plan)))


# -- 2. selective receive ----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    values=st.lists(st.integers(min_value=0, max_value=9), max_size=30),
    accepted=st.frozensets(st.integers(min_value=0, max_value=9)),
    queued_before=st.integers(min_value=0, max_value=30),
    pauses=st.lists(st.booleans(), max_size=30),
)
def test_selective_receive_returns_matches_in_order_and_keeps_the_rest(
    values: list[int], accepted: frozenset[int], queued_before: int, pauses: list[bool]
) -> None:
    messages = list(enumerate(values))  # (arrival index, value): every message distinct
    matching = [m for m in messages if m[1] in accepted]
    rest = [m for m in messages if m[1] not in accepted]

    def wanted(message: Any) -> bool:
        return isinstance(message, tuple) and message[1] in accepted

    async def main() -> tuple[list[Any], list[Any]]:
        async with beam.open_node():
            me = beam.self()

            async def receiver() -> None:
                got = [await beam.receive(wanted) for _ in matching]
                await beam.receive(lambda m: m == "end")
                beam.send(me, (got, await receive_all()))

            pid = beam.spawn(receiver)
            for k, message in enumerate(messages):
                # The first `queued_before` are queued before the receiver runs at all;
                # the others arrive while it is blocked, or between its receives.
                if k >= queued_before and k < len(pauses) and pauses[k]:
                    await trio.lowlevel.checkpoint()
                elif k == queued_before:
                    await trio.testing.wait_all_tasks_blocked()
                beam.send(pid, message)
            beam.send(pid, "end")
            result: tuple[list[Any], list[Any]] = await beam.receive()
            return result

    got, left = trio.run(main)
    assert got == matching
    assert left == rest


# -- 3. exit propagation against a model -----------------------------------------------------

REASON_KINDS = ("normal", "kill", "shutdown", "shutdown_tuple", "exception", "boom")
HOST = "host"


@dataclass(frozen=True)
class Scenario:
    n: int
    links: frozenset[tuple[int, int]]
    traps: tuple[bool, ...]
    origin: int
    how: str  # "exits": the origin exits with the reason; "signalled": beam.exit(origin, reason)
    reason_kind: str


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(min_value=2, max_value=6))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    return Scenario(
        n=n,
        links=frozenset(draw(st.sets(st.sampled_from(pairs)))),
        traps=tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n))),
        origin=draw(st.integers(min_value=0, max_value=n - 1)),
        how=draw(st.sampled_from(("exits", "signalled"))),
        reason_kind=draw(st.sampled_from(REASON_KINDS)),
    )


def make_reason(kind: str) -> Any:
    return {
        "normal": "normal",
        "kill": "kill",
        "shutdown": "shutdown",
        "shutdown_tuple": ("shutdown", "x"),
        "exception": ValueError("crashed"),
        "boom": "boom",
    }[kind]


@dataclass
class Outcome:
    died: dict[int, Any]  # process index -> exit reason
    trapped: dict[int, list[tuple[int | str, Any]]]  # index -> [(sender, reason)], by sender


def model(scenario: Scenario, reason: Any) -> Outcome:
    """What OTP does, from the reference's table (RM-proc "Receiving Exit Signals")."""
    links: dict[int, set[int]] = {i: set() for i in range(scenario.n)}
    for i, j in scenario.links:
        links[i].add(j)
        links[j].add(i)
    died: dict[int, Any] = {}
    trapped: dict[int, list[tuple[int | str, Any]]] = {i: [] for i in range(scenario.n)}
    exiting: deque[int] = deque()

    def die(index: int, why: Any) -> None:
        if index not in died:
            died[index] = why
            exiting.append(index)

    def receive_signal(index: int, sender: int | str, why: Any, *, via_link: bool) -> None:
        if index in died:
            return  # already on its way out with the same reason
        if not via_link and why == "kill":
            die(index, "killed")  # exit(Pid, kill): untrappable, becomes killed
        elif scenario.traps[index]:
            trapped[index].append((sender, why))  # everything else is trappable
        elif why == "normal":
            pass  # a non-trapping process ignores normal from another process
        else:
            die(index, why)  # same reason, including a link-borne "kill"

    if scenario.how == "exits":
        die(scenario.origin, reason)
    else:
        receive_signal(scenario.origin, HOST, reason, via_link=False)
    while exiting:
        index = exiting.popleft()
        for other in sorted(links[index]):
            links[other].discard(index)
            receive_signal(other, index, died[index], via_link=True)
        links[index].clear()
    return Outcome(died, {i: sorted(v, key=repr) for i, v in trapped.items()})


@dataclass(frozen=True)
class Die:
    """The instruction for the origin process to exit with ``reason``."""

    reason: Any


async def run_scenario(scenario: Scenario, reason: Any) -> Outcome:
    async with beam.open_node():
        me = beam.self()
        pids: list[beam.Pid] = []
        link_to = {i: [j for (a, j) in scenario.links if a == i] for i in range(scenario.n)}

        async def member(index: int) -> None:
            beam.trap_exit(scenario.traps[index])
            for j in link_to[index]:
                beam.link(pids[j])
            beam.send(me, ("ready", index))
            while True:
                message = await beam.receive()
                if isinstance(message, Die):
                    if isinstance(message.reason, BaseException):
                        raise message.reason
                    raise beam.ProcessExit(message.reason)
                beam.send(me, ("got", index, message))

        for index in range(scenario.n):
            pids.append(beam.spawn(member, index))
        refs = {beam.monitor(pid): index for index, pid in enumerate(pids)}
        for _ in range(scenario.n):
            await beam.receive(lambda m: isinstance(m, tuple) and m[0] == "ready")
        await trio.testing.wait_all_tasks_blocked()

        if scenario.how == "exits":
            beam.send(pids[scenario.origin], Die(reason))
        else:
            beam.exit(pids[scenario.origin], reason)
        await trio.testing.wait_all_tasks_blocked()

        label: dict[beam.Pid, int | str] = {pid: index for index, pid in enumerate(pids)}
        label[me] = HOST
        died: dict[int, Any] = {}
        trapped: dict[int, list[tuple[int | str, Any]]] = {i: [] for i in range(scenario.n)}
        for message in await receive_all():
            if isinstance(message, beam.Down):
                died[refs[message.ref]] = message.reason
            else:
                tag, index, exit_message = message
                assert tag == "got"
                assert isinstance(exit_message, beam.Exit), exit_message
                trapped[index].append((label[exit_message.pid], exit_message.reason))
        for index, pid in enumerate(pids):
            assert beam.is_alive(pid) == (index not in died)
        return Outcome(died, {i: sorted(v, key=repr) for i, v in trapped.items()})


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(scenario=scenarios())
def test_exit_propagation_matches_model(scenario: Scenario) -> None:
    reason = make_reason(scenario.reason_kind)
    expected = model(scenario, reason)
    with quiet_crash_reports():
        actual = trio.run(run_scenario, scenario, reason)
    assert actual.died == expected.died
    assert actual.trapped == expected.trapped


def test_exit_propagation_model_sanity() -> None:
    """The model itself, on hand-checked cases (so a wrong model cannot pass silently)."""
    chain = frozenset({(0, 1), (1, 2)})
    # A plain crash takes a non-trapping chain down with the same reason.
    out = model(Scenario(3, chain, (False, False, False), 0, "exits", "boom"), "boom")
    assert out.died == {0: "boom", 1: "boom", 2: "boom"}
    # exit(P, kill): P dies killed and the chain sees "killed".
    out = model(Scenario(3, chain, (True, False, False), 0, "signalled", "kill"), "kill")
    assert out.died == {0: "killed", 1: "killed", 2: "killed"}
    # A trapping middle stops the cascade and gets the Exit.
    out = model(Scenario(3, chain, (False, True, False), 0, "exits", "kill"), "kill")
    assert out.died == {0: "kill"}
    assert out.trapped[1] == [(0, "kill")]
    # normal: only trappers hear about it.
    out = model(Scenario(3, chain, (False, True, False), 1, "exits", "normal"), "normal")
    assert out.died == {1: "normal"}
    assert out.trapped == {0: [], 1: [], 2: []}
