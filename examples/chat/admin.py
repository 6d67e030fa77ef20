"""The operator's page: every node's process tree, live, with kill buttons for the chat's own
processes.

Each node of the chat runs an :class:`AdminAgent` (registered as :data:`AGENT`, under the
chat's supervisor) that lists its processes and kills one on request, with the rules below
applied on the node that owns the process; the page asks the agent of every node it knows
(``beam.node()`` and ``beam.nodes()``), so with several nodes it shows one tree per node.

Each process is shown under the process that started it (a supervisor's children under it),
with its pid, registered name, whom it serves (a page's or channel's user and view or
topic), mailbox length, messages handled, and, for a supervised child,
how often its supervisor restarted it. It refreshes once a second (a timer message to the
view's own process). Killing a process shows "let it crash" at work: a supervised one comes
back with a new pid (and its restart count goes up), a LiveView reloads its state, a
channel's client rejoins. Only admins may open it (the route's guard and ``mount`` check the
session's ``admin``; see :mod:`examples.chat.app`).

What may be killed: the processes under the chat's application supervisor (``chat.sup``) and
the processes of its connections (LiveViews, channels, socket transports, PubSub topics).
Everything else is refused: ``chat.sup`` itself (killing it stops the whole chat, and with it
the node), the node's and the web server's own processes, and ids of no live process. Killing
a supervisor stops every child under it before its own supervisor restarts them all: the
page asks to confirm first (as it does before any kill). Above the tables: the domain's
connection pool on this node (in use, idle, waiting callers, queries, errors).

The **Jobs** tab (``/admin?tab=jobs``) shows the chat's background jobs
(:mod:`examples.chat.background`), which live in the shared database, so one view serves
every node: the jobs per queue and state, the recent failures (retryable and discarded jobs,
with the error of each attempt), the jobs waiting to run, and buttons to retry a failed or
cancelled job and to cancel a waiting one (checked again on the server: admins only). It
refreshes with the page's timer, and at once when a job of this node starts or ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any, Final

import trio

import beam
import domain
import web
from domain.jobs import JOB_STATES, Job, JobEvent
from supervisors import Supervisor

from . import background, chaos
from .model import Chat
from .serving import forget_dead, note, serving

REFRESH_SECONDS = 1.0
#: The chat's application supervisor: never killed from here.
APP_SUPERVISOR: Final = "chat.sup"
#: The name of each node's :class:`AdminAgent`.
AGENT: Final = "chat.admin"
#: How long the page waits for a node's agent before showing that node as unreachable.
AGENT_TIMEOUT: Final = 2.0

#: The retry and cancel buttons of a job row (what each state allows).
JOB_BUTTONS = """{% macro buttons(j) -%}
{%- if j.retryable %}<button class="retry" phx-click="retry_job" phx-value-id="{{ j.id }}">retry
</button>{% endif %}
{%- if j.cancellable %}<button class="cancel" phx-click="cancel_job" phx-value-id="{{ j.id }}"
 data-confirm="Cancel job {{ j.id }} ({{ j.worker }})?">cancel</button>{% endif -%}
{%- endmacro %}"""

#: The Jobs tab (see the module documentation).
JOBS_TEMPLATE = """
<h1>Jobs <small>{{ jobs.total }} in the database</small></h1>
<p><a href="/">back to the chat</a>{% if said %} · <span id="said">{{ said }}</span>
{%- endif %}</p>
{%- if jobs.error %}<p class="error" id="jobs-error">{{ jobs.error }}</p>{% endif %}
<table id="job-counts"><thead><tr><th>queue</th>
{%- for state in states %}<th>{{ state }}</th>{% endfor %}</tr></thead><tbody>
{%- for queue in jobs.queues %}<tr id="queue-{{ queue.name }}"><td>{{ queue.name }}</td>
{%- for n in queue.counts %}<td class="{{ 'n' if n else 'zero' }}">{{ n }}</td>{% endfor %}</tr>
{%- else %}<tr><td colspan="{{ states | length + 1 }}">no jobs yet</td></tr>{% endfor -%}
</tbody></table>
<h2>Recent failures <small>retryable and discarded, newest first</small></h2>
<table id="job-failures"><thead><tr><th>job</th><th>worker</th><th>state</th><th>attempt</th>
<th>errors</th><th></th></tr></thead><tbody>
{%- for j in jobs.failures %}<tr id="job-{{ j.id }}">
<td>{{ j.id }} <small>{{ j.queue }}</small></td>
<td class="call">{{ j.worker }}</td><td class="state">{{ j.state }}</td>
<td>{{ j.attempt }} of {{ j.max_attempts }}</td><td>
{%- for e in j.errors %}<details{{ " open" if loop.last else "" }}><summary>attempt {{ e.attempt }}
 · {{ e.at }}: {{ e.summary }}</summary><pre>{{ e.error }}</pre></details>{% endfor %}</td>
