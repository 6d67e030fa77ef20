"""The presence API on a running node: track, untrack, update, list, get_by_key, diffs.

Subscribers see every change as a ``PresenceDiff``; a phoenix.js client model
(tests/presence/phoenix_js.py) applies them and must end up with exactly ``presence.list``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import beam
import presence
from beam.testing import assert_receive, refute_receive, wait_idle
from presence import _heir as presence_heir
from presence._replication import Heartbeat
from presence._tracker import table

from .phoenix_js import sync_diff, sync_state

TOPIC = "room:lobby"


async def idle() -> None:
    await beam.receive(lambda m: m == "stop")


async def crash_on(message: str) -> None:
    await beam.receive(lambda m: m == message)
    raise RuntimeError("crashed on purpose")


@asynccontextmanager
async def tracker_node() -> AsyncIterator[beam.Node]:
    """A node running the default tracker, with 4 shards."""
    async with beam.open_node() as node:
        await presence.Tracker.start_link(shards=4)
        yield node


def shards_of(tracker: beam.Pid | str) -> list[beam.Pid]:
    pid = beam.whereis(tracker) if isinstance(tracker, str) else tracker
    assert pid is not None
    info = beam.process_info(pid)
    assert info is not None
    return [p for p in info.links if p != beam.self()]


async def next_diff(topic: str = TOPIC) -> presence.PresenceDiff:
    diff: presence.PresenceDiff = await assert_receive(
        lambda m: isinstance(m, presence.PresenceDiff) and m.topic == topic,
        timeout=5,  # a bound, not a speed target: a loaded machine may take a while
    )
    return diff


# -- track, list, get_by_key --------------------------------------------------------------


async def test_track_publishes_a_join_and_lists_it() -> None:
    async with tracker_node():
        beam.subscribe(TOPIC)
        pid = beam.spawn(idle)
        ref = await presence.track(pid, TOPIC, "alice", {"status": "online"})
        meta = {"status": "online", "phx_ref": ref}
        diff = await next_diff()
        assert diff.event == "presence_diff"
        assert diff.payload == {"joins": {"alice": {"metas": [meta]}}, "leaves": {}}
        assert diff.joins == {"alice": {"metas": [meta]}}
        assert diff.leaves == {}
        assert presence.list(TOPIC) == {"alice": {"metas": [meta]}}
        assert presence.get_by_key(TOPIC, "alice") == {"metas": [meta]}
        assert presence.get_by_key(TOPIC, "bob") is None
        assert presence.list("room:empty") == {}


async def test_the_join_is_published_before_track_returns() -> None:
    async with tracker_node():
        beam.subscribe(TOPIC)
        await presence.track(beam.spawn(idle), TOPIC, "alice")
        await assert_receive(presence.PresenceDiff, timeout=0)


async def test_track_copies_the_meta() -> None:
    async with tracker_node():
        meta = {"n": 1}
        await presence.track(beam.spawn(idle), TOPIC, "alice", meta)
        meta["n"] = 2
        assert presence.list(TOPIC)["alice"]["metas"][0]["n"] == 1
        presence.list(TOPIC)["alice"]["metas"][0]["n"] = 3
        assert presence.list(TOPIC)["alice"]["metas"][0]["n"] == 1


async def test_one_key_several_pids_and_one_pid_several_keys() -> None:
    async with tracker_node():
        tab1, tab2 = beam.spawn(idle), beam.spawn(idle)
        r1 = await presence.track(tab1, TOPIC, "alice", {"tab": 1})
        r2 = await presence.track(tab2, TOPIC, "alice", {"tab": 2})
        r3 = await presence.track(tab1, TOPIC, "alice-bot", {})
        r4 = await presence.track(tab1, "room:other", "alice", {})
        assert len({r1, r2, r3, r4}) == 4
        assert presence.list(TOPIC) == {
            "alice": {"metas": [{"tab": 1, "phx_ref": r1}, {"tab": 2, "phx_ref": r2}]},
            "alice-bot": {"metas": [{"phx_ref": r3}]},
        }
        assert presence.list("room:other") == {"alice": {"metas": [{"phx_ref": r4}]}}


async def test_tracking_twice_is_already_tracked() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        await presence.track(pid, TOPIC, "alice")
        with pytest.raises(presence.AlreadyTracked, match="already tracked as 'alice'") as caught:
            await presence.track(pid, TOPIC, "alice", {"again": True})
        assert (caught.value.pid, caught.value.topic, caught.value.key) == (pid, TOPIC, "alice")
        assert len(presence.list(TOPIC)["alice"]["metas"]) == 1


# -- untrack and update -------------------------------------------------------------------


async def test_untrack_publishes_the_leave() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        ref = await presence.track(pid, TOPIC, "alice")
        beam.subscribe(TOPIC)
        await presence.untrack(pid, TOPIC, "alice")
        diff = await next_diff()
        assert diff.payload == {"joins": {}, "leaves": {"alice": {"metas": [{"phx_ref": ref}]}}}
        assert presence.list(TOPIC) == {}
        await presence.untrack(pid, TOPIC, "alice")  # not tracked: nothing happens
        await refute_receive(presence.PresenceDiff, timeout=0)


async def test_untracking_the_last_presence_drops_the_monitor() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        await presence.track(pid, TOPIC, "a")
        await presence.track(pid, TOPIC, "b")
        info = beam.process_info(pid)
        assert info is not None
        assert info.links == ()  # monitored, not linked: a killed tracker takes nothing down
        assert len(info.monitored_by) == 1
        await presence.untrack(pid, TOPIC, "a")
        info = beam.process_info(pid)
        assert info is not None
        assert len(info.monitored_by) == 1
        await presence.untrack(pid, TOPIC, "b")
        info = beam.process_info(pid)
        assert info is not None
        assert info.monitored_by == ()


async def test_a_crashing_shard_takes_its_tracked_processes_down() -> None:
    """A shard that raised may have left its state half-changed: Phoenix's semantics then,
    tracked processes exit, so none stays alive but untracked in an empty tracker."""
    async with beam.open_node():
        beam.trap_exit(True)
        await presence.Tracker.start_link(shards=2)
        tracked = beam.spawn(idle)
        untouched = beam.spawn(idle)
        ref = beam.monitor(tracked)
        await presence.track(tracked, TOPIC, "alice")
        shard = shards_of("presence")[table("presence").index(TOPIC)]
        beam.cast(shard, "not a request")  # handle_cast is not defined: the shard crashes
        down = await assert_receive(lambda m: isinstance(m, beam.Down) and m.ref == ref, timeout=5)
        assert down.reason != "normal"
        assert beam.is_alive(untouched)


async def test_a_tracker_nobody_restarts_takes_its_tracked_processes_down(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Killed, its heir keeps its state for a successor; none within the grace period: the
    tracked processes exit, as Phoenix's links would have made them at once."""
    async with beam.open_node():
        tracker = await presence.Tracker.start(shards=2)
        tracked = beam.spawn(idle)
        ref = beam.monitor(tracked)
        await presence.track(tracked, TOPIC, "alice")
        beam.exit(tracker, beam.KILL)
        await trio.sleep(presence_heir.GRACE / 2)
        assert beam.is_alive(tracked)
        down = await assert_receive(lambda m: isinstance(m, beam.Down) and m.ref == ref, timeout=10)
        assert down.reason == "killed"


