"""domain: an Ash-style declarative domain layer on SQLAlchemy, run by supervised processes.

Resources declare typed attributes, identities, relationships, aggregates and calculations;
actions (create/read/update/destroy) declare what they accept, their arguments and their
ordered validations and changes; policies authorize every call against an ``actor`` (read
policies become SQL filters); notifiers and counters publish through PubSub only after
commit. A :class:`Domain` groups resources and exposes a code interface::

    class User(Resource):
        id: uuid.UUID = uuid_primary_key()
        name: str = attribute(min_length=1, max_length=40)
        actions = (create("create", accept=("name",)), read("read"))

    class Message(Resource):
        id: uuid.UUID = uuid_primary_key()
        content: str = attribute(max_length=500)
        room_id: uuid.UUID = attribute()
        author = belongs_to("User")
        actions = (create("send", relate_actor("author"), accept=("content", "room_id")),
                   read("read"))
        policies = (policy(action_type("read"), authorize_if(relates_to_actor_via("author"))),
                    policy(action_type("create"), authorize_if(actor_present())))
        notifiers = (pubsub("room:{room_id}", event="new_message"),)

    class Chat(Domain):
        resources = (User, Message)
        send_message = define(Message, "send")

    async def main():
        await Chat.start_link("sqlite:///chat.db")
        await Chat.create_tables()
        await Chat.send_message(content="hi", room_id=room_id, actor=user)

Database work goes through a :class:`DataLayer`, a supervised pool of connections so the
trio loop never waits on the database: :class:`SQLiteRepo` on connection thread actors
(``beam.ThreadActor``; SQLite's driver blocks), :class:`PostgresRepo` on psycopg driven by
trio, each connection owned by a process, no thread. ``Domain.transaction()`` runs several
calls in one transaction. ``domain.notifications`` is an optional module (per-user
notifications with an unread counter, AshDispatch-style) built on the above.

Where things live: ``_resource``, ``_actions``, ``_policy``, ``_notifiers`` declare;
``_query`` (the read-query value), ``_read`` (compiling it to SQL, keyset paging) and
``_load`` (running it) read; ``_changeset``, ``_write`` (the write pipeline, bulk) and
``_dispatch`` (after-commit notifiers and counters) write; ``_data`` is the data-layer seam
and ``_data_layer`` its implementations (``_pg_*``: PostgreSQL on trio; ``_greenlets``: units
awaiting from a trio task); ``_interface`` is the code interface, and ``_domain`` the
:class:`Domain` facade over all of them.
"""

import beam

