"""Section 3 of the reference: pykka thread actors owned by beam processes.

These tests use real OS threads, so a few of them wait on the wall clock. Every such wait is
bounded (a poll with a deadline) and short; it is the behaviour under test (the loop keeps
running while an actor blocks), not a stand-in for synchronisation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
import trio

import beam
from beam.testing import assert_receive

from .conftest import down_reason, drain, settle

#: Upper bound for any real wait in this module.
DEADLINE = 5.0


class Resource(beam.ThreadActor):
    """A blocking resource: records which thread served it and what happened."""

    def __init__(self, fail: str | None = None, *, label: str = "resource") -> None:
        super().__init__()
        if fail is not None:
            raise OSError(fail)
        self.label = label
        self.items: dict[str, Any] = {}
        self.threads: set[int] = set()
        self.finished = threading.Event()
        self.stopped = threading.Event()

    def on_stop(self) -> None:
        self.stopped.set()

    def put(self, key: str, value: Any) -> None:
        self.threads.add(threading.get_ident())
        self.items[key] = value

    def get(self, key: str) -> Any:
        self.threads.add(threading.get_ident())
        return self.items[key]

    def describe(self, *args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        return (self.label, args, kwargs)

    def thread_count(self) -> int:
        return len(self.threads)

    def block(self, seconds: float) -> str:
        time.sleep(seconds)
        self.finished.set()
        return "unblocked"

    def wait_finished(self) -> bool:
        return self.finished.is_set()


@pytest.fixture(autouse=True)
def _stop_leftover_actors() -> Iterator[None]:
    """pykka's registry is process-global: leave it as we found it."""
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=DEADLINE)


def actors() -> list[pykka.ActorRef[Any]]:
    return pykka.ActorRegistry.get_by_class(Resource)


async def poll(condition: Callable[[], bool], what: str) -> None:
    """Wait (real time, bounded) until *condition()* holds."""
    # Polling is the point: the condition changes on another OS thread, with no trio event.
    with trio.move_on_after(DEADLINE):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.005)
        return
    raise AssertionError(f"timed out after {DEADLINE} s waiting until {what}")


# -- start_link and ask -----------------------------------------------------------------------


async def test_thread_actor_start_link_and_ask_return_results() -> None:
    async with beam.open_node():
        owner = await Resource.start_link(label="db")
        assert isinstance(owner, beam.Pid)
        info = beam.process_info(owner)
        assert info is not None
        assert beam.self() in info.links
        assert len(actors()) == 1
        assert await beam.ask(owner, "put", "k", [1, 2]) is None
        assert await beam.ask(owner, "get", "k") == [1, 2]
        assert await beam.ask(owner, "describe", 1, 2, x=3) == ("db", (1, 2), {"x": 3})
        await beam.GenServer.stop(owner)


async def test_thread_actor_by_name_and_on_one_pinned_thread() -> None:
    async with beam.open_node():
        owner = await Resource.start_link(name="store")
        assert beam.whereis("store") == owner
        for n in range(30):
            await beam.ask("store", "put", f"k{n}", n)
        assert await beam.ask("store", "thread_count") == 1
        (ref,) = actors()
        assert threading.get_ident() not in ref.proxy().threads.get(timeout=DEADLINE)
        await beam.GenServer.stop("store")


async def test_thread_actor_asks_are_served_in_order() -> None:
    async with beam.open_node():
        owner = await Resource.start_link()
        me = beam.self()

        async def asker(n: int) -> None:
            await beam.ask(owner, "put", "last", n)
            beam.send(me, ("asked", n))

        for n in range(5):
            beam.spawn(asker, n)
        for _ in range(5):
            await assert_receive(lambda m: m[0] == "asked", timeout=DEADLINE)
        assert await beam.ask(owner, "get", "last") in range(5)
        await beam.GenServer.stop(owner)


async def test_thread_actor_ask_unknown_name_is_noproc() -> None:
    async with beam.open_node():
        with pytest.raises(beam.NoProc):
            await beam.ask("no such actor", "get", "k")


# -- the loop keeps running -------------------------------------------------------------------


async def test_thread_actor_blocking_method_does_not_block_the_loop() -> None:
    async with beam.open_node():
        owner = await Resource.start_link()
        ticks: list[float] = []
        borrowed: list[int] = []
        limiter = trio.to_thread.current_default_thread_limiter()

        async def ticker() -> None:
            while True:
                await trio.sleep(0.01)
                ticks.append(time.monotonic())
                borrowed.append(limiter.statistics().borrowed_tokens)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            start = time.monotonic()
            assert await beam.ask(owner, "block", 0.2) == "unblocked"
            elapsed = time.monotonic() - start
            nursery.cancel_scope.cancel()
        assert elapsed >= 0.2
        during = [t for t in ticks if t - start < 0.19]
        assert len(during) >= 3, f"the ticker made {len(during)} steps during the block"
        assert borrowed, "the ticker never ran"
        assert set(borrowed) == {0}, "an ask must not hold a trio worker thread"
        await beam.GenServer.stop(owner)


async def test_thread_actor_other_processes_run_while_an_ask_blocks() -> None:
    async with beam.open_node():
        owner = await Resource.start_link()
        me = beam.self()

        async def blocked_caller() -> None:
            beam.send(me, ("result", await beam.ask(owner, "block", 0.2)))

        beam.spawn(blocked_caller)
        counter = await beam.Agent.start_link(lambda: 0)
        for _ in range(20):
            await beam.Agent.update(counter, lambda n: n + 1)
        assert await beam.Agent.get(counter, lambda n: n) == 20
        assert drain() == []  # the 0.2 s ask is still running
        assert await assert_receive(timeout=DEADLINE) == ("result", "unblocked")
        await beam.GenServer.stop(owner)


