"""``beam.testing``: assert_receive, refute_receive and wait_idle."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import beam
from beam.testing import assert_receive, refute_receive, wait_idle

from .conftest import drain


async def test_assert_receive_returns_the_message() -> None:
    async with beam.open_node():
        beam.send(beam.self(), ("pong", 1))
        assert await assert_receive() == ("pong", 1)
        assert drain() == []


async def test_assert_receive_takes_the_first_match_and_leaves_the_rest() -> None:
    async with beam.open_node():
        me = beam.self()
        for message in ("a", 1, "b", 2):
            beam.send(me, message)
        assert await assert_receive(int) == 1
        assert await assert_receive(lambda m: m == "b") == "b"
        assert drain() == ["a", 2]


async def test_assert_receive_waits_for_a_message_within_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()

        async def later() -> None:
            await trio.sleep(2)
            beam.send(me, "arrived")

        beam.spawn(later)
        before = trio.current_time()
        assert await assert_receive(str, timeout=3) == "arrived"
        assert trio.current_time() - before == pytest.approx(2.0)


async def test_assert_receive_fails_listing_the_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        beam.send(me, "unrelated")
        beam.send(me, ("other", 42))
        before = trio.current_time()
        with pytest.raises(AssertionError) as caught:
            await assert_receive(int, timeout=1)
        assert trio.current_time() - before == pytest.approx(1.0)
        text = str(caught.value)
        assert "within 1 s" in text
        assert "'unrelated'" in text
        assert "('other', 42)" in text
        assert drain() == ["unrelated", ("other", 42)]  # a failed assertion takes nothing


async def test_assert_receive_fails_on_an_empty_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        with pytest.raises(AssertionError, match="the mailbox is empty"):
            await assert_receive(timeout=1)


async def test_assert_receive_failure_shows_at_most_five_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()
        for n in range(8):
            beam.send(me, f"m{n}")
        with pytest.raises(AssertionError) as caught:
            await assert_receive(int, timeout=1)
        text = str(caught.value)
        assert "'m4'" in text
        assert "'m5'" not in text
        assert "and 3 more" in text


async def test_assert_receive_failure_bounds_huge_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        beam.send(beam.self(), "x" * 100_000)
        with pytest.raises(AssertionError) as caught:
            await assert_receive(int, timeout=1)
        assert len(str(caught.value)) < 1_000


async def test_assert_receive_default_timeout_is_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        before = trio.current_time()
        with pytest.raises(AssertionError):
            await assert_receive()
        assert trio.current_time() - before == pytest.approx(0.1)


async def test_refute_receive_passes_on_silence(autojump_clock: trio.testing.MockClock) -> None:
    async with beam.open_node():
        before = trio.current_time()
        await refute_receive(timeout=5)
        assert trio.current_time() - before == pytest.approx(5.0)


async def test_refute_receive_passes_when_only_other_messages_arrive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        beam.send(beam.self(), "noise")
        await refute_receive(beam.Exit, timeout=1)
        assert drain() == ["noise"]  # non-matching messages stay


async def test_refute_receive_fails_on_a_matching_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        me = beam.self()

        async def later() -> None:
            await trio.sleep(0.5)
            beam.send(me, ("alarm", 7))

        beam.spawn(later)
        with pytest.raises(AssertionError) as caught:
            await refute_receive(tuple, timeout=1)
        assert "unexpected message ('alarm', 7)" in str(caught.value)


async def test_refute_receive_fails_on_a_message_already_queued() -> None:
    async with beam.open_node():
        beam.send(beam.self(), "already here")
        with pytest.raises(AssertionError, match="already here"):
            await refute_receive()


async def test_wait_idle_lets_spawned_processes_run() -> None:
    async with beam.open_node():
        me = beam.self()

        async def chain(n: int) -> None:
            if n:
                beam.spawn(chain, n - 1)
            else:
                beam.send(me, "end of chain")

        beam.spawn(chain, 10)
        await wait_idle()
        assert drain() == ["end of chain"]
