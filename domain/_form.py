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

__all__ = ["BASE", "Form", "Nested"]

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
class Nested:
    """Related records a form creates with its own: each one a form for *action* of
    *resource*, whose *link* attribute is set to the new record's primary key on submit (a
    ``has_many``'s records, the children of the form's record).

    >>> Form.for_create(Chat, Room, "create", nested={"messages": Nested(Message, "send",
    ...                                                                  link="room_id")})
    """

    resource: type[Resource]
    action: str | None = None
    link: str = ""


class _Rollback(Exception):
    """Raised in a submit's transaction when a related record was refused: undo it all."""


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
    #: What related records it can create, by field (see :class:`Nested`).
    nested_specs: Mapping[str, Nested] = field(default_factory=dict)
    #: The forms of the related records, by field, in order.
    nested: Mapping[str, tuple[Form, ...]] = field(default_factory=dict)
    #: The prefix of its inputs' ids (its name, for a form that is not nested).
    id: str = ""
    #: A related record's form: the attribute its parent's submit sets to the parent's key.
    link: str = ""

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
        nested: Mapping[str, Nested] | None = None,
    ) -> Form:
        """A form for the create *action* of *resource* (its primary create when ``None``),
        starting from *params* (nothing touched yet); *nested* names the related records it
        can create with it (none at first: :meth:`add` one).

        >>> form = Form.for_create(Chat, Message, "send", actor=user, name="message")
        >>> form.fields
        ('content', 'room_id')
        """
        act = find_action(resource, action, "create")
        form = cls._new(domain, resource, act, actor, None, params, name)
        if nested:
            form = replace(form, nested_specs=dict(nested), nested=dict.fromkeys(nested, ()))
        return form

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
        name = name or _snake(resource.__name__)
        return cls(
            domain,
            resource,
            action,
            actor,
            record,
            name,
            fields,
            _known(fields, params or {}),
            id=name,
        )

    # -- related records -------------------------------------------------------------------------

    def add(self, key: str) -> Form:
        """The form with one more (empty) related record under *key*.

        >>> form = form.add("messages")
        >>> len(form.forms("messages"))
        1
        """
        forms = self.nested.get(key, ())
        return replace(self, nested={**self.nested, key: (*forms, self._child(key, len(forms)))})

    def remove(self, key: str, index: int) -> Form:
        """The form without the related record *index* under *key* (the others renumbered,
        keeping what was typed in them).

        >>> form = form.remove("messages", 0)
        """
        kept = [f for i, f in enumerate(self.nested.get(key, ())) if i != index]
        renumbered = tuple(
            replace(
                self._child(key, i),
                params=f.params,
                touched=f.touched,
                all_errors=f.all_errors,
                submitted=f.submitted,
            )
            for i, f in enumerate(kept)
        )
        return replace(self, nested={**self.nested, key: renumbered})

    def forms(self, key: str) -> tuple[Form, ...]:
        """The forms of the related records under *key*, in order (a template loops over
        them: each renders like any form, its inputs named ``parent[key][i][field]``).

        >>> [sub.value("content") for sub in form.forms("messages")]
        ['hi']
        """
        return self.nested.get(key, ())

    def _child(self, key: str, index: int) -> Form:
        spec = self.nested_specs[key]
        act = find_action(spec.resource, spec.action, "create")
        child = Form._new(
            self.domain, spec.resource, act, self.actor, None, None, f"{self.name}[{key}][{index}]"
        )
        # The link is set on submit: the child's form neither shows nor validates it.
        fields = tuple(f for f in child.fields if f != spec.link)
        return replace(child, fields=fields, id=f"{self.id}_{key}_{index}", link=spec.link)

    def _children(
        self, params: Mapping[str, Any]
    ) -> dict[str, list[tuple[Form, Mapping[str, Any]]]]:
        """Each related record's form and params, from the params' ``key: {"0": {...}}``."""
        return {
            key: [(self._child(key, i), entry) for i, entry in enumerate(_indexed(params.get(key)))]
            for key in self.nested_specs
        }

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
            form = self._with(typed, _touched(typed, params), exc.errors, submitted=False)
        else:
            form = self._with(typed, _touched(typed, params), {}, submitted=False)
        if not self.nested_specs:
            return form
        children = {
            key: tuple(child._validated(entry) for child, entry in pairs)
            for key, pairs in self._children(params).items()
        }
        return replace(form, nested=children)

    def _validated(self, params: Mapping[str, Any]) -> Form:
        """A related record's form validated alone (its link is not set yet: not checked)."""
        form = self.validate(params)
        if self.link in form.all_errors:
            errors = {k: v for k, v in form.all_errors.items() if k != self.link}
            form = replace(form, all_errors=errors)
        return form

    async def submit(self, params: Mapping[str, Any]) -> tuple[Any, Form]:
        """Run the action with *params* for the form's actor, in one transaction, with its
        policies: ``(record, form)``, or ``(None, form)`` with the errors (every field's
        now shown; a refusal by the policies is an error of the whole form, :data:`BASE`).

        >>> record, form = await form.submit(event["message"])
        """
        typed = _known(self.fields, params)
        if self.nested_specs:
            return await self._submit_with_children(typed, params)
        try:
            record = await self._write(self._input(typed))
        except (Forbidden, Invalid) as exc:
            return None, self._refused(typed, exc)
        return record, self._with(typed, frozenset(typed), {}, submitted=True)

    async def _submit_with_children(
        self, typed: dict[str, Any], params: Mapping[str, Any]
    ) -> tuple[Any, Form]:
        """The record and its related records, in one transaction: all of them, or (any one
        refused) none, with every form's errors."""
        children = self._children(params)
        try:
            async with self.domain.transaction():
                try:
                    record = await self._write(self._input(typed))
                except (Forbidden, Invalid) as exc:
                    raise _Rollback(self._refused(typed, exc), False) from None
                key_value = record.pk_values()[0]
                written: dict[str, tuple[Form, ...]] = {}
                failed = False
                for key, pairs in children.items():
                    forms = []
                    for child, entry in pairs:
                        child_typed = _known(child.fields, entry)
                        child_input = {**child._input(child_typed), child.link: key_value}
                        try:
                            await child._write(child_input)
                        except (Forbidden, Invalid) as exc:
                            failed = True
                            forms.append(child._refused(child_typed, exc))
                        else:
                            done = frozenset(child_typed)
                            forms.append(child._with(child_typed, done, {}, submitted=True))
                    written[key] = tuple(forms)
                form = replace(
                    self._with(typed, frozenset(typed), {}, submitted=True), nested=written
                )
                if failed:
                    raise _Rollback(form, True)
        except _Rollback as rollback:
            refused, children_checked = rollback.args
            if not children_checked:  # the record itself was refused: check them all too
                checked = {
                    key: tuple(
                        replace(child._validated(entry), submitted=True) for child, entry in pairs
                    )
                    for key, pairs in children.items()
                }
                refused = replace(refused, nested=checked)
            return None, refused
        return record, form

    async def _write(self, input_: dict[str, Any]) -> Any:
        prepared = prepare(self.resource, self.action, input_, self.actor, self.record, True)
        [record] = await run_writes(self.domain.repo(), [prepared])
        return record

    def _refused(self, typed: dict[str, Any], exc: Forbidden | Invalid) -> Form:
        """The submitted form with why the action refused it."""
        if isinstance(exc, Forbidden):
            logger.info("%s.%s refused: %s", self.resource.__name__, self.action.name, exc)
            errors: Mapping[str, Any] = {BASE: [NOT_ALLOWED]}
        else:
            errors = {k: v for k, v in exc.errors.items() if not self.link or k != self.link}
        return self._with(typed, frozenset(typed), errors, submitted=True)

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


def _indexed(given: Any) -> list[Mapping[str, Any]]:
    """The entries of a nested input, in index order: ``{"0": {...}, "1": {...}}`` as the
    browser sends ``parent[key][0][field]``, or a list."""
    if isinstance(given, Mapping):
        numbered = [(k, v) for k, v in given.items() if str(k).isdigit() and isinstance(v, Mapping)]
        return [v for _, v in sorted(numbered, key=lambda kv: int(kv[0]))]
    if isinstance(given, list | tuple):
        return [v for v in given if isinstance(v, Mapping)]
    return []


def _known(fields: tuple[str, ...], params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that are fields of the form (the rest, ``_unused_*`` marks too, dropped)."""
    return {name: params[name] for name in fields if name in params}


def _touched(typed: Mapping[str, Any], params: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(name for name in typed if f"{_UNUSED}{name}" not in params)


def _snake(name: str) -> str:
    """``ChatUser`` -> ``chat_user``."""
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
