"""The Channels wire protocol: golden frames from the reference, both ways, and a fuzzer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import web
from web import V1, V2, Broadcast, Message, ProtocolError, Reply, serializer_for

# (frame as the client sends it, the message it decodes to)
CLIENT_FRAMES = [
    (
        '["1","1","room:lobby","phx_join",{"token":"abc"}]',
        Message("1", "1", "room:lobby", "phx_join", {"token": "abc"}),
    ),
    (
        '["1","2","room:lobby","new_msg",{"body":"hi"}]',
        Message("1", "2", "room:lobby", "new_msg", {"body": "hi"}),
    ),
    ('["1","3","room:lobby","phx_leave",{}]', Message("1", "3", "room:lobby", "phx_leave", {})),
    ('[null,"4","phoenix","heartbeat",{}]', Message(None, "4", "phoenix", "heartbeat", {})),
]

# (what the server sends, the exact frame)
SERVER_FRAMES: list[tuple[Any, str]] = [
    (
        Reply("1", "1", "room:lobby", "ok", {}),
        '["1","1","room:lobby","phx_reply",{"status":"ok","response":{}}]',
    ),
    (
        Reply("1", "1", "room:x", "error", {"reason": "unauthorized"}),
        '["1","1","room:x","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]',
    ),
    (
        Reply("1", "2", "room:lobby", "ok", {"id": 7}),
        '["1","2","room:lobby","phx_reply",{"status":"ok","response":{"id":7}}]',
    ),
    (
        Message("1", None, "room:lobby", "new_msg", {"body": "x"}),
        '["1",null,"room:lobby","new_msg",{"body":"x"}]',
    ),
    (
        Broadcast("room:lobby", "new_msg", {"body": "x"}),
        '[null,null,"room:lobby","new_msg",{"body":"x"}]',
    ),
    (
        Reply(None, "4", "phoenix", "ok", {}),
        '[null,"4","phoenix","phx_reply",{"status":"ok","response":{}}]',
    ),
    (Message("1", "1", "room:lobby", "phx_close", {}), '["1","1","room:lobby","phx_close",{}]'),
    (Message("1", "1", "room:lobby", "phx_error", {}), '["1","1","room:lobby","phx_error",{}]'),
    (
        Message("1", None, "room:é", "new_msg", {"body": "ünïcode"}),
        '["1",null,"room:é","new_msg",{"body":"ünïcode"}]',
    ),
]


@pytest.mark.parametrize(("frame", "message"), CLIENT_FRAMES)
def test_v2_decodes_client_frames(frame: str, message: Message) -> None:
    assert V2.decode(frame) == message


@pytest.mark.parametrize(("message", "frame"), SERVER_FRAMES)
def test_v2_encodes_server_frames_exactly(message: Any, frame: str) -> None:
    assert V2.encode(message) == frame


def test_refs_are_echoed_as_the_strings_they_were() -> None:
    message = V2.decode('["007","0042","t","e",{}]')
    reply = V2.encode(Reply(message.join_ref, message.ref, message.topic, "ok", {}))
    assert json.loads(reply)[:2] == ["007", "0042"]


def test_v2_binary_push_from_client() -> None:
    # kind 0, lengths of join_ref "1", ref "2", topic "t:1", event "up", then the payload
    frame = bytes([0, 1, 1, 3, 2]) + b"12" + b"t:1" + b"up" + b"\x00\xffdata"
    assert V2.decode(frame) == Message("1", "2", "t:1", "up", b"\x00\xffdata")


def test_v2_binary_frames_from_server() -> None:
    push = V2.encode(Message("1", None, "t", "img", b"\x01\x02"))
    assert push == bytes([0, 1, 1, 3]) + b"1" + b"t" + b"img" + b"\x01\x02"
    reply = V2.encode(Reply("1", "5", "t", "ok", b"raw"))
    assert reply == bytes([1, 1, 1, 1, 2]) + b"1" + b"5" + b"t" + b"ok" + b"raw"
    broadcast = V2.encode(Broadcast("t", "e", b"!"))
    assert broadcast == bytes([2, 1, 1]) + b"t" + b"e" + b"!"


def test_v1_object_frames_both_ways() -> None:
    message = V1.decode('{"topic":"room:1","event":"phx_join","payload":{},"ref":"1"}')
    assert message == Message(None, "1", "room:1", "phx_join", {})
    assert json.loads(V1.encode(Reply(None, "1", "room:1", "ok", {"a": 1}))) == {
        "topic": "room:1",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": {"a": 1}},
        "ref": "1",
    }


def test_serializer_for_vsn() -> None:
    assert serializer_for("2.0.0") is V2
    assert serializer_for(None) is V1
    assert serializer_for("1.0.0") is V1
    with pytest.raises(ProtocolError, match=r"vsn='9\.0\.0'"):
        serializer_for("9.0.0")


BAD_FRAMES = [
    ("not json", "not JSON"),
    ("{}", "JSON array"),
    ('["1","1","t","e"]', "JSON array"),
    ('[1,"1","t","e",{}]', "join_ref must be a string or null"),
    ('["1",2,"t","e",{}]', "ref must be a string or null"),
    ('["1","1","","e",{}]', "topic must be a non-empty string"),
    ('["1","1","t",null,{}]', "event must be a non-empty string"),
    ("[" * 100_000, "nests too deeply|not JSON"),
]


@pytest.mark.parametrize(("frame", "why"), BAD_FRAMES)
def test_malformed_text_frames_get_clear_errors(frame: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        V2.decode(frame)


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"", "kind None"),
        (bytes([1, 1, 1, 1, 1]) + b"abcd", "kind 1"),
        (bytes([0, 9, 9, 9, 9]) + b"short", "declares 36 bytes"),
        (bytes([0, 1, 0, 1, 1]) + b"\xff" + b"te", "UTF-8"),
    ],
)
def test_malformed_binary_frames_get_clear_errors(frame: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        V2.decode(frame)


def test_encoding_refuses_what_the_client_cannot_read() -> None:
    with pytest.raises(ProtocolError, match="must be a JSON object"):
        V2.encode(Message("1", None, "t", "e", ["not", "an", "object"]))
    with pytest.raises(ProtocolError, match="cannot be sent as JSON"):
        V2.encode(Message("1", None, "t", "e", {"x": object()}))
    with pytest.raises(ProtocolError, match="255 bytes"):
        V2.encode(Broadcast("t" * 300, "e", b""))
    with pytest.raises(ProtocolError, match="V1 protocol cannot carry a binary"):
        V1.encode(Broadcast("t", "e", b""))


def test_names_are_exported_from_web() -> None:
    assert web.PHX_JOIN == "phx_join"
    assert web.Message.__module__ == "web"


# -- properties ------------------------------------------------------------------------------

refs = st.none() | st.text(max_size=8)
names = st.text(min_size=1, max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
objects = st.dictionaries(st.text(max_size=5), json_values, max_size=4)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_decoder_never_crashes_on_garbage(frame: str | bytes) -> None:
    for serializer in (V1, V2):
        outcome: Message | ProtocolError
        try:
            outcome = serializer.decode(frame)
        except ProtocolError as exc:
            outcome = exc
        # Either a message, or a protocol error that says something: nothing else escapes.
        assert isinstance(outcome, Message) or str(outcome)


@given(refs, refs, names, names, objects)
def test_client_frames_round_trip(
    join_ref: str | None, ref: str | None, topic: str, event: str, payload: dict[str, Any]
) -> None:
    frame = json.dumps([join_ref, ref, topic, event, payload])
    assert V2.decode(frame) == Message(join_ref, ref, topic, event, payload)
    encoded = V2.encode(Message(join_ref, ref, topic, event, payload))
    assert isinstance(encoded, str)
    assert V2.decode(encoded) == Message(join_ref, ref, topic, event, payload)


@given(
    st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255),
    st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255),
    names.filter(lambda s: len(s.encode()) <= 255),
    names.filter(lambda s: len(s.encode()) <= 255),
    st.binary(max_size=50),
)
def test_binary_push_layout_round_trips(
    join_ref: str, ref: str, topic: str, event: str, payload: bytes
) -> None:
    fields = [join_ref.encode(), ref.encode(), topic.encode(), event.encode()]
    frame = bytes([0, *(len(f) for f in fields)]) + b"".join(fields) + payload
    assert V2.decode(frame) == Message(join_ref or None, ref or None, topic, event, payload)
