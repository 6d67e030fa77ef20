"""The changeset: input cast against the action, then steps in declared order. No database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._actions import Action, Change, Hook, Validation
from ._attributes import MISSING
from ._errors import Invalid
from ._resource import Resource

__all__ = ["Changeset"]


@dataclass
class Changeset:
    """One action call being prepared: ``attributes`` to write, ``arguments``, the ``actor``,
    the original ``data`` (updates/destroys), ``errors`` per field, hooks and ``context``.

    Changes call :meth:`set`, :meth:`add_error` and the hook adders; validations read values
    with :meth:`get` (attributes first, then the original record, then arguments).

    >>> def author_name(cs: Changeset) -> None:
    ...     cs.set("author_name", cs.actor.username)
    >>> create("send", relate_actor("author"), change(author_name))
    """

    resource: type[Resource]
    action: Action
    actor: Any
    data: Resource | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    arguments: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    hooks: dict[str, list[Hook]] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The value *name* will have: a changed attribute, else the original, else an argument."""
        if name in self.attributes:
            return self.attributes[name]
        if self.data is not None and name in self.data.__dict__:
            return self.data.__dict__[name]
        return self.arguments.get(name)

    def set(self, name: str, value: Any) -> None:
        """Set attribute *name* (cast and constraint-checked like input)."""
        attr = self.resource.__attributes__.get(name)
        if attr is None:
            raise KeyError(
                f"{self.resource.__name__}.{self.action.name}: set({name!r}): not an attribute"
            )
        cast, errors = attr.cast(value)
        self.attributes[name] = cast
        if errors:
            self.add_error(name, *errors)
        else:
            self.errors.pop(name, None)

    def add_error(self, field_name: str, *messages: str) -> None:
        """Record error messages for *field_name*."""
        self.errors.setdefault(field_name, []).extend(messages)

    def before_action(self, hook: Hook) -> None:
        """Add ``hook(tx, changeset)``, run inside the transaction before the write."""
        self.hooks.setdefault("before_action", []).append(hook)

    def after_action(self, hook: Hook) -> None:
        """Add ``hook(tx, changeset, record) -> record | None``, run after the write."""
        self.hooks.setdefault("after_action", []).append(hook)

    def after_transaction(self, hook: Hook) -> None:
        """Add ``hook(changeset, result)``, run after commit or rollback."""
        self.hooks.setdefault("after_transaction", []).append(hook)

    def all_hooks(self, kind: str) -> list[Hook]:
        """The action's declared hooks of *kind*, then those changes added."""
        return [*getattr(self.action, kind), *self.hooks.get(kind, [])]

    def raise_if_invalid(self) -> None:
        """Raise :class:`Invalid` with every collected error, if any."""
        if self.errors:
            raise Invalid(self.errors, resource=self.resource.__name__, action=self.action.name)


def build_changeset(
    resource: type[Resource],
    action: Action,
    input_: Mapping[str, Any],
    actor: Any,
    data: Resource | None = None,
) -> Changeset:
    """Cast *input_* for *action*, apply defaults, run steps in order; raise :class:`Invalid`."""
    cs = Changeset(resource, action, actor, data)
    accept = action.accept or ()
    args = {a.name: a for a in action.arguments}
    attrs = resource.__attributes__
    for key, value in input_.items():
        if key in args:
            cast, errors = args[key].attr.cast(value)
            cs.arguments[key] = cast
            if errors:
                cs.add_error(key, *errors)
        elif key in accept:
            cast, errors = attrs[key].cast(value)
            cs.attributes[key] = cast
            if errors:
                cs.add_error(key, *errors)
        else:
            allowed = sorted([*accept, *args])
            cs.add_error(
                key, f"is not accepted by {resource.__name__}.{action.name} (accepted: {allowed})"
            )
    for name, arg in args.items():
        if name not in cs.arguments:
            value = arg.attr.default
            cs.arguments[name] = value() if callable(value) else value
            if cs.arguments[name] is None and not arg.attr.allow_nil:
                cs.add_error(name, "is required")
    if action.type == "create":
        for name, attr in attrs.items():
            if name not in cs.attributes and attr.has_default():
                cs.attributes[name] = attr.make_default()
    elif action.type == "update":
        for name, attr in attrs.items():
            if name not in cs.attributes and attr.update_default is not MISSING:
                ud = attr.update_default
                cs.attributes[name] = ud() if callable(ud) else ud
    for step in action.steps:
        if step.where is not None and not step.where(cs):
            continue
        if isinstance(step, Validation):
            found = step.check(cs)
            if found is not None:
                cs.add_error(found[0], found[1])
        elif isinstance(step, Change):
            step.apply(cs)
    if action.type == "create":
        for name, attr in attrs.items():
            if not attr.allow_nil and cs.attributes.get(name) is None and name not in cs.errors:
                cs.add_error(name, "is required")
    cs.raise_if_invalid()
    return cs