@pytest.mark.parametrize("victim", ["tracker", "shard"])
async def test_a_killed_tracker_restarted_by_its_supervisor_keeps_every_presence(
    victim: str,
) -> None:
    """Beyond Phoenix: the restarted tracker inherits its shards' states from the heir, so
    no tracked process dies with it and presence.list still equals the live processes."""
    from supervisors import ChildSpec, Supervisor

    async def start_tracker() -> beam.Pid:
        return await presence.Tracker.start_link(shards=3)

    async with beam.open_node():
        await Supervisor.start_link([ChildSpec("presence", start_tracker)], name="sup")
        topics = [f"room:{i}" for i in range(6)]
        tracked = {}
        for i in range(12):
            pid = beam.spawn(idle)
            ref = beam.monitor(pid)
            topic = topics[i % len(topics)]
            tracked[pid] = (ref, topic, f"user{i}")
            await presence.track(pid, topic, f"user{i}", {"n": i})
        for topic in topics:
            beam.subscribe(topic)
        before = {topic: presence.list(topic) for topic in topics}
        old = beam.whereis("presence")
        assert old is not None
        heir = beam.whereis(presence_heir.heir_name("presence"))
        target = old if victim == "tracker" else shards_of(old)[1]
        beam.exit(target, beam.KILL)
        # Meanwhile one tracked process exits and the tracker comes back.
        gone = next(iter(tracked))
        beam.exit(gone, "kill")
        new = await wait_for_tracker(old)
        assert beam.whereis(presence_heir.heir_name("presence")) == heir
        for pid in list(tracked)[1:]:
            assert beam.is_alive(pid)
        await wait_idle()
        _, gone_topic, gone_key = tracked[gone]
        for topic in topics:
            expected = {
                k: v
                for k, v in before[topic].items()
                if not (topic == gone_topic and k == gone_key)
            }
            assert presence.list(topic) == expected
            live = {tracked[p][2] for p in tracked if p != gone and tracked[p][1] == topic}
            assert set(presence.list(topic)) == live
        # The leave of the one that exited meanwhile was published, once.
        diff = await next_diff(gone_topic)
        assert set(diff.leaves) == {gone_key}
        assert diff.joins == {}
        # And the new tracker goes on tracking.
        late = beam.spawn(idle)
        await presence.track(late, topics[0], "late")
        assert "late" in presence.list(topics[0])
        assert new != old


