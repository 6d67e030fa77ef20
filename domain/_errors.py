"""The three error classes of Ash (Forbidden > Invalid > NotFound), plus the data-layer ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "ConnectionLost",
    "DatabaseTimeout",
    "DomainError",
    "Forbidden",
    "Invalid",
    "NotFound",
]


class DomainError(Exception):
    """Base class of every error the domain layer raises on purpose.

    ``resource`` and ``action`` say where it happened (breadcrumbs for debugging).

    >>> try:
    ...     await Chat.send_message(content="", room_id=room.id, client_id="c1", actor=user)
    ... except DomainError as exc:
    ...     print(exc.resource, exc.action, exc.message)  # Message send invalid input: ...
    """

    def __init__(self, message: str, *, resource: str | None = None, action: str | None = None):
        where = ".".join(part for part in (resource, action) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.resource = resource
        self.action = action


class Invalid(DomainError):
    """The input was wrong; ``errors`` maps each field to its messages (a form's error map).

    >>> try:
    ...     await Chat.send_message(content="", actor=user)
    ... except Invalid as exc:
    ...     exc.errors        # {"content": ["is required"]}
    """

    def __init__(
        self,
        errors: Mapping[str, Sequence[str]],
        *,
        resource: str | None = None,
        action: str | None = None,
    ) -> None:
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}
        detail = "; ".join(f"{field} {', '.join(msgs)}" for field, msgs in self.errors.items())
        super().__init__(f"invalid input: {detail}", resource=resource, action=action)


class NotFound(Invalid):
    """No record matched (or the actor may not see it: read policies filter, they never leak).

    A kind of :class:`Invalid`, as in Ash, with the error under the key ``"id"`` (or the
    identity's first field).

    >>> try:
    ...     await Chat.get(Message, message_id, actor=user)
    ... except NotFound as exc:
    ...     exc.errors        # {"id": ["not found: Message <message_id>"]}
    """

    def __init__(
        self,
        what: str,
        *,
        field: str = "id",
        resource: str | None = None,
        action: str | None = None,
    ) -> None:
        self.errors = {field: [f"not found: {what}"]}
        DomainError.__init__(self, f"not found: {what}", resource=resource, action=action)


class Forbidden(DomainError):
    """The actor may not run this action: no policy applied, or an applicable one failed.

    ``reason`` says which, naming the policy.

    >>> try:
    ...     await Chat.open_room("lobby", actor=None)
    ... except Forbidden as exc:
    ...     exc.reason        # "policy [action_type('create', 'read'): ...] failed"
    """

    def __init__(self, reason: str, *, resource: str | None = None, action: str | None = None):
        super().__init__(f"forbidden: {reason}", resource=resource, action=action)
        self.reason = reason


class ConnectionLost(DomainError):
    """The database connection running the call was lost: its owner process died (crashed
    or killed), or the server closed it.

    Its transaction was rolled back (nothing of the call was written; the message says so
    when a commit was in flight and its outcome is unknown); the pool replaces the
    connection, so retrying is safe.

    >>> try:
    ...     await Chat.send_message(content="hi", room_id=room.id, client_id="c1", actor=user)
    ... except ConnectionLost:      # nothing was written: send again (same client_id)
    ...     await Chat.send_message(content="hi", room_id=room.id, client_id="c1", actor=user)
    """


class DatabaseTimeout(ConnectionLost):
    """The database did not serve the call in time (the data layer's ``timeout``): no
    connection came free while it waited in line, or its unit of work ran too long and was
    cancelled on the server. Nothing of the call was written, so retrying is safe; a kind of
    :class:`ConnectionLost`, so code that retries those retries this too.

    >>> try:
    ...     await Chat.send_message(content="hi", room_id=room.id, client_id="c1", actor=user)
    ... except DatabaseTimeout as exc:
    ...     print(exc.message)     # "no connection of Chat.repo came free within 30.0 s ..."
    """
