"""Forms in LiveView templates: the small protocol a form value fulfils, and the helpers that
render its inputs with their errors.

``web`` never imports ``domain``: a form is any value with a ``name``, ``value(field)`` and
``errors(field)`` (:class:`FormData`); ``domain.Form`` (a form bound to a resource's action)
is one. The helpers are globals of every LiveView template::

    <form phx-change="validate" phx-submit="save">
      {{ form_input(form, "name", label="Username", phx_debounce="300") }}
      {{ form_input(form, "bio", type="textarea") }}
      {{ form_errors(form) }}
      <button>Sign up</button>
    </form>

An input is named ``<form name>[<field>]`` (so the event's value holds the form's params
under the form's name, as Phoenix forms do), its id is ``<form name>_<field>``, and its errors
follow it, each in a ``<p class="field-error">`` the input points to (``aria-describedby``).
Only what ``errors(field)`` returns is shown: a bound form shows a field's errors once the
user has touched it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from markupsafe import Markup, escape

__all__ = ["FORM_HELPERS", "FormData", "FormField", "form_errors", "form_field", "form_input"]

#: The key of errors about the whole form (``domain.Form``'s too).
BASE: Final = ""


class FormData(Protocol):
    """What the helpers render: a form's name, and each field's value and errors to show.
    A form may also have an ``id``, the prefix of its inputs' ids (by default its name: a
    nested form named ``team[members][0]`` says ``team_members_0``).

    >>> class Plain:                            # the smallest form there is
    ...     name = "user"
    ...     def value(self, field): return ""
    ...     def errors(self, field): return ()
    """

    @property
    def name(self) -> str:
        """The form's name: inputs are named ``name[field]``."""
        ...

    def value(self, field: str) -> Any:
        """What the input of *field* shows (``None``: empty)."""
        ...

    def errors(self, field: str) -> Sequence[str]:
        """The errors to show next to *field* (``""``: the whole form's)."""
        ...


@dataclass(frozen=True, slots=True)
class FormField:
    """One field of a form, ready for markup of your own: ``id``, ``name``, ``value`` (text)
    and ``errors``.

    >>> field = form_field(form, "name")
    >>> field.id, field.name
    ('user_name', 'user[name]')
    """

    id: str
    name: str
    value: str
    errors: tuple[str, ...]


def form_field(form: FormData, field: str) -> FormField:
    """The :class:`FormField` of *field* in *form*.

    >>> form_field(form, "name").errors
    ('must be at least 2 characters',)
    """
    value = form.value(field)
    prefix = getattr(form, "id", "") or form.name
    return FormField(
        f"{prefix}_{field}",
        f"{form.name}[{field}]",
        "" if value is None else str(value),
        tuple(form.errors(field)),
    )


def form_input(
    form: FormData,
    field: str,
    label: str | None = None,
    type: str = "text",  # noqa: A002 - the HTML attribute's name
    **attrs: Any,
) -> Markup:
    """A labelled input for *field* (``type="textarea"``: a text area; ``"checkbox"``: a
    checkbox that sends ``false`` when unchecked), followed by its errors. Keyword arguments
    become attributes, ``_`` read as ``-`` (``phx_debounce="300"``); ``True`` is a bare
    attribute, ``False`` and ``None`` none.

    >>> form_input(form, "name", label="Username", phx_debounce="300")
    Markup('<div class="field"><label for="user_name">Username</label><input ...')
    """
    f = form_field(form, field)
    extra = _attributes(attrs)
    described = f' aria-invalid="true" aria-describedby="{f.id}_error"' if f.errors else ""
    common = f'id="{escape(f.id)}" name="{escape(f.name)}"{described}{extra}'
    if type == "textarea":
        control = f"<textarea {common}>{escape(f.value)}</textarea>"
    elif type == "checkbox":
        checked = " checked" if f.value.lower() in ("true", "on", "1") else ""
        control = (
            f'<input type="hidden" name="{escape(f.name)}" value="false">'
            f'<input type="checkbox" {common} value="true"{checked}>'
        )
    else:
        control = f'<input type="{escape(type)}" {common} value="{escape(f.value)}">'
    text = label if label is not None else field.replace("_", " ").capitalize()
    return Markup(
        f'<div class="field"><label for="{escape(f.id)}">{escape(text)}</label>{control}'
        f"{_error_list(f.errors, f'{f.id}_error', 'field-error')}</div>"
    )


def form_errors(form: FormData, field: str = BASE) -> Markup:
    """The errors of *field* alone (by default the whole form's: a refusal, say), each in a
    ``<p class="form-error">``; nothing when there are none.

    >>> form_errors(form)
    Markup('<p class="form-error" id="user_error">you are not allowed to do this</p>')
    """
    errors = tuple(form.errors(field))
    prefix = getattr(form, "id", "") or form.name
    ident = f"{prefix}_{field}_error" if field else f"{prefix}_error"
    return Markup(_error_list(errors, ident, "form-error"))


def _error_list(errors: tuple[str, ...], ident: str, css: str) -> str:
    if not errors:
        return ""
    # One element carries the id (what aria-describedby names); each message is a line.
    lines = "<br>".join(str(escape(message)) for message in errors)
    return f'<p class="{css}" id="{escape(ident)}">{lines}</p>'


def _attributes(attrs: dict[str, Any]) -> str:
    parts = []
    for key, value in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        if value is True:
            parts.append(f" {escape(name)}")
        elif value is not None and value is not False:
            parts.append(f' {escape(name)}="{escape(value)}"')
    return "".join(parts)


#: The template globals every LiveView (and live component) template gets.
FORM_HELPERS: Final = {
    "form_input": form_input,
    "form_errors": form_errors,
    "form_field": form_field,
}
