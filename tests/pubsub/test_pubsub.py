"""beam's PubSub: subscriptions, broadcasts, topic processes, dispatchers and adapters.

Topic processes are found the way an operator would find them: among ``beam.processes()``,
by their initial call (the topic janitor) and by the subscribers they monitor.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.lowlevel

import beam
from beam.testing import assert_receive, refute_receive, wait_idle

TOPIC = "room:lobby"


# -- helpers ----------------------------------------------------------------------------------


def topic_processes() -> list[beam.Pid]:
    """Every live topic process of the node."""
    found = []
    for pid in beam.processes():
        info = beam.process_info(pid)
        if info is not None and "pubsub" in info.initial_call and "janitor" in info.initial_call:
            found.append(pid)
    return found


def topic_process(topic: str) -> beam.Pid | None:
    """The topic process watching exactly the subscribers of *topic*."""
    subscribers = {pid for pid, _ in beam.subscribers(topic)}
    for pid in topic_processes():
        info = beam.process_info(pid)
        if info is not None and subscribers and {p for _, p in info.monitors} == subscribers:
            return pid
    return None


def got_from(pid: beam.Pid) -> Callable[[Any], bool]:
    """A receive pattern for the report of *pid*."""
    return lambda m: isinstance(m, tuple) and m[:2] == ("got", pid)


def subscriber_pids(topic: str) -> list[beam.Pid]:
    return [pid for pid, _ in beam.subscribers(topic)]


async def subscriber(parent: beam.Pid, topic: str, count: int) -> None:
    """Subscribe, say so, collect *count* messages and send them to *parent*."""
    beam.subscribe(topic)
    beam.send(parent, ("subscribed", beam.self()))
    got = [await beam.receive() for _ in range(count)]
    beam.send(parent, ("got", beam.self(), got))
    await beam.receive(lambda m: m == "stop")


async def crash_on_nth(parent: beam.Pid, topic: str, n: int) -> None:
    """Subscribe; crash on the *n*-th message (never if 0); report what arrived."""
    beam.subscribe(topic)
    beam.send(parent, ("subscribed", beam.self()))
    got: list[Any] = []
    while True:
        message = await beam.receive()
        if message == "report":
            beam.send(parent, ("got", beam.self(), got))
            return
        got.append(message)
        if len(got) == n:
            raise RuntimeError(f"subscriber crashes on message {n}")


async def wait_subscribed(count: int) -> None:
    for _ in range(count):
        await beam.receive(lambda m: isinstance(m, tuple) and m[0] == "subscribed")


# -- subscribe, broadcast, unsubscribe ------------------------------------------------------


async def test_broadcast_reaches_subscribers_only(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        me = beam.self()
        listeners = [beam.spawn(subscriber, me, TOPIC, 1) for _ in range(3)]
        outsider = beam.spawn(subscriber, me, "room:other", 1)
        await wait_subscribed(4)
        assert sorted(subscriber_pids(TOPIC)) == sorted(listeners)
        beam.broadcast(TOPIC, "hello")
        for pid in listeners:
            got = await assert_receive(got_from(pid))
            assert got == ("got", pid, ["hello"])
        await refute_receive(lambda m: m[:2] == ("got", outsider))


async def test_subscriptions_carry_metadata(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        beam.subscribe(TOPIC, metadata={"socket": 1})
        beam.subscribe(TOPIC)
        assert beam.subscribers(TOPIC) == [(beam.self(), {"socket": 1}), (beam.self(), None)]
        assert beam.subscribers("room:nobody") == []


async def test_subscribing_twice_delivers_twice_and_unsubscribe_removes_both(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        beam.subscribe(TOPIC)
        beam.subscribe(TOPIC)
        beam.broadcast(TOPIC, "twice")
        assert await assert_receive(timeout=0) == "twice"
        assert await assert_receive(timeout=0) == "twice"
        beam.unsubscribe(TOPIC)
        assert beam.subscribers(TOPIC) == []
        beam.broadcast(TOPIC, "gone")
        await refute_receive()
        beam.unsubscribe(TOPIC)  # not subscribed: nothing happens
        beam.unsubscribe("room:never")


async def test_broadcast_without_subscribers_is_dropped(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        beam.broadcast("room:empty", "nobody")
        beam.local_broadcast("room:empty", "nobody")
        assert topic_processes() == []


async def test_broadcast_from_and_local_broadcast_from_skip_the_sender(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        other = beam.spawn(subscriber, me, TOPIC, 2)
        await wait_subscribed(1)
        beam.subscribe(TOPIC)
        beam.broadcast_from(me, TOPIC, "from me")
        beam.local_broadcast_from(me, TOPIC, "locally from me")
        assert await assert_receive(lambda m: m[0] == "got") == (
            "got", other, ["from me", "locally from me"]
        )
        await refute_receive(lambda m: isinstance(m, str))
        beam.broadcast_from(other, TOPIC, "from other")  # any pid can be skipped
        assert await assert_receive(timeout=0) == "from other"


async def test_one_senders_sends_and_broadcasts_arrive_in_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        pid = beam.spawn(subscriber, me, TOPIC, 6)
        await wait_subscribed(1)
        for i in range(3):
            beam.send(pid, ("direct", i))
            beam.broadcast(TOPIC, ("broadcast", i))
        _, _, got = await assert_receive(lambda m: m[0] == "got")
        assert got == [(kind, i) for i in range(3) for kind in ("direct", "broadcast")]


async def test_per_topic_order_with_several_broadcasters(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        me = beam.self()
        broadcasters, per_broadcaster, listeners = 4, 200, 5
        pids = [beam.spawn(subscriber, me, TOPIC, broadcasters * per_broadcaster)
                for _ in range(listeners)]
        await wait_subscribed(listeners)

        async def broadcaster(n: int) -> None:
            rng = random.Random(n)
            for i in range(per_broadcaster):
                beam.broadcast(TOPIC, (n, i))
                if rng.random() < 0.3:
                    await trio.lowlevel.checkpoint()  # interleave with the other broadcasters

        for n in range(broadcasters):
            beam.spawn(broadcaster, n)
        for _ in pids:
            _, _, got = await assert_receive(lambda m: m[0] == "got", timeout=5)
            for n in range(broadcasters):
                assert [i for b, i in got if b == n] == list(range(per_broadcaster))
            assert got != sorted(got)  # the broadcasters did interleave


# -- topic processes --------------------------------------------------------------------------


async def test_a_topic_process_owns_the_subscribers_and_exits_when_empty(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        a = beam.spawn(subscriber, me, TOPIC, 0)
        b = beam.spawn(subscriber, me, TOPIC, 0)
        await wait_subscribed(2)
        janitor = topic_process(TOPIC)
        assert janitor is not None
        assert topic_processes() == [janitor]
        info = beam.process_info(janitor)
        assert info is not None
        assert sorted(pid for _, pid in info.monitors) == sorted([a, b])
        beam.send(a, "stop")
        await wait_idle()
        assert subscriber_pids(TOPIC) == [b]
        beam.exit(b, "crash")
        await wait_idle()
        assert beam.subscribers(TOPIC) == []
        assert not beam.is_alive(janitor)
        assert topic_processes() == []


async def test_the_topic_process_exits_after_the_last_unsubscribe(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        beam.subscribe(TOPIC)
        await wait_idle()
        janitor = topic_process(TOPIC)
        assert janitor is not None
        beam.unsubscribe(TOPIC)
        await wait_idle()
        assert not beam.is_alive(janitor)
        info = beam.process_info(beam.self())
        assert info is not None
        assert info.monitored_by == ()


async def test_resubscribing_before_the_topic_process_notices_keeps_the_subscription(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        beam.subscribe(TOPIC)
        await wait_idle()
        beam.unsubscribe(TOPIC)
        beam.subscribe(TOPIC)  # in the same step: the topic process has not run yet
        await wait_idle()
        assert subscriber_pids(TOPIC) == [beam.self()]
        beam.broadcast(TOPIC, "still here")
        assert await assert_receive(timeout=0) == "still here"
        assert topic_process(TOPIC) is not None


async def test_a_killed_topic_process_is_replaced_and_subscriptions_survive(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        pids = [beam.spawn(subscriber, me, TOPIC, 1) for _ in range(3)]
        await wait_subscribed(3)
        old = topic_process(TOPIC)
        assert old is not None
        beam.exit(old, beam.KILL)
        await wait_idle()
        new = topic_process(TOPIC)
        assert new is not None
        assert new != old
        assert not beam.is_alive(old)
        assert sorted(subscriber_pids(TOPIC)) == sorted(pids)
        for pid in pids:  # each subscriber is watched once, by the new topic process
            info = beam.process_info(pid)
            assert info is not None
            assert info.monitored_by == (new,)
        beam.broadcast(TOPIC, "after the kill")
        for _ in pids:
            assert (await assert_receive(lambda m: m[0] == "got"))[2] == ["after the kill"]
        beam.send(pids[0], "stop")
        await wait_idle()
        assert sorted(subscriber_pids(TOPIC)) == sorted(pids[1:])  # the new one cleans up too
        for pid in pids[1:]:
            beam.send(pid, "stop")
        await wait_idle()
        assert topic_processes() == []


async def test_a_topic_process_killed_when_a_subscriber_is_already_dead(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        a = beam.spawn(subscriber, me, TOPIC, 0)
        b = beam.spawn(subscriber, me, TOPIC, 0)
        await wait_subscribed(2)
        janitor = topic_process(TOPIC)
        assert janitor is not None
        beam.exit(a, beam.KILL)  # a is gone before the old topic process could see its Down
        beam.exit(janitor, beam.KILL)
        await wait_idle()
        assert subscriber_pids(TOPIC) == [b]
        assert len(topic_processes()) == 1


# -- crashes and churn -----------------------------------------------------------------------


async def test_subscribers_crashing_mid_stream_affect_nobody_else(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        count, messages = 50, 10
        crash_at = {i: (i % 5) * 2 for i in range(count)}  # 0 = never; else on message 2, 4, 6, 8
        pids = [beam.spawn(crash_on_nth, me, TOPIC, crash_at[i]) for i in range(count)]
        await wait_subscribed(count)

        async def broadcaster(parent: beam.Pid) -> None:
            for i in range(messages):
                beam.broadcast(TOPIC, i)
                await trio.lowlevel.checkpoint()  # subscribers run (and crash) in between
            beam.send(parent, "done")

        sender = beam.spawn(broadcaster, me)
        await assert_receive(lambda m: m == "done", timeout=5)
        await wait_idle()
        survivors = [pid for i, pid in enumerate(pids) if crash_at[i] == 0]
        assert sorted(subscriber_pids(TOPIC)) == sorted(survivors)
        assert all(not beam.is_alive(pid) for i, pid in enumerate(pids) if crash_at[i])
        for pid in survivors:
            beam.send(pid, "report")
            assert await assert_receive(got_from(pid)) == (
                "got", pid, list(range(messages))
            )
        assert not beam.is_alive(sender)  # it finished its loop: nothing killed it
        info = beam.process_info(me)
        assert info is not None
        assert info.status == "running"


async def test_broadcasting_to_a_subscriber_that_just_died(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        me = beam.self()
        dead, alive = beam.spawn(subscriber, me, TOPIC, 1), beam.spawn(subscriber, me, TOPIC, 1)
        await wait_subscribed(2)
        beam.exit(dead, beam.KILL)
        await trio.lowlevel.checkpoint()
        beam.broadcast(TOPIC, "hi")  # dead may still be listed; it is skipped
        assert await assert_receive(lambda m: m[0] == "got") == ("got", alive, ["hi"])


async def test_topics_created_and_destroyed_under_load(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        me = beam.self()
        rng = random.Random(1234)
        topics = [f"room:{i}" for i in range(20)]
        workers, rounds = 60, 30

        async def worker(seed: int) -> None:
            wrng = random.Random(seed)
            ever: set[str] = set()
            for _ in range(rounds):
                topic = wrng.choice(topics)
                beam.subscribe(topic)
                ever.add(topic)
                await trio.lowlevel.checkpoint()
                while True:
                    try:
                        message = await beam.receive(timeout=0)
                    except beam.ReceiveTimeout:
                        break
                    assert message[0] in ever, message
                if wrng.random() < 0.5:
                    beam.unsubscribe(topic)
                if wrng.random() < 0.02:
                    raise RuntimeError("a worker crashes under load")
            beam.send(me, ("finished", beam.self()))

        async def broadcaster() -> None:
            for i in range(2_000):
                beam.broadcast(rng.choice(topics), (rng.choice(topics), i))
                if i % 7 == 0:
                    await trio.lowlevel.checkpoint()

        pids = [beam.spawn(worker, seed) for seed in range(workers)]
        beam.spawn(broadcaster)
        seen_topic_processes: set[beam.Pid] = set()
        while any(beam.is_alive(pid) for pid in pids):
            seen_topic_processes.update(topic_processes())
            await trio.lowlevel.checkpoint()
        await wait_idle()
        assert len(seen_topic_processes) > len(topics)  # topics did come and go
        assert all(beam.subscribers(topic) == [] for topic in topics)
        assert topic_processes() == []


async def test_ten_thousand_subscribers_on_one_topic(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        me = beam.self()
        count = 10_000

        async def listener() -> None:
            beam.subscribe(TOPIC)
            beam.send(me, "ready")
            got = [await beam.receive() for _ in range(3)]
            beam.send(me, got == ["a", "b", "c"])

        for _ in range(count):
            beam.spawn(listener)
        for _ in range(count):
            await beam.receive(lambda m: m == "ready")
        assert len(beam.subscribers(TOPIC)) == count
        janitor = topic_process(TOPIC)
        assert janitor is not None
        for message in ("a", "b", "c"):
            beam.broadcast(TOPIC, message)
        results = [await beam.receive(lambda m: isinstance(m, bool)) for _ in range(count)]
        assert all(results)
        await wait_idle()
        assert beam.subscribers(TOPIC) == []
        assert not beam.is_alive(janitor)


# -- hooks: dispatcher and adapter -----------------------------------------------------------


async def test_a_dispatcher_gets_the_entries_and_the_excluded_pid(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        other = beam.spawn(subscriber, me, TOPIC, 1)
        await wait_subscribed(1)
        beam.subscribe(TOPIC, metadata={"fastlane": "socket-1"})
        calls: list[tuple[list[tuple[beam.Pid, Any]], beam.Pid | None, Any]] = []

        def dispatcher(
            entries: list[tuple[beam.Pid, Any]], from_: beam.Pid | None, msg: Any
        ) -> None:
            calls.append((entries, from_, msg))

        beam.broadcast(TOPIC, "encoded once", dispatcher=dispatcher)
        beam.broadcast_from(me, TOPIC, "not to me", dispatcher=dispatcher)
        beam.local_broadcast(TOPIC, "local", dispatcher=dispatcher)
        beam.direct_broadcast("nonode@nohost", TOPIC, "direct", dispatcher=dispatcher)
        entries = [(other, None), (me, {"fastlane": "socket-1"})]
        assert calls == [
            (entries, None, "encoded once"),
            (entries, me, "not to me"),
            (entries, None, "local"),
            (entries, None, "direct"),
        ]
        await refute_receive()  # the dispatcher decides: nothing was sent by beam itself
        beam.broadcast("room:nobody", "x", dispatcher=dispatcher)
        assert len(calls) == 4


class RecordingAdapter:
    node_name = "a@host"

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def broadcast(self, topic: Any, message: Any, dispatcher: beam.Dispatcher | None) -> None:
        self.sent.append(("broadcast", topic, message, dispatcher))

    def direct_broadcast(
        self, node_name: str, topic: Any, message: Any, dispatcher: beam.Dispatcher | None
    ) -> None:
        self.sent.append(("direct", node_name, topic, message, dispatcher))


async def test_an_adapter_carries_broadcasts_to_other_nodes(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        adapter = RecordingAdapter()
        beam.set_pubsub_adapter(adapter)
        beam.subscribe(TOPIC)
        beam.broadcast(TOPIC, 1)
        beam.broadcast_from(beam.self(), TOPIC, 2)
        beam.local_broadcast(TOPIC, 3)
        beam.local_broadcast_from(beam.self(), TOPIC, 4)
        beam.direct_broadcast("a@host", TOPIC, 5)
        beam.direct_broadcast("b@host", TOPIC, 6)
        assert adapter.sent == [
            ("broadcast", TOPIC, 1, None),
            ("broadcast", TOPIC, 2, None),
            ("direct", "b@host", TOPIC, 6, None),
        ]
        assert [await assert_receive(timeout=0) for _ in range(3)] == [1, 3, 5]
        await refute_receive()


async def test_direct_broadcast_to_another_node_without_a_cluster_adapter(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        beam.subscribe(TOPIC)
        unreachable = re.escape("no node named 'b@host' is reachable")
        with pytest.raises(LookupError, match=unreachable) as e:
            beam.direct_broadcast("b@host", TOPIC, "x")
        assert "beam.set_pubsub_adapter" in str(e.value)
        beam.direct_broadcast(beam.LocalAdapter.node_name, TOPIC, "here")
        assert await assert_receive(timeout=0) == "here"
        await refute_receive()


# -- modes and misuse -------------------------------------------------------------------------


async def test_copied_messages_are_copied_per_subscription() -> None:
    async with beam.open_node(copy_messages=True):
        beam.subscribe(TOPIC)
        beam.subscribe(TOPIC)
        payload = {"items": [1, 2]}
        beam.broadcast(TOPIC, payload)
        first, second = await assert_receive(timeout=0), await assert_receive(timeout=0)
        assert first == second == payload
        assert first is not payload
        assert second is not first


async def test_send_hooks_see_every_broadcast_delivery(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        seen: list[tuple[beam.Pid, Any]] = []
        remove = beam.lowlevel.add_send_hook(lambda pid, message: seen.append((pid, message)))
        beam.subscribe(TOPIC)
        beam.broadcast(TOPIC, "traced")
        remove()
        beam.broadcast(TOPIC, "untraced")
        assert seen == [(beam.self(), "traced")]
        assert [await assert_receive(timeout=0) for _ in range(2)] == ["traced", "untraced"]


async def test_pubsub_outside_a_node() -> None:
    with pytest.raises(beam.NotInNode, match=r"beam\.broadcast must be called inside"):
        beam.broadcast(TOPIC, "x")
    with pytest.raises(beam.NotInNode, match=r"beam\.subscribe"):
        beam.subscribe(TOPIC)


async def test_node_name_comes_from_the_adapter() -> None:
    class Named(beam.LocalAdapter):
        node_name = "chat@host-a"

    async with beam.open_node():
        assert beam.node_name() == "nonode@nohost"
        beam.set_pubsub_adapter(Named())
        assert beam.node_name() == "chat@host-a"
        assert isinstance(Named(), beam.PubSubAdapter)