<td>{{ buttons(j) }}</td></tr>
{%- else %}<tr><td colspan="6">no failures</td></tr>{% endfor -%}
</tbody></table>
<h2>Waiting and cancelled <small>newest first</small></h2>
<table id="job-waiting"><thead><tr><th>job</th><th>worker</th><th>state</th><th>args</th>
<th>runs at</th><th></th></tr></thead><tbody>
{%- for j in jobs.waiting %}<tr id="job-{{ j.id }}">
<td>{{ j.id }} <small>{{ j.queue }}</small></td>
<td class="call">{{ j.worker }}</td><td class="state">{{ j.state }}</td>
<td class="call">{{ j.args }}</td><td>{{ j.scheduled_at }}</td><td>{{ buttons(j) }}</td></tr>
{%- else %}<tr><td colspan="6">nothing waiting</td></tr>{% endfor -%}
</tbody></table>"""

TEMPLATE = (
    JOB_BUTTONS
    + """<div class="admin">
<nav class="tabs" id="tabs">
{%- for name, label in tabs %}<button class="tab{{ ' current' if name == tab else '' }}"
 id="tab-{{ name }}" phx-click="tab" phx-value-tab="{{ name }}">{{ label }}</button>{% endfor -%}
</nav>
{%- if tab == "jobs" %}"""
    + JOBS_TEMPLATE
    + """{% else %}
<h1>Processes <small>{{ nodes | length }} node{{ "s" if nodes | length != 1 else "" }}</small></h1>
<p><a href="/">back to the chat</a>{% if killed %} · <span id="killed">{{ killed }}</span>
{%- endif %}</p>
{%- if pool %}
<p class="pool" id="pool">Database pool ({{ pool.dialect }}): <b>{{ pool.in_use }}</b> of
{{ pool.size }} in use · {{ pool.idle }} idle · {{ pool.connected }} connected ·
<b>{{ pool.waiting }}</b> waiting · {{ pool.queries }} queries · {{ pool.errors }} errors ·
{{ pool.timeouts }} timeouts · {{ pool.replaced }} replaced</p>{% endif %}
{%- for node in nodes %}
<section class="node" id="node-{{ node.name }}">
<h2>{{ node.name }}{% if node.here %} <small>(this node)</small>{% endif %}
{%- if node.error %} <small class="error">{{ node.error }}</small>{% else %}
<small>{{ node.stats.processes }} alive · {{ node.stats.spawned }} spawned ·
  {{ node.stats.crashes }} crashed</small>{% endif %}</h2>
{%- if not node.error %}
<table{% if node.here %} id="processes"{% endif %}><thead><tr><th>process</th><th>name</th>
<th>started as</th><th>serving</th><th>status</th><th>mailbox</th><th>handled</th><th>links</th>
<th>restarts</th><th></th></tr>
</thead><tbody>
{%- for p in node.rows %}<tr id="p{{ p.id }}{{ node.suffix }}">
<td style="padding-left: {{ 8 + p.depth * 16 }}px">
{{- "└ " if p.depth else "" }}{{ p.pid }}</td><td>{{ p.name }}</td>
<td class="call">{{ p.call }}</td><td class="serving">{{ p.serving }}</td>
<td>{{ p.status }}</td><td>{{ p.queue }}</td>
<td>{{ p.handled }}</td><td>{{ p.links }}</td><td class="restarts">{{ p.restarts }}</td>
<td>{% if p.killable %}<button class="kill" phx-click="kill" phx-value-id="{{ p.id }}"
 phx-value-node="{{ node.name }}"
{%- if p.supervisor %} phx-value-confirm="supervisor" data-confirm="Kill the supervisor
{{ p.pid }}? Every process under it stops with it, then its own supervisor starts them all
again."{% else %} data-confirm="Kill {{ p.pid }}{{ ' (' ~ p.name ~ ')' if p.name else '' }}?"
{%- endif %}>kill</button>{% endif %}</td></tr>
{%- endfor -%}
</tbody></table>{% endif %}</section>
{%- endfor %}{% endif %}</div>"""
)

CSS = """
.admin { padding: 20px 28px; }
.admin h1 small, .admin h2 small { color: var(--muted); font-size: 14px; font-weight: 400; }
.admin h2 { font-size: 16px; margin: 18px 0 6px; }
.admin h2 small.error { color: var(--bad); }
.admin table { border-collapse: collapse; width: 100%; background: var(--panel); font-size: 13px; }
.admin th, .admin td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
.admin td.call { font-family: ui-monospace, monospace; }
.admin button.kill { padding: 2px 10px; background: var(--bad); }
.admin nav.tabs { display: flex; gap: 6px; margin-bottom: 8px; }
.admin button.tab { padding: 4px 14px; background: var(--panel); color: inherit;
  border: 1px solid var(--line); }
