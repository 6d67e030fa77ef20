"""domain.jobs without a database: crontab expressions, cron entries in a time zone, the
retry backoff, workers' options and the values ``perform`` returns."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import jobs as dj

from .jobs_support import Noop


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_crontab_fields_ranges_steps_lists_and_names() -> None:
    every_15_in_office = dj.Crontab.parse("*/15 9-17 * * mon-fri")
    assert every_15_in_office.matches(at("2026-12-07T09:30"))  # a Monday
    assert not every_15_in_office.matches(at("2026-12-07T09:31"))
    assert not every_15_in_office.matches(at("2026-12-06T09:30"))  # a Sunday
    assert not every_15_in_office.matches(at("2026-12-07T18:00"))
    assert dj.Crontab.parse("0 0 1,15 jan,jul *").matches(at("2026-07-15T00:00"))
    assert dj.Crontab.parse("5 4 * * 7").matches(at("2026-12-06T04:05"))  # 7 is Sunday
    assert dj.Crontab.parse("@hourly") == dj.Crontab.parse("0 * * * *")
    assert dj.Crontab.parse("@daily").matches(at("2026-03-01T00:00"))


def test_day_of_month_and_day_of_week_either_matches_when_both_are_restricted() -> None:
    cron = dj.Crontab.parse("0 12 13 * fri")
    assert cron.matches(at("2026-02-13T12:00"))  # the 13th (a Friday too)
    assert cron.matches(at("2026-03-13T12:00"))  # the 13th, a Friday
    assert cron.matches(at("2026-03-06T12:00"))  # a Friday
    assert cron.matches(at("2026-04-13T12:00"))  # the 13th, a Monday
    assert not cron.matches(at("2026-04-14T12:00"))


@pytest.mark.parametrize(
    "bad", ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *"]
)
def test_bad_expressions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        dj.Crontab.parse(bad)


def test_a_cron_entry_reads_its_minute_in_its_time_zone() -> None:
    paris_3am = dj.Cron("0 3 * * *", Noop, timezone="Europe/Paris")
    assert paris_3am.due(at("2026-12-03T02:00+00:00"))  # winter: UTC+1
    assert paris_3am.due(at("2026-07-03T01:00+00:00"))  # summer: UTC+2
    assert not paris_3am.due(at("2026-12-03T03:00+00:00"))
    with pytest.raises(ValueError, match="5 fields"):
        dj.Cron("* *", Noop)


@given(st.integers(1, 20), st.integers(1, 40), st.integers(0, 2**32))
def test_backoff_is_obans_padded_exponential_with_added_jitter(
    attempt: int, max_attempts: int, seed: int
) -> None:
    attempt = min(attempt, max_attempts)
    clamped = attempt if max_attempts <= 20 else round(attempt / max_attempts * 20)
    base = 15 + 2**clamped
    delay = dj.backoff(attempt, max_attempts, rand=random.Random(seed))
    assert base <= delay <= base * 1.1


def test_worker_options_and_new_jobs() -> None:
    class Mailer(dj.Worker):
        queue = "mail"
        max_attempts = 5
        priority = 2
        tags = ("mail",)

    job = Mailer.new({"to": 1}, schedule_in=60)
    assert (job.queue, job.max_attempts, job.priority, job.tags) == ("mail", 5, 2, ("mail",))
    assert job.worker == f"{__name__}.test_worker_options_and_new_jobs.<locals>.Mailer"
    assert dj.worker_for(job.worker) is Mailer
    assert Mailer.new({}, queue="other", priority=0).queue == "other"
    with pytest.raises(LookupError):
        dj.worker_for("nowhere.Nothing")
    with pytest.raises(ValueError, match="priority"):

        class Wrong(dj.Worker):
            priority = 10

    with pytest.raises(ValueError, match="Unique fields"):
        dj.Unique(fields=("nonsense",))
