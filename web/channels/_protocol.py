"""The Phoenix Channels wire protocol, sans I/O: frames in, messages out, and back.

Nothing here touches a socket or trio. A serializer turns one WebSocket frame (text or bytes)
into a :class:`Message`, and a :class:`Message`, :class:`Reply` or :class:`Broadcast` into
the frame to send, exactly as the official ``phoenix`` JavaScript client speaks them:

* **V2** (``vsn=2.0.0``, what phoenix.js 1.x sends): a text frame is the JSON array
  ``[join_ref, ref, topic, event, payload]``; a binary frame is a 1-byte kind (0 push,
  1 reply, 2 broadcast) followed by 1-byte lengths and the fields, then the raw payload.
* **V1** (no ``vsn`` or ``1.x``): a text frame is the JSON object
  ``{"topic", "event", "payload", "ref"}``, without ``join_ref``.

``join_ref`` and ``ref`` are strings (or ``None``) and are echoed byte for byte: the client
compares them with ``===``. Any frame that does not follow the protocol raises
:class:`ProtocolError`, whose message says what was wrong::

    >>> V2.decode('["1","1","room:lobby","phx_join",{"token":"abc"}]')
    Message(join_ref='1', ref='1', topic='room:lobby', event='phx_join', payload={'token': 'abc'})
    >>> V2.encode(Reply("1", "1", "room:lobby", "ok", {}))
    '["1","1","room:lobby","phx_reply",{"status":"ok","response":{}}]'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Protocol

__all__ = [
    "HEARTBEAT",
    "PHOENIX_TOPIC",
    "PHX_CLOSE",
    "PHX_ERROR",
    "PHX_JOIN",
    "PHX_LEAVE",
    "PHX_REPLY",
    "V1",
    "V2",
    "Broadcast",
    "Message",
    "ProtocolError",
    "Reply",
    "Serializer",
    "serializer_for",
]

PHX_JOIN: Final = "phx_join"
PHX_LEAVE: Final = "phx_leave"
PHX_REPLY: Final = "phx_reply"
PHX_ERROR: Final = "phx_error"
PHX_CLOSE: Final = "phx_close"
HEARTBEAT: Final = "heartbeat"
#: The topic heartbeats travel on.
PHOENIX_TOPIC: Final = "phoenix"

_PUSH, _REPLY, _BROADCAST = 0, 1, 2


class ProtocolError(ValueError):
    """A frame that does not follow the Channels protocol; the message says why.

    >>> serializer_for("3.0.0")
    Traceback (most recent call last):
    web.ProtocolError: unsupported protocol version vsn='3.0.0'; use 2.0.0 (or 1.0.0)
    """


@dataclass(frozen=True, slots=True)
class Message:
    """A message on a topic: from the client (a join, a push, a heartbeat) or a server push.

    ``payload`` is the decoded JSON value, or ``bytes`` for a binary frame.

    >>> V2.decode('["1","2","room:lobby","new_msg",{"body":"hi"}]').event
    'new_msg'
    """

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer (``phx_reply``) to the client message with the same ``ref``.

    >>> V1.encode(Reply(None, "2", "room:lobby", "ok", {}))
    '{"topic":"room:lobby","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}'
    """

    join_ref: str | None
    ref: str | None
    topic: str
    status: str
    response: Any


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A message for every subscriber of a topic; encoded once, sent as is to each socket.

    >>> V2.encode(Broadcast("room:lobby", "new_msg", {"body": "hi"}))
    '[null,null,"room:lobby","new_msg",{"body":"hi"}]'
    """

    topic: str
    event: str
    payload: Any


Outgoing = Message | Reply | Broadcast


class Serializer(Protocol):
    """Turns frames into messages and back; :data:`V1` and :data:`V2` are the two there are.

    >>> serializer = serializer_for(params.get("vsn"))      # V2 for phoenix.js 1.x
    >>> V2.vsn, V1.vsn
    ('2.0.0', '1.0.0')
    """

    vsn: str

    def decode(self, frame: str | bytes) -> Message:
        """One received frame as a :class:`Message`; :class:`ProtocolError` if malformed."""
        ...

    def encode(self, message: Outgoing) -> str | bytes:
        """The frame that carries *message* (text, or bytes for a binary payload)."""
        ...


#: One encoder for every frame (``json.dumps`` with options builds a new one per call).
_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _dumps(value: Any) -> str:
    try:
        return _ENCODE(value)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"payload cannot be sent as JSON: {exc}") from None


def _loads(frame: str | bytes) -> Any:
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("a text frame must be UTF-8") from None
    try:
        return json.loads(frame)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON ({exc.args[0]}): {frame[:80]!r}") from None
    except RecursionError:
        raise ProtocolError("frame nests too deeply to be a Channels message") from None


def _ref(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ProtocolError(f"{field} must be a string or null, got {value!r:.40}")


def _name(value: Any, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise ProtocolError(f"{field} must be a non-empty string, got {value!r:.40}")


def _check_payload(payload: Any, what: str) -> None:
    if not isinstance(payload, dict):
        raise ProtocolError(
            f"the payload of {what} must be a JSON object (a dict) or bytes, got "
            f"{type(payload).__name__}"
        )


class _V2:
    """The V2 serializer: JSON array text frames and kind-tagged binary frames."""

    vsn = "2.0.0"

    def decode(self, frame: str | bytes) -> Message:
        if isinstance(frame, bytes | bytearray | memoryview):
            return self._decode_binary(bytes(frame))
        decoded = _loads(frame)
        if not isinstance(decoded, list) or len(decoded) != 5:
            raise ProtocolError(
                "a V2 frame must be the JSON array [join_ref, ref, topic, event, payload], "
                f"got {frame[:80]!r}"
            )
        join_ref, ref, topic, event, payload = decoded
        return Message(
            _ref(join_ref, "join_ref"),
            _ref(ref, "ref"),
            _name(topic, "topic"),
            _name(event, "event"),
            payload,
        )

    def _decode_binary(self, data: bytes) -> Message:
        if len(data) < 5 or data[0] != _PUSH:
            kind = data[0] if data else None
            raise ProtocolError(
                f"a binary frame from a client must be a push (kind 0) with 4 length bytes, "
                f"got kind {kind!r} in {len(data)} bytes"
            )
        lengths = data[1:5]
        if 5 + sum(lengths) > len(data):
            raise ProtocolError(
                f"binary frame declares {sum(lengths)} bytes of fields but carries {len(data) - 5}"
            )
        fields, at = [], 5
        for length in lengths:
            try:
                fields.append(data[at : at + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError("binary frame fields must be UTF-8") from None
            at += length
        join_ref, ref, topic, event = fields
        return Message(
            join_ref or None, ref or None, _name(topic, "topic"), _name(event, "event"), data[at:]
        )

    def encode(self, message: Outgoing) -> str | bytes:
        if isinstance(message, Reply):
            if isinstance(message.response, bytes):
                return _binary(
                    _REPLY,
                    (message.join_ref or "", message.ref or "", message.topic, message.status),
                    message.response,
                )
            payload = {"status": message.status, "response": message.response}
            return _dumps([message.join_ref, message.ref, message.topic, PHX_REPLY, payload])
        if isinstance(message, Broadcast):
            if isinstance(message.payload, bytes):
                return _binary(_BROADCAST, (message.topic, message.event), message.payload)
            _check_payload(message.payload, f"broadcast {message.event!r}")
            return _dumps([None, None, message.topic, message.event, message.payload])
        if isinstance(message.payload, bytes):
            return _binary(
                _PUSH, (message.join_ref or "", message.topic, message.event), message.payload
            )
        _check_payload(message.payload, f"push {message.event!r}")
        return _dumps(
            [message.join_ref, message.ref, message.topic, message.event, message.payload]
        )


def _binary(kind: int, fields: tuple[str, ...], payload: bytes) -> bytes:
    encoded = [field.encode("utf-8") for field in fields]
    for field, raw in zip(fields, encoded, strict=True):
        if len(raw) > 255:
            raise ProtocolError(
                f"binary frames limit each field to 255 bytes; {field[:40]!r}... has {len(raw)}"
            )
    return bytes([kind, *(len(raw) for raw in encoded)]) + b"".join(encoded) + payload


class _V1:
    """The legacy V1 serializer: JSON object text frames, no join_ref, no binary."""

    vsn = "1.0.0"

    def decode(self, frame: str | bytes) -> Message:
        if not isinstance(frame, str):
            raise ProtocolError("the V1 protocol has no binary frames; connect with vsn=2.0.0")
        decoded = _loads(frame)
        if not isinstance(decoded, dict):
            raise ProtocolError(
                'a V1 frame must be a JSON object {"topic", "event", "payload", "ref"}, '
                f"got {frame[:80]!r}"
            )
        missing = [key for key in ("topic", "event", "payload") if key not in decoded]
        if missing:
            raise ProtocolError(f"V1 frame is missing {', '.join(missing)}: {frame[:80]!r}")
        ref = _ref(decoded.get("ref"), "ref")
        join_ref = _ref(decoded.get("join_ref"), "join_ref")
        return Message(
            join_ref,
            ref,
            _name(decoded["topic"], "topic"),
            _name(decoded["event"], "event"),
            decoded["payload"],
        )

    def encode(self, message: Outgoing) -> str | bytes:
        if isinstance(message, Reply):
            if isinstance(message.response, bytes):
                raise ProtocolError("the V1 protocol cannot carry a binary reply")
            payload = {"status": message.status, "response": message.response}
            return _dumps(
                {"topic": message.topic, "event": PHX_REPLY, "payload": payload, "ref": message.ref}
            )
        if isinstance(message.payload, bytes):
            raise ProtocolError("the V1 protocol cannot carry a binary payload")
        _check_payload(message.payload, f"message {message.event!r}")
        ref = message.ref if isinstance(message, Message) else None
        return _dumps(
            {"topic": message.topic, "event": message.event, "payload": message.payload, "ref": ref}
        )


#: The V2 serializer (``vsn=2.0.0``), the one phoenix.js 1.x speaks.
V2: Final[Serializer] = _V2()
#: The legacy V1 serializer (no ``vsn``, or ``1.x``).
V1: Final[Serializer] = _V1()


def serializer_for(vsn: str | None) -> Serializer:
    """The serializer for a socket's ``vsn`` query parameter (missing means ``1.0.0``).

    >>> serializer_for("2.0.0") is V2, serializer_for(None) is V1
    (True, True)
    """
    if vsn is None or vsn == "1.0.0" or vsn.startswith("1."):
        return V1
    if vsn == "2.0.0" or vsn.startswith("2."):
        return V2
    raise ProtocolError(f"unsupported protocol version vsn={vsn!r}; use 2.0.0 (or 1.0.0)")
