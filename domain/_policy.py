"""Policies: bypasses and policies of ordered checks, compiled to a SQL condition.

Semantics (Ash's): a policy applies when its condition holds; every applicable policy must pass
and at least one must apply. Inside a policy the first check that decides wins; a policy left
undecided fails. A passing bypass authorizes whatever follows. Checks are *static* (decided from
the actor and the action alone) or *filters* (a SQL condition on the record): the whole
authorization folds to True, False, or a SQL condition. Reads add it to the WHERE clause;
creates check it against the inserted row inside the transaction; updates and destroys check
it against the record before writing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from ._attributes import ResourceDefinitionError, snake_case

if TYPE_CHECKING:
    from ._resource import Resource

__all__ = [
    "Check",
    "Policy",
    "PolicyContext",
    "action_is",
    "action_type",
    "actor_attribute_equals",
    "actor_present",
    "always",
    "authorize_if",
    "authorize_unless",
    "bypass",
    "expr",
    "forbid_if",
    "forbid_unless",
    "never",
    "policy",
    "relates_to_actor_via",
]

#: True, False, or a SQL condition.
Verdict = Any


@dataclass(frozen=True)
class PolicyContext:
    """What checks see: the ``actor``, the ``resource``, the ``action`` and its ``arguments``.

    >>> ctx = PolicyContext(user, Message, Message.__actions__["send"], {})
    >>> actor_present().verdict(ctx)
    True
    """

    actor: Any
    resource: type[Resource]
    action: Any
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Check:
    """A check. ``static(ctx)`` decides from the actor/action alone (True/False); a filter
    check's ``condition(ctx)`` returns a SQL condition on the record (or True/False).

    >>> weekday = Check("weekday", static=lambda ctx: date.today().weekday() < 5)
    >>> public = Check("public", condition=lambda ctx: Post.public.is_(True))
    """

    description: str
    static: Callable[[PolicyContext], bool] | None = None
    condition: Callable[[PolicyContext], Verdict] | None = None

    def verdict(self, ctx: PolicyContext) -> Verdict:
        """True, False, or a SQL condition."""
        if self.static is not None:
            return bool(self.static(ctx))
        assert self.condition is not None
        return self.condition(ctx)


def always() -> Check:
    """Always true.

    >>> policy(action_type("create", "read"), authorize_if(always()))
    """
    return Check("always", static=lambda ctx: True)


def never() -> Check:
    """Always false.

    >>> policy(action_type("destroy"), authorize_if(never()))     # nobody destroys
    """
    return Check("never", static=lambda ctx: False)


def actor_present() -> Check:
    """True when the call has an actor.

    >>> policy(action_type("create"), authorize_if(actor_present()))
    """
    return Check("actor_present", static=lambda ctx: ctx.actor is not None)


def action_type(*types: str) -> Check:
    """True when the action's type is one of *types* (``"read"``, ``"create"``...).

    >>> policy(action_type("update", "destroy"), authorize_if(relates_to_actor_via("author")))
    """
    return Check(f"action_type{types}", static=lambda ctx: ctx.action.type in types)


def action_is(*names: str) -> Check:
    """True when the action's name is one of *names*.

    >>> policy(action_is("mark_as_read"), authorize_if(relates_to_actor_via("user")))
    """
    return Check(f"action{names}", static=lambda ctx: ctx.action.name in names)


def actor_attribute_equals(attribute: str, value: Any) -> Check:
    """True when ``actor.<attribute> == value`` (false without an actor or the attribute:
    fails closed).

    >>> bypass(actor_attribute_equals("is_admin", True), authorize_if(always()))
    """
    missing = object()

    def static(ctx: PolicyContext) -> bool:
        if ctx.actor is None:
            return False
        return bool(getattr(ctx.actor, attribute, missing) == value)

    return Check(f"actor_attribute_equals({attribute}, {value!r})", static=static)


def relates_to_actor_via(*path: str) -> Check:
    """A filter check: the record reaches the actor through the relationship *path*
    (``relates_to_actor_via("author")``, ``relates_to_actor_via("room", "members")``).

    >>> policy(action_type("read"), authorize_if(relates_to_actor_via("room", "members")))
    """
    if not path:
        raise ValueError("relates_to_actor_via needs a relationship path")

    def condition(ctx: PolicyContext) -> Verdict:
        if ctx.actor is None or getattr(ctx.actor, "id", None) is None:
            return False
        return path_condition(ctx.resource, list(path), ctx.actor.id)

    return Check(f"relates_to_actor_via{path}", condition=condition)


def expr(condition: Callable[[PolicyContext], Any], description: str = "expr") -> Check:
    """A custom filter check: ``expr(lambda ctx: Post.public | (Post.owner_id == ctx.actor.id))``.
    May also return a plain bool.

    >>> public = expr(lambda ctx: Post.public.is_(True), "public")
    >>> policy(action_type("read"), authorize_if(public))
    """
    return Check(description, condition=condition)


CheckKind = Literal["authorize_if", "forbid_if", "authorize_unless", "forbid_unless"]


@dataclass(frozen=True)
class _Step:
    kind: CheckKind
    check: Check


def authorize_if(check: Check) -> _Step:
    """Authorize when *check* holds (otherwise: go on to the next check).

    >>> policy(action_type("read"), authorize_if(actor_present()))
    """
    return _Step("authorize_if", check)


def forbid_if(check: Check) -> _Step:
    """Forbid when *check* holds.

    >>> policy(action_type("create"), forbid_if(actor_attribute_equals("is_banned", True)),
    ...        authorize_if(actor_present()))
    """
    return _Step("forbid_if", check)


def authorize_unless(check: Check) -> _Step:
    """Authorize when *check* does not hold.

    >>> banned = actor_attribute_equals("is_banned", True)
    >>> policy(action_type("read"), forbid_unless(actor_present()), authorize_unless(banned))
    """
    return _Step("authorize_unless", check)


def forbid_unless(check: Check) -> _Step:
    """Forbid when *check* does not hold.

    >>> policy(action_type("create"), forbid_unless(actor_present()), authorize_if(always()))
    """
    return _Step("forbid_unless", check)


@dataclass(frozen=True)
class Policy:
    """A policy (or a bypass): applies when every condition check holds (static checks only),
    then its steps decide.

    >>> p = policy(action_type("read"), authorize_if(relates_to_actor_via("author")))
    >>> p.is_bypass, len(p.steps)
    (False, 1)
    """

    conditions: tuple[Check, ...]
    steps: tuple[_Step, ...]
    is_bypass: bool = False
    description: str = ""


def _as_conditions(condition: Check | Sequence[Check]) -> tuple[Check, ...]:
    return (condition,) if isinstance(condition, Check) else tuple(condition)


def policy(condition: Check | Sequence[Check], *steps: _Step, description: str = "") -> Policy:
    """``policy(action_type("read"), authorize_if(relates_to_actor_via("author")))``.

    >>> policies = (policy(action_type("create"), authorize_if(actor_present())),
    ...             policy(action_type("read"), authorize_if(relates_to_actor_via("author"))))
    """
    return Policy(_as_conditions(condition), steps, False, description)


def bypass(condition: Check | Sequence[Check], *steps: _Step, description: str = "") -> Policy:
    """``bypass(actor_attribute_equals("is_admin", True), authorize_if(always()))``.

    >>> policies = (bypass(actor_attribute_equals("is_admin", True), authorize_if(always())),
    ...             policy(action_type("read"), authorize_if(actor_present())))
    """
    return Policy(_as_conditions(condition), steps, True, description)


def check_policies(cls: type[Resource]) -> None:
    """Validate a resource's ``policies`` at class creation."""
    for p in cls.policies:
        if not isinstance(p, Policy):
            raise ResourceDefinitionError(
                f"{cls.__name__}.policies: {p!r} is not a policy; use policy(...) or bypass(...)"
            )
        for cond in p.conditions:
            if cond.static is None:
                raise ResourceDefinitionError(
                    f"{cls.__name__}.policies: condition {cond.description} is a filter check; "
                    "policy conditions must be static (actor_attribute_equals, action_type...)"
                )
        if not p.steps:
            raise ResourceDefinitionError(
                f"{cls.__name__}.policies: a policy without checks never passes; add "
                "authorize_if(...)"
            )


