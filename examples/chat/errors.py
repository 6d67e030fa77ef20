"""What a person reads when the chat refuses something: plain words, never the domain's
internals (table names, regular expressions, action names, policy wording).

>>> plain(domain.Invalid({"username": ["must match ^[a-z0-9_]+$"]}))
'A username may only hold lowercase letters, digits and underscores.'
"""

from __future__ import annotations

import re
from typing import Final

import domain
import web

__all__ = ["field_errors", "plain"]

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
