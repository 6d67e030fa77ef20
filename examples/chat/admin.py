"""The operator's page: the node's process tree, live, with kill buttons for the chat's own
processes.

Each process is shown under the process that started it (a supervisor's children under it),
with its pid, registered name, mailbox length, messages handled, and, for a supervised child,
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
page asks to confirm first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import beam
import web
from supervisors import Supervisor

from . import chaos

REFRESH_SECONDS = 1.0
#: The chat's application supervisor: never killed from here.
APP_SUPERVISOR: Final = "chat.sup"

TEMPLATE = """<div class="admin">
<h1>Processes <small>{{ stats.processes }} alive · {{ stats.spawned }} spawned ·
  {{ stats.crashes }} crashed</small></h1>
<p><a href="/">back to the chat</a>{% if killed %} · <span id="killed">{{ killed }}</span>
{%- endif %}</p>
<table id="processes"><thead><tr><th>process</th><th>name</th><th>started as</th>
<th>status</th><th>mailbox</th><th>handled</th><th>links</th><th>restarts</th><th></th></tr>
</thead><tbody>
{%- for p in rows %}<tr id="p{{ p.id }}"><td style="padding-left: {{ 8 + p.depth * 16 }}px">
{{- "└ " if p.depth else "" }}{{ p.pid }}</td><td>{{ p.name }}</td>
<td class="call">{{ p.call }}</td><td>{{ p.status }}</td><td>{{ p.queue }}</td>
<td>{{ p.handled }}</td><td>{{ p.links }}</td><td class="restarts">{{ p.restarts }}</td>
<td>{% if p.killable %}<button class="kill" phx-click="kill" phx-value-id="{{ p.id }}"
{%- if p.supervisor %} phx-value-confirm="supervisor" data-confirm="Kill the supervisor
{{ p.pid }}? Every process under it stops with it, then its own supervisor starts them all
again."{% endif %}>kill</button>{% endif %}</td></tr>
{%- endfor -%}
</tbody></table></div>"""

CSS = """
.admin { padding: 20px 28px; }
.admin h1 small { color: var(--muted); font-size: 14px; font-weight: 400; }
.admin table { border-collapse: collapse; width: 100%; background: var(--panel); font-size: 13px; }
.admin th, .admin td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
.admin td.call { font-family: ui-monospace, monospace; }
.admin button.kill { padding: 2px 10px; background: var(--bad); }
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


def refusal(pid: beam.Pid, infos: Mapping[beam.Pid, beam.ProcessInfo]) -> str | None:
    """Why *pid* may not be killed from this page, or ``None`` when it may.

    >>> refusal(beam.whereis("chat.sup"), infos)
    'refused: chat.sup is the application supervisor: killing it stops the whole chat'
    """
    if pid == beam.self():
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


class AdminLive(web.LiveView):
    """The process table (see the module documentation)."""

    template = TEMPLATE
    title = "Processes · trio-beam chat"

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        if session.get("admin") is not True:  # the route's guard says so too
            socket.redirect("/")
            return
        await self._refresh(socket)
        socket.assign(killed="")
        if socket.connected:
            beam.send_after(beam.self(), "refresh", REFRESH_SECONDS)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "kill":
            try:
                target = beam.Pid(int(value.get("id", 0)))
            except (TypeError, ValueError):
                socket.assign(killed=f"refused: {value.get('id')!r} is not a process id")
                return
            infos = {pid: info for pid in beam.processes() if (info := beam.process_info(pid))}
            refused = refusal(target, infos)
            if refused is not None:
                socket.assign(killed=refused)
                return
            if _is_supervisor(infos[target]) and value.get("confirm") != "supervisor":
                socket.assign(
                    killed=f"not killed: {target} is a supervisor; killing it stops every process "
                    "under it before they are restarted: confirm to go on"
                )
                return
            beam.exit(target, "kill")
            socket.assign(killed=f"killed {target}")
            await self._refresh(socket)

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        if message == "refresh":
            await self._refresh(socket)
            beam.send_after(beam.self(), "refresh", REFRESH_SECONDS)

    async def _refresh(self, socket: web.LiveSocket) -> None:
        socket.assign(rows=await _rows(), stats=beam.current_node().statistics())