def _and(a: Verdict, b: Verdict) -> Verdict:
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return sa.and_(a, b)


def _or(a: Verdict, b: Verdict) -> Verdict:
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False:
        return a
    return sa.or_(a, b)


def _not(a: Verdict) -> Verdict:
    if a is True or a is False:
        return not a
    # A filter check is false where its condition is NULL (a NULL key, NULL in an IN list):
    # its negation must then be true, not NULL (which a WHERE would treat as false).
    return sa.or_(sa.not_(a), a.is_(None))


def _policy_verdict(p: Policy, ctx: PolicyContext) -> Verdict:
    result: Verdict = False  # undecided at the end: forbidden
    for step in reversed(p.steps):
        c = step.check.verdict(ctx)
        if step.kind == "authorize_if":
            result = _or(c, result)
        elif step.kind == "forbid_if":
            result = _and(_not(c), result)
        elif step.kind == "authorize_unless":
            result = _or(_not(c), result)
        else:
            result = _and(c, result)
    return result


def authorize(resource: type[Resource], ctx: PolicyContext) -> tuple[Verdict, str]:
    """Fold the resource's policies: (True | False | SQL condition, reason if False)."""
    policies = list(resource.policies)
    if not policies:
        return True, ""
    applicable = [p for p in policies if all(c.verdict(ctx) is True for c in p.conditions)]
    if not applicable:
        return False, "no policy applies to this action and actor (at least one must apply)"
    # After the last applicable policy: authorized only if a regular (non-bypass) policy
    # applied; a bypass that applies but fails authorizes nothing on its own.
    result: Verdict = any(not p.is_bypass for p in applicable)
    for p in reversed(applicable):
        v = _policy_verdict(p, ctx)
        result = _or(v, result) if p.is_bypass else _and(v, result)
    if result is False:
        failing = next(
            (p for p in applicable if not p.is_bypass and _policy_verdict(p, ctx) is False), None
        )
        if failing is None:
            return False, "only bypasses apply and none passed (a regular policy must apply)"
        return False, f"policy {failing.description or _describe(failing)} failed"
    return result, ""