async def test_thread_actor_many_concurrent_asks_hold_no_worker_threads() -> None:
    async with beam.open_node():
        owners = [await Resource.start_link() for _ in range(4)]
        limiter = trio.to_thread.current_default_thread_limiter()
        me = beam.self()

        async def caller(owner: beam.Pid) -> None:
            beam.send(me, await beam.ask(owner, "block", 0.1))

        for owner in owners:
            beam.spawn(caller, owner)
        await trio.sleep(0.03)  # all four asks are now blocking in their threads
        assert limiter.statistics().borrowed_tokens == 0
        for _ in owners:
            assert await assert_receive(timeout=DEADLINE) == "unblocked"
        for owner in owners:
            await beam.GenServer.stop(owner)


# -- failures ---------------------------------------------------------------------------------


async def test_thread_actor_exception_is_raised_in_the_caller_and_owner_exits() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        owner = await Resource.start_link()
        (ref,) = actors()
        with pytest.raises(KeyError) as caught:
            await beam.ask(owner, "get", "missing")
        assert caught.value.args == ("missing",)
        exit_message = await assert_receive(beam.Exit, timeout=DEADLINE)
        assert exit_message.pid == owner
        assert isinstance(exit_message.reason, KeyError)
        assert exit_message.reason is caught.value
        await poll(lambda: not ref.is_alive(), "the actor thread stopped with its owner")


async def test_thread_actor_exception_kills_a_non_trapping_linked_caller() -> None:
    async with beam.open_node():
        me = beam.self()

        async def caller() -> None:
            owner = await Resource.start_link()
            try:
                await beam.ask(owner, "get", "missing")
            except KeyError as exc:
                beam.send(me, ("raised", exc))
            await beam.receive()  # the owner's exit signal ends this process

        _, ref = beam.spawn_monitor(caller)
        _, raised = await assert_receive(timeout=DEADLINE)
        assert isinstance(raised, KeyError)
        with trio.fail_after(DEADLINE):
            reason = await down_reason(ref)
        assert isinstance(reason, KeyError)


async def test_thread_actor_exception_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        owner = await Resource.start_link()
        with caplog.at_level("ERROR", logger="beam.crash"):
            with pytest.raises(KeyError):
                await beam.ask(owner, "get", "the-missing-key")
            await assert_receive(beam.Exit, timeout=DEADLINE)
        assert "the-missing-key" in caplog.text


async def test_thread_actor_killing_the_owner_stops_the_actor_thread() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        owner = await Resource.start_link()
        (ref,) = actors()
        assert ref.is_alive()
        beam.exit(owner, beam.KILL)
        assert await assert_receive(beam.Exit) == beam.Exit(owner, beam.KILLED)
        await poll(lambda: not ref.is_alive(), "the actor thread stopped")
        assert actors() == []


async def test_thread_actor_stop_owner_runs_on_stop() -> None:
    async with beam.open_node():
        owner = await Resource.start_link()
        (ref,) = actors()
        stopped = ref.proxy().stopped.get(timeout=DEADLINE)
        await beam.GenServer.stop(owner)
        await poll(stopped.is_set, "on_stop ran")
        assert not ref.is_alive()
        with pytest.raises(beam.NoProc):
            await beam.ask(owner, "get", "k")


# -- timeouts ---------------------------------------------------------------------------------


async def test_thread_actor_ask_timeout_raises_and_the_late_result_is_dropped() -> None:
    async with beam.open_node():
        owner = await Resource.start_link()
        (ref,) = actors()
        with pytest.raises(beam.CallTimeout) as caught:
            await beam.ask(owner, "block", 0.2, timeout=0.02)
        assert caught.value.reason == ("timeout", ("beam.ask", owner))
        finished = ref.proxy().finished.get(timeout=DEADLINE)
        await poll(finished.is_set, "the timed-out method ran to completion")
        await trio.sleep(0.02)  # let the result's run_sync_soon callback run
        await settle()
        assert drain() == []
        # The owner is fine and the next ask gets its own answer, not the stale one.
        assert await beam.ask(owner, "describe", "next") == ("resource", ("next",), {})
        assert beam.is_alive(owner)
        await beam.GenServer.stop(owner)


async def test_thread_actor_ask_default_timeout_is_5_seconds() -> None:
    import inspect

    assert inspect.signature(beam.ask).parameters["timeout"].default == 5.0


# -- start failures ---------------------------------------------------------------------------


async def test_thread_actor_constructor_that_raises_is_a_start_error() -> None:
    async with beam.open_node():
        with pytest.raises(beam.StartError) as caught:
            await Resource.start_link("cannot open")
        assert isinstance(caught.value.reason, OSError)
        assert str(caught.value.reason) == "cannot open"
        assert beam.is_alive(beam.self())  # the caller is not killed
        assert actors() == []
        await settle()
        assert not any(isinstance(m, beam.Exit) for m in drain())


async def test_thread_actor_constructor_failure_releases_the_name() -> None:
    async with beam.open_node():
        with pytest.raises(beam.StartError):
            await Resource.start_link("cannot open", name="db")
        assert beam.whereis("db") is None
        owner = await Resource.start_link(name="db")
        assert beam.whereis("db") == owner
        await beam.GenServer.stop(owner)
