"""The remote half of links and monitors, driven in one process: signals in, signals out.

The Distribution is given a fake publish that records what it would send, and is fed the
signals another node would send, so every rule is checked without Redis; the multi-node
tests in tests/cluster check the same over real processes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import trio
import trio.lowlevel
from hypothesis import given, settings
from hypothesis import strategies as st

import beam
from beam._dist import Distribution
from beam._node import current_node

HERE = beam.NodeId("here", 1)
THERE = beam.NodeId("there", 2)


class Wire:
    """What the Distribution published, as (node name, signal) pairs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def __call__(self, node: str, content: tuple[Any, ...]) -> None:
        self.sent.append((node, content))

    def kinds(self) -> list[str]:
        return [content[0] for _, content in self.sent]


def distribution() -> tuple[Distribution, Wire]:
    wire = Wire()
    node = current_node()
    node._dist = dist = Distribution(node, HERE, wire)
    return dist, wire


async def idle() -> None:
    await beam.receive(lambda m: m == "stop")


async def test_a_monitor_on_a_remote_process_fires_with_its_reason_then_is_gone() -> None:
    async with beam.open_node():
        dist, wire = distribution()
        dist.heard(THERE)
        remote = beam.Pid(7, THERE)
        ref = beam.monitor(remote)
        assert wire.sent == [("there", ("monitor", beam.self(), ref, remote))]
        dist.on_signal(THERE, ("down", ref, "boom"))
        assert await beam.receive(beam.Down, timeout=1) == beam.Down(ref, remote, "boom")
        assert beam.demonitor(ref, info=True) is False  # fired: nothing left to turn off


async def test_demonitor_tells_the_other_node_and_a_late_down_is_ignored() -> None:
    async with beam.open_node():
        dist, wire = distribution()
        dist.heard(THERE)
        ref = beam.monitor(("db", "there"))
        assert beam.demonitor(ref) is True
        assert wire.kinds() == ["monitor", "demonitor"]
        dist.on_signal(THERE, ("down", ref, "late"))
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(beam.Down, timeout=0)


async def test_a_node_going_down_fires_links_and_monitors_with_noconnection() -> None:
    async with beam.open_node():
        dist, wire = distribution()
        dist.heard(THERE)
        beam.trap_exit(True)
        remote = beam.Pid(7, THERE)
        beam.link(remote)
        ref = beam.monitor(remote)
        beam.monitor_node("there")
        beam.monitor_nodes(True)
        dist.node_down(THERE)
        got = [await beam.receive(timeout=1) for _ in range(4)]
        assert beam.Exit(remote, "noconnection") in got
        assert beam.Down(ref, remote, "noconnection") in got
        assert got.count(beam.NodeDown("there")) == 2
        assert dist.nodes() == []
        # Linking to a node that is not up: noconnection at once, nothing published.
        before = len(wire.sent)
        beam.link(remote)
        assert await beam.receive(timeout=1) == beam.Exit(remote, "noconnection")
        assert len(wire.sent) == before


async def test_a_new_incarnation_is_a_node_down_then_up() -> None:
    async with beam.open_node():
        dist, _ = distribution()
        beam.monitor_nodes(True)
        assert dist.heard(THERE) is True
        assert dist.heard(THERE) is False
        assert dist.heard(beam.NodeId("there", 3)) is True
        got = [await beam.receive(timeout=1) for _ in range(3)]
        assert got == [beam.NodeUp("there"), beam.NodeDown("there"), beam.NodeUp("there")]


