"""What the chat's forms add to :class:`domain.Form`: the eager check that a unique name is
free, while the user types (Ash's ``eager_check?`` on an identity), and an error of the whole
form (a rate limit), keeping what was typed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import domain

__all__ = ["refused", "taken"]


async def taken(form: domain.Form, field: str) -> domain.Form:
    """*form* with ``has already been taken`` on *field* when a record (that the form's actor
    may read) has its value; only a value without other errors is looked up.

    >>> form = await taken(form.validate(params), "username")
    """
    value = form.value(field)
    if not isinstance(value, str) or not value.strip() or form.all_errors.get(field):
        return form
    found = await form.domain.read(
        form.resource, actor=form.actor, filter={field: value.strip()}, limit=1
    )
    if not found:
        return form
    return dataclasses.replace(
        form, all_errors={**form.all_errors, field: ("has already been taken",)}
    )


def refused(form: domain.Form, params: Mapping[str, Any], why: str) -> domain.Form:
    """*form*, submitted with *params*, refused as a whole for *why* (said under it).

    >>> refused(form, params, "slow down: at most 10 new rooms per hour")
    """
    checked = form.validate(params)
    return dataclasses.replace(checked, all_errors={"": (why,)}, submitted=True)