async def test_a_killed_heir_is_replaced_and_the_states_still_outlive_the_tracker() -> None:
    async def start_tracker() -> beam.Pid:
        return await presence.Tracker.start_link(shards=2)

    from supervisors import ChildSpec, Supervisor

    async with beam.open_node():
        await Supervisor.start_link([ChildSpec("presence", start_tracker)], name="sup")
        tracked = beam.spawn(idle)
        await presence.track(tracked, TOPIC, "alice")
        heir = beam.whereis(presence_heir.heir_name("presence"))
        assert heir is not None
        beam.exit(heir, beam.KILL)
        await wait_idle()
        assert beam.whereis(presence_heir.heir_name("presence")) not in (None, heir)
        old = beam.whereis("presence")
        assert old is not None
        beam.exit(old, beam.KILL)
        await wait_for_tracker(old)
        assert beam.is_alive(tracked)
        assert set(presence.list(TOPIC)) == {"alice"}


async def wait_for_tracker(old: beam.Pid) -> beam.Pid:
    with trio.fail_after(10):
        while True:
            pid = beam.whereis("presence")
            if pid is not None and pid != old:
                try:
                    table("presence")
                except presence.NoTracker:
                    pass
                else:
                    return pid
            await trio.sleep(0.01)


async def test_update_is_a_leave_and_a_join_with_phx_ref_prev() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        old = await presence.track(pid, TOPIC, "alice", {"status": "online"})
        beam.subscribe(TOPIC)
        new = await presence.update(pid, TOPIC, "alice", {"status": "away"})
        assert new != old
        diff = await next_diff()
        new_meta = {"status": "away", "phx_ref": new, "phx_ref_prev": old}
        assert diff.payload == {
            "joins": {"alice": {"metas": [new_meta]}},
            "leaves": {"alice": {"metas": [{"status": "online", "phx_ref": old}]}},
        }
        assert presence.list(TOPIC) == {"alice": {"metas": [new_meta]}}
        before = {"alice": {"metas": [{"status": "online", "phx_ref": old}]}}
        state = sync_diff(before, diff.payload)
        assert state == presence.list(TOPIC)


