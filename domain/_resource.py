"""Resources: typed attributes, identities, relationships, aggregates and calculations.

A resource is a class. Its attributes are ordinary annotations given a value from
:func:`attribute` (or a helper such as :func:`uuid_primary_key`), so type checkers and IDEs see
``message.content`` as a ``str``; at class level ``Message.content`` is the SQLAlchemy column,
ready for expressions (``Message.room_id == room.id``). Everything is checked when the class
is created; errors name the resource, the field and the fix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import sqlalchemy as sa

import beam

from ._actions import build_actions
from ._attributes import (
    Attribute,
    ResourceDefinitionError,
    UTCDateTime,
    _finish_attribute,
    attribute,
    snake_case,
)
from ._policy import check_policies

__all__ = [
    "Aggregate",
    "Attribute",
    "Calculation",
    "Identity",
    "Relationship",
    "Resource",
    "ResourceDefinitionError",
    "aggregate_count",
    "aggregate_exists",
    "aggregate_first",
    "aggregate_list",
    "aggregate_sum",
    "attribute",
    "belongs_to",
    "calculation",
    "create_timestamp",
    "has_many",
    "has_one",
    "identity",
    "many_to_many",
    "update_timestamp",
    "uuid_primary_key",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(constraint_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Every resource's table lives here (a Domain copies its own into a MetaData of its own).
METADATA = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _RandomUUIDs:
    """Random (version 4) UUIDs from the OS's generator, 256 per ``os.urandom`` call.

    ``uuid.uuid4()`` reads 16 bytes per call, and a system call releases the GIL: with
    connection threads busy, getting it back can cost the trio loop a whole switch interval
    per record. Reading in bulk keeps the randomness and drops the system calls."""

    _CHUNK = 16 * 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        # A forked child must not hand out the bytes its parent will also use.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0

    def __call__(self) -> uuid.UUID:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = os.urandom(self._CHUNK), 0
            raw = self._pool[self._at : self._at + 16]
            self._at += 16
        return uuid.UUID(bytes=raw, version=4)


random_uuid = _RandomUUIDs()


def uuid_primary_key() -> Any:
    """A UUID primary key made on create: ``id: uuid.UUID = uuid_primary_key()``.

    >>> class Room(Resource):
    ...     id: uuid.UUID = uuid_primary_key()
    ...     name: str = attribute(max_length=40)
    """
    return Attribute(
        sa.Uuid(), allow_nil=False, default=random_uuid, primary_key=True, writable=False
    )


def create_timestamp() -> Any:
    """A UTC datetime set on create: ``inserted_at: datetime = create_timestamp()``.

    >>> inserted_at: datetime = create_timestamp()
    """
    return Attribute(UTCDateTime(), allow_nil=False, default=_utcnow, writable=False)


def update_timestamp() -> Any:
    """A UTC datetime set on create and on every update.

    >>> updated_at: datetime = update_timestamp()
    """
    return Attribute(
        UTCDateTime(), allow_nil=False, default=_utcnow, update_default=_utcnow, writable=False
    )


@dataclass(frozen=True)
class Identity:
    """A unique key (``identity("unique_email", "email")``): a unique constraint in the table,
    the upsert target of creates, and a lookup key for ``get``.

    >>> User.identities
    (Identity(name='unique_username', fields=('username',)),)
    """

    name: str
    fields: tuple[str, ...]


def identity(name: str, *fields: str) -> Identity:
    """Declare a unique key over *fields*.

    >>> identities = (identity("unique_membership", "user_id", "room_id"),)
    """
    return Identity(name, fields)


@dataclass(frozen=True)
class Index:
    """A (non-unique) index over attributes, for the reads a resource serves most: see
    :func:`index`.

    >>> Message.indexes
    (Index(fields=('room_id', 'inserted_at')),)
    """

    fields: tuple[str, ...]


def index(*fields: str) -> Index:
    """Declare an index over *fields*, in order: ``indexes = (index("room_id",
    "inserted_at"),)`` serves "a room's messages, newest first". Its name follows the naming
    convention (``ix_<table>_<columns>``), so migrations see it. Unique keys are identities.

    >>> indexes = (index("room_id", "inserted_at"),)
    """
    return Index(fields)


RelKind = Literal["belongs_to", "has_one", "has_many", "many_to_many"]


@dataclass
class Relationship:
    """A relationship declaration. ``destination`` is a resource class or its name (resolved
    when a :class:`Domain` is built). Keys default the Ash way (``<name>_id`` on the source for
    belongs_to, ``<source>_id`` on the destination otherwise).

    >>> rel = Message.__relationships__["author"]
    >>> rel.kind, rel.source_attribute
    ('belongs_to', 'author_id')
    """

    kind: RelKind
    destination: Any
    source_attribute: str | None = None
    destination_attribute: str | None = None
    through: Any = None
    source_attribute_on_join: str | None = None
    destination_attribute_on_join: str | None = None
    allow_nil: bool = True
    name: str = ""
    source: Any = None

    def target(self) -> type[Resource]:
        """The destination resource class (after resolution)."""
        return _resolve(self.destination, self)

    def join_resource(self) -> type[Resource]:
        """The join resource of a many_to_many."""
        return _resolve(self.through, self)


def belongs_to(
    destination: Any, *, source_attribute: str | None = None, allow_nil: bool = True
) -> Any:
    """The source holds the key: ``author = belongs_to("User")`` adds ``author_id``.

    >>> author_id: uuid.UUID = attribute(writable=False)
    >>> author = belongs_to("User", source_attribute="author_id", allow_nil=False)
    """
    return Relationship("belongs_to", destination, source_attribute, "id", allow_nil=allow_nil)


def has_one(destination: Any, *, destination_attribute: str | None = None) -> Any:
    """The destination holds ``<source>_id``; at most one of them.

    >>> profile = has_one("Profile", destination_attribute="user_id")
    """
    return Relationship("has_one", destination, "id", destination_attribute)


def has_many(destination: Any, *, destination_attribute: str | None = None) -> Any:
    """The destination holds ``<source>_id``: ``messages = has_many("Message")``.

    >>> messages = has_many("Message")            # in Room: Message.room_id
    >>> orders = has_many("Order", destination_attribute="user_id")
    """
    return Relationship("has_many", destination, "id", destination_attribute)


def many_to_many(
    destination: Any,
    *,
    through: Any,
    source_attribute_on_join: str | None = None,
    destination_attribute_on_join: str | None = None,
) -> Any:
    """Through a join resource: ``rooms = many_to_many("Room", through="Membership")``.

    >>> members = many_to_many("User", through="Membership")
    """
    return Relationship(
        "many_to_many",
        destination,
        "id",
        "id",
        through,
        source_attribute_on_join,
        destination_attribute_on_join,
    )


AggKind = Literal["count", "exists", "sum", "first", "list"]


@dataclass
class Aggregate:
    """An aggregate over a relationship, loaded on request (``load=("message_count",)``).

    >>> message_count = aggregate_count("messages")          # in Room
    >>> rooms = await Chat.read(Room, load=("message_count",), actor=user)
    >>> rooms[0].message_count
    """

    kind: AggKind
    relationship: str
    field: str | None = None
    where: Callable[[], Any] | None = None
    sort: str | None = None
    name: str = ""


def aggregate_count(relationship: str, *, where: Callable[[], Any] | None = None) -> Any:
    """How many related records (optionally matching ``where``, a lambda returning a SQL
    condition on the destination).

    >>> message_count = aggregate_count("messages")
    >>> unread = aggregate_count("notices", where=lambda: Notice.is_read.is_(False))
    """
    return Aggregate("count", relationship, None, where)


def aggregate_exists(relationship: str, *, where: Callable[[], Any] | None = None) -> Any:
    """Whether any related record exists.

    >>> has_messages = aggregate_exists("messages")
    """
    return Aggregate("exists", relationship, None, where)


def aggregate_sum(relationship: str, field: str, *, where: Callable[[], Any] | None = None) -> Any:
    """The sum of *field* over related records (0 when none).

    >>> total = aggregate_sum("orders", "amount")
    >>> paid_total = aggregate_sum("orders", "amount", where=lambda: Order.paid.is_(True))
    """
    return Aggregate("sum", relationship, field, where)


def aggregate_first(
    relationship: str,
    field: str,
    *,
    sort: str | None = None,
    where: Callable[[], Any] | None = None,
) -> Any:
    """*field* of the first related record by *sort* (``"-inserted_at"``), or None.

    >>> biggest_item = aggregate_first("orders", "item", sort="-amount")
    """
    return Aggregate("first", relationship, field, where, sort)


def aggregate_list(
    relationship: str,
    field: str,
    *,
    sort: str | None = None,
    where: Callable[[], Any] | None = None,
) -> Any:
    """The list of *field* over related records, sorted by *sort*.

    >>> items = aggregate_list("orders", "item", sort="item")
    """
    return Aggregate("list", relationship, field, where, sort)


@dataclass
class Calculation:
    """A calculation: ``expression()`` returns a SQL expression over the resource's columns,
    computed in the query when loaded.

    >>> shout = calculation(lambda: Message.content + "!")    # in Message
    >>> [m.shout for m in await Chat.read(Message, load=("shout",), actor=user)]
    """

    expression: Callable[[], Any]
    name: str = ""


def calculation(expression: Callable[[], Any]) -> Any:
    """Declare a calculation: ``label = calculation(lambda: User.name + "!")``.

    >>> doubled = calculation(lambda: Order.amount * 2)
    """
    return Calculation(expression)


#: Resources by class name; one name may belong to resources of several modules.
_REGISTRY: dict[str, list[type[Resource]]] = {}


def _resolve(target: Any, rel: Relationship) -> type[Resource]:
    if not isinstance(target, str):
        return target
    found = _REGISTRY.get(target, [])
    same_module = [r for r in found if r.__module__ == rel.source.__module__]
    if same_module:
        return same_module[-1]
    if len(found) == 1:
        return found[0]
    where = f"{rel.source.__name__}.{rel.name}"
    if not found:
        raise ResourceDefinitionError(
            f"{where}: no resource named {target!r}; define the class {target} (a Resource "
            "subclass) or pass the class itself"
        )
    modules = ", ".join(sorted(r.__module__ for r in found))
    raise ResourceDefinitionError(
        f"{where}: {target!r} names resources in several modules ({modules}); pass the class "
        "itself instead of its name"
    )


class _Field:
    """Class access gives the column (for expressions); instances hold plain values."""

    def __init__(self, name: str, column: sa.Column[Any]) -> None:
        self.name = name
        self.column = column

    def __get__(self, obj: Any, owner: Any) -> Any:
        if obj is None:
            return self.column
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(
                f"{type(obj).__name__}.{self.name} was not selected in this read"
            ) from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


class Resource:
    """Base class of resources; subclass it and declare attributes and the class lists below.

    Class attributes read at creation: ``__tablename__`` (default: snake case of the class name
    + ``s``), ``__abstract__`` (true: no table, just annotations for type checkers that
    subclasses inherit; each concrete subclass declares its own fields), ``identities``,
    ``indexes``, ``actions``, ``policies``, ``notifiers``, ``counters``. An instance is a
    record: its attributes, plus whatever was loaded (relationships, aggregates,
    calculations) and ``__metadata__`` (e.g. the keyset cursor).

    >>> class User(Resource):
    ...     id: uuid.UUID = uuid_primary_key()
    ...     name: str = attribute(min_length=1, max_length=40)
    ...     identities = (identity("unique_name", "name"),)
    ...     actions = (create("create", accept=("name",)), read("read"))
    """

    __tablename__: ClassVar[str]
    __table__: ClassVar[sa.Table]
    __attributes__: ClassVar[dict[str, Attribute]]
    __relationships__: ClassVar[dict[str, Relationship]]
    __aggregates__: ClassVar[dict[str, Aggregate]]
    __calculations__: ClassVar[dict[str, Calculation]]
    __primary_key__: ClassVar[tuple[str, ...]]
    __actions__: ClassVar[dict[str, Any]]
    identities: ClassVar[Sequence[Identity]] = ()
    indexes: ClassVar[Sequence[Index]] = ()
    actions: ClassVar[Sequence[Any]] = ()
    policies: ClassVar[Sequence[Any]] = ()
    notifiers: ClassVar[Sequence[Any]] = ()
    counters: ClassVar[Sequence[Any]] = ()

    def __init__(self, **values: Any) -> None:
        self.__metadata__: dict[str, Any] = {}
        for key, value in values.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={self.__dict__[name]!r}"
            for name in self.__attributes__
            if name in self.__dict__
        )
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Resource)
        return self.pk_values() == other.pk_values()

    def __hash__(self) -> int:
        return hash((type(self), self.pk_values()))

    def pk_values(self) -> tuple[Any, ...]:
        """The primary key values of this record."""
        return tuple(self.__dict__.get(name) for name in self.__primary_key__)

    def to_dict(self) -> dict[str, Any]:
        """The attribute values of this record (what was selected)."""
        return {name: self.__dict__[name] for name in self.__attributes__ if name in self.__dict__}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("__abstract__"):
            return  # a typed shape for subclasses (no table); they declare every field
        _build_resource(cls)
        _travel(cls)


def _travel(cls: type[Resource]) -> None:
    """Let *cls*'s records cross nodes (a notifier's broadcast reaches every node's
    subscribers), under the wire name ``domain:<module>.<qualname>``: as their loaded
    values, rebuilt by the class. A class defined inside a function has no name other nodes
    share, and a second class under a name taken keeps the first: neither travels."""
    if "<locals>" in cls.__qualname__:
        return
    with contextlib.suppress(ValueError):
        beam.cluster.register(
            cls,
            f"domain:{cls.__module__}.{cls.__qualname__}",
            encode=_record_values,
            decode=lambda values: cls(**values),
        )


def _record_values(record: Resource) -> dict[str, Any]:
    # Names read back from the database may be str subclasses (SQLAlchemy's quoted_name).
    return {str(name): value for name, value in vars(record).items()}


def _check_keys(
    rname: str,
    where: str,
    declared: Any,
    kind: type[Identity] | type[Index],
    helper: str,
    attributes: dict[str, Attribute],
) -> None:
    """An identity or index declaration: of the right kind, over known attributes."""
    if not isinstance(declared, kind):
        raise ResourceDefinitionError(
            f"{rname}.{where}: {declared!r} is not an {kind.__name__.lower()}; use {helper}"
        )
    unknown = [f for f in declared.fields if f not in attributes]
    if unknown or not declared.fields:
        what = (
            f"identity {declared.name!r}"
            if isinstance(declared, Identity)
            else f"index {declared.fields}"
        )
        raise ResourceDefinitionError(
            f"{rname}: {what} names unknown attributes {unknown}; "
            f"attributes are {sorted(attributes)}"
        )


def _build_resource(cls: type[Resource]) -> None:
    rname = cls.__name__
    attributes: dict[str, Attribute] = {}
    relationships: dict[str, Relationship] = {}
    aggregates: dict[str, Aggregate] = {}
    calculations: dict[str, Calculation] = {}
    for name, value in list(cls.__dict__.items()):
        if isinstance(value, Attribute):
            attributes[name] = _finish_attribute(cls, name, value)
        elif isinstance(value, Relationship):
            value.name, value.source = name, cls
            relationships[name] = value
        elif isinstance(value, Aggregate):
            value.name = name
            aggregates[name] = value
        elif isinstance(value, Calculation):
            value.name = name
            calculations[name] = value
    for name in inspect.get_annotations(cls):
        if (
            name not in cls.__dict__
            and not name.startswith("__")
            and name
            not in ("identities", "indexes", "actions", "policies", "notifiers", "counters")
        ):
            raise ResourceDefinitionError(
                f"{rname}.{name}: annotated but not declared; write "
                f"`{name}: <type> = attribute(...)` (or a relationship/aggregate helper)"
            )
    for rel in relationships.values():
        if rel.kind == "belongs_to":
            key = rel.source_attribute or f"{rel.name}_id"
            rel.source_attribute = key
            if key not in attributes:
                attributes[key] = _finish_attribute(
                    cls, key, Attribute(sa.Uuid(), allow_nil=rel.allow_nil), annotated=False
                )
        else:
            foreign_key = f"{snake_case(rname)}_id"
            rel.destination_attribute = rel.destination_attribute or foreign_key
            if rel.kind == "many_to_many":
                rel.source_attribute_on_join = rel.source_attribute_on_join or foreign_key
    primary = tuple(name for name, a in attributes.items() if a.primary_key)
    if not primary:
        raise ResourceDefinitionError(
            f"{rname}: no primary key; add `id: uuid.UUID = uuid_primary_key()`"
        )
    for name in aggregates:
        if name in attributes or name in relationships:
            raise ResourceDefinitionError(f"{rname}.{name}: declared twice")
    table_name = cls.__dict__.get("__tablename__") or f"{snake_case(rname)}s"
    if table_name in METADATA.tables:
        METADATA.remove(METADATA.tables[table_name])
    columns = [a.column for a in attributes.values()]
    table = sa.Table(table_name, METADATA, *columns)
    for ident in cls.identities:
        _check_keys(rname, "identities", ident, Identity, "identity(name, *fields)", attributes)
        table.append_constraint(sa.UniqueConstraint(*ident.fields, name=ident.name))
    for ix in cls.indexes:
        _check_keys(rname, "indexes", ix, Index, "index(*fields)", attributes)
        sa.Index(None, *(table.c[f] for f in ix.fields))  # named by the naming convention
    cls.__tablename__ = table_name
    cls.__table__ = table
    cls.__attributes__ = attributes
    cls.__relationships__ = relationships
    cls.__aggregates__ = aggregates
    cls.__calculations__ = calculations
    cls.__primary_key__ = primary
    for name, attr in attributes.items():
        setattr(cls, name, _Field(name, attr.column))
    for name in (*relationships, *aggregates, *calculations):
        delattr(cls, name) if name in cls.__dict__ else None
    same_name = _REGISTRY.setdefault(rname, [])
    same_name[:] = [r for r in same_name if r.__module__ != cls.__module__]  # redefined
    same_name.append(cls)
    cls.__actions__ = build_actions(cls)
    check_policies(cls)