def _describe(p: Policy) -> str:
    conds = " and ".join(c.description for c in p.conditions)
    steps = ", ".join(f"{s.kind}({s.check.description})" for s in p.steps)
    return f"[{conds}: {steps}]"


def path_condition(resource: type[Resource], path: list[str], actor_id: Any) -> Any:
    """A SQL condition: *resource*'s row reaches a record with id *actor_id* via *path*."""
    rel_name = path[0]
    rel = resource.__relationships__.get(rel_name)
    if rel is None:
        raise ResourceDefinitionError(
            f"{resource.__name__}: relates_to_actor_via names {rel_name!r}, not a relationship; "
            f"relationships are {sorted(resource.__relationships__)}"
        )
    dest = rel.target()
    table, dtable = resource.__table__, dest.__table__
    rest = path[1:]
    dest_pk = dtable.c[dest.__primary_key__[0]]
    inner = (dest_pk == actor_id) if not rest else path_condition(dest, rest, actor_id)
    if rel.kind == "belongs_to":
        assert rel.source_attribute is not None
        if not rest:
            return table.c[rel.source_attribute] == actor_id
        return table.c[rel.source_attribute].in_(sa.select(dest_pk).where(inner))
    src_pk = table.c[resource.__primary_key__[0]]
    if rel.kind in ("has_many", "has_one"):
        assert rel.destination_attribute is not None
        return src_pk.in_(sa.select(dtable.c[rel.destination_attribute]).where(inner))
    join = rel.join_resource()
    jt = join.__table__
    assert rel.source_attribute_on_join is not None
    dest_on_join = rel.destination_attribute_on_join or f"{snake_case(dest.__name__)}_id"
    if not rest:
        return src_pk.in_(
            sa.select(jt.c[rel.source_attribute_on_join]).where(jt.c[dest_on_join] == actor_id)
        )
    return src_pk.in_(
        sa.select(jt.c[rel.source_attribute_on_join]).where(
            jt.c[dest_on_join].in_(sa.select(dest_pk).where(inner))
        )
    )