from ._actions import Action as Action
from ._actions import Argument as Argument
from ._actions import Change as Change
from ._actions import Validation as Validation
from ._actions import argument as argument
from ._actions import change as change
from ._actions import compare as compare
from ._actions import create as create
from ._actions import destroy as destroy
from ._actions import match as match
from ._actions import one_of as one_of
from ._actions import present as present
from ._actions import read as read
from ._actions import relate_actor as relate_actor
from ._actions import set_attribute as set_attribute
from ._actions import string_length as string_length
from ._actions import update as update
from ._actions import validate as validate
from ._changeset import Changeset as Changeset
from ._data import DataLayer as DataLayer
from ._data import PoolStats as PoolStats
from ._data import Rows as Rows
from ._data import Tx as Tx
from ._data_layer import PostgresRepo as PostgresRepo
from ._data_layer import Repo as Repo
from ._data_layer import SQLiteRepo as SQLiteRepo
from ._data_layer import data_layer as data_layer
from ._data_layer import database_url as database_url
from ._domain import Domain as Domain
from ._errors import ConnectionLost as ConnectionLost
from ._errors import DatabaseTimeout as DatabaseTimeout
from ._errors import DomainError as DomainError
from ._errors import Forbidden as Forbidden
from ._errors import Invalid as Invalid
from ._errors import NotFound as NotFound
from ._form import Form as Form
from ._form import Nested as Nested
from ._interface import Interface as Interface
from ._interface import ReadInterface as ReadInterface
from ._interface import define as define
from ._interface import define_read as define_read
from ._migrations import DropsRefused as DropsRefused
from ._migrations import MigrationError as MigrationError
from ._migrations import Migrations as Migrations
from ._migrations import MigrationsOutOfDate as MigrationsOutOfDate
from ._notifiers import Counter as Counter
from ._notifiers import Notification as Notification
from ._notifiers import PubSubNotifier as PubSubNotifier
from ._notifiers import counter as counter
from ._notifiers import pubsub as pubsub
from ._pg_notify import Notify as Notify
from ._policy import Check as Check
from ._policy import Policy as Policy
from ._policy import PolicyContext as PolicyContext
from ._policy import action_is as action_is
from ._policy import action_type as action_type
from ._policy import actor_attribute_equals as actor_attribute_equals
from ._policy import actor_present as actor_present
from ._policy import always as always
from ._policy import authorize_if as authorize_if
from ._policy import authorize_unless as authorize_unless
from ._policy import bypass as bypass
from ._policy import expr as expr
from ._policy import forbid_if as forbid_if
from ._policy import forbid_unless as forbid_unless
from ._policy import never as never
from ._policy import policy as policy
from ._policy import relates_to_actor_via as relates_to_actor_via
from ._query import Page as Page
from ._resource import Aggregate as Aggregate
from ._resource import Attribute as Attribute
from ._resource import Calculation as Calculation
from ._resource import Identity as Identity
from ._resource import Index as Index
from ._resource import Relationship as Relationship
from ._resource import Resource as Resource
from ._resource import ResourceDefinitionError as ResourceDefinitionError
from ._resource import aggregate_count as aggregate_count
from ._resource import aggregate_exists as aggregate_exists
from ._resource import aggregate_first as aggregate_first
from ._resource import aggregate_list as aggregate_list
from ._resource import aggregate_sum as aggregate_sum
from ._resource import attribute as attribute
from ._resource import belongs_to as belongs_to
from ._resource import calculation as calculation
from ._resource import create_timestamp as create_timestamp
from ._resource import has_many as has_many
from ._resource import has_one as has_one
from ._resource import identity as identity
from ._resource import index as index
from ._resource import many_to_many as many_to_many
from ._resource import update_timestamp as update_timestamp
from ._resource import uuid_primary_key as uuid_primary_key

__all__ = (
    "Action",
    "Aggregate",
    "Argument",
    "Attribute",
    "Calculation",
    "Change",
    "Changeset",
    "Check",
    "ConnectionLost",
    "Counter",
    "DataLayer",
    "DatabaseTimeout",
    "Domain",
    "DomainError",
    "DropsRefused",
    "Forbidden",
    "Form",
    "Identity",
    "Index",
    "Interface",
    "Invalid",
    "MigrationError",
    "Migrations",
    "MigrationsOutOfDate",
    "Nested",
    "NotFound",
    "Notification",
    "Notify",
    "Page",
    "Policy",
    "PolicyContext",
    "PoolStats",
    "PostgresRepo",
    "PubSubNotifier",
    "ReadInterface",
    "Relationship",
    "Repo",
    "Resource",
    "ResourceDefinitionError",
    "Rows",
    "SQLiteRepo",
    "Tx",
    "Validation",
    "action_is",
    "action_type",
    "actor_attribute_equals",
    "actor_present",
    "aggregate_count",
    "aggregate_exists",
    "aggregate_first",
    "aggregate_list",
    "aggregate_sum",
    "always",
    "argument",
    "attribute",
    "authorize_if",
    "authorize_unless",
    "belongs_to",
    "bypass",
    "calculation",
    "change",
    "compare",
    "counter",
    "create",
    "create_timestamp",
    "data_layer",
    "database_url",
    "define",
    "define_read",
    "destroy",
    "expr",
    "forbid_if",
    "forbid_unless",
    "has_many",
    "has_one",
    "identity",
    "index",
    "many_to_many",
    "match",
    "never",
    "one_of",
    "policy",
    "present",
    "pubsub",
    "read",
    "relate_actor",
    "relates_to_actor_via",
    "set_attribute",
    "string_length",
    "update",
    "update_timestamp",
    "uuid_primary_key",
    "validate",
)


beam.lowlevel.fixup_module_metadata(__name__, globals())