async def test_heartbeats_that_stop_take_the_node_down(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        dist, _ = distribution()
        dist.heard(THERE)
        beam.monitor_node("there")
        await trio.sleep(4.9)
        dist.expire(5.0)
        assert dist.nodes() == ["there"]
        await trio.sleep(0.2)
        dist.expire(5.0)
        assert await beam.receive(timeout=0) == beam.NodeDown("there")


async def test_a_node_whose_connection_closed_is_down_and_stays_down_until_reconnected(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        dist, wire = distribution()
        dist.heard(THERE)
        beam.monitor_nodes(True)
        beam.trap_exit(True)
        remote = beam.Pid(7, THERE)
        beam.link(remote)
        assert dist.connection_lost(THERE) is True
        assert dist.connection_lost(THERE) is False  # down already
        assert await beam.receive(timeout=0) == beam.Exit(remote, "noconnection")
        assert await beam.receive(timeout=0) == beam.NodeDown("there")
        # What it sent before it died, arriving late, neither applies nor brings it back.
        sent = len(wire.sent)
        assert dist.heard(THERE) is False
        dist.on_signal(THERE, ("link", beam.Pid(8, THERE), beam.self()))
        assert dist.nodes() == []
        assert len(wire.sent) == sent
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(timeout=0)
        # Connected again (a moment's cut, not a death): its next heartbeat brings it up.
        dist.reconnected("there")
        assert dist.heard(THERE) is True
        assert await beam.receive(timeout=0) == beam.NodeUp("there")
        # A cut incarnation that never reconnects is forgotten after the timeout (its name
        # has expired: it can only come back as a new incarnation).
        dist.connection_lost(THERE)
        await trio.sleep(5.0)
        dist.expire(5.0)
        assert dist.cut == {}


async def test_signals_from_another_node_act_on_local_processes() -> None:
    async with beam.open_node():
        dist, wire = distribution()
        target = beam.spawn(idle)
        watcher, link = beam.Pid(3, THERE), beam.Pid(4, THERE)
        ref = beam.Ref(9, THERE)
        dist.on_signal(THERE, ("monitor", watcher, ref, target))
        dist.on_signal(THERE, ("link", link, target))
        assert beam.process_info(target).links == (link,)  # type: ignore[union-attr]
        beam.send(target, "stop")
        await trio.sleep(0.01)
        # The process ended normally: its remote watcher and link are told so.
        assert ("there", ("down", ref, "normal")) in wire.sent
        assert ("there", ("exit", target, link, "normal", True)) in wire.sent
        # A monitor or link on a process that is gone: noproc back at once.
        wire.sent.clear()
        dist.on_signal(THERE, ("monitor", watcher, beam.Ref(10, THERE), target))
        dist.on_signal(THERE, ("link", link, target))
        assert wire.sent == [
            ("there", ("down", beam.Ref(10, THERE), "noproc")),
            ("there", ("exit", target, link, "noproc", True)),
        ]


async def test_an_exception_reason_crosses_as_text() -> None:
    async def crash() -> None:
        await beam.receive(lambda m: m == "go")
        raise ValueError("no such room")

    async with beam.open_node():
        dist, wire = distribution()
        target = beam.spawn(crash)
        dist.on_signal(THERE, ("monitor", beam.Pid(3, THERE), beam.Ref(1, THERE), target))
        beam.send(target, "go")
        await trio.sleep(0.01)
        (_, (kind, _ref, reason)) = wire.sent[-1]
        assert kind == "down"
        assert reason == "ValueError('no such room')"


async def test_a_reply_fills_the_remote_callers_slot() -> None:
    async with beam.open_node():
        dist, wire = distribution()
        dist.heard(THERE)

        async def answer() -> None:
            while not wire.sent or wire.sent[-1][1][0] != "monitor":
                await trio.lowlevel.checkpoint()
            request = next(c for _, c in wire.sent if c[0] == "monitor")
            dist.on_signal(THERE, ("reply", beam.Pid(1), request[2], 42))

        caller = beam.self()
        assert caller == beam.Pid(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            assert await beam.call(("counter", "there"), "get") == 42
        assert wire.kinds()[-1] == "demonitor"


_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.text(max_size=5),
    st.builds(beam.Pid, st.integers(0, 20)),
    st.builds(beam.Pid, st.integers(0, 20), st.just(THERE)),
    st.builds(beam.Ref, st.integers(0, 20)),
    st.builds(beam.Ref, st.integers(0, 20), st.just(THERE)),
)
_kind = st.sampled_from(
    ["link", "unlink", "exit", "monitor", "demonitor", "down", "reply", "bogus", ""]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_kind, st.lists(_value, max_size=5)), max_size=20))
def test_any_signal_is_applied_or_refused_with_value_error(
    signals: list[tuple[str, list[Any]]],
) -> None:
    async def main() -> None:
        async with beam.open_node():
            dist, _ = distribution()
            for _ in range(3):
                beam.spawn(idle)
            for kind, args in signals:
                with contextlib.suppress(ValueError):
                    dist.on_signal(THERE, (kind, *args))
            await trio.lowlevel.checkpoint()
            assert beam.is_alive(beam.self())
            dist.node_down(THERE)  # whatever the signals left, cleaning up never fails

    trio.run(main)