async def test_update_with_a_function_gets_the_current_meta() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        old = await presence.track(pid, TOPIC, "alice", {"typing": False})
        seen: list[dict[str, Any]] = []

        def typing(meta: dict[str, Any]) -> dict[str, Any]:
            seen.append(dict(meta))
            return {**meta, "typing": True}

        new = await presence.update(pid, TOPIC, "alice", typing)
        assert seen == [{"typing": False, "phx_ref": old}]
        assert presence.list(TOPIC) == {
            "alice": {"metas": [{"typing": True, "phx_ref": new, "phx_ref_prev": old}]}
        }


async def test_an_update_function_that_fails_changes_nothing() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        await presence.track(pid, TOPIC, "alice", {"n": 1})
        before = presence.list(TOPIC)
        beam.subscribe(TOPIC)

        def broken(meta: dict[str, Any]) -> dict[str, Any]:
            raise KeyError("no such field")

        with pytest.raises(KeyError, match="no such field"):
            await presence.update(pid, TOPIC, "alice", broken)
        with pytest.raises(TypeError, match="must return the new meta"):
            await presence.update(pid, TOPIC, "alice", lambda meta: None)  # type: ignore[arg-type,return-value]
        with pytest.raises(TypeError, match="must return the new meta"):
            await presence.update(pid, TOPIC, "alice", lambda meta: {1: "x"})  # type: ignore[dict-item]
        assert presence.list(TOPIC) == before
        await refute_receive(presence.PresenceDiff, timeout=0)
        assert await presence.update(pid, TOPIC, "alice", {"n": 2})  # the shard is alive


async def test_updating_an_untracked_presence_is_not_tracked() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        with pytest.raises(presence.NotTracked, match="is not tracked as 'alice'"):
            await presence.update(pid, TOPIC, "alice", {})


# -- processes that exit ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["normal", "crash", "kill"])
async def test_a_tracked_process_that_exits_leaves_everywhere(how: str) -> None:
    async with tracker_node():
        topics = [f"room:{i}" for i in range(8)]  # spread over the 4 shards
        for topic in topics:
            beam.subscribe(topic)
        pid = beam.spawn(crash_on, "crash") if how == "crash" else beam.spawn(idle)
        other = beam.spawn(idle)
        refs = {topic: await presence.track(pid, topic, "alice") for topic in topics}
        await presence.track(other, topics[0], "bob")
        for _ in range(len(topics) + 1):
            await assert_receive(presence.PresenceDiff, timeout=5)
        if how == "normal":
            beam.send(pid, "stop")
        elif how == "crash":
            beam.send(pid, "crash")
        else:
            beam.exit(pid, beam.KILL)
        left = {}
        for _ in topics:
            # Generous: a crash report is formatted first, and CI's two cores are busy.
            diff = await assert_receive(presence.PresenceDiff, timeout=5)
            assert diff.joins == {}
            left[diff.topic] = diff.leaves
        assert left == {topic: {"alice": {"metas": [{"phx_ref": refs[topic]}]}} for topic in topics}
        assert list(presence.list(topics[0])) == ["bob"]
        assert all(presence.list(topic) == {} for topic in topics[1:])
        for shard in shards_of("presence"):
            info = beam.process_info(shard)
            assert info is not None
            parent = beam.whereis("presence")
            assert [pid for pid in info.links if pid != parent] in (
                [],
                [other],
            )


