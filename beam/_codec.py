"""The safe codec for values that cross nodes: msgpack with extension types, nothing executable.

A message sent to another node is encoded to bytes here and decoded there. Only plain values
travel: ``None``, ``bool``, ``int`` (any size), ``float``, ``str``, ``bytes``, ``tuple`` and
``list`` (kept apart), ``dict`` (with any encodable keys), ``set`` and ``frozenset``,
:class:`beam.Pid`, :class:`beam.Ref`, and the frozen dataclasses, named tuples and enums
that the application registers under a stable wire name::

    @dataclass(frozen=True)
    class Joined:
        room: str
        user: str

    cluster.register(Joined)               # wire name "myapp.events.Joined"
    data = cluster.encode(("event", Joined("lobby", "ann")))
    assert cluster.decode(data) == ("event", Joined("lobby", "ann"))

Decoding never runs code that the bytes choose (no pickle): a registered class is rebuilt by
calling it with its fields, an enum by looking its member up by name. Encoding an
unregistered type fails there and then with a :class:`CodecError` that names the type and
says how to register it; any bytes that are not a valid encoding (garbage, an unknown
extension, an unknown wire name) fail to decode with a :class:`CodecError` too, and with no
other exception type.

The module is sans-I/O: bytes in, values out. The PubSub *envelope* that carries a broadcast
between nodes (as phoenix_pubsub_redis's ``{vsn, mode, node_name, topic, message,
dispatcher}``) is here as well: :class:`Envelope`, :func:`encode_envelope`,
:func:`decode_envelope`.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

import msgpack  # type: ignore[import-untyped]  # no stubs; its API is small

from ._call import CallRequest, CastRequest
from ._pubsub import Dispatcher
from ._types import Down, Exit, From, NodeDown, NodeId, NodeUp, Pid, Ref, node_index

__all__ = [
    "ENVELOPE_VERSION",
    "CodecError",
    "Delivery",
    "Envelope",
    "Hello",
    "Signal",
    "decode",
    "decode_envelope",
    "decode_frame",
    "dispatcher_name",
    "encode",
    "encode_delivery",
    "encode_envelope",
    "encode_hello",
    "encode_signal",
    "lookup_dispatcher",
    "register",
    "register_dispatcher",
]


class CodecError(ValueError):
    """A value that cannot be encoded, or bytes that are not a valid encoding.

    >>> try:
    ...     decode(b"\\xc1")
    ... except CodecError as error:
    ...     print(error)
    cannot decode 1 byte(s): ...
    """


# -- extension codes (stable: they are on the wire) ------------------------------------------

_BIGINT: Final = 1
_TUPLE: Final = 2
_SET: Final = 3
_FROZENSET: Final = 4
_PID: Final = 5
_REF: Final = 6
_RECORD: Final = 7  # a registered dataclass or named tuple: [name, {field: value}]
_ENUM: Final = 8  # a registered enum: [name, member name]
_UUID: Final = 9  # 16 bytes
_DATETIME: Final = 10  # a naive datetime: ISO 8601 text
_DATE: Final = 11
_TIME: Final = 12
_TIMEDELTA: Final = 13  # [days, seconds, microseconds]
_DECIMAL: Final = 14  # its text
_CUSTOM: Final = 15  # a class registered with encode=/decode=: [name, {field: value}]
_AWARE: Final = 16  # an aware datetime: [its wall time's ISO text, its UTC offset in µs]

_EXT_NAMES: Final = {
    _BIGINT: "big int",
    _TUPLE: "tuple",
    _SET: "set",
    _FROZENSET: "frozenset",
    _PID: "pid",
    _REF: "ref",
    _RECORD: "record",
    _ENUM: "enum",
    _UUID: "uuid",
    _DATETIME: "datetime",
    _DATE: "date",
    _TIME: "time",
    _TIMEDELTA: "timedelta",
    _DECIMAL: "decimal",
    _CUSTOM: "custom record",
    _AWARE: "aware datetime",
}

# -- the registry of application types ---------------------------------------------------------

_Kind = Literal["dataclass", "namedtuple", "enum", "custom"]


@dataclass(frozen=True)
class _Registered:
    cls: type[Any]
    name: str
    kind: _Kind
    fields: tuple[str, ...]
    to_fields: Callable[[Any], dict[str, Any]] | None = None
    from_fields: Callable[[dict[str, Any]], Any] | None = None


_T = TypeVar("_T", bound=type[Any])

_by_class: dict[type[Any], _Registered] = {}
_by_name: dict[str, _Registered] = {}


def _kind_of(cls: type[Any]) -> _Kind:
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return "enum"
    if dataclasses.is_dataclass(cls) and isinstance(cls, type):
        if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise TypeError(
                f"cannot register {cls.__module__}.{cls.__qualname__}: only frozen dataclasses "
                "travel between nodes (declare it with @dataclass(frozen=True))"
            )
        return "dataclass"
    if isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return "namedtuple"
    raise TypeError(
        f"cannot register {cls!r}: only frozen dataclasses, named tuples and Enum classes can "
        "be registered with beam.cluster.register"
    )


def register(
    cls: _T,
    name: str | None = None,
    *,
    encode: Callable[[Any], dict[str, Any]] | None = None,
    decode: Callable[[dict[str, Any]], Any] | None = None,
) -> _T:
    """Let instances of *cls* (a frozen dataclass, a named tuple or an Enum) cross nodes.

    *name* is the stable wire name, ``module.qualname`` by default; every node must register
    the class under the same name. Registering the same class again under the same name does
    nothing; two classes under one name, or one class under two names, are refused. Returns
    *cls*, so it also works as a decorator. A dataclass travels as its ``init`` fields and is
    rebuilt by calling the class; an enum member travels as its name.

    Any other class travels with *encode* (an instance to a dict of str keys and values that
    travel) and *decode* (that dict back to an instance), both given: decoding calls the
    *decode* this node registered, never code the bytes name.

    >>> @register
    ... @dataclass(frozen=True)
    ... class Joined:
    ...     room: str
    >>> register(Room, "app.Room", encode=lambda r: dict(vars(r)), decode=lambda d: Room(**d))
    """
    if (encode is None) != (decode is None):
        raise TypeError("register a class with both encode= and decode=, or with neither")
    kind: _Kind = "custom" if encode is not None else _kind_of(cls)
    wire = name if name is not None else f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(wire, str) or not wire:
        raise TypeError(f"a wire name is a non-empty str, not {wire!r}")
    known = _by_class.get(cls)
    if known is not None:
        if known.name == wire:
            return cls
        raise ValueError(
            f"{cls.__module__}.{cls.__qualname__} is already registered under the wire name "
            f"{known.name!r}; a class has one wire name (cannot also register it as {wire!r})"
        )
    taken = _by_name.get(wire)
    if taken is not None:
        raise ValueError(
            f"the wire name {wire!r} is already taken by {taken.cls.__module__}."
            f"{taken.cls.__qualname__}; register {cls.__module__}.{cls.__qualname__} under "
            "another name: beam.cluster.register(cls, name=...)"
        )
    if kind == "dataclass":
        fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    elif kind == "namedtuple":
        fields = tuple(cls._fields)
    else:
        fields = ()
    entry = _Registered(cls, wire, kind, fields, encode, decode)
    _by_class[cls] = entry
    _by_name[wire] = entry
    return cls


# beam's own message values travel too (exit signals and monitors on remote processes).
register(Exit, "beam.Exit")
register(Down, "beam.Down")
register(From, "beam.From")
register(CallRequest, "beam.CallRequest")
register(CastRequest, "beam.CastRequest")
register(NodeUp, "beam.NodeUp")
register(NodeDown, "beam.NodeDown")

# -- dispatchers travel by name ------------------------------------------------------------------

_dispatchers: dict[str, Dispatcher] = {}
_dispatcher_names: dict[Dispatcher, str] = {}


def register_dispatcher(dispatcher: Dispatcher, name: str | None = None) -> Dispatcher:
    """Let broadcasts made with *dispatcher* cross nodes: they travel with its *name*.

    A PubSub dispatcher is code, so it never travels itself: each node registers the same
    function under the same name (``module.qualname`` by default), and a broadcast from
    another node is dispatched by the function this node registered under that name.

    >>> def fastlane(entries, from_pid, message): ...
    >>> register_dispatcher(fastlane, "web.fastlane")
    """
    wire = name if name is not None else f"{dispatcher.__module__}.{dispatcher.__qualname__}"
    known = _dispatcher_names.get(dispatcher)
    if known is not None and known != wire:
        raise ValueError(f"{dispatcher!r} is already registered as the dispatcher {known!r}")
    taken = _dispatchers.get(wire)
    if taken is not None and taken is not dispatcher:
        raise ValueError(f"the dispatcher name {wire!r} is already taken by {taken!r}")
    _dispatchers[wire] = dispatcher
    _dispatcher_names[dispatcher] = wire
    return dispatcher


def dispatcher_name(dispatcher: Dispatcher) -> str:
    """The wire name of a registered *dispatcher*; :class:`CodecError` if it has none.

    >>> dispatcher_name(fastlane)
    'web.fastlane'
    """
    try:
        return _dispatcher_names[dispatcher]
    except (KeyError, TypeError):
        raise CodecError(
            f"the PubSub dispatcher {dispatcher!r} cannot cross nodes: register it on every "
            "node with beam.cluster.register_dispatcher(fn, name=...)"
        ) from None


def lookup_dispatcher(name: str) -> Dispatcher:
    """The dispatcher registered under *name*; :class:`CodecError` if none is.

    >>> lookup_dispatcher("web.fastlane") is fastlane
    True
    """
    try:
        return _dispatchers[name]
    except KeyError:
        raise CodecError(
            f"unknown PubSub dispatcher {name!r} (not registered on this node)"
        ) from None


# -- encoding ---------------------------------------------------------------------------------


#: Extension values nest inside each other at most this deep (each level is a nested
#: msgpack call on the C stack, so it must be bounded: hostile bytes could nest 10^5 deep).
MAX_DEPTH: Final = 100


class _PerThread(threading.local):
    """One msgpack packer per nesting depth (a packer is not re-entrant) and the current
    extension depth of decoding, per thread."""

    def __init__(self) -> None:
        self.free: list[msgpack.Packer] = []
        self.depth = 0
        self.packing = 0
        self.local: NodeId | None = None  # the node encoding or decoding (None: alone)


_packers = _PerThread()


def _pack(obj: Any) -> bytes:
    state = _packers
    if state.packing >= MAX_DEPTH:
        raise CodecError(f"cannot encode values nested more than {MAX_DEPTH} deep")
    free = state.free
    packer = (
        free.pop()
        if free
        else msgpack.Packer(default=_default, strict_types=True, use_bin_type=True)
    )
    state.packing += 1
    try:
        return packer.pack(obj)  # type: ignore[no-any-return]
    except BaseException:
        packer.reset()
        raise
    finally:
        state.packing -= 1
        free.append(packer)


def _default(obj: Any) -> msgpack.ExtType:
    cls = type(obj)
    if cls is tuple:
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    if cls is Pid:
        node = obj.node if obj.node is not None else _packers.local
        if node is None:
            return msgpack.ExtType(_PID, _pack(obj.id))
        return msgpack.ExtType(_PID, _pack([obj.id, node.name, node.incarnation]))
    if cls is Ref:
        node = obj.node if obj.node is not None else _packers.local
        if node is None:
            return msgpack.ExtType(_REF, _pack(obj.id))
        return msgpack.ExtType(_REF, _pack([obj.id, node.name, node.incarnation]))
    if cls is int:  # beyond 64 bits: msgpack hands it over
        size = (obj.bit_length() + 8) // 8
        return msgpack.ExtType(_BIGINT, obj.to_bytes(size, "big", signed=True))
    if cls is frozenset:
        return msgpack.ExtType(_FROZENSET, _pack(list(obj)))
    if cls is set:
        return msgpack.ExtType(_SET, _pack(list(obj)))
    entry = _by_class.get(cls)
    if entry is not None:
        if entry.kind == "enum":
            return msgpack.ExtType(_ENUM, _pack([entry.name, obj.name]))
        if entry.to_fields is not None:
            return msgpack.ExtType(_CUSTOM, _pack([entry.name, entry.to_fields(obj)]))
        values = {field: getattr(obj, field) for field in entry.fields}
        return msgpack.ExtType(_RECORD, _pack([entry.name, values]))
    if cls is uuid.UUID:
        return msgpack.ExtType(_UUID, obj.bytes)
    if cls is datetime.datetime:
        offset = obj.utcoffset()
        if offset is None:
            return msgpack.ExtType(_DATETIME, obj.isoformat().encode())
        wall = obj.replace(tzinfo=None).isoformat()
        return msgpack.ExtType(_AWARE, _pack([wall, offset // datetime.timedelta(microseconds=1)]))
    if cls is datetime.date:
        return msgpack.ExtType(_DATE, obj.isoformat().encode())
    if cls is datetime.time:
        return msgpack.ExtType(_TIME, obj.isoformat().encode())
    if cls is datetime.timedelta:
        return msgpack.ExtType(_TIMEDELTA, _pack([obj.days, obj.seconds, obj.microseconds]))
    if cls is decimal.Decimal:
        return msgpack.ExtType(_DECIMAL, str(obj).encode())
    raise CodecError(
        f"cannot encode a value of type {cls.__module__}.{cls.__qualname__} for another node: "
        "only None, bool, int, float, str, bytes, tuple, list, dict, set, frozenset, Pid, Ref, "
        "UUID, datetime, date, time, timedelta, Decimal and registered classes travel; "
        f"register the type with beam.cluster.register({cls.__qualname__}) (a frozen "
        "dataclass, named tuple or enum), or with encode= and decode= (any other class)"
    )


def encode(value: Any, *, local: NodeId | None = None) -> bytes:
    """Encode *value* for another node; :class:`CodecError` names a type that cannot travel.

    *local* is the identity of the encoding node: its local pids travel with it (a remote pid
    always travels with its own node). Without it, local pids travel as bare numbers.

    >>> decode(encode((1, [2], {"a": b"3"}))) == (1, [2], {"a": b"3"})
    True
    """
    state = _packers
    outer = state.local
    state.local = local
    try:
        return _pack(value)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as error:
        # msgpack's own refusals: nesting too deep, a str with lone surrogates, ...
        raise CodecError(f"cannot encode {type(value).__qualname__}: {error}") from None
    finally:
        state.local = outer


# -- decoding ---------------------------------------------------------------------------------


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False, raw=False)


def _ext_hook(code: int, data: bytes) -> Any:
    state = _packers
    if state.depth >= MAX_DEPTH:
        raise CodecError(f"extension values nested more than {MAX_DEPTH} deep")
    state.depth += 1
    try:
        return _decode_ext(code, data)
    finally:
        state.depth -= 1


def _decode_ext(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        items = _unpack(data)
        if type(items) is not list:
            raise CodecError("a tuple extension must hold an array")
        return tuple(items)
    if code in (_PID, _REF):
        number = _unpack(data)
        if type(number) is list:
            return _decode_pid(number) if code == _PID else _decode_ref(number)
        if type(number) is not int or number < 0:
            raise CodecError(f"a {_EXT_NAMES[code]} extension must hold a non-negative int")
        return Pid(number) if code == _PID else Ref(number)
    if code == _BIGINT:
        if not data:
            raise CodecError("an empty big int extension")
        return int.from_bytes(data, "big", signed=True)
    if code in (_SET, _FROZENSET):
        items = _unpack(data)
        if type(items) is not list:
            raise CodecError(f"a {_EXT_NAMES[code]} extension must hold an array")
        return set(items) if code == _SET else frozenset(items)
    if code in _PLAIN_DECODERS:
        try:
            return _PLAIN_DECODERS[code](data)
        except (ValueError, TypeError, decimal.InvalidOperation) as error:
            raise CodecError(f"a bad {_EXT_NAMES[code]} extension: {error}") from None
    if code in (_RECORD, _ENUM, _CUSTOM):
        pair = _unpack(data)
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
            raise CodecError(f"an {_EXT_NAMES[code]} extension must hold [name, value]")
        name, value = pair
        entry = _by_name.get(name)
        if entry is None:
            raise CodecError(
                f"unknown type name {name!r}: register the class on this node too "
                "(beam.cluster.register)"
            )
        if code == _CUSTOM:
            if entry.from_fields is None or type(value) is not dict:
                raise CodecError(f"{name!r} is not a class registered with decode= here")
            if not all(type(key) is str for key in value):
                raise CodecError(f"a {name!r} record's field names must be str")
            try:
                return entry.from_fields(value)
            except Exception as error:
                raise CodecError(f"cannot rebuild {name!r}: {error!r}") from None
        if code == _ENUM:
            if entry.kind != "enum" or type(value) is not str:
                raise CodecError(f"{name!r} is not an enum member name here")
            try:
                return entry.cls[value]
            except KeyError:
                raise CodecError(f"the enum {name!r} has no member {value!r}") from None
        if (
            entry.kind in ("enum", "custom")
            or type(value) is not dict
            or set(value) != set(entry.fields)
        ):
            raise CodecError(
                f"a {name!r} record must carry exactly the fields {list(entry.fields)}"
            )
        try:
            return entry.cls(**value)
        except Exception as error:
            raise CodecError(f"cannot rebuild {name!r}: {error!r}") from None
    raise CodecError(f"unknown extension type {code}")


def _decode_uuid(data: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=data)


def _decode_aware(data: bytes) -> datetime.datetime:
    parts = _unpack(data)
    if type(parts) is not list or len(parts) != 2 or type(parts[0]) is not str:
        raise ValueError("an aware datetime is [ISO text, UTC offset in µs]")
    if type(parts[1]) is not int:
        raise ValueError("an aware datetime's offset is an int of µs")
    offset = datetime.timezone(datetime.timedelta(microseconds=parts[1]))
    return datetime.datetime.fromisoformat(parts[0]).replace(tzinfo=offset)


def _decode_timedelta(data: bytes) -> datetime.timedelta:
    parts = _unpack(data)
    if type(parts) is not list or len(parts) != 3 or not all(type(p) is int for p in parts):
        raise ValueError("a timedelta is [days, seconds, microseconds]")
    return datetime.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])


_PLAIN_DECODERS: Final[dict[int, Callable[[bytes], Any]]] = {
    _UUID: _decode_uuid,
    _DATETIME: lambda data: datetime.datetime.fromisoformat(data.decode()),
    _AWARE: _decode_aware,
    _DATE: lambda data: datetime.date.fromisoformat(data.decode()),
    _TIME: lambda data: datetime.time.fromisoformat(data.decode()),
    _TIMEDELTA: _decode_timedelta,
    _DECIMAL: lambda data: decimal.Decimal(data.decode()),
}


def _decode_pid(fields: list[Any]) -> Pid:
    number, node = _decode_located(fields, "pid")
    return Pid(number, node)


def _decode_ref(fields: list[Any]) -> Ref:
    number, node = _decode_located(fields, "ref")
    return Ref(number, node)


def _decode_located(fields: list[Any], what: str) -> tuple[int, NodeId | None]:
    """``[number, node name, incarnation]`` of a pid or ref: ``None`` for the decoding node."""
    if (
        len(fields) != 3
        or type(fields[0]) is not int
        or fields[0] < 0
        or type(fields[1]) is not str
        or type(fields[2]) is not int
    ):
        raise CodecError(f"a {what} extension must hold [number, node name, incarnation]")
    number, name, incarnation = fields
    local = _packers.local
    if local is not None and name == local.name and incarnation == local.incarnation:
        return number, None
    node = NodeId(name, incarnation)
    node_index(node)  # numbered on first sight, as Erlang does
    return number, node


def decode(data: bytes, *, local: NodeId | None = None) -> Any:
    """Decode bytes made by :func:`encode`; anything else raises :class:`CodecError` only.

    *local* is the identity of the decoding node: a pid of that very node (same name and
    incarnation) decodes to a local pid; a pid of any other node, an older incarnation of
    this one included (a *stale* pid, to which sends go nowhere), keeps its :class:`NodeId`.

    >>> decode(encode(("hi", beam.Pid(3))))
    ('hi', <0.3.0>)
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"can only decode bytes, not {type(data).__qualname__}")
    state = _packers
    outer = state.local
    state.local = local
    try:
        return _unpack(data)
    except CodecError:
        raise
    except Exception as error:  # msgpack's errors, unhashable keys, bad UTF-8, recursion
        raise CodecError(
            f"cannot decode {len(data)} byte(s): {type(error).__name__}: {error}"
        ) from None
    finally:
        state.local = outer


