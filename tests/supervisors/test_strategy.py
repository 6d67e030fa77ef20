"""The pure restart rules (no trio): exit actions, strategy plans, the intensity window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisors import ChildView, RestartIntensity, RestartPlan, exit_action, plan_restart
from supervisors._strategy import STRATEGIES, RestartWindow


@pytest.mark.parametrize(
    ("restart", "clean", "action"),
    [
        ("permanent", True, "restart"),
        ("permanent", False, "restart"),
        ("transient", True, "keep"),
        ("transient", False, "restart"),
        ("temporary", True, "remove"),
        ("temporary", False, "remove"),
    ],
)
def test_exit_action_table(restart: str, clean: bool, action: str) -> None:
    assert exit_action(restart, clean=clean) == action  # type: ignore[arg-type]


def kids(*spec: str) -> list[ChildView]:
    """'a' running permanent, 'B' stopped permanent, 't:' prefix temporary, 'r:' transient."""
    views = []
    for item in spec:
        restart = "permanent"
        if item.startswith("t:"):
            restart, item = "temporary", item[2:]
        elif item.startswith("r:"):
            restart, item = "transient", item[2:]
        views.append(ChildView(item.lower(), restart, item.islower()))  # type: ignore[arg-type]
    return views


def test_one_for_one_restarts_only_the_dead_child() -> None:
    assert plan_restart("one_for_one", kids("a", "B", "c"), "b") == RestartPlan((), (), ("b",))


def test_one_for_all_stops_others_in_reverse_and_starts_all_in_order() -> None:
    plan = plan_restart("one_for_all", kids("a", "B", "c", "d"), "b")
    assert plan == RestartPlan(("d", "c", "a"), (), ("a", "b", "c", "d"))


def test_one_for_all_drops_temporary_siblings() -> None:
    plan = plan_restart("one_for_all", kids("a", "t:t", "B"), "b")
    assert plan == RestartPlan(("t", "a"), ("t",), ("a", "b"))


def test_one_for_all_restarts_stopped_siblings_as_otp_does() -> None:
    # OTP 25 (checked with erl): a child stopped with terminate_child starts again when a
    # one_for_all sibling restarts everything.
    plan = plan_restart("one_for_all", kids("a", "S", "B"), "b")
    assert plan == RestartPlan(("a",), (), ("a", "s", "b"))


def test_rest_for_one_affects_only_later_children() -> None:
    plan = plan_restart("rest_for_one", kids("a", "B", "t:t", "r:d"), "b")
    assert plan == RestartPlan(("d", "t"), ("t",), ("b", "d"))


def test_plan_for_unknown_child_says_so() -> None:
    with pytest.raises(ValueError, match="'zz' is not in the child list"):
        plan_restart("one_for_one", kids("a"), "zz")


@given(
    st.lists(
        st.tuples(st.sampled_from(["permanent", "transient", "temporary"]), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    st.data(),
)
def test_plans_are_consistent(children: list[tuple[str, bool]], data: st.DataObject) -> None:
    views = [
        ChildView(f"c{i}", restart, running)  # type: ignore[arg-type]
        for i, (restart, running) in enumerate(children)
    ]
    dead = data.draw(st.integers(0, len(views) - 1))
    views[dead] = ChildView(views[dead].id, "permanent", False)
    order = [v.id for v in views]
    for strategy in STRATEGIES:
        plan = plan_restart(strategy, views, f"c{dead}")
        # stops in reverse start order, starts in start order, never both for a temporary
        assert list(plan.terminate) == sorted(plan.terminate, key=order.index, reverse=True)
        assert list(plan.restart) == sorted(plan.restart, key=order.index)
        assert f"c{dead}" in plan.restart
        assert not set(plan.remove) & set(plan.restart)
        running = {v.id for v in views if v.running}
        assert set(plan.terminate) <= running
        assert all(v.restart != "temporary" for v in views if v.id in plan.restart[1:])
        if strategy == "one_for_one":
            assert plan == RestartPlan((), (), (f"c{dead}",))
        if strategy == "rest_for_one":
            assert all(order.index(i) >= dead for i in plan.terminate + plan.restart)


def test_intensity_window_counts_restarts_within_max_seconds() -> None:
    window = RestartIntensity(max_restarts=3, max_seconds=5)
    for now in (0.0, 1.0, 2.0):
        window = window.add_restart(now)
        assert not window.exceeded
    assert window.add_restart(5.0).exceeded  # 0.0 is still inside (5 - 0 <= 5)
    assert not window.add_restart(5.001).exceeded  # 0.0 has left the window
    assert window.add_restart(5.001).restarts == (1.0, 2.0, 5.001)


def test_zero_max_restarts_gives_up_at_the_first_restart() -> None:
    assert RestartIntensity(0, 5).add_restart(0.0).exceeded


@given(st.lists(st.floats(0, 3, allow_nan=False), max_size=30), st.integers(0, 5))
def test_intensity_matches_a_direct_count(gaps: list[float], max_restarts: int) -> None:
    window = RestartIntensity(max_restarts, 5.0)
    now = 0.0
    times: list[float] = []
    for gap in gaps:
        now += gap
        times.append(now)
        window = window.add_restart(now)
        recent = [t for t in times if now - t <= 5.0]
        assert window.restarts == tuple(recent[-(max_restarts + 1) :])
        assert window.exceeded == (len(recent) > max_restarts)


@given(
    st.lists(st.floats(0, 3, allow_nan=False), max_size=40),
    st.integers(0, 5),
    st.sampled_from([0.001, 1.0, 5.0]),
)
def test_the_supervisors_mutable_window_agrees_with_restart_intensity(
    gaps: list[float], max_restarts: int, max_seconds: float
) -> None:
    pure = RestartIntensity(max_restarts, max_seconds)
    kept = RestartWindow(max_restarts, max_seconds)
    now = 0.0
    for gap in gaps:
        now += gap
        pure = pure.add_restart(now)
        assert kept.add(now) == pure.exceeded
        assert kept.restarts == pure.restarts