async def test_tracking_a_dead_process_joins_and_leaves_at_once() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        beam.send(pid, "stop")
        await wait_idle()
        assert not beam.is_alive(pid)
        beam.subscribe(TOPIC)
        ref = await presence.track(pid, TOPIC, "ghost")
        # The exit was in the shard's mailbox before it published the join: one merged diff,
        # in which the presence's last change (the leave) wins.
        diff = await next_diff()
        assert diff.payload == {"joins": {}, "leaves": {"ghost": {"metas": [{"phx_ref": ref}]}}}
        await refute_receive(presence.PresenceDiff)
        assert presence.list(TOPIC) == {}


# -- a phoenix.js client follows the diffs ------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_a_client_applying_the_diffs_sees_exactly_list(seed: int) -> None:
    async with tracker_node():
        rng = random.Random(seed)
        topics = ["room:a", "room:b", "room:c"]
        clients: dict[str, dict[str, Any]] = {topic: {} for topic in topics}
        for topic in topics:
            beam.subscribe(topic)
        pids = [beam.spawn(idle) for _ in range(6)]
        tracked: list[tuple[beam.Pid, str, str]] = []

        async def drain() -> None:
            await wait_idle()
            while True:
                try:
                    diff = await beam.receive(presence.PresenceDiff, timeout=0)
                except beam.ReceiveTimeout:
                    break
                sync_diff(clients[diff.topic], diff.payload)

        for _ in range(120):
            action = rng.random()
            if action < 0.45 or not tracked:
                pid, topic, key = rng.choice(pids), rng.choice(topics), rng.choice("abcd")
                if (pid, topic, key) in tracked:
                    continue
                await presence.track(pid, topic, key, {"n": rng.randrange(10)})
                tracked.append((pid, topic, key))
            elif action < 0.7:
                entry = tracked.pop(rng.randrange(len(tracked)))
                await presence.untrack(*entry)
            elif action < 0.9:
                pid, topic, key = rng.choice(tracked)
                await presence.update(pid, topic, key, {"n": rng.randrange(10), "u": True})
            else:
                victim = rng.choice(pids)
                beam.exit(victim, beam.KILL)
                pids[pids.index(victim)] = beam.spawn(idle)
                tracked = [t for t in tracked if t[0] != victim]
            await drain()
            for topic in topics:
                listed = presence.list(topic)
                assert clients[topic] == listed
                assert sync_state(clients[topic], listed) == listed
                assert json.loads(json.dumps(listed)) == listed
        assert sum(len(m["metas"]) for t in topics for m in presence.list(t).values()) == len(
            tracked
        )


# -- arguments, trackers, shards ----------------------------------------------------------


async def test_bad_arguments_are_refused_with_the_fix() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        with pytest.raises(TypeError, match=r"pid must be a beam\.Pid"):
            await presence.track(42, TOPIC, "k")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="non-empty str such as 'room:lobby'"):
            await presence.track(pid, b"room", "k")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="non-empty str"):
            await presence.track(pid, "", "k")
        with pytest.raises(TypeError, match=r"key must be a str .* str\(user.id\)"):
            await presence.track(pid, TOPIC, 42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="meta must be a dict"):
            await presence.track(pid, TOPIC, "k", ["online"])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="keys must be str"):
            await presence.track(pid, TOPIC, "k", {1: "x"})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match="meta must be a dict"):
            await presence.update(pid, TOPIC, "k", "away")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="key must be a str"):
            presence.get_by_key(TOPIC, 7)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="topic must be a non-empty str"):
            presence.list(None)  # type: ignore[arg-type]
        with pytest.raises(presence.NoTracker, match=re.escape("Tracker.start_link(name='rooms')")):
            presence.list(TOPIC, tracker="rooms")
        assert presence.list(TOPIC) == {}


