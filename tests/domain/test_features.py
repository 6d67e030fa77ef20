"""Domain features beyond test_basics: relationships, aggregates, calculations, reads and pages,
arguments and changes, validations, bulk actions, can_*, notifier topics, upserts, timestamps
and error messages. Every test runs on SQLite and PostgreSQL (the ``backend`` fixture)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
import trio

import beam
import domain
from domain import (
    Domain,
    Forbidden,
    Invalid,
    NotFound,
    Resource,
    ResourceDefinitionError,
    action_type,
    actor_present,
    aggregate_first,
    aggregate_list,
    aggregate_sum,
    always,
    argument,
    attribute,
    authorize_if,
    belongs_to,
    calculation,
    change,
    compare,
    create,
    define,
    define_read,
    destroy,
    has_many,
    has_one,
    identity,
    many_to_many,
    one_of,
    policy,
    present,
    pubsub,
    read,
    relates_to_actor_via,
    string_length,
    update,
    update_timestamp,
    uuid_primary_key,
)

from ..support.backends import Backend


class FtUser(Resource):
    __tablename__ = "ft_users"
    id: uuid.UUID = uuid_primary_key()
    email: str = attribute(max_length=60)
    name: str = attribute(min_length=1, max_length=30)
    updated_at: datetime = update_timestamp()
    profile = has_one("FtProfile", destination_attribute="user_id")
    orders = has_many("FtOrder", destination_attribute="user_id")
    teams = many_to_many("FtTeam", through="FtMembership")
    total = aggregate_sum("orders", "amount")
    paid_total = aggregate_sum("orders", "amount", where=lambda: FtOrder.__table__.c.paid.is_(True))
    biggest_item = aggregate_first("orders", "item", sort="-amount")
    items = aggregate_list("orders", "item", sort="item")
    items_desc = aggregate_list("orders", "item", sort="-amount")
    paid_items = aggregate_list(
        "orders", "item", sort="item", where=lambda: FtOrder.__table__.c.paid.is_(True)
    )
    shout = calculation(lambda: FtUser.__table__.c.name + "!")
    identities = (identity("ft_unique_email", "email"),)
    actions = (
        create("create", accept=("email", "name")),
        create("upsert", accept=("email", "name"), upsert_identity="ft_unique_email"),
        read("read"),
        update("rename", accept=("name",)),
        destroy("destroy"),
    )


class FtProfile(Resource):
    __tablename__ = "ft_profiles"
    id: uuid.UUID = uuid_primary_key()
    bio: str = attribute()
    user = belongs_to(FtUser, source_attribute="user_id", allow_nil=False)
    actions = (create("create"), read("read"))


class FtTeam(Resource):
    __tablename__ = "ft_teams"
    id: uuid.UUID = uuid_primary_key()
    name: str = attribute()
    actions = (create("create"), read("read"))


class FtMembership(Resource):
    __tablename__ = "ft_memberships"
    id: uuid.UUID = uuid_primary_key()
    user = belongs_to(FtUser, source_attribute="ft_user_id", allow_nil=False)
    team = belongs_to(FtTeam, source_attribute="ft_team_id", allow_nil=False)
    actions = (create("create"), read("read"))


def _upper_item(cs: domain.Changeset) -> None:
    item = cs.get("item")
    if isinstance(item, str):
        cs.set("item", item.upper())


def _apply_discount(cs: domain.Changeset) -> None:
    assert isinstance(cs.data, FtOrder)
    percent = cs.arguments["percent"]
    if percent is None or "percent" in cs.errors:  # steps run on invalid input too (Ash's way)
        return
    cs.set("amount", cs.data.amount * (100 - percent) // 100)


class FtOrder(Resource):
    __tablename__ = "ft_orders"
    id: uuid.UUID = uuid_primary_key()
    item: str = attribute(max_length=20)
    amount: int = attribute(min=0)
    paid: bool = attribute(default=False)
    status: str = attribute(default="new")
    coupon: str | None = attribute()
    user = belongs_to(FtUser, source_attribute="user_id", allow_nil=False)
    doubled = calculation(lambda: FtOrder.__table__.c.amount * 2)
    actions = (
        create(
            "place",
            change(_upper_item),
            present("user_id"),
            compare("amount", greater_than=0, less_than=1000),
            one_of("status", ("new", "rush")),
            string_length("coupon", min=3, max=6),
            accept=("item", "amount", "paid", "status", "coupon", "user_id"),
        ),
        read("read"),
        update(
            "discount",
            change(_apply_discount),
            accept=(),
            arguments=(argument("percent", int, min=0, max=100),),
        ),
        update("pay", change(lambda cs: cs.set("paid", True)), accept=()),
        destroy("destroy"),
    )
    policies = (
        policy(action_type("read"), authorize_if(always())),
        policy(action_type("create"), authorize_if(actor_present())),
        policy(action_type("update", "destroy"), authorize_if(relates_to_actor_via("user"))),
    )
    notifiers = (pubsub("ft_orders:{user_id}:{status}", actions=("place",)),)


class Shop(Domain):
    resources = (FtUser, FtProfile, FtTeam, FtMembership, FtOrder)
    join = define(FtUser, "create", args=("email", "name"))
    rename = define(FtUser, "rename")
    place = define(FtOrder, "place")
    discount = define(FtOrder, "discount")
    pay = define(FtOrder, "pay")
    list_orders = define_read(FtOrder, "read")


async def start(backend: Backend) -> None:
    await Shop.start_link(backend.url, schema=backend.schema)
    await Shop.create_tables()


async def _people() -> tuple[FtUser, FtUser]:
    ann = await Shop.join("ann@x.org", "ann")
    bob = await Shop.join("bob@x.org", "bob")
    return ann, bob


async def test_has_one_and_many_to_many_load(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, bob = await _people()
        await Shop.create(FtProfile, input={"bio": "hi", "user_id": ann.id})
        red = await Shop.create(FtTeam, input={"name": "red"})
        blue = await Shop.create(FtTeam, input={"name": "blue"})
        for user, team in ((ann, red), (ann, blue), (bob, blue)):
            await Shop.create(FtMembership, input={"ft_user_id": user.id, "ft_team_id": team.id})
        users = {
            u.name: u for u in await Shop.read(FtUser, load=("profile", "teams"), sort=("name",))
        }
        assert users["ann"].profile.bio == "hi"
        assert users["bob"].profile is None
        assert sorted(t.name for t in users["ann"].teams) == ["blue", "red"]
        assert [t.name for t in users["bob"].teams] == ["blue"]


async def _orders(ann: FtUser, bob: FtUser) -> list[FtOrder]:
    spec = [
        (ann, "pear", 30, True),
        (ann, "apple", 50, False),
        (ann, "fig", 20, True),
        (bob, "kiwi", 5, False),
    ]
    return [
        await Shop.place(item=item, amount=amount, paid=paid, user_id=user.id, actor=user)
        for user, item, amount, paid in spec
    ]


async def test_aggregates_sum_first_list_and_calculations(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, bob = await _people()
        carl = await Shop.join("carl@x.org", "carl")
        await _orders(ann, bob)
        loads = ("total", "paid_total", "biggest_item", "items", "items_desc", "shout")
        got = {u.name: u for u in await Shop.read(FtUser, load=loads)}
        assert (got["ann"].total, got["bob"].total, got["carl"].total) == (100, 5, 0)
        assert (got["ann"].paid_total, got["bob"].paid_total) == (50, 0)
        assert got["ann"].biggest_item == "APPLE"
        assert got["carl"].biggest_item is None
        assert got["ann"].items == ["APPLE", "FIG", "PEAR"]
        assert got["ann"].items_desc == ["APPLE", "PEAR", "FIG"]
        assert got["carl"].items == []
        assert got["ann"].shout == "ann!"
        assert carl.id in {u.id for u in got.values()}
        orders = await Shop.list_orders(load=("doubled",), sort=("amount",))
        assert [o.doubled for o in orders] == [10, 40, 60, 100]


async def test_aggregate_list_where(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, bob = await _people()
        await _orders(ann, bob)
        got = await Shop.get(FtUser, ann.id, load=("paid_items",))
        assert got.paid_items == ["FIG", "PEAR"]


async def test_sort_limit_offset_and_keyset_pages(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, _ = await _people()
        rows = [("b", 3), ("a", 1), ("b", 1), ("a", 3), ("c", 2), ("a", 2), ("b", 2), ("c", 2)]
        created = await Shop.bulk_create(
            FtOrder,
            "place",
            [{"item": i, "amount": a, "user_id": ann.id} for i, a in rows],
            actor=ann,
        )
        # item ascending, amount descending, then the primary key (the library's tiebreak)
        want = sorted(created, key=lambda o: (o.item, -o.amount, o.id))
        some = await Shop.read(FtOrder, sort=("item", "-amount"), limit=3, offset=2)
        assert [o.id for o in some] == [o.id for o in want[2:5]]
        seen: list[FtOrder] = []
        after: str | None = None
        pages = 0
        while True:
            page = await Shop.page(FtOrder, limit=3, after=after, sort=("item", "-amount"))
            pages += 1
            seen.extend(page.results)
            after = page.after
            if not page.more:
                break
        assert pages == 3
        assert [o.id for o in seen] == [o.id for o in want]
        with pytest.raises(Invalid) as info:
            await Shop.page(FtOrder, limit=3, after="not a cursor!", sort=("item",))
        assert "after" in info.value.errors


async def test_arguments_changes_and_validations(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, bob = await _people()
        order = await Shop.place(item="tea", amount=80, user_id=ann.id, actor=ann)
        assert order.item == "TEA"  # change(fn) ran
        cheaper = await Shop.discount(order, percent=25, actor=ann)
        assert cheaper.amount == 60
        with pytest.raises(Invalid) as info:
            await Shop.discount(cheaper, percent=150, actor=ann)
        assert set(info.value.errors) == {"percent"}
        with pytest.raises(Invalid) as info:
            await Shop.discount(cheaper, actor=ann)
        assert info.value.errors == {"percent": ["is required"]}
        with pytest.raises(Forbidden):
            await Shop.discount(cheaper, percent=10, actor=bob)
        assert (await Shop.get(FtOrder, order.id)).amount == 60
        cases: list[tuple[dict[str, Any], set[str]]] = [
            ({"amount": 0}, {"amount"}),
            ({"amount": 1000}, {"amount"}),
            ({"status": "late"}, {"status"}),
            ({"coupon": "ab"}, {"coupon"}),
            ({"coupon": "abcdefg"}, {"coupon"}),
            ({"user_id": None}, {"user_id"}),
            ({"amount": -1, "coupon": "x"}, {"amount", "coupon"}),
            ({"status": "rush", "coupon": "abc"}, set()),
        ]
        for extra, bad in cases:
            data = {"item": "x", "amount": 5, "user_id": ann.id, **extra}
            if bad:
                with pytest.raises(Invalid) as info:
                    await Shop.place(**data, actor=ann)
                assert set(info.value.errors) == bad, extra
            else:
                assert (await Shop.place(**data, actor=ann)).status == "rush"


async def test_bulk_create_update_destroy(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, bob = await _people()
        made = await Shop.bulk_create(
            FtOrder,
            "place",
            [{"item": f"i{n}", "amount": n + 1, "user_id": ann.id} for n in range(4)],
            actor=ann,
        )
        assert len(made) == 4
        with pytest.raises(Invalid):  # one bad input: none of them is written
            await Shop.bulk_create(
                FtOrder,
                "place",
                [{"item": "ok", "amount": 1, "user_id": ann.id}, {"item": "bad", "amount": 0}],
                actor=ann,
            )
        assert len(await Shop.read(FtOrder)) == 4
        cheap = FtOrder.__table__.c.amount <= 2
        paid = await Shop.bulk_update(FtOrder, "pay", filter=cheap, actor=ann)
        assert sorted(o.item for o in paid) == ["I0", "I1"]
        assert {o.item for o in await Shop.read(FtOrder, filter={"paid": True})} == {"I0", "I1"}
        with pytest.raises(Forbidden):  # bob may read them all but update none
            await Shop.bulk_update(FtOrder, "pay", filter=cheap, actor=bob)
        gone = await Shop.bulk_destroy(FtOrder, filter={"paid": False}, actor=ann)
        assert sorted(o.item for o in gone) == ["I2", "I3"]
        assert sorted(o.item for o in await Shop.read(FtOrder)) == ["I0", "I1"]


async def test_can_interface_answers_without_writing(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, bob = await _people()
        order = await Shop.place(item="tea", amount=10, user_id=ann.id, actor=ann)
        can_place: Any = Shop.can_place  # type: ignore[attr-defined]
        can_pay: Any = Shop.can_pay  # type: ignore[attr-defined]
        assert await can_place(item="x", amount=1, user_id=ann.id, actor=ann) is True
        assert await can_place(item="x", amount=1, user_id=ann.id, actor=None) is False
        assert await can_pay(order, actor=ann) is True
        assert await can_pay(order, actor=bob) is False
        assert len(await Shop.read(FtOrder)) == 1
        assert (await Shop.get(FtOrder, order.id)).paid is False


async def test_pubsub_topic_is_templated_from_the_record(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, bob = await _people()
        beam.subscribe(f"ft_orders:{ann.id}:rush")
        await Shop.place(item="a", amount=1, user_id=ann.id, actor=ann)  # status new
        await Shop.place(item="b", amount=1, user_id=bob.id, status="rush", actor=bob)
        rush = await Shop.place(item="c", amount=1, user_id=ann.id, status="rush", actor=ann)
        await Shop.pay(rush, actor=ann)  # not a listed action
        event, data = await beam.receive(timeout=2)
        assert (event, data.id) == ("place", rush.id)
        with pytest.raises(beam.ReceiveTimeout):
            await beam.receive(timeout=0.2)


async def test_upsert_on_identity_and_update_timestamp(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        first = await Shop.create(FtUser, "upsert", {"email": "dee@x.org", "name": "dee"})
        again = await Shop.create(FtUser, "upsert", {"email": "dee@x.org", "name": "deedee"})
        assert again.id == first.id
        assert again.name == "deedee"
        assert len(await Shop.read(FtUser)) == 1
        with pytest.raises(Invalid) as info:  # the plain create does not upsert
            await Shop.join("dee@x.org", "other")
        assert info.value.errors == {"email": ["has already been taken"]}
        await trio.sleep(0.02)
        renamed = await Shop.rename(again, name="d")
        assert renamed.updated_at > again.updated_at
        stored = await Shop.get(FtUser, email="dee@x.org")
        assert stored.updated_at == renamed.updated_at
        assert stored.name == "d"


async def test_not_found_and_error_messages_name_field_and_fix(backend: Backend) -> None:
    async with beam.open_node():
        await start(backend)
        ann, _ = await _people()
        missing = uuid.uuid4()
        with pytest.raises(NotFound) as nf:
            await Shop.get(FtUser, missing)
        assert str(missing) in str(nf.value)
        assert str(nf.value).startswith("FtUser: not found: ")  # not "invalid input"
        assert isinstance(nf.value, Invalid)
        assert nf.value.errors == {"id": [f"not found: FtUser {missing}"]}
        with pytest.raises(NotFound):
            await Shop.get(FtUser, email="nobody@x.org")
        with pytest.raises(Invalid) as info:
            await Shop.join("eve@x.org", "", color="red")
        message = str(info.value)
        assert message.startswith("FtUser.create: invalid input:")
        assert "name is required" in message
        assert "color is not accepted by FtUser.create" in message
        assert "'email'" in message  # names what is accepted
        with pytest.raises(Forbidden) as forbidden:
            await Shop.place(item="x", amount=1, user_id=ann.id, actor=None)
        assert "actor_present" in forbidden.value.reason
        with pytest.raises(Invalid) as sort:
            await Shop.read(FtUser, sort=("shoe_size",))
        assert "shoe_size" in str(sort.value)
    with pytest.raises(ResourceDefinitionError, match=r"FtBad\.size.*attribute\(\.\.\.\)"):

        class FtBad(Resource):
            id: uuid.UUID = uuid_primary_key()
            size: int

    with pytest.raises(ResourceDefinitionError, match=r"min/max apply to numbers"):

        class FtBadMin(Resource):
            id: uuid.UUID = uuid_primary_key()
            flag: bool = attribute(min=1)
