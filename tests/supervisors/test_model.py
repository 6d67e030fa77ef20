"""A hypothesis state machine drives a real Supervisor and checks it against a small model.

Random child crashes (random reasons and restart types), random strategies and intensity
limits, time moving under ``MockClock``, and the child API (terminate, restart, delete,
start). After every step the supervisor must agree with the model on which children exist
and run, which were restarted (their pids change, nobody else's does), the exact order in
which children were stopped and started, and whether the restart intensity made it give up.

Each hypothesis example runs its own node: ``trio.run`` with a
``MockClock(autojump_threshold=0)`` in a helper thread, whose main beam process executes
the steps the state machine sends it. The model is written from OTP's rules, independently
of ``supervisors._strategy``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import beam
from supervisors import ChildNotFound, ChildRunning, Supervisor

from .helpers import Events, member_spec

RESTARTS = ("permanent", "transient", "temporary")
REASONS: list[Any] = ["normal", "shutdown", ("shutdown", "bye"), "boom", "value_error", "kill"]


class Node:
    """A beam node on a MockClock in a thread; :meth:`run` executes a step in its main
    process and returns the result (or raises what it raised)."""

    def __init__(self) -> None:
        self.replies: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self.send: trio.MemorySendChannel[Callable[[], Awaitable[Any]] | None] | None = None
        self.thread = threading.Thread(target=self._thread, daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError(f"the node thread did not start: {self.failure!r}")

    def _thread(self) -> None:
        try:
            trio.run(self._main, clock=trio.testing.MockClock(autojump_threshold=0))
        except BaseException as exc:
            self.failure = exc
            self.ready.set()
            self.replies.put((False, exc))

    async def _main(self) -> None:
        send, receive = trio.open_memory_channel[Callable[[], Awaitable[Any]] | None](0)
        self.send = send
        self.token = trio.lowlevel.current_trio_token()
        async with beam.open_node():
            beam.trap_exit(True)
            self.ready.set()
            async for step in receive:
                if step is None:
                    break
                try:
                    self.replies.put((True, await step()))
                except Exception as exc:
                    self.replies.put((False, exc))

    def run(self, step: Callable[[], Awaitable[Any]]) -> Any:
        assert self.send is not None
        trio.from_thread.run(self.send.send, step, trio_token=self.token)
        ok, value = self.replies.get(timeout=60)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        if self.send is not None and self.thread.is_alive():
            trio.from_thread.run(self.send.send, None, trio_token=self.token)
        self.thread.join(30)
        if self.failure is not None:
            raise self.failure


@dataclass
class Child:
    id: str
    restart: str
    running: bool = True


@dataclass
class Model:
    """What OTP says the supervisor should do."""

    strategy: str
    max_restarts: int
    max_seconds: float
    children: list[Child]
    now: float = 0.0
    restarts: list[float] = field(default_factory=list)
    alive: bool = True

    def find(self, child_id: str) -> Child | None:
        return next((c for c in self.children if c.id == child_id), None)

    def crash(self, child: Child, clean: bool) -> list[tuple[str, str]]:
        """The child died on its own: the stops and starts that follow."""
        child.running = False
        if child.restart == "temporary":
            self.children.remove(child)
            return []
        if child.restart == "transient" and clean:
            return []
        self.restarts = [t for t in self.restarts if self.now - t <= self.max_seconds]
        self.restarts.append(self.now)
        if len(self.restarts) > self.max_restarts:  # give up: stop all, in reverse
            self.alive = False
            events = [("stop", c.id) for c in reversed(self.children) if c.running]
            self.children = []
            return events
        position = self.children.index(child)
        if self.strategy == "one_for_one":
            affected = [child]
        elif self.strategy == "one_for_all":
            affected = list(self.children)
        else:
            affected = self.children[position:]
        events = [("stop", c.id) for c in reversed(affected) if c.running]
        for c in affected:
            c.running = False
            if c.restart == "temporary":
                self.children.remove(c)
        events += [("start", c.id) for c in affected if c in self.children]
        for c in affected:
            c.running = True
        return events


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.node = Node()
        self.events: Events = []
        self.seen = 0
        self.model: Model | None = None
        self.sup: beam.Pid | None = None
        self.pids: dict[str, beam.Pid | None] = {}
        self.next_id = 0
        self.gave_up = False

    def teardown(self) -> None:
        self.node.close()

    # -- helpers --------------------------------------------------------------------------

    @property
    def supervisor(self) -> beam.Pid:
        assert self.sup is not None
        return self.sup

    def new_events(self) -> list[tuple[str, str]]:
        fresh = self.events[self.seen :]
        self.seen = len(self.events)
        return fresh

    def check(self, expected_events: list[tuple[str, str]], restarted: set[str]) -> None:
        """Compare the real supervisor with the model after a step."""
        model = self.model
        assert model is not None
        sup = self.supervisor

        async def observe() -> tuple[float, beam.Exit | None, list[Any]]:
            await trio.testing.wait_all_tasks_blocked()
            try:
                exit_ = await beam.receive(beam.Exit, timeout=0)
            except beam.ReceiveTimeout:
                exit_ = None
            alive = exit_ is None and beam.is_alive(sup)
            children = await Supervisor.which_children(sup) if alive else []
            return trio.current_time(), exit_, children

        now, exit_, children = self.node.run(observe)
        assert self.new_events() == expected_events
        assert now == model.now
        if not model.alive:
            if not self.gave_up:  # the step that exceeded the intensity
                assert exit_ == beam.Exit(sup, "shutdown")
                self.gave_up = True
            assert self.node.run(_count_processes) == 1  # only the driver is left
            return
        assert exit_ is None
        assert [(c.id, c.pid is not None) for c in children] == [
            (c.id, c.running) for c in model.children
        ]
        for child in children:
            old = self.pids.get(child.id)
            if child.id in restarted:
                assert child.pid not in (None, old)
            elif child.pid is not None:
                assert child.pid == old  # untouched by the step
        self.pids = {c.id: c.pid for c in children}

    # -- rules ----------------------------------------------------------------------------

    @initialize(
        strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
        max_restarts=st.integers(0, 3),
        max_seconds=st.sampled_from([1.0, 2.5, 5.0]),
        restarts=st.lists(st.sampled_from(RESTARTS), min_size=1, max_size=5),
    )
    def start(
        self, strategy: str, max_restarts: int, max_seconds: float, restarts: list[str]
    ) -> None:
        children = [Child(f"c{i}", restart) for i, restart in enumerate(restarts)]
        self.next_id = len(children)
        self.model = Model(strategy, max_restarts, max_seconds, children)
        specs = [member_spec(self.events, c.id, restart=c.restart) for c in children]

        async def start() -> beam.Pid:
            return await Supervisor.start_link(
                specs,
                strategy=strategy,  # type: ignore[arg-type]
                max_restarts=max_restarts,
                max_seconds=max_seconds,
            )

        self.sup = self.node.run(start)
        self.check([("start", c.id) for c in children], {c.id for c in children})

    def alive(self) -> bool:
        return self.model is not None and self.model.alive

    @precondition(alive)
    @rule(data=st.data(), reason=st.sampled_from(REASONS))
    def crash_child(self, data: st.DataObject, reason: Any) -> None:
        model = self.model
        assert model is not None
        running = [c for c in model.children if c.running]
        if not running:
            return
        child = data.draw(st.sampled_from(running))
        pid = self.pids[child.id]
        assert pid is not None

        async def crash() -> None:
            if reason == "kill":
                beam.exit(pid, "kill")
            else:
                beam.send(pid, ("exit", ValueError("boom") if reason == "value_error" else reason))

        self.node.run(crash)
        expected = [] if reason == "kill" else [("crash", child.id)]
        expected += model.crash(child, clean=beam.is_normal_exit(reason))
        restarted = {i for kind, i in expected if kind == "start"}
        self.check(expected, restarted)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 6.0]))  # also once the supervisor is gone
    def advance_time(self, seconds: float) -> None:
        assert self.model is not None
        self.model.now += seconds

        async def sleep() -> None:
            await trio.sleep(seconds)

        self.node.run(sleep)
        self.check([], set())

    @precondition(alive)
    @rule(data=st.data())
    def terminate_child(self, data: st.DataObject) -> None:
        model = self.model
        assert model is not None
        child_id = data.draw(st.sampled_from([c.id for c in model.children] + ["nobody"]))
        child = model.find(child_id)
        sup = self.supervisor

        async def terminate() -> str:
            try:
                await Supervisor.terminate_child(sup, child_id)
            except ChildNotFound:
                return "not_found"
            return "ok"

        assert self.node.run(terminate) == ("not_found" if child is None else "ok")
        expected = []
        if child is not None:
            if child.running:
                expected = [("stop", child.id)]
            child.running = False
            if child.restart == "temporary":
                model.children.remove(child)
        self.check(expected, set())

    @precondition(alive)
    @rule(data=st.data(), delete=st.booleans())
    def restart_or_delete_child(self, data: st.DataObject, delete: bool) -> None:
        model = self.model
        assert model is not None
        child_id = data.draw(st.sampled_from([c.id for c in model.children] + ["nobody"]))
        child = model.find(child_id)
        sup = self.supervisor

        async def act() -> str:
            try:
                if delete:
                    await Supervisor.delete_child(sup, child_id)
                else:
                    await Supervisor.restart_child(sup, child_id)
            except ChildNotFound:
                return "not_found"
            except ChildRunning:
                return "running"
            return "ok"

        outcome = self.node.run(act)
        expected: list[tuple[str, str]] = []
        if child is None:
            assert outcome == "not_found"
        elif child.running:
            assert outcome == "running"
        else:
            assert outcome == "ok"
            if delete:
                model.children.remove(child)
            else:
                child.running = True
                expected = [("start", child.id)]
        self.check(expected, {i for _, i in expected})

    @precondition(alive)
    @rule(restart=st.sampled_from(RESTARTS))
    def start_child(self, restart: str) -> None:
        model = self.model
        assert model is not None
        child = Child(f"c{self.next_id}", restart)
        self.next_id += 1
        spec = member_spec(self.events, child.id, restart=restart)
        sup = self.supervisor

        async def start() -> None:
            await Supervisor.start_child(sup, spec)

        self.node.run(start)
        model.children.append(child)
        self.check([("start", child.id)], {child.id})

    @invariant()
    def processes_match_the_tree(self) -> None:
        if self.model is None or not self.model.alive:
            return
        # the driver, the supervisor and one process per running child: nothing leaks
        running = sum(c.running for c in self.model.children)
        assert self.node.run(_count_processes) == 2 + running


async def _count_processes() -> int:
    return len(beam.processes())


def test_supervisor_matches_the_model() -> None:
    run_state_machine_as_test(
        SupervisorMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
