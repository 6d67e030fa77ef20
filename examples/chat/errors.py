"""What a person reads when the chat refuses something: plain words, never the domain's
internals (table names, regular expressions, action names, policy wording).

>>> plain(domain.Invalid({"username": ["must match ^[a-z0-9_]+$"]}))
'A username may only hold lowercase letters, digits and underscores.'
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

import domain
import web

__all__ = ["field_errors", "next_to_field", "plain", "spoken"]

#: Plain words for one field's message, by field then by the message's start.
_FIELDS: Final[dict[str, str]] = {
    "username": "A username",
    "name": "A room name",
    "content": "A message",
    "password": "A password",
}
_LENGTH = re.compile(r"must be at (least|most) (\d+) characters")


def _sentence(field: str, message: str) -> str:
    subject = _FIELDS.get(field, "This")
    if message == "is required":
        return f"{subject} cannot be empty."
    if message.startswith("must match"):
        return f"{subject} may only hold lowercase letters, digits and underscores."
    if message == "has already been taken":
        taken = {"username": "That username is taken.", "name": "A room with that name exists."}
        return taken.get(field, "That is taken already.")
    if message.startswith("not found"):
        return "That is not there any more."
    length = _LENGTH.fullmatch(message)
    if length:
        bound = "at least" if length.group(1) == "least" else "at most"
        return f"{subject} has {bound} {length.group(2)} characters."
    return f"{subject} is not valid."


def field_errors(exc: domain.Invalid) -> dict[str, str]:
    """One plain sentence per field of *exc*, for showing next to each field.

    >>> field_errors(domain.Invalid({"name": ["has already been taken"]}))
    {'name': 'A room with that name exists.'}
    """
    found = exc.errors.items()
    return {field: _sentence(field, messages[0]) for field, messages in found if messages}


def plain(exc: BaseException, forbidden: str = "Only the author can change a message.") -> str:
    """*exc* (a refused send, edit, room or sign-up) as one plain sentence; *forbidden* is
    what a :class:`domain.Forbidden` means where it was raised.

    >>> plain(domain.Forbidden("the policy does not allow this record"))
    'Only the author can change a message.'
    """
    if isinstance(exc, web.RateLimited):
        return str(exc)  # "slow down: at most 3 messages per minute; try again in 20 s"
    if isinstance(exc, domain.NotFound):
        return "That message or room is not there any more."
    if isinstance(exc, domain.Invalid):
        return " ".join(field_errors(exc).values()) or "That is not valid."
    if isinstance(exc, domain.Forbidden):
        return forbidden
    if isinstance(exc, domain.DomainError):
        return "The chat could not do that just now; try again."
    return "Something went wrong; try again."


#: What an empty field needs, said next to it.
_EMPTY: Final[dict[str, str]] = {
    "username": "pick a username",
    "password": "pick a password",
    "name": "give the room a name",
    "content": "a message cannot be empty",
}
_TAKEN: Final[dict[str, str]] = {
    "username": "that username is taken",
    "name": "a room with that name exists",
}
_ALPHABET: Final[dict[str, str]] = {
    "username": "only lowercase letters, digits and _",
}


def next_to_field(field: str, message: str) -> str:
    """The domain's *message* about *field* as a few plain words to show next to it (no
    table, action or pattern in them; numbers as people write them).

    >>> next_to_field("content", "must be at most 2000 characters")
    'at most 2,000 characters'
    >>> next_to_field("username", "has already been taken")
    'that username is taken'
    """
    if message == "is required":
        return _EMPTY.get(field, "cannot be empty")
    if message == "has already been taken":
        return _TAKEN.get(field, "that is taken already")
    if message.startswith("must match"):
        return _ALPHABET.get(field, "has characters that are not allowed")
    length = _LENGTH.fullmatch(message)
    if length:
        bound = "at least" if length.group(1) == "least" else "at most"
        return f"{bound} {int(length.group(2)):,} characters"
    if not field:  # the whole form's: the policies refused (domain.Form says it plainly)
        return message
    return "is not valid"


def spoken(form: domain.Form) -> domain.Form:
    """*form* with every error as :func:`next_to_field` says it (what the page renders).

    >>> spoken(form.validate({"content": "x" * 2001})).errors("content")
    ('at most 2,000 characters',)
    """
    errors = {
        field: tuple(dict.fromkeys(next_to_field(field, m) for m in messages))
        for field, messages in form.all_errors.items()
    }
    return dataclasses.replace(form, all_errors=errors)
