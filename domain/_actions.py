"""Actions as data: create/read/update/destroy with accept lists, arguments and ordered steps.

Steps are validations and changes, run in the order declared while the changeset is built
(before any transaction). Hooks (``before_transaction``, ``before_action``, ``after_action``,
``after_transaction``) run at their place in Ash's lifecycle; ``before_action`` and
``after_action`` run inside the transaction (on SQLite on the connection's thread; on
PostgreSQL in the calling process's task, where they must not block) and receive the
transaction (:class:`domain.Tx`) so they can run statements and nested actions in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._attributes import Attribute, ResourceDefinitionError

if TYPE_CHECKING:
    from ._changeset import Changeset
    from ._resource import Resource

__all__ = [
    "Action",
    "Argument",
    "Change",
    "Validation",
    "argument",
    "change",
    "compare",
    "create",
    "destroy",
    "match",
    "one_of",
    "present",
    "read",
    "relate_actor",
    "set_attribute",
    "string_length",
    "update",
    "validate",
]

ActionType = Literal["create", "read", "update", "destroy"]


@dataclass
class Argument:
    """A typed input of an action that is not an attribute; made by :func:`argument`.

    >>> arg = argument("percent", int, min=0, max=100)
    >>> arg.name, arg.attr.python_type
    ('percent', <class 'int'>)
    """

    name: str
    attr: Attribute


def argument(
    name: str,
    python_type: Any = str,
    *,
    allow_nil: bool = False,
    default: Any = None,
    **constraints: Any,
) -> Argument:
    """Declare an argument; *constraints* are those of :func:`domain.attribute`.

    >>> percent = argument("percent", int, min=0, max=100)
    >>> update("discount", change(apply_discount), accept=(), arguments=(percent,))
    """
    attr = Attribute(allow_nil=allow_nil, default=default, **constraints)
    attr.name = name
    attr.python_type = python_type
    return Argument(name, attr)


@dataclass(frozen=True)
class Validation:
    """A validation step: ``check(changeset)`` returns ``None`` or ``(field, message)``.

    ``where`` (a predicate on the changeset) limits when it runs.

    >>> step = present("user_id")
    >>> step.check(cs)        # None, or ("user_id", "is required") when it is nil
    """

    check: Callable[[Changeset], tuple[str, str] | None]
    where: Callable[[Changeset], bool] | None = None
    description: str = ""


@dataclass(frozen=True)
class Change:
    """A change step: ``apply(changeset)`` modifies the changeset (set values, add hooks).

    >>> step = set_attribute("paid", True)
    >>> step.apply(cs)        # cs.get("paid") is now True
    """

    apply: Callable[[Changeset], None]
    where: Callable[[Changeset], bool] | None = None
    description: str = ""


def validate(
    check: Callable[[Changeset], tuple[str, str] | None],
    *,
    where: Callable[[Changeset], bool] | None = None,
) -> Validation:
    """A custom validation: *check* returns ``(field, message)`` to reject, ``None`` to pass.

    >>> def no_html(cs):
    ...     return ("content", "no html") if "<" in (cs.get("content") or "") else None
    >>> create("send", validate(no_html), accept=("content", "room_id"))
    """
    return Validation(check, where, getattr(check, "__name__", "custom"))


def present(*fields: str, message: str = "is required") -> Validation:
    """Each of *fields* (attribute or argument) must have a non-nil value.

    >>> create("place", present("user_id"), accept=("item", "amount", "user_id"))
    """

    def check(cs: Changeset) -> tuple[str, str] | None:
        for name in fields:
            if cs.get(name) is None:
                return name, message
        return None

    return Validation(check, None, f"present{fields}")


def match(field_name: str, pattern: str, *, message: str | None = None) -> Validation:
    """The string *field_name* must match the regex *pattern* (nil passes).

    >>> create("send", match("content", r"^[^<>]*$", message="no html"))
    """
    regex = re.compile(pattern)

    def check(cs: Changeset) -> tuple[str, str] | None:
        value = cs.get(field_name)
        if value is not None and regex.search(str(value)) is None:
            return field_name, message or f"must match {pattern}"
        return None

    return Validation(check, None, f"match({field_name})")


def one_of(field_name: str, values: Sequence[Any]) -> Validation:
    """*field_name* must be one of *values* (nil passes).

    >>> create("place", one_of("status", ("new", "rush")))
    """

    def check(cs: Changeset) -> tuple[str, str] | None:
        value = cs.get(field_name)
        if value is not None and value not in values:
            return field_name, f"must be one of {', '.join(map(str, values))}"
        return None

    return Validation(check, None, f"one_of({field_name})")


def string_length(field_name: str, *, min: int | None = None, max: int | None = None) -> Validation:  # noqa: A002
    """The string *field_name* must have a length in [min, max] (nil passes).

    >>> create("place", string_length("coupon", min=3, max=6))
    """

    def check(cs: Changeset) -> tuple[str, str] | None:
        value = cs.get(field_name)
        if value is None:
            return None
        if min is not None and len(value) < min:
            return field_name, f"must be at least {min} characters"
        if max is not None and len(value) > max:
            return field_name, f"must be at most {max} characters"
        return None

    return Validation(check, None, f"string_length({field_name})")


def compare(
    field_name: str,
    *,
    greater_than: Any = None,
    less_than: Any = None,
) -> Validation:
    """*field_name* compared with constants or other fields (given by name as ``str``).

    >>> compare("amount", greater_than=0, less_than=1000)
    >>> compare("high", greater_than="low")       # the field "low"
    """

    def value_of(cs: Changeset, ref: Any) -> Any:
        return cs.get(ref) if isinstance(ref, str) else ref

    def check(cs: Changeset) -> tuple[str, str] | None:
        value = cs.get(field_name)
        if value is None:
            return None
        if greater_than is not None:
            other = value_of(cs, greater_than)
            if other is not None and not value > other:
                return field_name, f"must be greater than {greater_than}"
        if less_than is not None:
            other = value_of(cs, less_than)
            if other is not None and not value < other:
                return field_name, f"must be less than {less_than}"
        return None

    return Validation(check, None, f"compare({field_name})")


def change(
    apply: Callable[[Changeset], None], *, where: Callable[[Changeset], bool] | None = None
) -> Change:
    """A custom change: *apply* modifies the changeset (``cs.set(...)``, hooks...).

    >>> update("pay", change(lambda cs: cs.set("paid", True)), accept=())
    """
    return Change(apply, where, getattr(apply, "__name__", "custom"))


def set_attribute(name: str, value: Any) -> Change:
    """Set attribute *name* to *value* (a callable is called with the changeset).

    >>> update("mark_as_read", set_attribute("is_read", True), accept=())
    >>> create("send", set_attribute("author_name", lambda cs: cs.actor.username))
    """

    def apply(cs: Changeset) -> None:
        cs.set(name, value(cs) if callable(value) else value)

    return Change(apply, None, f"set_attribute({name})")


def relate_actor(relationship: str, *, allow_nil: bool = False) -> Change:
    """Set the belongs_to *relationship* to the actor (``relate_actor("author")``).

    >>> create("send", relate_actor("author"), accept=("content", "room_id"))
    """

    def apply(cs: Changeset) -> None:
        rel = cs.resource.__relationships__[relationship]
        if cs.actor is None:
            if not allow_nil:
                cs.add_error(relationship, "requires an actor")
            return
        assert rel.source_attribute is not None
        cs.set(rel.source_attribute, cs.actor.id)

    return Change(apply, None, f"relate_actor({relationship})")


Hook = Callable[..., Any]


@dataclass
class Action:
    """An action's declaration. Built by :func:`create`, :func:`read`, :func:`update` and
    :func:`destroy`; read back from ``Resource.__actions__``.

    >>> action = Message.__actions__["send"]
    >>> action.type, action.accept
    ('create', ('content', 'room_id', 'client_id'))
    """

    type: ActionType
    name: str
    accept: tuple[str, ...] | None = None
    arguments: tuple[Argument, ...] = ()
    steps: tuple[Validation | Change, ...] = ()
    primary: bool = False
    filter: Callable[..., Any] | None = None
    sort: tuple[str, ...] = ()
    upsert_identity: str | None = None
    upsert_fields: tuple[str, ...] | None = None
    before_transaction: tuple[Hook, ...] = ()
    before_action: tuple[Hook, ...] = ()
    after_action: tuple[Hook, ...] = ()
    after_transaction: tuple[Hook, ...] = ()
    bulk_filter: Callable[..., Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _action(
    type_: ActionType,
    name: str,
    steps: tuple[Validation | Change, ...],
    accept: Sequence[str] | Literal["*"] | None,
    arguments: Sequence[Argument],
    primary: bool,
    before_transaction: Sequence[Hook],
    before_action: Sequence[Hook],
    after_action: Sequence[Hook],
    after_transaction: Sequence[Hook],
    **rest: Any,
) -> Action:
    return Action(
        type_,
        name,
        None if accept in (None, "*") else tuple(accept),
        tuple(arguments),
        steps,
        primary,
        before_transaction=tuple(before_transaction),
        before_action=tuple(before_action),
        after_action=tuple(after_action),
        after_transaction=tuple(after_transaction),
        **rest,
    )


def create(
    name: str = "create",
    *steps: Validation | Change,
    accept: Sequence[str] | Literal["*"] = "*",
    arguments: Sequence[Argument] = (),
    primary: bool = False,
    upsert_identity: str | None = None,
    upsert_fields: Sequence[str] | None = None,
    before_transaction: Sequence[Hook] = (),
    before_action: Sequence[Hook] = (),
    after_action: Sequence[Hook] = (),
    after_transaction: Sequence[Hook] = (),
) -> Action:
    """A create action. ``accept="*"`` accepts every writable public attribute.

    With ``upsert_identity`` the insert becomes an upsert on that identity (updating
    ``upsert_fields``, default: the accepted ones).

    Hooks: ``before_transaction(cs)``, ``before_action(tx, cs)``,
    ``after_action(tx, cs, record) -> record | None``, ``after_transaction(cs, result)``
    where *result* is the record or the exception.

    >>> create("register", accept=("username", "password_hash"))
    >>> create("join", relate_actor("user"), accept=("room_id",),
    ...        upsert_identity="unique_membership")
    """
    return _action(
        "create",
        name,
        steps,
        accept,
        arguments,
        primary,
        before_transaction,
        before_action,
        after_action,
        after_transaction,
        upsert_identity=upsert_identity,
        upsert_fields=None if upsert_fields is None else tuple(upsert_fields),
    )


def update(
    name: str = "update",
    *steps: Validation | Change,
    accept: Sequence[str] | Literal["*"] = "*",
    arguments: Sequence[Argument] = (),
    primary: bool = False,
    before_transaction: Sequence[Hook] = (),
    before_action: Sequence[Hook] = (),
    after_action: Sequence[Hook] = (),
    after_transaction: Sequence[Hook] = (),
) -> Action:
    """An update action on one record (or, in bulk, on every record a query selects).

    >>> update("set_password", accept=("password_hash",))
    """
    return _action(
        "update",
        name,
        steps,
        accept,
        arguments,
        primary,
        before_transaction,
        before_action,
        after_action,
        after_transaction,
    )


def destroy(
    name: str = "destroy",
    *steps: Validation | Change,
    arguments: Sequence[Argument] = (),
    primary: bool = False,
    before_transaction: Sequence[Hook] = (),
    before_action: Sequence[Hook] = (),
    after_action: Sequence[Hook] = (),
    after_transaction: Sequence[Hook] = (),
) -> Action:
    """A destroy action; returns the destroyed record.

    >>> actions = (create("open", accept=("name",)), read("read"), destroy("close"))
    """
    return _action(
        "destroy",
        name,
        steps,
        (),
        arguments,
        primary,
        before_transaction,
        before_action,
        after_action,
        after_transaction,
    )


def read(
    name: str = "read",
    *,
    filter: Callable[..., Any] | None = None,  # noqa: A002 - Ash's option name
    sort: Sequence[str] = (),
    arguments: Sequence[Argument] = (),
    primary: bool = False,
) -> Action:
    """A read action. *filter* is ``lambda ctx: <SQL condition>`` (``ctx.actor``,
    ``ctx.arguments``), always applied; *sort* is the default sort (``"-inserted_at"``).

    >>> read("read")
    >>> read("mine", filter=lambda ctx: Note.owner_id == ctx.actor.id, sort=("-inserted_at",))
    """
    return Action("read", name, (), tuple(arguments), (), primary, filter=filter, sort=tuple(sort))


def build_actions(cls: type[Resource]) -> dict[str, Action]:
    """Check a resource's action list; returns actions by name (primary ones first by type)."""
    rname = cls.__name__
    found: dict[str, Action] = {}
    primaries: dict[str, str] = {}
    for action in cls.actions:
        if not isinstance(action, Action):
            raise ResourceDefinitionError(
                f"{rname}.actions: {action!r} is not an action; use create(...), read(...), "
                "update(...) or destroy(...)"
            )
        if action.name in found:
            raise ResourceDefinitionError(f"{rname}: two actions named {action.name!r}")
        if action.type in ("create", "update"):
            if action.accept is None:
                action.accept = tuple(
                    n for n, a in cls.__attributes__.items() if a.writable and a.public
                )
            for name in action.accept:
                attr = cls.__attributes__.get(name)
                if attr is None:
                    raise ResourceDefinitionError(
                        f"{rname}.{action.name}: accepts {name!r}, which is not an attribute; "
                        f"attributes are {sorted(cls.__attributes__)}"
                    )
                if not attr.writable:
                    raise ResourceDefinitionError(
                        f"{rname}.{action.name}: accepts {name!r}, which is not writable; "
                        "remove it from accept (set it with a change instead)"
                    )
        else:
            action.accept = ()
        for arg in action.arguments:
            if arg.name in cls.__attributes__ and arg.name in (action.accept or ()):
                raise ResourceDefinitionError(
                    f"{rname}.{action.name}: argument {arg.name!r} shadows an accepted attribute"
                )
        if action.upsert_identity is not None:
            names = [i.name for i in cls.identities]
            if action.upsert_identity not in names:
                raise ResourceDefinitionError(
                    f"{rname}.{action.name}: upsert_identity {action.upsert_identity!r} is not "
                    f"an identity; identities are {names}"
                )
        for key in action.sort:
            if key.lstrip("-+") not in cls.__attributes__:
                raise ResourceDefinitionError(
                    f"{rname}.{action.name}: sort key {key!r} is not an attribute"
                )
        if action.primary:
            if action.type in primaries:
                raise ResourceDefinitionError(
                    f"{rname}: two primary {action.type} actions ({primaries[action.type]!r}, "
                    f"{action.name!r})"
                )
            primaries[action.type] = action.name
        found[action.name] = action
    for type_ in ("create", "read", "update", "destroy"):
        if type_ not in primaries:
            candidates = [a for a in found.values() if a.type == type_]
            if len(candidates) == 1 or type_ in found:
                chosen = found.get(type_) or candidates[0]
                if chosen.type == type_:
                    chosen.primary = True
    return found


def find_action(resource: type[Resource], name: str | None, type_: str | None) -> Action:
    """*resource*'s action *name* (of type *type_*, when given), or its primary action of
    *type_* when *name* is None; every resource can be read by a default ``read``. A missing
    action raises :class:`KeyError` naming the actions there are::

        action = find_action(Message, None, "create")   # Message's primary create
    """
    actions = resource.__actions__
    if name is None:
        for a in actions.values():
            if a.type == type_ and a.primary:
                return a
        if type_ == "read":  # every resource can be read by the default read
            return Action("read", "read", (), (), (), True)
        raise KeyError(
            f"{resource.__name__} has no primary {type_} action; declare {type_}(...) in "
            f"{resource.__name__}.actions or name the action"
        )
    found = actions.get(name)
    if found is None or (type_ is not None and found.type != type_):
        raise KeyError(
            f"{resource.__name__} has no {type_ or ''} action {name!r}; actions are "
            f"{sorted(actions)}"
        )
    return found