async def test_tracker_options_are_checked() -> None:
    async with beam.open_node():
        with pytest.raises(ValueError, match="shards must be a positive int"):
            await presence.Tracker.start_link(shards=0)
        with pytest.raises(TypeError, match="needs a name"):
            await presence.Tracker.start_link(name=None)
        with pytest.raises(TypeError, match="options as keywords"):
            await presence.Tracker.start_link(4)
        with pytest.raises(TypeError, match="replica must be"):
            await presence.Tracker.start_link(replica="")
        with pytest.raises(ValueError, match="at least twice the broadcast_period"):
            await presence.Tracker.start_link(broadcast_period=1.0, down_period=1.5)
        with pytest.raises(ValueError, match="longer than the down_period"):
            await presence.Tracker.start_link(permdown_period=30.0)
        with pytest.raises(ValueError, match="broadcast_period must be a positive number"):
            await presence.Tracker.start_link(broadcast_period=-1)
        with pytest.raises(ValueError, match="max_delta_sizes"):
            await presence.Tracker.start_link(max_delta_sizes=())
        with pytest.raises(TypeError, match="permdown_on_shutdown must be a bool"):
            await presence.Tracker.start_link(permdown_on_shutdown="yes")  # type: ignore[arg-type]
        with pytest.raises(presence.NoTracker):
            await presence.track(beam.self(), TOPIC, "k")
        assert beam.whereis("presence") is None


