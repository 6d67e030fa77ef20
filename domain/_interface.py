"""The code interface (Ash's ``define``): named functions on a domain for its actions.

``send_message = define(Message, "send")`` in a :class:`~domain.Domain` subclass body makes
``await Chat.send_message(content="hi", room_id=rid, actor=alice)`` run Message's ``send``
action, and ``await Chat.can_send_message(actor=alice, ...)`` answer whether alice may,
without doing it. :func:`define_read` does the same for a read action, returning a list and
taking the read options (``filter``, ``sort``, ``limit``, ``offset``, ``load``). Positional
arguments fill the names given as ``args``; for updates and destroys the first positional
argument is the record::

    class Chat(Domain):
        resources = (User, Message)
        register = define(User, "create", args=("name",))
        edit_message = define(Message, "edit")
        list_messages = define_read(Message, "read")

    alice = await Chat.register("alice")
    await Chat.edit_message(message, content="fixed", actor=alice)

An interface knows nothing of how actions run: it calls the domain it is defined on
(anything with the :class:`ActionRunner` methods, in practice a ``Domain`` subclass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, Self, TypeVar

from ._errors import NotFound
from ._resource import Resource

__all__ = ["ActionRunner", "CanInterface", "Interface", "ReadInterface", "define", "define_read"]

R = TypeVar("R", bound=Resource)


class ActionRunner(Protocol):
    """What an interface calls on its domain (the ``Domain`` class methods of these names)."""

    async def create(
        self,
        resource: type[R],
        action: str | None = ...,
        input: Mapping[str, Any] | None = ...,  # noqa: A002
        *,
        actor: Any = ...,
        authorize: bool = ...,
    ) -> R:
        """Run a create action."""
        ...

    async def update(
        self,
        record: R,
        action: str | None = ...,
        input: Mapping[str, Any] | None = ...,  # noqa: A002
        *,
        actor: Any = ...,
        authorize: bool = ...,
    ) -> R:
        """Run an update action."""
        ...

    async def destroy(
        self,
        record: R,
        action: str | None = ...,
        input: Mapping[str, Any] | None = ...,  # noqa: A002
        *,
        actor: Any = ...,
        authorize: bool = ...,
    ) -> R:
        """Run a destroy action."""
        ...

    async def read(
        self,
        resource: type[R],
        action: str | None = ...,
        *,
        actor: Any = ...,
        filter: Any = ...,  # noqa: A002
        sort: Sequence[str] = ...,
        limit: int | None = ...,
        offset: int | None = ...,
        load: Sequence[str] = ...,
        arguments: Mapping[str, Any] | None = ...,
        authorize: bool = ...,
    ) -> list[R]:
        """Run a read action."""
        ...

    async def can(
        self,
        resource: type[Resource],
        action: str | None = ...,
        input: Mapping[str, Any] | None = ...,  # noqa: A002
        *,
        actor: Any = ...,
        record: Resource | None = ...,
    ) -> bool:
        """Whether an actor may run an action."""
        ...


class Interface(Generic[R]):
    """A code-interface function on a domain: ``send_message = define(Message, "send")``.

    Call it as ``await Chat.send_message(*args, actor=user, **input)``; positional *args*
    fill the names given to :func:`define`. For update and destroy actions the first
    positional argument is the record. ``Chat.can_send_message(actor=..., **input)`` (and
    ``Chat.send_message.can(...)``) answers without doing it.

    >>> room = await Chat.open_room("lobby", actor=alice)
    >>> await Chat.can_open_room("lobby", actor=None)
    False
    """

    def __init__(self, resource: type[R], action: str, args: Sequence[str]) -> None:
        self.resource = resource
        self.action = action
        self.args = tuple(args)
        self.name = action
        self.domain: ActionRunner | None = None
        act = resource.__actions__.get(action)
        if act is None:
            raise KeyError(
                f"define({resource.__name__}, {action!r}): no such action; actions are "
                f"{sorted(resource.__actions__)}"
            )
        self.type = act.type

    def __set_name__(self, owner: Any, name: str) -> None:
        self.name = name
        self.domain = owner

    def __get__(self, obj: Any, owner: Any) -> Self:
        # Reached through a subclass of the domain it was defined on: run on that one.
        defined_on = self.domain
        if (
            owner is not defined_on
            and isinstance(owner, type)
            and isinstance(defined_on, type)
            and issubclass(owner, defined_on)
        ):
            self.domain = owner
        return self

    def _input(self, args: tuple[Any, ...], input_: dict[str, Any]) -> dict[str, Any]:
        if len(args) > len(self.args):
            raise TypeError(
                f"{self.name}() takes {len(self.args)} positional input(s) "
                f"{self.args}, got {len(args)}"
            )
        return {**dict(zip(self.args, args, strict=False)), **input_}

    async def __call__(
        self,
        *args: Any,
        actor: Any = None,
        authorize: bool = True,
        **input: Any,  # noqa: A002
    ) -> R:
        """Run the action; returns the created, updated or destroyed record."""
        domain = self._domain()
        if self.type in ("update", "destroy"):
            if not args:
                raise TypeError(f"{self.name}() needs the record as its first argument")
            record, rest = args[0], args[1:]
            fn = domain.update if self.type == "update" else domain.destroy
            return await fn(
                record, self.action, self._input(rest, input), actor=actor, authorize=authorize
            )
        if self.type == "read":
            results = await domain.read(
                self.resource,
                self.action,
                actor=actor,
                arguments=self._input(args, input),
                authorize=authorize,
            )
            if not results:
                raise NotFound(self.resource.__name__, resource=self.resource.__name__)
            return results[0]
        return await domain.create(
            self.resource, self.action, self._input(args, input), actor=actor, authorize=authorize
        )

    async def can(self, *args: Any, actor: Any = None, **input: Any) -> bool:  # noqa: A002
        """Whether *actor* may run this action (see :meth:`Domain.can`)."""
        domain = self._domain()
        record = None
        if self.type in ("update", "destroy") and args:
            record, args = args[0], args[1:]
        return await domain.can(
            self.resource, self.action, self._input(args, input), actor=actor, record=record
        )

    def _domain(self) -> ActionRunner:
        if self.domain is None:
            raise RuntimeError(f"{self.name} is not defined on a Domain subclass")
        return self.domain


class ReadInterface(Interface[R]):
    """A read code interface: ``list_messages = define_read(Message, "read")``; returns a list
    and takes ``filter``, ``sort``, ``limit``, ``offset``, ``load``.

    >>> rooms = await Chat.rooms(actor=alice, sort=("name",), limit=20)
    """

    async def __call__(  # type: ignore[override]
        self,
        *args: Any,
        actor: Any = None,
        authorize: bool = True,
        filter: Any = None,  # noqa: A002
        sort: Sequence[str] = (),
        limit: int | None = None,
        offset: int | None = None,
        load: Sequence[str] = (),
        **arguments: Any,
    ) -> list[R]:
        """Run the read; returns the records the actor may see."""
        return await self._domain().read(
            self.resource,
            self.action,
            actor=actor,
            filter=filter,
            sort=sort,
            limit=limit,
            offset=offset,
            load=load,
            arguments=self._input(args, arguments),
            authorize=authorize,
        )


class CanInterface:
    """``Chat.can_<name>(...)``, which a ``Domain`` subclass sets beside each interface:
    ``await Chat.can_send_message(actor=alice, content="hi")`` is
    ``await Chat.send_message.can(actor=alice, content="hi")``."""

    def __init__(self, interface: Interface[Any]) -> None:
        self.interface = interface

    async def __call__(self, *args: Any, actor: Any = None, **input: Any) -> bool:  # noqa: A002
        return await self.interface.can(*args, actor=actor, **input)


def define(resource: type[R], action: str, *, args: Sequence[str] = ()) -> Interface[R]:
    """Define a code-interface function for a create, update, destroy (or one-record read),
    in a ``Domain`` subclass body: ``register = define(User, "create", args=("name",))``.

    >>> open_room = define(Room, "open", args=("name",))     # in class Chat(Domain)
    >>> room = await Chat.open_room("lobby", actor=alice)
    """
    return Interface(resource, action, args)


def define_read(
    resource: type[R], action: str = "read", *, args: Sequence[str] = ()
) -> ReadInterface[R]:
    """Define a code-interface function for a read action (returns a list), in a ``Domain``
    subclass body: ``list_messages = define_read(Message, "read")``.

    >>> messages = define_read(Message, "read")               # in class Chat(Domain)
    >>> await Chat.messages(actor=alice, filter={"room_id": room.id}, sort=("-inserted_at",))
    """
    return ReadInterface(resource, action, args)
