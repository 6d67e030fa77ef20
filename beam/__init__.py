"""beam: Erlang's processes on trio.

A node runs many lightweight processes (trio tasks with a mailbox). Processes share nothing:
they talk by sending immutable messages, and they watch each other through links and
monitors, so a crash is noticed and handled instead of silently lost::

    import beam

    async def echo():
        while True:
            sender, text = await beam.receive()
            beam.send(sender, text.upper())

    async def main():
        pid = beam.spawn(echo)
        beam.send(pid, (beam.self(), "hello"))
        print(await beam.receive())          # HELLO

    beam.run(main)

The semantics are Erlang/OTP's: selective receive, links and exit signals (``trap_exit``,
``"kill"``/``"killed"``), monitors, registered names, timers, and the behaviours built on
them (``GenServer``, ``Task``, ``Agent``), plus thread actors for blocking resources.
"""

from . import cluster as cluster
from . import lowlevel as lowlevel
from . import pg as pg
from ._agent import Agent as Agent
from ._api import cancel_timer as cancel_timer
from ._api import demonitor as demonitor
from ._api import exit as exit  # noqa: A004 - Erlang's name, used as beam.exit
from ._api import is_alive as is_alive
from ._api import link as link
from ._api import make_ref as make_ref
from ._api import monitor as monitor
from ._api import monitor_node as monitor_node
from ._api import monitor_nodes as monitor_nodes
from ._api import read_timer as read_timer
from ._api import receive as receive
from ._api import register as register
from ._api import registered as registered
from ._api import self as self
from ._api import send as send
from ._api import send_after as send_after
from ._api import spawn as spawn
from ._api import spawn_link as spawn_link
from ._api import spawn_monitor as spawn_monitor
from ._api import start_timer as start_timer
from ._api import system_monitor as system_monitor
from ._api import trap_exit as trap_exit
from ._api import unlink as unlink
from ._api import unregister as unregister
from ._api import whereis as whereis
from ._call import call as call
from ._call import cast as cast
from ._call import reply as reply
from ._crash import bounded_repr as bounded_repr
from ._errors import AlreadyRegistered as AlreadyRegistered
from ._errors import BadReturnValue as BadReturnValue
from ._errors import CallTimeout as CallTimeout
from ._errors import NoProc as NoProc
from ._errors import NoProcError as NoProcError
from ._errors import NotInNode as NotInNode
from ._errors import NotInProcess as NotInProcess
from ._errors import ProcessExit as ProcessExit
from ._errors import ReceiveTimeout as ReceiveTimeout
from ._errors import StartError as StartError
from ._errors import UnknownName as UnknownName
from ._gen_server import TIMEOUT as TIMEOUT
from ._gen_server import Continue as Continue
from ._gen_server import GenServer as GenServer
from ._gen_server import Ignore as Ignore
from ._gen_server import NoReply as NoReply
from ._gen_server import Ok as Ok
from ._gen_server import Reply as Reply
from ._gen_server import Stop as Stop
from ._global import GlobalNameConflict as GlobalNameConflict
from ._global import GlobalNamesUnavailable as GlobalNamesUnavailable
from ._global import register_global as register_global
from ._global import registered_global as registered_global
from ._global import send_global as send_global
from ._global import unregister_global as unregister_global
from ._global import whereis_global as whereis_global
from ._info import ProcessInfo as ProcessInfo
from ._info import process_info as process_info
from ._info import processes as processes
from ._node import Node as Node
from ._node import NodeStatistics as NodeStatistics
from ._node import current_node as current_node
from ._node import open_node as open_node
from ._node import run as run
from ._pubsub import Dispatcher as Dispatcher
from ._pubsub import LocalAdapter as LocalAdapter
from ._pubsub import PubSubAdapter as PubSubAdapter
from ._pubsub import broadcast as broadcast
from ._pubsub import broadcast_from as broadcast_from
from ._pubsub import direct_broadcast as direct_broadcast
from ._pubsub import local_broadcast as local_broadcast
from ._pubsub import local_broadcast_from as local_broadcast_from
from ._pubsub import node_name as node_name
from ._pubsub import set_pubsub_adapter as set_pubsub_adapter
from ._pubsub import subscribe as subscribe
from ._pubsub import subscribers as subscribers
from ._pubsub import unsubscribe as unsubscribe
from ._redis_pubsub import node as node
from ._redis_pubsub import nodes as nodes
from ._registry import Registry as Registry
from ._schedule import LongSchedule as LongSchedule
from ._signals import SignalEffect as SignalEffect
from ._signals import exit_signal_effect as exit_signal_effect
from ._task import Task as Task
from ._threads import ThreadActor as ThreadActor
from ._threads import ask as ask
from ._timers import TimerTimeout as TimerTimeout
from ._types import KILL as KILL
from ._types import KILLED as KILLED
from ._types import NOCONNECTION as NOCONNECTION
from ._types import NODE_PID as NODE_PID
from ._types import NOPROC as NOPROC
from ._types import NORMAL as NORMAL
from ._types import SHUTDOWN as SHUTDOWN
from ._types import Down as Down
from ._types import Exit as Exit
from ._types import From as From
from ._types import NodeDown as NodeDown
from ._types import NodeId as NodeId
from ._types import NodeUp as NodeUp
from ._types import Pid as Pid
from ._types import Ref as Ref
from ._types import is_normal_exit as is_normal_exit

__all__ = (
    "KILL",
    "KILLED",
    "NOCONNECTION",
    "NODE_PID",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "TIMEOUT",
    "Agent",
    "AlreadyRegistered",
    "BadReturnValue",
    "CallTimeout",
    "Continue",
    "Dispatcher",
    "Down",
    "Exit",
    "From",
    "GenServer",
    "GlobalNameConflict",
    "GlobalNamesUnavailable",
    "Ignore",
    "LocalAdapter",
    "LongSchedule",
    "NoProc",
    "NoProcError",
    "NoReply",
    "Node",
    "NodeDown",
    "NodeId",
    "NodeStatistics",
    "NodeUp",
    "NotInNode",
    "NotInProcess",
    "Ok",
    "Pid",
    "ProcessExit",
    "ProcessInfo",
    "PubSubAdapter",
    "ReceiveTimeout",
    "Ref",
    "Registry",
    "Reply",
    "SignalEffect",
    "StartError",
    "Stop",
    "Task",
    "ThreadActor",
    "TimerTimeout",
    "UnknownName",
    "ask",
    "bounded_repr",
    "broadcast",
    "broadcast_from",
    "call",
    "cancel_timer",
    "cast",
    "cluster",
    "current_node",
    "demonitor",
    "direct_broadcast",
    "exit",
    "exit_signal_effect",
    "is_alive",
    "is_normal_exit",
    "link",
    "local_broadcast",
    "local_broadcast_from",
    "lowlevel",
    "make_ref",
    "monitor",
    "monitor_node",
    "monitor_nodes",
    "node",
    "node_name",
    "nodes",
    "open_node",
    "pg",
    "process_info",
    "processes",
    "read_timer",
    "receive",
    "register",
    "register_global",
    "registered",
    "registered_global",
    "reply",
    "run",
    "self",
    "send",
    "send_after",
    "send_global",
    "set_pubsub_adapter",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "start_timer",
    "subscribe",
    "subscribers",
    "system_monitor",
    "trap_exit",
    "unlink",
    "unregister",
    "unregister_global",
    "unsubscribe",
    "whereis",
    "whereis_global",
)


lowlevel.fixup_module_metadata(__name__, globals())
