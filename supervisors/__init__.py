"""supervisors: OTP supervision trees on beam, and the tools to crash them on purpose.

"Let it crash": a failing part restarts into a known good state while the rest keeps
serving. A :class:`Supervisor` starts children from :class:`ChildSpec` values, restarts
them by strategy (``one_for_one``, ``one_for_all``, ``rest_for_one``) within a restart
intensity, and escalates to its own supervisor when that is exceeded::

    import beam
    from supervisors import Application, DynamicSupervisor, child_spec

    class Counter(beam.GenServer[int]):
        async def init(self, start: int) -> beam.Ok[int]:
            return beam.Ok(start)

        async def handle_call(self, request, from_, count):
            return beam.Reply(count, count + 1)

    app = Application("shop", [
        child_spec(Counter, 0, name="counter"),
        DynamicSupervisor.child_spec(id="sessions", name="sessions"),
    ])

    async def main():
        print(await beam.call("counter", "next"))     # 0
        beam.exit(beam.whereis("counter"), "kill")    # crash it...
        ...                                           # ...and it is back, from init

    app.run(main)

:class:`DynamicSupervisor` and :class:`TaskSupervisor` supervise children added at run
time; :class:`Application` starts and stops a named tree; :class:`FaultInjector` (with the
pytest fixture in :mod:`supervisors.testing`) crashes processes on a seeded schedule.
"""

import beam

from ._application import Application as Application
from ._chaos import FaultInjector as FaultInjector
from ._chaos import InjectedCrash as InjectedCrash
from ._chaos import Injection as Injection
from ._chaos import Subtree as Subtree
from ._common import ChildCounts as ChildCounts
from ._common import ChildInfo as ChildInfo
from ._dynamic import DynamicSupervisor as DynamicSupervisor
from ._errors import AlreadyPresent as AlreadyPresent
from ._errors import AlreadyStarted as AlreadyStarted
from ._errors import ChildNotFound as ChildNotFound
from ._errors import ChildRunning as ChildRunning
from ._errors import InvalidSpec as InvalidSpec
from ._errors import MaxChildren as MaxChildren
from ._spec import ChildSpec as ChildSpec
from ._spec import child_spec as child_spec
from ._spec import validate_child_specs as validate_child_specs
from ._spec import worker as worker
from ._strategy import ChildView as ChildView
from ._strategy import RestartIntensity as RestartIntensity
from ._strategy import RestartPlan as RestartPlan
from ._strategy import auto_shutdown_due as auto_shutdown_due
from ._strategy import exit_action as exit_action
from ._strategy import plan_restart as plan_restart
from ._supervisor import Supervisor as Supervisor
from ._tasks import SupervisedTask as SupervisedTask
from ._tasks import TaskReply as TaskReply
from ._tasks import TaskSupervisor as TaskSupervisor

__all__ = (
    "AlreadyPresent",
    "AlreadyStarted",
    "Application",
    "ChildCounts",
    "ChildInfo",
    "ChildNotFound",
    "ChildRunning",
    "ChildSpec",
    "ChildView",
    "DynamicSupervisor",
    "FaultInjector",
    "InjectedCrash",
    "Injection",
    "InvalidSpec",
    "MaxChildren",
    "RestartIntensity",
    "RestartPlan",
    "Subtree",
    "SupervisedTask",
    "Supervisor",
    "TaskReply",
    "TaskSupervisor",
    "auto_shutdown_due",
    "child_spec",
    "exit_action",
    "plan_restart",
    "validate_child_specs",
    "worker",
)


beam.lowlevel.fixup_module_metadata(__name__, globals())