# -- the PubSub envelope ------------------------------------------------------------------------

#: The version of :class:`Envelope` this node writes and reads.
ENVELOPE_VERSION: Final = 1

Mode = Literal["except", "only"]


@dataclass(frozen=True)
class Envelope:
    """A broadcast on its way between nodes, as phoenix_pubsub_redis publishes it.

    ``mode="except"`` with ``node`` the sending node: every other node dispatches it
    (``broadcast``); ``mode="only"`` with ``node`` the target: only that node does
    (``direct_broadcast``). ``dispatcher`` is the wire name of a registered dispatcher, or
    ``None`` for plain delivery.

    >>> env = Envelope("except", "chat1", "room:lobby", ("new_msg", "hi"))
    >>> decode_envelope(encode_envelope(env)) == env
    True
    """

    mode: Mode
    node: str
    topic: Any
    payload: Any
    dispatcher: str | None = None
    version: int = ENVELOPE_VERSION

    def is_for(self, node: str) -> bool:
        """Whether the node called *node* dispatches this envelope.

        >>> Envelope("except", "chat1", "t", 1).is_for("chat1")
        False
        """
        return (self.node == node) if self.mode == "only" else (self.node != node)


def encode_envelope(envelope: Envelope, *, local: NodeId | None = None) -> bytes:
    """Encode *envelope*: a header (version, mode, node, dispatcher) and the encoded body.

    The body (topic and payload) is encoded separately, so a node reads the header of an
    envelope that is not for it without decoding the body.

    >>> data = encode_envelope(Envelope("only", "chat2", "t", [1, 2]))
    """
    if envelope.mode not in ("except", "only"):
        raise CodecError(f"an envelope's mode is 'except' or 'only', not {envelope.mode!r}")
    body = encode((envelope.topic, envelope.payload), local=local)
    return _pack([envelope.version, envelope.mode, envelope.node, envelope.dispatcher, body])


