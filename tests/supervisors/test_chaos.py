"""Fault injection: targets, schedules, replay from a seed, and crashes that look real."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import beam
from supervisors import (
    DynamicSupervisor,
    FaultInjector,
    InjectedCrash,
    Injection,
    Subtree,
    Supervisor,
    child_spec,
    worker,
)
from supervisors.testing import SEED_VARIABLE, _seed

from .helpers import Events, Member, member_spec, reports, settle

REPO_ROOT = Path(__file__).resolve().parents[2]


class Counter(beam.GenServer[int]):
    """Counts calls; ``("slow", seconds)`` holds the call that long before answering."""

    async def init(self, start: int) -> beam.Ok[int]:
        return beam.Ok(start)

    async def handle_call(self, request: Any, from_: beam.From, n: int) -> beam.Reply[int]:
        if request == "fail":
            raise ValueError("a real bug")
        if isinstance(request, tuple) and request[0] == "slow":
            await trio.sleep(request[1])
        return beam.Reply(n, n + 1)


async def build_tree(events: Events, workers: int = 4) -> beam.Pid:
    pool = DynamicSupervisor.child_spec(id="pool", name="pool")
    sup = await Supervisor.start_link(
        [
            child_spec(Counter, 0, name="counter"),
            Supervisor.child_spec([member_spec(events, "inner-a")], id="inner", name="inner"),
            pool,
        ],
        name="tree",
        max_restarts=1000,
    )
    for n in range(workers):
        await DynamicSupervisor.start_child("pool", member_spec(events, f"w{n}"))
    return sup


# -- choosing targets ---------------------------------------------------------------------


async def test_tree_walks_supervisors_in_order() -> None:
    events: Events = []
    async with beam.open_node():
        await build_tree(events, workers=2)
        chaos = FaultInjector(seed=1)
        paths = [path for path, _ in await chaos.tree(Subtree("tree"))]
        assert paths == ["tree/counter", "tree/inner/inner-a", "tree/pool/w0", "tree/pool/w1"]
        with_sups = [p for p, _ in await chaos.tree(Subtree("tree", include_supervisors=True))]
        assert with_sups == [
            "tree/counter",
            "tree/inner",
            "tree/pool",
            "tree/inner/inner-a",
            "tree/pool/w0",
            "tree/pool/w1",
        ]
        assert await chaos.tree(Subtree("nobody")) == []


async def test_random_target_and_matching() -> None:
    events: Events = []
    async with beam.open_node():
        await build_tree(events)
        chaos = FaultInjector(seed=3)
        candidates = {pid for _, pid in await chaos.tree(Subtree("tree"))}
        picks = [await chaos.random_target(Subtree("tree")) for _ in range(20)]
        assert set(picks) <= candidates
        assert len(set(picks)) > 1
        assert await chaos.random_target("counter") == beam.whereis("counter")
        assert await chaos.random_target("nobody") is None
        named = chaos.matching(lambda info: info.registered_name in ("counter", "pool"))
        assert named == [beam.whereis("counter"), beam.whereis("pool")]
        assert beam.self() not in chaos.matching(lambda info: True)
        with pytest.raises(TypeError, match="a fault-injection target is"):
            await chaos.random_target(42)  # type: ignore[arg-type]


# -- crashes look real --------------------------------------------------------------------


async def observe_crash_during_call(mode: str, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """Crash the counter while a client waits in a call to it, by a real bug or by
    injection; return what every observer saw."""
    seen: dict[str, Any] = {}
    async with beam.open_node():
        beam.trap_exit(True)
        sup = await Supervisor.start_link([child_spec(Counter, 0, name="counter")])
        server = beam.whereis("counter")
        assert server is not None
        watch = beam.monitor(server)
        chaos = FaultInjector(seed=11)

        async def client() -> None:
            try:
                await beam.call("counter", "fail" if mode == "real" else ("slow", 60))
            except beam.ProcessExit as exc:
                seen["caller"] = exc.reason
                raise

        caller, caller_watch = beam.spawn_monitor(client)
        await settle()  # the client is waiting inside the call
        if mode == "injected":
            assert beam.process_info(caller).status == "waiting"  # type: ignore[union-attr]
            chaos.crash(server)
        down = await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == watch)
        seen["monitor"] = down.reason
        caller_down = await beam.receive(
            lambda m: isinstance(m, beam.Down) and m.ref == caller_watch
        )
        seen["caller_exit"] = caller_down.reason
        await settle()
        seen["restarted"] = beam.whereis("counter") not in (None, server)
        seen["answers"] = await beam.call("counter", "next")
        seen["supervisor"] = [(r["context"], r["reason"]) for r in reports(caplog.records)]
        seen["sup_alive"] = beam.is_alive(sup)
    return seen


@pytest.mark.parametrize("mode", ["real", "injected"])
async def test_injected_crash_during_call_behaves_as_real_crash(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen = await observe_crash_during_call(mode, caplog)
    crash = ValueError if mode == "real" else InjectedCrash
    reason = seen["monitor"]
    assert isinstance(reason, crash)
    # the caller gets exactly what a crash of the callee gives: (reason, where)
    assert seen["caller"] == (reason, ("beam.call", "counter"))
    assert seen["caller_exit"] == (reason, ("beam.call", "counter"))
    assert seen["supervisor"] == [("child_terminated", reason)]
    assert seen["restarted"]
    assert seen["answers"] == 0
    assert seen["sup_alive"]


async def test_injected_crash_of_a_caller_waiting_in_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        await Counter.start_link(0, name="counter")
        chaos = FaultInjector(seed=5)

        async def client() -> None:
            await beam.call("counter", ("slow", 10), timeout=None)

        caller, watch = beam.spawn_monitor(client)
        await settle()
        record = chaos.crash(caller)
        down = await beam.receive(beam.Down)
        assert down.ref == watch
        assert isinstance(down.reason, InjectedCrash)
        assert (down.reason.seed, down.reason.seq) == (5, record.seq)
        await trio.sleep(20)  # the server finishes and replies to nobody
        assert await beam.call("counter", "next") == 1  # it served the dead caller, then us


async def test_kill_cannot_be_trapped() -> None:
    events: Events = []
    async with beam.open_node():
        sup = await Supervisor.start_link([member_spec(events, "m")])  # Member traps exits
        [child] = await Supervisor.which_children(sup)
        assert child.pid is not None
        chaos = FaultInjector()
        chaos.crash(child.pid)  # trapped: it becomes a message, as in Erlang
        await settle()
        assert (await Supervisor.which_children(sup))[0].pid == child.pid
        record = chaos.kill(child.pid)
        await settle()
        assert (await Supervisor.which_children(sup))[0].pid != child.pid
        assert (record.action, record.reason, record.pid) == ("kill", "'kill'", child.pid)


# -- schedules ----------------------------------------------------------------------------


async def test_every_crashes_on_schedule_and_the_tree_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with beam.open_node():
        await build_tree(events)
        chaos = FaultInjector(seed=2)
        chaos.every(0.5, Subtree("tree"), limit=6)
        await trio.sleep(10)
        assert [r.time for r in chaos.log] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
        assert all(r.trigger == "every" and r.target.startswith("tree/") for r in chaos.log)
        counts = await Supervisor.count_children("tree")
        assert counts.active == 3
        assert (await DynamicSupervisor.count_children("pool")).active == 4
        assert await beam.call("counter", "next") >= 0


async def test_stop_ends_schedules_and_hooks(autojump_clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with beam.open_node():
        await build_tree(events)
        chaos = FaultInjector(seed=2)
        baseline = len(beam.processes())
        chaos.every(1.0, Subtree("tree"))
        cancel = chaos.every(0.3, "counter")
        await trio.sleep(0.7)
        cancel()  # ends just that schedule
        assert [r.time for r in chaos.log] == pytest.approx([0.3, 0.6])
        chaos.per_message(1.0, "counter")
        await trio.sleep(1.5)
        assert [r.time for r in chaos.log] == pytest.approx([0.3, 0.6, 1.0, 2.0])
        chaos.stop()
        await trio.sleep(10)
        assert len(chaos.log) == 4
        assert await beam.call("counter", "next") == 0
        assert len(beam.processes()) == baseline  # the scheduler is gone


async def test_per_message_injects_with_the_given_probability(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def run(seed: int, probability: float) -> list[Injection]:
        async with beam.open_node():
            beam.trap_exit(True)
            await Supervisor.start_link([child_spec(Counter, 0, name="counter")], max_restarts=1000)
            chaos = FaultInjector(seed)
            chaos.per_message(probability, "counter")
            for _ in range(200):
                with trio.move_on_after(1):
                    try:
                        await beam.call("counter", "next")
                    except beam.ProcessExit:
                        await settle()
            chaos.stop()
            return chaos.log

    assert await run(1, 0.0) == []
    log = await run(1, 0.2)
    assert 15 < len(log) < 80
    assert all(r.trigger == "per_message" and r.target == "counter" for r in log)
    assert [(r.seq, r.reason) for r in await run(1, 0.2)] == [(r.seq, r.reason) for r in log]


async def test_per_message_targets_are_pids_names_or_predicates() -> None:
    async with beam.open_node():
        chaos = FaultInjector()
        with pytest.raises(TypeError, match="for a Subtree use every"):
            chaos.per_message(0.5, Subtree("tree"))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="probability"):
            chaos.per_message(1.5, "x")
        with pytest.raises(ValueError, match="action"):
            chaos.every(1.0, "x", action="maim")  # type: ignore[arg-type]
        victim = beam.spawn(trio.sleep_forever)
        bystander = beam.spawn(trio.sleep_forever)
        chaos.per_message(1.0, lambda info: info.pid == victim, action="kill")
        beam.send(bystander, "hello")
        beam.send(victim, "hello")
        await settle()
        assert not beam.is_alive(victim)
        assert beam.is_alive(bystander)


# -- replay -------------------------------------------------------------------------------


async def chaos_run(seed: int) -> list[Injection]:
    events: Events = []
    async with beam.open_node():
        beam.trap_exit(True)
        await build_tree(events, workers=6)
        chaos = FaultInjector(seed)
        chaos.every(0.25, Subtree("tree", include_supervisors=True), limit=12)
        chaos.every(0.4, Subtree("tree"), action="kill", limit=8)
        chaos.per_message(0.3, "counter")

        async def client() -> None:
            while True:
                await trio.sleep(0.0997)  # never at the same instant as an injection tick
                with contextlib.suppress(beam.ProcessExit):
                    await beam.call("counter", "next")

        beam.spawn(client)
        await trio.sleep(5)
        chaos.stop()
        return chaos.log


def replay(seed: int) -> list[Injection]:
    return trio.run(chaos_run, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_fault_injection_same_seed_same_log() -> None:
    first = replay(7)
    assert len(first) > 20
    assert {r.trigger for r in first} == {"every", "per_message"}
    assert replay(7) == first  # time, pid, target, reason: all of it
    assert replay(8) != first


# -- the pytest fixture -------------------------------------------------------------------


def test_fault_injector_fixture_is_seeded(fault_injector: FaultInjector) -> None:
    assert fault_injector.seed == _seed()
    assert fault_injector.log == []


def test_seed_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEED_VARIABLE, "1234")
    assert _seed() == 1234
    monkeypatch.delenv(SEED_VARIABLE)
    assert _seed() == 0
    monkeypatch.setenv(SEED_VARIABLE, "abc")
    with pytest.raises(pytest.UsageError, match="not an integer seed"):
        _seed()


def test_a_failing_test_reports_its_seed_and_injections(tmp_path: Path) -> None:
    test_file = tmp_path / "test_replay.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import beam

            async def test_fails(fault_injector):
                async with beam.open_node():
                    fault_injector.crash(beam.spawn(beam.receive))
                assert False, "the tree did not recover"
            """
        )
    )
    env = {**os.environ, SEED_VARIABLE: "4242", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "supervisors.testing",
            "-p",
            "trio",
            "-o",
            "trio_mode=true",
            "-q",
            "-p",
            "no:cacheprovider",
            str(test_file),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "fault injection" in output
    assert "seed: 4242 (replay with SUPERVISORS_CHAOS_SEED=4242)" in output
    assert "#1 t=" in output
    assert "direct: crash" in output
    assert "fault_injector seed: 4242" in output


def test_injected_crash_survives_copying() -> None:
    import copy
    import pickle

    crash = InjectedCrash(3, 9, beam.Pid(12))
    for clone in (copy.deepcopy(crash), pickle.loads(pickle.dumps(crash))):
        assert (clone.seed, clone.seq, clone.target) == (3, 9, beam.Pid(12))
        assert str(clone) == "injected crash #9 into <0.12.0> (seed 3)"


async def test_injections_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with beam.open_node():
        beam.trap_exit(True)  # the killed member is linked to this process
        await Member.start_link(([], "m"), name="m")
        pid = beam.whereis("m")
        assert pid is not None
        FaultInjector(seed=9).kill(pid)
    [record] = [r for r in caplog.records if r.name == "supervisors.chaos"]
    assert record.getMessage().startswith(f"chaos: kill m ({pid}) at t=")
    assert "[seed 9, #1, direct]" in record.getMessage()


async def test_worker_crash_via_every_with_predicate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        sup = await Supervisor.start_link(
            [worker(trio.sleep_forever, id="sleeper")], max_restarts=100
        )
        chaos = FaultInjector(seed=4)
        sleeper_ids = set()

        def is_sleeper(info: beam.ProcessInfo) -> bool:
            return info.parent == sup and info.registered_name is None

        chaos.every(1.0, is_sleeper, limit=3)
        for _ in range(4):
            await trio.sleep(1.0)
            sleeper_ids |= {c.pid for c in await Supervisor.which_children(sup)}
        assert len(chaos.log) == 3
        assert len(sleeper_ids) == 4
        assert all(isinstance(r, Injection) for r in chaos.log)
