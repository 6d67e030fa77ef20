"""What an exit signal does to the process it reaches: the table of OTP's rules, as data.

This module is pure (no trio, no runtime state) so the rules can be read in one place and
checked against a model in tests. The runtime asks :func:`exit_signal_effect` every time a
signal arrives, from a link or from :func:`beam.exit`.

The rules (Erlang Reference Manual, "Receiving Exit Signals"):

=====================  ==========  ==============================  ==========================
reason                 via         receiver traps exits            receiver does not trap
=====================  ==========  ==============================  ==========================
``"kill"``             ``exit/2``  dies with ``"killed"``          dies with ``"killed"``
``"kill"``             link        ``Exit(pid, "kill")`` message   dies with ``"kill"``
``"normal"``           link/other  ``Exit(pid, "normal")`` message ignored
``"normal"``           own pid     ``Exit(pid, "normal")`` message dies with ``"normal"``
anything else          either      ``Exit(pid, reason)`` message   dies with the same reason
=====================  ==========  ==============================  ==========================

>>> exit_signal_effect("kill", linked=False, trapping=True, from_self=False)
SignalEffect(action='die', reason='killed')
>>> exit_signal_effect("normal", linked=True, trapping=False, from_self=False).action
'ignore'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._types import KILL, KILLED, NORMAL

__all__ = ["SignalEffect", "exit_signal_effect"]


@dataclass(frozen=True, slots=True)
class SignalEffect:
    """The outcome of one exit signal.

    ``action`` is ``"die"`` (the receiver exits with ``reason``), ``"trap"`` (the receiver gets
    ``Exit(sender, reason)`` in its mailbox) or ``"ignore"``.
    """

    action: Literal["die", "trap", "ignore"]
    reason: Any = None


_IGNORE = SignalEffect("ignore")
_KILLED = SignalEffect("die", KILLED)


def _is_atom(reason: object, atom: str) -> bool:
    return type(reason) is str and reason == atom


def exit_signal_effect(
    reason: Any, *, linked: bool, trapping: bool, from_self: bool
) -> SignalEffect:
    """Decide what an exit signal with *reason* does to its receiver.

    *linked* is true for a signal sent because a linked process exited, false for one sent
    with :func:`beam.exit`; *from_self* is true when a process signals itself.

    >>> exit_signal_effect(ValueError("x"), linked=True, trapping=False, from_self=False).action
    'die'
    """
    if not linked and _is_atom(reason, KILL):
        return _KILLED
    if trapping:
        return SignalEffect("trap", reason)
    if _is_atom(reason, NORMAL):
        return SignalEffect("die", NORMAL) if from_self and not linked else _IGNORE
    return SignalEffect("die", reason)