def decode_envelope(
    data: bytes, *, for_node: str | None = None, local: NodeId | None = None
) -> Envelope | None:
    """Decode an envelope; with *for_node*, ``None`` (body left undecoded) if it is not for it.

    Anything but a well-formed envelope of :data:`ENVELOPE_VERSION` raises
    :class:`CodecError`.

    >>> decode_envelope(encode_envelope(Envelope("except", "a", "t", 1)), for_node="a") is None
    True
    """
    frame = decode_frame(data, for_node=for_node, local=local)
    if frame is not None and type(frame) is not Envelope:
        raise CodecError(f"not a PubSub envelope: {_preview(frame)}")
    return frame


def _no_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"not a PubSub envelope: extension type {code} where its header belongs")


def decode_frame(
    data: bytes, *, for_node: str | None = None, local: NodeId | None = None
) -> Envelope | Delivery | Hello | Signal | None:
    """Decode anything a node publishes: an :class:`Envelope`, a :class:`Delivery`, a
    :class:`Signal` or a :class:`Hello`; ``None`` for an envelope not *for_node*. *local* is
    as for :func:`decode`.

    Anything but a well-formed frame of :data:`ENVELOPE_VERSION` raises :class:`CodecError`.

    >>> decode_frame(encode_hello(NodeId("a", 1)))
    Hello(node=NodeId(name='a', incarnation=1))
    """
    try:  # the header holds no extension value: plain msgpack, no per-call set-up
        header = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_no_ext)
    except CodecError:
        raise
    except Exception as error:
        raise CodecError(
            f"cannot decode {len(data)} byte(s): {type(error).__name__}: {error}"
        ) from None
    if type(header) is list and len(header) == 4 and header[0] == ENVELOPE_VERSION:
        _, kind, name, incarnation = header
        if kind not in ("hello", "bye", "discover") or type(name) is not str or not name:
            raise CodecError(f"bad hello: {_preview(header)}")
        if type(incarnation) is not int:
            raise CodecError(f"bad hello: {_preview(header)}")
        return Hello(NodeId(name, incarnation), leaving=kind == "bye", discover=kind == "discover")
    if type(header) is not list or len(header) != 5:
        raise CodecError(f"not a PubSub envelope: {_preview(header)}")
    if header[:2] == [ENVELOPE_VERSION, "signal"]:
        _, _, name, incarnation, body = header
        if type(name) is not str or not name or type(incarnation) is not int:
            raise CodecError(f"bad signal sender: {_preview(header)}")
        if type(body) is not bytes:
            raise CodecError(f"bad signal: {_preview(header)}")
        content = decode(body, local=local)
        if type(content) is not tuple or not content or type(content[0]) is not str:
            raise CodecError(f"bad signal content: {_preview(content)}")
        return Signal(NodeId(name, incarnation), content)
    if header[:2] == [ENVELOPE_VERSION, "send"]:
        _, _, incarnation, to, body = header
        if incarnation is not None and type(incarnation) is not int:
            raise CodecError(f"bad delivery incarnation {_preview(incarnation)}")
        if type(to) not in (int, str) or type(body) is not bytes:
            raise CodecError(f"bad delivery: {_preview(header)}")
        return Delivery(to, incarnation, decode(body, local=local))
    version, mode, node, dispatcher, body = header
    if version != ENVELOPE_VERSION or type(version) is not int:
        raise CodecError(
            f"unsupported envelope version {_preview(version)} (this node reads "
            f"version {ENVELOPE_VERSION})"
        )
    if mode not in ("except", "only") or type(mode) is not str:
        raise CodecError(f"bad envelope mode {_preview(mode)}")
    if type(node) is not str:
        raise CodecError(f"bad envelope node name {_preview(node)}")
    if dispatcher is not None and type(dispatcher) is not str:
        raise CodecError(f"bad envelope dispatcher {_preview(dispatcher)}")
    if type(body) is not bytes:
        raise CodecError(f"bad envelope body {_preview(body)}")
    if for_node is not None and (node == for_node) != (mode == "only"):
        return None
    content = decode(body, local=local)
    if type(content) is not tuple or len(content) != 2:
        raise CodecError(f"bad envelope body: {_preview(content)}")
    topic, payload = content
    try:
        hash(topic)
    except TypeError:
        raise CodecError(f"an envelope's topic must be hashable, not {_preview(topic)}") from None
    return Envelope(cast("Mode", mode), node, topic, payload, dispatcher, version)


