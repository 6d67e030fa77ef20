"""A form bound to a resource's action (AshPhoenix.Form's job), as an immutable value.

A :class:`Form` is built from a domain, a resource, one of its create or update actions, the
actor, and the record an update starts from. ``validate(params)`` casts what the user typed
and runs the action's validations and changes, without writing and without notifying;
``submit(params)`` runs the action for the actor, in a transaction, with its policies. Both
return a new form: the values the user typed (never lost on an error), and the errors per
field in the same shape (:class:`~domain.Invalid`'s), shown only for the fields the user has
touched until the form is submitted::

    form = Form.for_create(Chat, Message, "send", actor=user, name="message")
    form = form.validate({"content": "", "room_id": room_id, "_unused_room_id": ""})
    form.errors("content")          # ("is required",): the user touched it
    record, form = await form.submit({"content": "hi", "room_id": room_id})
    if record is None:
        form.errors("content")      # what went wrong, next to the field

"Touched" follows the official LiveView client: a ``phx-change`` event marks each input the
user has not focused yet with an ``_unused_<field>`` key; a submit marks none. A form is a
plain value, so a LiveView keeps it in its assigns. It fulfils the form protocol of
``web.live`` (``name``, ``value(field)``, ``errors(field)``), which renders it; ``domain``
never imports ``web``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ._actions import Action, find_action
from ._changeset import build_changeset
from ._domain import Domain
from ._errors import Forbidden, Invalid
from ._resource import Resource
from ._write import prepare, run_writes

__all__ = ["BASE", "Form"]

logger = logging.getLogger("domain.form")

#: The key of errors about the whole form rather than one field (a refusal by the policies).
BASE: Final = ""
#: What the user sees when the policies refuse a submit (the reason, naming policies, is
#: logged instead: it is for the developer, not for the person filling in the form).
NOT_ALLOWED: Final = "you are not allowed to do this"
_UNUSED: Final = "_unused_"
_TRUE: Final = frozenset({"true", "on", "1", "yes"})
_FALSE: Final = frozenset({"false", "off", "0", "no", ""})


@dataclass(frozen=True, slots=True)
class Form:
    """A form over *action* of *resource* (see the module documentation); make one with
    :meth:`for_create` or :meth:`for_update`."""

    domain: type[Domain]
    resource: type[Resource]
    action: Action
    actor: Any
    #: The record an update (or destroy) form starts from; ``None`` for a create.
    record: Resource | None
    #: The form's name: its inputs are named ``name[field]`` and ids ``name_field``.
    name: str
    #: The fields, in order: the action's accepted attributes, then its arguments.
    fields: tuple[str, ...]
    #: What the user typed, by field (text, as the browser sent it).
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Fields the user has interacted with (their errors show).
    touched: frozenset[str] = frozenset()
    #: Every error of the last validate or submit, by field (:data:`BASE`: the whole form).
    all_errors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Whether the form was submitted (then every field's errors show).
    submitted: bool = False

    @classmethod
    def for_create(
        cls,
        domain: type[Domain],
        resource: type[Resource],
        action: str | None = None,
        *,
        actor: Any = None,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> Form:
        """A form for the create *action* of *resource* (its primary create when ``None``),
        starting from *params* (nothing touched yet).

        >>> form = Form.for_create(Chat, Message, "send", actor=user, name="message")
        >>> form.fields
        ('content', 'room_id')
        """
        act = find_action(resource, action, "create")
        return cls._new(domain, resource, act, actor, None, params, name)

    @classmethod
    def for_update(
        cls,
        domain: type[Domain],
        record: Resource,
        action: str | None = None,
        *,
        actor: Any = None,
        name: str | None = None,
    ) -> Form:
        """A form for the update *action* of *record*: its values start as the record's.

        >>> form = Form.for_update(Chat, message, "edit", actor=user)
        >>> form.value("content")
        'hello'
        """
        act = find_action(type(record), action, "update")
        return cls._new(domain, type(record), act, actor, record, None, name)

    @classmethod
    def _new(
        cls,
        domain: type[Domain],
        resource: type[Resource],
        action: Action,
        actor: Any,
        record: Resource | None,
        params: Mapping[str, Any] | None,
        name: str | None,
    ) -> Form:
        fields = (*(action.accept or ()), *(a.name for a in action.arguments))
        return cls(
            domain,
            resource,
            action,
            actor,
            record,
            name or _snake(resource.__name__),
            fields,
            _known(fields, params or {}),
        )

    # -- what a template renders (web.live's form protocol) -------------------------------------

    def value(self, name: str) -> Any:
        """What the field shows: what the user typed, else the record's value (an update),
        else the attribute's or argument's default, else ``None``.

        >>> form.validate({"content": "hi"}).value("content")
        'hi'
        """
        if name in self.params:
            return self.params[name]
        if self.record is not None and hasattr(self.record, name):
            return getattr(self.record, name)
        spec = self._spec(name)
        if spec is not None and spec.has_default() and not callable(spec.default):
            return spec.default
        return None

    def errors(self, name: str) -> tuple[str, ...]:
        """The field's errors to show: none until the user touched it or submitted.

        >>> form.validate({"content": "", "_unused_content": ""}).errors("content")
        ()
        """
        if name != BASE and not self.submitted and name not in self.touched:
            return ()
        return self.all_errors.get(name, ())

    @property
    def valid(self) -> bool:
        """Whether the last validate or submit found no error (shown or not)."""
        return not self.all_errors

    # -- validate and submit -----------------------------------------------------------------

    def validate(self, params: Mapping[str, Any]) -> Form:
        """The form with *params* (the form's part of a ``phx-change`` event): cast, run the
        action's validations and changes, no write, no notification.

        >>> form = form.validate(event["message"])
        """
        typed = _known(self.fields, params)
        try:
            build_changeset(self.resource, self.action, self._input(typed), self.actor, self.record)
        except Invalid as exc:
            return self._with(typed, _touched(typed, params), exc.errors, submitted=False)
        return self._with(typed, _touched(typed, params), {}, submitted=False)

    async def submit(self, params: Mapping[str, Any]) -> tuple[Any, Form]:
        """Run the action with *params* for the form's actor, in one transaction, with its
        policies: ``(record, form)``, or ``(None, form)`` with the errors (every field's
        now shown; a refusal by the policies is an error of the whole form, :data:`BASE`).

        >>> record, form = await form.submit(event["message"])
        """
        typed = _known(self.fields, params)
        touched = frozenset(typed)
        try:
            prepared = prepare(
                self.resource, self.action, self._input(typed), self.actor, self.record, True
            )
            [record] = await run_writes(self.domain.repo(), [prepared])
        except Forbidden as exc:
            logger.info("%s.%s refused: %s", self.resource.__name__, self.action.name, exc)
            return None, self._with(typed, touched, {BASE: [NOT_ALLOWED]}, submitted=True)
        except Invalid as exc:
            return None, self._with(typed, touched, exc.errors, submitted=True)
        return record, self._with(typed, touched, {}, submitted=True)

    def _with(
        self,
        typed: dict[str, Any],
        touched: frozenset[str],
        errors: Mapping[str, Any],
        *,
        submitted: bool,
    ) -> Form:
        return replace(
            self,
            params=typed,
            touched=touched,
            all_errors={key: tuple(messages) for key, messages in errors.items()},
            submitted=submitted,
        )

    def _input(self, typed: Mapping[str, Any]) -> dict[str, Any]:
        """The action's input from the typed text: an empty input of a field that is not
        text is no value, a checkbox's text is a boolean."""
        result: dict[str, Any] = {}
        for name, text in typed.items():
            spec = self._spec(name)
            kind = getattr(spec, "python_type", str)
            if isinstance(text, str) and kind is not str:
                if kind is bool:
                    lowered = text.strip().lower()
                    text = True if lowered in _TRUE else False if lowered in _FALSE else text
                elif not text.strip():
                    text = None
            result[name] = text
        return result

    def _spec(self, name: str) -> Any:
        """The attribute (or the argument's attribute) behind field *name*, if any."""
        for argument in self.action.arguments:
            if argument.name == name:
                return argument.attr
        return self.resource.__attributes__.get(name)


def _known(fields: tuple[str, ...], params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that are fields of the form (the rest, ``_unused_*`` marks too, dropped)."""
    return {name: params[name] for name in fields if name in params}


def _touched(typed: Mapping[str, Any], params: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(name for name in typed if f"{_UNUSED}{name}" not in params)


def _snake(name: str) -> str:
    """``ChatUser`` -> ``chat_user``."""
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