.admin button.tab.current { background: var(--accent, #4f46e5); color: #fff; }
.admin td.zero { color: var(--muted); }
.admin .error { color: var(--bad); }
.admin details pre { white-space: pre-wrap; max-height: 240px; overflow: auto; margin: 4px 0;
  font-size: 12px; }
.admin button.retry, .admin button.cancel { padding: 2px 10px; }
.admin button.cancel { background: var(--bad); }
"""


def _is_supervisor(info: beam.ProcessInfo) -> bool:
    return info.initial_call.endswith("._SupervisorServer")


def _under_app(pid: beam.Pid, infos: Mapping[beam.Pid, beam.ProcessInfo]) -> bool:
    """Whether *pid* is below the chat's application supervisor (not the supervisor)."""
    app = beam.whereis(APP_SUPERVISOR)
    seen: set[beam.Pid] = set()
    parent = infos[pid].parent if pid in infos else None
    while parent is not None and parent not in seen:
        if parent == app:
            return True
        seen.add(parent)
        info = infos.get(parent) or beam.process_info(parent)
        parent = info.parent if info is not None else None
    return False


def connections() -> frozenset[beam.Pid]:
    """The processes of the chat's connections: LiveViews, channels, transports, topics.

    >>> beam.self() in connections()     # a LiveView's own process
    True
    """
    found = chaos.victims()
    kinds = ("channel", "liveview", "transport", "pubsub")
    return frozenset(pid for kind in kinds for pid in found[kind])


def killable(
    pid: beam.Pid, infos: Mapping[beam.Pid, beam.ProcessInfo], connected: frozenset[beam.Pid]
) -> bool:
    """Whether this page may kill *pid*: one of the chat's supervised processes or of its
    connections (*connected*, from :func:`connections`; see the module documentation).

    >>> killable(beam.whereis("presence"), infos, connections())
    True
    """
    if pid not in infos or pid == beam.whereis(APP_SUPERVISOR):
        return False
    return pid in connected or _under_app(pid, infos)


def refusal(
    pid: beam.Pid, infos: Mapping[beam.Pid, beam.ProcessInfo], page: beam.Pid | None = None
) -> str | None:
    """Why *pid* may not be killed from the page whose process is *page*, or ``None`` when
    it may.

    >>> refusal(beam.whereis("chat.sup"), infos)
    'refused: chat.sup is the application supervisor: killing it stops the whole chat'
    """
    if pid in (beam.self(), page):
        return "refused: not this page's own process"
    if pid not in infos:
        return f"refused: {pid} is not a live process"
    if pid == beam.whereis(APP_SUPERVISOR):
        return (
            f"refused: {APP_SUPERVISOR} is the application supervisor: killing it stops the "
            "whole chat (and the node)"
        )
    if not killable(pid, infos, connections()):
        return (
            f"refused: {pid} is not one of the chat's processes (those under {APP_SUPERVISOR}, "
            "and its connections' LiveViews, channels, transports and topics)"
        )
    return None


async def _restarts(infos: dict[beam.Pid, beam.ProcessInfo]) -> dict[beam.Pid, int]:
    """How often each supervised child was restarted, asked of every supervisor."""
    counts: dict[beam.Pid, int] = {}
    for pid, info in infos.items():
        if info.initial_call.endswith("._SupervisorServer"):
            try:
                children = await Supervisor.which_children(pid)
            except beam.ProcessExit:  # it went away meanwhile
                continue
            counts.update({c.pid: c.restarts for c in children if c.pid is not None})
    return counts


async def _rows() -> list[dict[str, Any]]:
    """Every live process, each under the one that started it (depth first, oldest first)."""
    infos = {pid: info for pid in beam.processes() if (info := beam.process_info(pid))}
    forget_dead(infos)
    restarts = await _restarts(infos)
    children: dict[beam.Pid | None, list[beam.Pid]] = {}
    for pid, info in infos.items():
        parent = info.parent if info.parent in infos else None
        children.setdefault(parent, []).append(pid)
    rows: list[dict[str, Any]] = []
    connected = connections()

    def visit(pid: beam.Pid, depth: int) -> None:
        info = infos[pid]
        rows.append(
            {
                "id": pid.id,
                "pid": str(pid),
                "depth": depth,
                "name": info.registered_name or "",
                "call": info.initial_call.rsplit(".", 1)[-1] if info.initial_call else "",
                "serving": serving(pid),
                "status": info.status,
                "queue": info.message_queue_len,
                "handled": info.messages_handled,
                "links": len(info.links),
                "restarts": restarts.get(pid, ""),
                "supervisor": _is_supervisor(info),
                "killable": killable(pid, infos, connected),
            }
        )
        for child in children.get(pid, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return rows


def _stats() -> dict[str, int]:
    stats = beam.current_node().statistics()
    return {"processes": stats.processes, "spawned": stats.spawned, "crashes": stats.crashes}


def pool_stats() -> dict[str, Any] | None:
    """The domain's connection pool on this node (``Chat.repo().stats()``), as the page
    shows it; ``None`` while the repo is not running (its supervisor is restarting it).

    >>> pool_stats()["size"]
    5
    """
    try:
        repo = Chat.repo()
        stats = repo.stats()
    except (RuntimeError, AttributeError):
        return None
    return {"dialect": repo.dialect, **dataclasses.asdict(stats)}


async def kill(target: beam.Pid, confirm: str, page: beam.Pid | None = None) -> str:
    """Kill the process *target* of this node if the page may (see :func:`refusal`; a
    supervisor only with *confirm* ``"supervisor"``); say what was done.

    >>> await kill(beam.whereis("presence"), "")
    'killed <0.42.0>'
    """
    infos = {pid: info for pid in beam.processes() if (info := beam.process_info(pid))}
    refused = refusal(target, infos, page)
    if refused is not None:
        return refused
    if _is_supervisor(infos[target]) and confirm != "supervisor":
        return (
            f"not killed: {target} is a supervisor; killing it stops every process under it "
            "before they are restarted: confirm to go on"
        )
    beam.exit(target, "kill")
    return f"killed {target}"


class AdminAgent(beam.GenServer[None]):
    """One per node, under the chat's supervisor: the page's hands on this node.

    ``call(("chat.admin", node), "rows")`` answers ``(stats, rows)`` (plain dicts, so they
    cross nodes); ``("kill", id, confirm, page)`` kills a process of this node by number
    under :func:`refusal`'s rules and answers what was done.

    >>> stats, rows = await beam.call(("chat.admin", "chat2"), "rows")
    """

    async def init(self, arg: Any) -> beam.Ok[None]:
        return beam.Ok(None)

    async def handle_call(self, request: Any, from_: beam.From, state: None) -> Any:
        if request == "rows":
            return beam.Reply((_stats(), await _rows()), state)
        if type(request) is tuple and len(request) == 4 and request[0] == "kill":
            _, number, confirm, page = request
            if type(number) is not int or number < 0:
                return beam.Reply(f"refused: {number!r} is not a process id", state)
            page = page if type(page) is beam.Pid else None
            return beam.Reply(await kill(beam.Pid(number), str(confirm), page), state)
        raise ValueError(f"the admin agent does not know the request {request!r:.80}")


async def _node_view(name: str, here: str) -> dict[str, Any]:
    """What the page shows of the node *name*: its stats and rows, or why it is missing."""
    view: dict[str, Any] = {"name": name, "here": name == here, "suffix": ""}
    if name != here:
        view["suffix"] = f"@{name}"
    try:
        stats, rows = await beam.call((AGENT, name), "rows", timeout=AGENT_TIMEOUT)
    except beam.ProcessExit as error:  # down, no agent yet, or too slow
        reason = error.reason[0] if isinstance(error.reason, tuple) else error.reason
        view.update(error=f"unreachable ({reason})", stats={}, rows=[])
        return view
    view.update(error="", stats=stats, rows=rows)
    return view


#: The page's tabs: (name in ``?tab=``, label).
TABS: Final = (("processes", "Processes"), ("jobs", "Jobs"))
#: How many jobs each list of the Jobs tab shows.
JOB_ROWS: Final = 20
#: The states of the failures list, and of the waiting (and cancelled) list.
FAILED: Final = ("retryable", "discarded")
WAITING: Final = ("available", "scheduled", "cancelled")
#: A job event refreshes the Jobs tab at most this often (seconds; the timer does the rest).
EVENT_REFRESH: Final = 0.25
#: Longest error text shown per attempt (the start of a traceback says the most).
ERROR_CHARS: Final = 4000


def _job_row(job: Job) -> dict[str, Any]:
    """A job as the Jobs tab shows it (plain values), with what its buttons may do."""
    errors = []
    for e in job.errors[-5:]:
        text = str(e.get("error", ""))
        lines = [line for line in text.splitlines() if line.strip()]
        errors.append(
            {
                "attempt": e.get("attempt", ""),
                "at": str(e.get("at", ""))[:19].replace("T", " "),
                "summary": (lines[-1] if lines else "")[:160],  # a traceback ends with it
                "error": text[:ERROR_CHARS],
            }
        )
    return {
        "id": job.id,
        "queue": job.queue,
        "worker": job.worker.rsplit(".", 1)[-1],
        "state": job.state,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "args": ", ".join(f"{k}={v}" for k, v in sorted(job.args.items()))[:120],
        "scheduled_at": job.scheduled_at.isoformat(sep=" ", timespec="seconds")[:19],
        "errors": errors,
        "retryable": job.state in ("retryable", "discarded", "cancelled", "scheduled"),
        "cancellable": job.state in ("available", "scheduled", "retryable"),
    }


async def jobs_view() -> dict[str, Any]:
    """What the Jobs tab shows: counts per queue and state, recent failures, waiting and
    cancelled jobs (each newest first, :data:`JOB_ROWS` at most); ``error`` says why not
    (the jobs are not set up, the database is away).

    >>> (await jobs_view())["queues"][0]["name"]
    'chat'
    """
    view: dict[str, Any] = {"total": 0, "queues": [], "failures": [], "waiting": [], "error": ""}
    try:
        jobs = background.current()
        counts = await jobs.counts()
        failed = [j for s in ("retryable", "discarded") for j in await jobs.list_jobs(state=s)]
        waiting = [
            j
            for s in ("available", "scheduled", "cancelled")
            for j in await jobs.list_jobs(state=s)
        ]
    except (RuntimeError, domain.DomainError) as exc:
        view["error"] = f"jobs unavailable: {exc}"
        return view
    view["total"] = sum(sum(c.values()) for c in counts.values())
    view["queues"] = [
        {"name": queue, "counts": [counts[queue].get(state, 0) for state in JOB_STATES]}
        for queue in sorted(counts)
    ]
    failed.sort(key=lambda j: j.attempted_at or j.inserted_at, reverse=True)
    view["failures"] = [_job_row(j) for j in failed[:JOB_ROWS]]
    waiting.sort(key=lambda j: j.id, reverse=True)
    view["waiting"] = [_job_row(j) for j in waiting[:JOB_ROWS]]
    return view


async def job_action(action: str, value: Any) -> str:
    """Retry or cancel (*action*) the job whose id is ``value["id"]``; what was done.

    >>> await job_action("retry_job", {"id": "42"})
    'job 42 will run again now'
    """
    try:
        job_id = int(value.get("id", ""))
    except (TypeError, ValueError, AttributeError):
        return f"refused: {value!r:.40} does not name a job (its id is a number)"
    jobs = background.current()
    if action == "retry_job":
        if await jobs.retry_job(job_id):
            return f"job {job_id} will run again now"
        return f"not retried: job {job_id} is running or waiting to run already, or gone"
    if await jobs.cancel_job(job_id):
        return f"job {job_id} cancelled"
    return f"not cancelled: job {job_id} has ended already, or is gone"


class AdminLive(web.LiveView):
    """The process tables (see the module documentation)."""

    template = TEMPLATE
    title = "Processes · trio-beam chat"

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.assign(
            nodes=[], killed="", pool=None, tab="processes", tabs=TABS, states=JOB_STATES,
            jobs={"total": 0, "queues": [], "failures": [], "waiting": [], "error": ""},
            said="", admin=session.get("admin") is True,
        )  # fmt: skip
        if session.get("admin") is not True:  # the route's guard says so too
            socket.redirect("/?notice=admin")
            return
        if socket.connected:
            note("admin page")
            with contextlib.suppress(RuntimeError):  # no jobs on this node: the tab says so
                background.current().subscribe()  # this node's job events: refresh at once
            beam.send_after(beam.self(), "refresh", REFRESH_SECONDS)

    async def handle_params(
        self, params: Mapping[str, Any], url: str, socket: web.LiveSocket
    ) -> None:
        wanted = str(params.get("tab") or "processes")
        socket.assign(tab=wanted if wanted in dict(TABS) else "processes")
        await self._refresh(socket)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if socket.assigns.get("admin") is not True:  # mount refused it; never act
            return
        if event == "tab":
            wanted = str(value.get("tab") or "processes")
            socket.push_patch("/admin" if wanted == "processes" else f"/admin?tab={wanted}")
        elif event in ("retry_job", "cancel_job"):
            socket.assign(said=await job_action(event, value))
            await self._refresh(socket)
        elif event == "kill":
            here = beam.node()
            node = str(value.get("node") or here)
            try:
                number = int(value.get("id", 0))
            except (TypeError, ValueError):
                socket.assign(killed=f"refused: {value.get('id')!r} is not a process id")
                return
            confirm = str(value.get("confirm") or "")
            if node == here:
                said = await kill(beam.Pid(number), confirm)
            elif node not in beam.nodes():
                said = f"refused: {node!r} is not a node of this cluster"
            else:
                request = ("kill", number, confirm, beam.self())
                try:
                    said = await beam.call((AGENT, node), request, timeout=AGENT_TIMEOUT)
                except beam.ProcessExit:
                    said = f"not killed: the node {node!r} did not answer"
                else:
                    said = f"{said} on {node}"
            socket.assign(killed=said)
            await self._refresh(socket)

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        if message == "refresh":
            await self._refresh(socket)
            beam.send_after(beam.self(), "refresh", REFRESH_SECONDS)
        elif (
            isinstance(message, JobEvent)
            and message.kind != "start"
            and socket.assigns.get("tab") == "jobs"
            and trio.current_time() - socket.assigns.get("refreshed", 0.0) >= EVENT_REFRESH
        ):
            await self._refresh(socket)

    async def _refresh(self, socket: web.LiveSocket) -> None:
        if socket.assigns.get("tab") == "jobs":
            socket.assign(jobs=await jobs_view(), refreshed=trio.current_time())
            return
        here = beam.node()
        views = [
            {"name": here, "here": True, "suffix": "", "error": "", "stats": _stats()}
            | {"rows": await _rows()}
        ]
        views += [await _node_view(name, here) for name in beam.nodes()]
        socket.assign(nodes=views, pool=pool_stats())
