"""web.RateLimiter: token buckets and failure backoff by scope, on a mock clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import beam
import web
from web.http._ratelimit import _Table

SCOPES: dict[str, web.Limit | web.Backoff] = {
    "message": web.Limit(3, 60.0, "messages"),
    "typing": web.Limit(1, 1.0, "typing notices"),
    "login_failures": web.Backoff(free=2, base=1.0, cap=8.0, forget=100.0),
}


async def test_a_limit_allows_a_burst_then_says_how_long_to_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        await web.RateLimiter.start_link(SCOPES, name=web.RATE_LIMITER)
        for _ in range(3):
            await web.rate_limit("message", "alice")
        with pytest.raises(web.RateLimited) as refused:
            await web.rate_limit("message", "alice")
        assert str(refused.value) == ("slow down: at most 3 messages per minute; try again in 20 s")
        assert refused.value.scope == "message"
        assert refused.value.retry_after == pytest.approx(20.0)
        # other keys and other scopes are counted apart
        await web.rate_limit("message", "bob")
        await web.rate_limit("typing", "alice")
        with pytest.raises(web.RateLimited, match="at most 1 typing notices per second"):
            await web.rate_limit("typing", "alice")
        # refused hits do not count: after the wait, one more goes through
        await trio.sleep(20)
        await web.rate_limit("message", "alice")
        with pytest.raises(web.RateLimited):
            await web.rate_limit("message", "alice")


async def test_backoff_grows_with_each_failure_and_a_success_resets_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        await web.RateLimiter.start_link(SCOPES, name=web.RATE_LIMITER)
        key = "user:alice"
        assert await web.record_failure("login_failures", key) == 0.0
        await web.rate_limit("login_failures", key)  # one free failure: not held back
        assert await web.record_failure("login_failures", key) == 1.0
        with pytest.raises(web.RateLimited) as held:
            await web.rate_limit("login_failures", key)
        assert str(held.value) == "too many failed attempts: try again in 1 s"
        await trio.sleep(1.0)
        await web.rate_limit("login_failures", key)
        delays = [await web.record_failure("login_failures", key) for _ in range(4)]
        assert delays == [2.0, 4.0, 8.0, 8.0]  # doubling, up to the cap
        with pytest.raises(web.RateLimited, match="try again in 8 s"):
            await web.rate_limit("login_failures", key)
        await web.rate_limit("login_failures", "user:bob")  # another key is not held
        await web.reset_limit("login_failures", key)  # a success
        await web.rate_limit("login_failures", key)
        assert await web.record_failure("login_failures", key) == 0.0  # counting anew
        # failures are forgotten after a quiet period
        await web.record_failure("login_failures", key)
        await web.record_failure("login_failures", key)
        await trio.sleep(100.0)
        assert await web.record_failure("login_failures", key) == 0.0


async def test_mistakes_are_answered_without_crashing_the_limiter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with beam.open_node():
        pid = await web.RateLimiter.start_link(SCOPES, name=web.RATE_LIMITER)
        with pytest.raises(ValueError, match="no rate-limit scope 'upload'"):
            await web.rate_limit("upload", "alice")
        with pytest.raises(ValueError, match="'message' is a Limit, not a Backoff"):
            await web.record_failure("message", "alice")
        assert beam.whereis(web.RATE_LIMITER) == pid
    with pytest.raises(ValueError, match="at least 1 hit"):
        web.Limit(0, 60.0)
    with pytest.raises(ValueError, match="cap >= base"):
        web.Backoff(base=10.0, cap=1.0)


def test_stale_entries_are_swept_and_the_table_is_bounded() -> None:
    table = _Table(SCOPES, max_keys=3)
    for key in ("a", "b", "c", "d"):
        assert table.hit("message", key, 0.0) == ("ok", 0.0)
    assert list(table.entries["message"]) == ["b", "c", "d"]  # the oldest went first
    table.fail("login_failures", "x", 0.0)
    table.sweep(10.0)  # buckets not yet full again, failures not yet forgotten
    assert len(table.entries["message"]) == 3
    assert "x" in table.entries["login_failures"]
    table.sweep(100.0)
    assert table.entries == {"message": {}, "login_failures": {}}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=60))
def test_a_bucket_never_allows_more_than_its_burst_plus_its_rate(gaps: list[float]) -> None:
    limit = web.Limit(3, 2.0)  # 1.5 hits a second after a burst of 3
    table = _Table({"s": limit})
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap
        verdict, wait = table.hit("s", "k", now)
        if verdict == "ok":
            allowed.append(now)
        else:
            assert wait > 0
            assert table.hit("s", "k", now + wait)[0] == "ok"  # the wait it named suffices
            allowed.append(now + wait)
            now += wait
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            span = allowed[j] - start
            assert j - i + 1 <= limit.count + span * limit.count / limit.seconds + 1e-6