async def test_alone_a_tracker_takes_any_meta_and_replicates_to_nobody(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with beam.open_node():
        await presence.Tracker.start_link(shards=1, broadcast_period=0.1, max_silent_periods=1)
        beam.subscribe("phx_presence:presence_shard0")  # where the shard's heartbeats go
        marker = object()  # cannot cross nodes, but there are none
        await presence.track(beam.spawn(idle), TOPIC, "alice", {"marker": marker})
        for _ in range(10):  # ten broadcast periods: heartbeats, but no delta (no peer)
            heartbeat = await assert_receive(timeout=1)
            assert type(heartbeat) is Heartbeat
            assert heartbeat.delta is None
            assert heartbeat.replica.node == beam.node()
        assert presence.list(TOPIC)["alice"]["metas"][0]["marker"] is marker


async def test_topics_are_spread_over_the_shards() -> None:
    async with tracker_node():
        pid = beam.spawn(idle)
        for i in range(40):
            await presence.track(pid, f"room:{i}", "k", {"i": i})
        shards = shards_of("presence")
        assert len(shards) == 4
        for shard in shards:
            info = beam.process_info(shard)
            assert info is not None
            assert pid in [watched for _, watched in info.monitors]
        assert all(presence.list(f"room:{i}")["k"]["metas"][0]["i"] == i for i in range(40))


async def test_trackers_with_different_names_are_independent() -> None:
    async with tracker_node():
        await presence.Tracker.start_link(name="rooms", shards=1, replica="rooms-node1")
        pid = beam.spawn(idle)
        ref = await presence.track(pid, TOPIC, "alice", tracker="rooms")
        assert ref == presence.phx_ref(("rooms-node1/0", 1))
        assert presence.list(TOPIC) == {}
        assert presence.list(TOPIC, tracker="rooms") == {"alice": {"metas": [{"phx_ref": ref}]}}
        assert presence.get_by_key(TOPIC, "alice", tracker="rooms") is not None
        await presence.untrack(pid, TOPIC, "alice", tracker="rooms")
        assert presence.list(TOPIC, tracker="rooms") == {}


async def test_stopping_the_tracker_stops_its_shards_and_it_can_start_again() -> None:
    async with beam.open_node():
        await presence.Tracker.start_link(shards=3)
        shards = shards_of("presence")
        await presence.track(beam.spawn(idle), TOPIC, "alice")
        await beam.GenServer.stop("presence")
        assert all(beam.process_info(shard) is None for shard in shards)
        with pytest.raises(presence.NoTracker):
            presence.list(TOPIC)
        await presence.Tracker.start_link(shards=3)
        assert presence.list(TOPIC) == {}  # a new tracker starts empty
        await presence.track(beam.spawn(idle), TOPIC, "alice")


async def test_a_crashing_shard_takes_the_tracker_down(autojump_clock: trio.abc.Clock) -> None:
    async with beam.open_node():
        tracker = await presence.Tracker.start(shards=3)
        ref = beam.monitor(tracker)
        shards = shards_of(tracker)
        beam.exit(shards[1], beam.KILL)  # shards trap exits: "kill" is what stops one
        down = await assert_receive(beam.Down, timeout=1)
        assert (down.ref, down.reason) == (ref, "killed")
        await wait_idle()
        assert all(beam.process_info(shard) is None for shard in shards)
        with pytest.raises(presence.NoTracker):
            presence.list(TOPIC)


async def test_killing_the_tracker_kills_its_shards() -> None:
    async with beam.open_node():
        tracker = await presence.Tracker.start(shards=2)
        shards = shards_of(tracker)
        beam.exit(tracker, beam.KILL)
        await wait_idle()
        assert all(beam.process_info(pid) is None for pid in [tracker, *shards])
        await presence.Tracker.start(shards=2)  # the name is free again


async def test_works_when_messages_are_copied() -> None:
    async with beam.open_node(copy_messages=True):
        await presence.Tracker.start_link(shards=2)
        beam.subscribe(TOPIC)
        pid = beam.spawn(idle)
        ref = await presence.track(pid, TOPIC, "alice", {"tags": ["a"]})
        new = await presence.update(pid, TOPIC, "alice", lambda m: {**m, "tags": ["b"]})
        beam.exit(pid, beam.KILL)
        client: dict[str, Any] = {}
        for _ in range(3):
            sync_diff(client, (await next_diff()).payload)
        assert client == presence.list(TOPIC) == {}
        assert ref != new


async def test_many_presences_in_one_topic() -> None:
    async with beam.open_node():
        await presence.Tracker.start_link(shards=2)
        pids = [beam.spawn(idle) for _ in range(2_000)]
        for i, pid in enumerate(pids):
            await presence.track(pid, TOPIC, f"user{i % 500}", {"i": i})
        listed = presence.list(TOPIC)
        assert len(listed) == 500
        assert all(len(p["metas"]) == 4 for p in listed.values())
        for pid in pids:
            beam.send(pid, "stop")
        beam.subscribe(TOPIC)
        client = dict(listed)
        diffs = 0
        while client:
            sync_diff(client, (await next_diff()).payload)
            diffs += 1
        assert client == presence.list(TOPIC) == {}
        # The exits reached the shard in a burst: their leaves were merged into a few diffs.
        assert diffs < len(pids) // 10
        await refute_receive(presence.PresenceDiff)


async def test_a_burst_of_tracks_is_published_as_a_few_merged_diffs() -> None:
    async with tracker_node():
        beam.subscribe(TOPIC)

        async def member(i: int) -> None:
            await presence.track(beam.self(), TOPIC, f"user{i % 50}", {"i": i})
            await idle()

        for i in range(200):  # all runnable at once: their calls reach the shard together
            beam.spawn(member, i)
        client: dict[str, Any] = {}
        diffs = 0
        while sum(len(p["metas"]) for p in client.values()) < 200:
            sync_diff(client, (await next_diff()).payload)
            diffs += 1
        assert client == presence.list(TOPIC)
        assert diffs < 200 // 4
        await refute_receive(presence.PresenceDiff)


async def test_shards_do_not_pile_up_deltas_nobody_takes() -> None:
    from presence._tracker import table  # the shards' states, as readers see them

    async with tracker_node():
        pid = beam.spawn(idle)
        for i in range(20):
            await presence.track(pid, f"room:{i}", "k")
            await presence.update(pid, f"room:{i}", "k", {"n": i})
        await presence.untrack(pid, "room:0", "k")
        beam.exit(pid, beam.KILL)
        await wait_idle()
        states = table(presence.DEFAULT_TRACKER).states
        assert not any(state.has_delta for state in states)
        assert sum(state.size for state in states) == 0
