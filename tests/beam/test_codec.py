"""The cluster codec (beam.cluster.encode/decode/register) and the PubSub envelope.

Round trips of every supported type nested arbitrarily (hypothesis), refusals that name the
type and how to register it, and decoding of arbitrary bytes that raises CodecError only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import enum
import math
import pickle
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import beam
from beam import cluster
from beam.cluster import CodecError, Envelope


@dataclass(frozen=True)
class Joined:
    room: str
    user: Any
    tags: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Counted:
    n: int
    cache: int = field(default=0, init=False)


class Colour(enum.Enum):
    RED = 1
    GREEN = "green"


class Point(NamedTuple):
    x: Any
    y: Any


@dataclass(frozen=True)
class Unregistered:
    x: int


@dataclass
class Mutable:
    x: int


cluster.register(Joined)
cluster.register(Counted, name="tests.Counted")
cluster.register(Colour)
cluster.register(Point)


def roundtrip(value: Any) -> Any:
    return cluster.decode(cluster.encode(value))


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (tuples stay tuples, lists stay lists)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, tuple | list):  # named tuples too: a NaN field makes == False
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    if dataclasses.is_dataclass(a):  # field by field: a NaN field makes == False
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


# -- strategies ------------------------------------------------------------------------------

hashable_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.builds(beam.Pid, st.integers(min_value=0, max_value=2**62))
    | st.builds(beam.Ref, st.integers(min_value=0, max_value=2**62))
    | st.sampled_from(list(Colour))
    | st.uuids()
    | st.datetimes()
    # An aware datetime travels with its UTC offset (a zone's name does not travel).
    | st.datetimes(
        timezones=st.builds(
            datetime.timezone,
            st.timedeltas(
                min_value=datetime.timedelta(hours=-23), max_value=datetime.timedelta(hours=23)
            ),
        )
    )
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.decimals(allow_nan=False)
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
scalars = hashable_scalars | st.floats(allow_nan=True)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=3)
        | st.builds(Joined, st.text(), inner, st.lists(inner, max_size=2).map(tuple))
        | st.builds(Point, inner, inner)
        | st.builds(Counted, st.integers())
        | st.builds(beam.Exit, st.builds(beam.Pid, st.integers(0, 100)), inner)
    )


values = st.recursive(scalars, _containers, max_leaves=25)


# -- round trips -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_supported_value_round_trips_with_its_types(value: Any) -> None:
    assert same(roundtrip(value), value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        2**64 - 1,
        2**64,
        -(2**63),
        -(2**63) - 1,
        2**1000,
        -(2**1000),
        1.5,
        float("inf"),
        "",
        "héllo",
        b"\x00\xff",
        (),
        (1,),
        [],
        [()],
        ((), []),
        {(1, "a"): [1, (2,)], 3: "x", None: b"", frozenset({1}): 0},
        {1, 2},
        frozenset({(1, 2)}),
        beam.Pid(7),
        beam.Ref(9),
        Joined("lobby", {"ann": (1, [2])}, (beam.Pid(1),)),
        Colour.GREEN,
        Point(1, (2, 3)),
        beam.Down(beam.Ref(1), beam.Pid(2), ("shutdown", "bye")),
        beam.From(beam.Pid(1), beam.Ref(2)),
    ],
    ids=repr,
)
def test_examples_round_trip(value: Any) -> None:
    assert same(roundtrip(value), value)


class Account:
    """A plain class (no dataclass) that registers how it travels."""

    def __init__(self, name: str, opened: datetime.date) -> None:
        self.name = name
        self.opened = opened

    def __eq__(self, other: object) -> bool:
        return type(other) is Account and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]


cluster.register(
    Account, "tests.Account", encode=lambda a: dict(vars(a)), decode=lambda d: Account(**d)
)


def test_a_plain_class_travels_through_the_functions_it_registered() -> None:
    account = Account("ann", datetime.date(2026, 12, 3))
    assert roundtrip([account, {"id": uuid.UUID(int=5)}]) == [account, {"id": uuid.UUID(int=5)}]
    with pytest.raises(TypeError, match="both encode= and decode="):
        cluster.register(Account, "tests.Account", encode=dict)
    # decoding calls the registered function: bytes naming it with bad fields are refused
    data = cluster.encode(account)
    with pytest.raises(cluster.CodecError, match=r"cannot rebuild 'tests\.Account'"):
        cluster.decode(data.replace(b"name", b"nope"))


def test_standard_values_keep_their_type_and_precision() -> None:
    moment = datetime.datetime(2026, 12, 3, 14, 5, 6, 789, tzinfo=datetime.UTC)
    for value in [
        moment,
        moment.replace(tzinfo=None),
        decimal.Decimal("0.10"),
        datetime.timedelta(days=-1, microseconds=3),
        datetime.time(23, 59, 59, 1),
        datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(microseconds=1))),
    ]:
        back = roundtrip(value)
        assert (type(back), back, str(back)) == (type(value), value, str(value))


def test_a_dataclass_travels_as_its_init_fields() -> None:
    assert roundtrip(Counted(5)) == Counted(5)


def test_a_tuple_and_a_list_are_told_apart_in_keys_and_values() -> None:
    value = {(1, 2): [1, 2], "t": (1, 2)}
    decoded = roundtrip(value)
    assert type(decoded["t"]) is tuple
    assert type(decoded[(1, 2)]) is list


# -- refusals --------------------------------------------------------------------------------


def test_an_unregistered_type_is_refused_at_encode_time_naming_it_and_the_fix() -> None:
    with pytest.raises(CodecError) as caught:
        cluster.encode(("event", Unregistered(1)))
    message = str(caught.value)
    assert "test_codec.Unregistered" in message
    assert "beam.cluster.register(Unregistered)" in message


@pytest.mark.parametrize(
    "value",
    [
        object(),
        Mutable(1),
        lambda: None,
        [1, {2: object()}],
        type,
        {1: {2: [3, {4}]}} | {5: Mutable(2)},
    ],
    ids=repr,
)
def test_values_that_cannot_travel_are_refused(value: Any) -> None:
    with pytest.raises(CodecError):
        cluster.encode(value)


def test_registering_is_checked() -> None:
    with pytest.raises(TypeError, match="frozen"):
        cluster.register(Mutable)
    with pytest.raises(TypeError, match="only frozen dataclasses"):
        cluster.register(int)
    with pytest.raises(ValueError, match="already taken by"):
        cluster.register(Unregistered, name="tests.Counted")
    with pytest.raises(ValueError, match="already registered under"):
        cluster.register(Counted, name="another.name")
    assert cluster.register(Joined) is Joined  # again, same name: nothing happens


# -- decoding arbitrary bytes ----------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_codec_error_or_decode(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        cluster.decode(data)


def _ext(code: int, payload: bytes) -> bytes:
    return bytes(msgpack.packb(msgpack.ExtType(code, payload)))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=127), st.binary(max_size=40) | values.map(cluster.encode))
def test_any_extension_payload_raises_codec_error_or_decodes(code: int, payload: bytes) -> None:
    with contextlib.suppress(CodecError):
        cluster.decode(_ext(code, payload))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_ext(99, b""), "unknown extension type 99"),
        (_ext(7, msgpack.packb(["nobody.Knows", {}])), "unknown type name 'nobody.Knows'"),
        (_ext(7, msgpack.packb(["tests.Counted", {"x": 1}])), "must carry exactly the fields"),
        (_ext(7, msgpack.packb(["tests.Counted", {"n": 1, "cache": 2}])), "exactly the fields"),
        (_ext(8, msgpack.packb([f"{__name__}.Colour", "BLUE"])), "has no member 'BLUE'"),
        (_ext(5, msgpack.packb(-1)), "non-negative int"),
        (_ext(2, msgpack.packb(1)), "tuple extension must hold an array"),
        (msgpack.packb({(): 1}), "cannot decode"),
        (msgpack.packb({"k": 1})[:-1], "cannot decode"),
        (b"\xc1", "cannot decode"),
        (b"\xa2\xff\xfe", "cannot decode"),
    ],
    ids=repr,
)
def test_bad_encodings_name_what_was_wrong(data: bytes, words: str) -> None:
    with pytest.raises(CodecError, match=words.replace("(", r"\(")):
        cluster.decode(data)


def test_deep_nesting_is_a_codec_error_not_a_crash() -> None:
    data = b""
    inner = msgpack.packb(None)
    for _ in range(5000):
        inner = _ext(2, bytes(msgpack.packb([msgpack.ExtType(2, inner)])))
    data = inner
    with pytest.raises(CodecError):
        cluster.decode(data)


def test_decode_refuses_what_is_not_bytes() -> None:
    with pytest.raises(CodecError, match="can only decode bytes"):
        cluster.decode("text")  # type: ignore[arg-type]


# -- the envelope ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["except", "only"]),
    st.text(min_size=1),
    hashables,
    values,
    st.none() | st.text(),
)
def test_envelopes_round_trip(mode: Any, node: str, topic: Any, payload: Any, disp: Any) -> None:
    envelope = Envelope(mode, node, topic, payload, disp)
    decoded = cluster.decode_envelope(cluster.encode_envelope(envelope))
    assert decoded is not None
    assert (decoded.mode, decoded.node, decoded.dispatcher) == (mode, node, disp)
    assert same(decoded.topic, topic)
    assert same(decoded.payload, payload)  # NaN != NaN: compared by `same`, not ==


def test_an_envelope_not_for_this_node_is_skipped_without_decoding_its_body() -> None:
    broadcast = cluster.encode_envelope(Envelope("except", "a", "t", 1))
    direct = cluster.encode_envelope(Envelope("only", "b", "t", 1))
    assert cluster.decode_envelope(broadcast, for_node="a") is None
    assert cluster.decode_envelope(broadcast, for_node="b") is not None
    assert cluster.decode_envelope(direct, for_node="b") is not None
    assert cluster.decode_envelope(direct, for_node="a") is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (cluster.encode(("except", "a", "t", 1)), "not a PubSub envelope"),
        (msgpack.packb([2, "except", "a", None, cluster.encode(("t", 1))]), "version 2"),
        (msgpack.packb([True, "except", "a", None, cluster.encode(("t", 1))]), "version"),
        (msgpack.packb([1, "all", "a", None, cluster.encode(("t", 1))]), "mode"),
        (msgpack.packb([1, "except", 3, None, cluster.encode(("t", 1))]), "node name"),
        (msgpack.packb([1, "except", "a", 4, cluster.encode(("t", 1))]), "dispatcher"),
        (msgpack.packb([1, "except", "a", None, "body"]), "body"),
        (msgpack.packb([1, "except", "a", None, cluster.encode(["t", 1])]), "body"),
        (msgpack.packb([1, "except", "a", None, cluster.encode(([], 1))]), "hashable"),
        (msgpack.packb([1, "except", "a", None, b"\xc1"]), "cannot decode"),
    ],
    ids=repr,
)
def test_garbage_envelopes_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(CodecError, match=words):
        cluster.decode_envelope(data, for_node="b")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_envelope_bytes_raise_codec_error_only(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        cluster.decode_envelope(data, for_node="n")


def test_dispatchers_travel_by_registered_name() -> None:
    def fastlane(entries: list[tuple[beam.Pid, Any]], from_pid: beam.Pid | None, msg: Any) -> None:
        pass

    def other(entries: list[tuple[beam.Pid, Any]], from_pid: beam.Pid | None, msg: Any) -> None:
        pass

    cluster.register_dispatcher(fastlane, "tests.fastlane")
    with pytest.raises(ValueError, match="already taken"):
        cluster.register_dispatcher(other, "tests.fastlane")
    with pytest.raises(ValueError, match="already registered"):
        cluster.register_dispatcher(fastlane, "tests.fastlane2")


def test_deep_nesting_is_refused_when_encoding() -> None:
    value: Any = ()
    for _ in range(150):
        value = (value,)
    with pytest.raises(CodecError, match="nested more than"):
        cluster.encode(value)
    assert same(roundtrip(((((1,),),),)), ((((1,),),),))


# -- pids that carry their node ------------------------------------------------------------------

HERE = beam.NodeId("here", 11)
FAR = beam.NodeId("far", 22)


def test_a_local_pid_travels_with_its_node_and_comes_home_local() -> None:
    data = cluster.encode(("hi", beam.Pid(42)), local=HERE)
    assert cluster.decode(data, local=HERE) == ("hi", beam.Pid(42))
    assert cluster.decode(data, local=HERE)[1].node is None
    # On another node it is remote: same number, this node's identity, and not equal.
    there = cluster.decode(data, local=FAR)[1]
    assert there == beam.Pid(42, HERE)
    assert there != beam.Pid(42)
    assert there.node == HERE


def test_a_remote_pid_round_trips_and_goes_home_local() -> None:
    remote = beam.Pid(7, FAR)
    assert cluster.decode(cluster.encode(remote, local=HERE), local=HERE) == remote
    assert cluster.decode(cluster.encode(remote, local=HERE), local=FAR) == beam.Pid(7)
    assert cluster.decode(cluster.encode(remote)) == remote  # no identity: still remote


def test_a_pid_of_an_older_incarnation_decodes_stale() -> None:
    old = cluster.encode(beam.Pid(5), local=beam.NodeId("here", 10))
    stale = cluster.decode(old, local=HERE)
    assert stale != beam.Pid(5)
    assert stale.node == beam.NodeId("here", 10)


def test_remote_pids_print_with_a_node_index_and_stay_values() -> None:
    pid = beam.Pid(42, FAR)
    text = repr(pid)
    assert re.fullmatch(r"<[1-9]\d*\.42\.0>", text)
    assert repr(beam.Pid(43, FAR)).split(".")[0] == text.split(".")[0]  # one index per node
    assert repr(beam.Pid(42)) == "<0.42.0>"
    assert {pid: 1}[beam.Pid(42, beam.NodeId("far", 22))] == 1
    assert beam.Pid(42, beam.NodeId("far", 23)) != pid
    assert pickle.loads(pickle.dumps(pid)) == pid
    assert sorted([pid, beam.Pid(50), beam.Pid(1)]) == [beam.Pid(1), beam.Pid(50), pid]
    with pytest.raises(AttributeError):
        pid.node = None


@pytest.mark.parametrize(
    "fields", [[1, "a"], [1, 2, 3], ["1", "a", 3], [-1, "a", 3], [1, "a", "3"], [1, "a", 3, 4]]
)
def test_malformed_node_pids_are_codec_errors(fields: list[object]) -> None:
    data = msgpack.packb(msgpack.ExtType(5, msgpack.packb(fields)))
    with pytest.raises(CodecError):
        cluster.decode(data, local=HERE)


def test_frames_round_trip() -> None:
    frame = cluster.decode_frame(cluster.encode_delivery("echo", None, (beam.Pid(1),), local=HERE))
    assert frame == cluster.Delivery("echo", None, (beam.Pid(1, HERE),))
    assert cluster.decode_frame(cluster.encode_hello(FAR)) == cluster.Hello(FAR)
    with pytest.raises(CodecError):
        cluster.decode_envelope(cluster.encode_hello(FAR))
