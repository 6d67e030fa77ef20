"""The operator's page: the node's process tree, live, with a button to kill any process.

Each process is shown under the process that started it (a supervisor's children under it),
with its pid, registered name, mailbox length, messages handled, and, for a supervised child,
how often its supervisor restarted it. It refreshes once a second (a timer message to the
view's own process). Killing a process shows "let it crash" at work: a supervised one comes
back with a new pid (and its restart count goes up), a LiveView reloads its state, a
channel's client rejoins. Only the users listed in ``CHAT_ADMINS`` (default:
``alice``) may open it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import beam
import web
from supervisors import Supervisor

from .model import Chat, User

REFRESH_SECONDS = 1.0

TEMPLATE = """<div class="admin">
<h1>Processes <small>{{ stats.processes }} alive · {{ stats.spawned }} spawned ·
  {{ stats.crashes }} crashed</small></h1>
<p><a href="/">back to the chat</a>{% if killed %} · killed {{ killed }}{% endif %}</p>
<table id="processes"><thead><tr><th>process</th><th>name</th><th>started as</th>
<th>status</th><th>mailbox</th><th>handled</th><th>links</th><th>restarts</th><th></th></tr>
</thead><tbody>
{%- for p in rows %}<tr id="p{{ p.id }}"><td style="padding-left: {{ 8 + p.depth * 16 }}px">
{{- "└ " if p.depth else "" }}{{ p.pid }}</td><td>{{ p.name }}</td>
<td class="call">{{ p.call }}</td><td>{{ p.status }}</td><td>{{ p.queue }}</td>
<td>{{ p.handled }}</td><td>{{ p.links }}</td><td class="restarts">{{ p.restarts }}</td>
<td><button class="kill" phx-click="kill" phx-value-id="{{ p.id }}">kill</button></td></tr>
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


def admins() -> set[str]:
    """The usernames allowed on this page."""
    return {n.strip() for n in os.environ.get("CHAT_ADMINS", "alice").split(",") if n.strip()}


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
        users = await Chat.read(User, filter={"id": uuid.UUID(session["user_id"])}, limit=1)
        if not users or users[0].username not in admins():
            socket.redirect("/")
            return
        await self._refresh(socket)
        socket.assign(killed="")
        if socket.connected:
            beam.send_after(beam.self(), "refresh", REFRESH_SECONDS)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "kill":
            target = beam.Pid(int(value.get("id", 0)))
            if target == beam.self():
                socket.assign(killed="not this page's own process")
                return
            beam.exit(target, "kill")
            socket.assign(killed=str(target))
            await self._refresh(socket)

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        if message == "refresh":
            await self._refresh(socket)
            beam.send_after(beam.self(), "refresh", REFRESH_SECONDS)

    async def _refresh(self, socket: web.LiveSocket) -> None:
        socket.assign(rows=await _rows(), stats=beam.current_node().statistics())
