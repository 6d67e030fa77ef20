"""Child specs: eager validation, helpers, and the forms a child list accepts."""

from __future__ import annotations

import math
from typing import Any

import pytest

import beam
from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    InvalidSpec,
    Supervisor,
    child_spec,
    validate_child_specs,
    worker,
)
from supervisors._spec import describe_start


class Counter(beam.GenServer[int]):
    async def init(self, start: int) -> beam.Ok[int]:
        return beam.Ok(start)


class Picky(beam.GenServer[Any]):
    """Chooses its own defaults, as Elixir's ``use GenServer, restart: :transient``."""

    @classmethod
    def child_spec(cls, arg: Any) -> ChildSpec:
        return child_spec(cls, arg, id="picky", restart="transient", shutdown="brutal_kill")

    async def init(self, arg: Any) -> beam.Ok[Any]:
        return beam.Ok(arg)


async def ticker(interval: float) -> None:
    pass


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("restart", "forever", "'permanent', 'transient' or 'temporary'"),
        ("shutdown", -1, "'brutal_kill', 'infinity', or a number of seconds >= 0"),
        ("shutdown", "soon", "'brutal_kill', 'infinity', or a number of seconds >= 0"),
        ("shutdown", math.nan, "'brutal_kill', 'infinity', or a number of seconds >= 0"),
        ("shutdown", True, "'brutal_kill', 'infinity', or a number of seconds >= 0"),
        ("type", "daemon", "'worker' or 'supervisor'"),
        ("start", "Counter.start_link", "an async callable that starts and links the child"),
        ("args", [0], "a tuple"),
    ],
)
def test_validate_child_specs_errors_name_field_value_allowed(
    field: str, value: Any, allowed: str
) -> None:
    fields: dict[str, Any] = {"id": "counter", "start": Counter.start_link, field: value}
    with pytest.raises(InvalidSpec) as caught:
        ChildSpec(**fields)
    error = caught.value
    assert (error.field, error.allowed) == (field, allowed)
    assert error.value is value
    message = str(error)
    assert message.startswith("child spec 'counter': ")
    assert f"{field}={value!r}" in message
    assert allowed in message


def test_id_is_required_and_hashable() -> None:
    with pytest.raises(InvalidSpec, match="id=None is not valid"):
        ChildSpec(id=None, start=Counter.start_link)
    with pytest.raises(InvalidSpec, match=r"id=\['a'\] is not valid; id must be hashable"):
        ChildSpec(id=["a"], start=Counter.start_link)  # type: ignore[arg-type]


def test_shutdown_defaults_by_type() -> None:
    assert ChildSpec("w", Counter.start_link).shutdown == 5.0
    assert ChildSpec("s", Counter.start_link, type="supervisor").shutdown == "infinity"
    assert ChildSpec("k", Counter.start_link, shutdown="brutal_kill").shutdown == "brutal_kill"
    assert ChildSpec("z", Counter.start_link, shutdown=0).shutdown == 0


def test_duplicate_ids_are_rejected_naming_both_entries() -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_child_specs(
            [worker(ticker, 1, id="t"), child_spec(Counter), worker(ticker, 2, id="t")]
        )
    assert caught.value.field == "children[2].id"
    assert "children[0] has the same id" in str(caught.value)


def test_child_list_accepts_classes_and_pairs() -> None:
    with pytest.raises(InvalidSpec):  # Counter twice with the default id
        validate_child_specs([Counter, (Counter, 5)])
    specs = validate_child_specs([Counter, child_spec(Counter, 5, id="c5"), (Picky, "x")])
    assert [s.id for s in specs] == ["Counter", "c5", "picky"]
    assert specs[0].args == (None,)
    assert specs[1].args == (5,)
    assert (specs[2].restart, specs[2].shutdown, specs[2].args) == (
        "transient",
        "brutal_kill",
        ("x",),
    )


def test_child_list_rejects_other_things_with_advice() -> None:
    with pytest.raises(InvalidSpec, match=r"children\[1\]=.*use supervisors.worker"):
        validate_child_specs([Counter, ticker])  # type: ignore[list-item]
    with pytest.raises(InvalidSpec, match="a list of child specs"):
        validate_child_specs(child_spec(Counter))  # type: ignore[arg-type]
    with pytest.raises(InvalidSpec, match=r"beam\.GenServer subclass"):
        child_spec(ticker)  # type: ignore[arg-type]


def test_helpers_build_specs_without_boilerplate() -> None:
    spec = child_spec(Counter, 0, name="counter", restart="transient")
    assert (spec.id, spec.restart, spec.type) == ("counter", "transient", "worker")
    assert describe_start(spec) == "Counter.start_link(0, name='counter')"
    task = worker(ticker, 1.5)
    assert task.id == "ticker"
    assert describe_start(task) == "beam.spawn_link(ticker, 1.5)"
    tree = Supervisor.child_spec([spec, task], id="tree", strategy="one_for_all")
    assert (tree.type, tree.shutdown) == ("supervisor", "infinity")
    assert describe_start(tree).startswith("Supervisor.start_link((ChildSpec(")
    pool = DynamicSupervisor.child_spec(id="pool", max_children=3)
    assert describe_start(pool).startswith("DynamicSupervisor.start_link(max_children=3")


def test_supervisor_options_are_checked_eagerly() -> None:
    with pytest.raises(InvalidSpec, match="strategy='one_for_some'"):
        Supervisor.child_spec([], strategy="one_for_some")  # type: ignore[arg-type]
    with pytest.raises(InvalidSpec, match=r"max_restarts=-1 .* an int >= 0"):
        Supervisor.child_spec([], max_restarts=-1)
    with pytest.raises(InvalidSpec, match=r"max_seconds=0 .* > 0"):
        Supervisor.child_spec([], max_seconds=0)
    with pytest.raises(InvalidSpec, match="max_children=-2"):
        DynamicSupervisor.child_spec(max_children=-2)


def test_specs_are_frozen_values() -> None:
    spec = worker(ticker, 1, id="t")
    assert spec == worker(ticker, 1, id="t")
    with pytest.raises(AttributeError):
        spec.restart = "temporary"  # type: ignore[misc]