@dataclass(frozen=True)
class Delivery:
    """A message on its way to one process of another node (published on that node's channel).

    ``to`` is the pid's number there, or a registered name; ``incarnation`` is the node
    incarnation a pid belongs to (``None`` for a name): a pid of another incarnation is
    stale, and its messages are dropped.

    >>> decode_frame(encode_delivery(3, 7, "hi")) == Delivery(3, 7, "hi")
    True
    """

    to: int | str
    incarnation: int | None
    message: Any


@dataclass(frozen=True)
class Hello:
    """A node's heartbeat on the cluster channel: its name and incarnation; with
    ``leaving=True``, its goodbye when it leaves the cluster cleanly; with ``discover=True``,
    its first words once subscribed, which every node answers on its channel at once.

    >>> encode_hello(NodeId("chat1", 7))[:2]
    b'\x94\x01'
    """

    node: NodeId
    leaving: bool = False
    discover: bool = False


@dataclass(frozen=True)
class Signal:
    """A signal between processes of two nodes (link, exit, monitor, down, reply...):
    ``sender`` is the node that sent it, ``content`` a tuple ``(kind, *arguments)``.

    >>> decode_frame(encode_signal(("unlink", 1, 2), local=NodeId("a", 1))).content
    ('unlink', 1, 2)
    """

    sender: NodeId
    content: tuple[Any, ...]


def encode_delivery(
    to: int | str, incarnation: int | None, message: Any, *, local: NodeId | None = None
) -> bytes:
    """Encode *message* for the process *to* (a pid number or a registered name) of a node.

    Raises :class:`CodecError` (in the sender) if the message cannot travel.

    >>> decode_frame(encode_delivery("echo", None, ("hi", 1))).message
    ('hi', 1)
    """
    body = encode(message, local=local)
    return _pack([ENVELOPE_VERSION, "send", incarnation, to, body])


def encode_hello(node: NodeId, *, leaving: bool = False, discover: bool = False) -> bytes:
    """Encode the heartbeat of *node* (its goodbye with *leaving*, its request for answers
    with *discover*; see :class:`Hello`).

    >>> decode_frame(encode_hello(NodeId("a", 1))).node.name
    'a'
    """
    kind = "bye" if leaving else "discover" if discover else "hello"
    return _pack([ENVELOPE_VERSION, kind, node.name, node.incarnation])


def encode_signal(content: tuple[Any, ...], *, local: NodeId) -> bytes:
    """Encode a signal ``(kind, *arguments)`` sent by the node *local*.

    Raises :class:`CodecError` (in the sender) if an argument cannot travel.

    >>> decode_frame(encode_signal(("unlink", 1, 2), local=NodeId("a", 1))).sender.name
    'a'
    """
    body = encode(content, local=local)
    return _pack([ENVELOPE_VERSION, "signal", local.name, local.incarnation, body])


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
