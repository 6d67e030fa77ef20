"""The operator's page: every process of the node, live, with a button to kill any of them.

It refreshes once a second (a timer message to the view's own process). Killing a process
shows "let it crash" at work: a supervised one comes back with a new pid, a LiveView reloads
its state, a channel's client rejoins. Only the users listed in ``CHAT_ADMINS`` (default:
``alice``) may open it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import beam
import web

from .model import Chat, User

REFRESH_SECONDS = 1.0

TEMPLATE = """<div class="admin">
<h1>Processes <small>{{ stats.processes }} alive · {{ stats.spawned }} spawned ·
  {{ stats.crashes }} crashed</small></h1>
<p><a href="/">back to the chat</a>{% if killed %} · killed {{ killed }}{% endif %}</p>
<table id="processes"><thead><tr><th>pid</th><th>name</th><th>started as</th><th>status</th>
<th>mailbox</th><th>handled</th><th>links</th><th></th></tr></thead><tbody>
{%- for p in rows %}<tr id="p{{ p.id }}"><td>{{ p.pid }}</td><td>{{ p.name }}</td>
<td class="call">{{ p.call }}</td><td>{{ p.status }}</td><td>{{ p.queue }}</td>
<td>{{ p.handled }}</td><td>{{ p.links }}</td><td><button class="kill" phx-click="kill"
 phx-value-id="{{ p.id }}">kill</button></td></tr>{% endfor -%}
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


def _rows() -> list[dict[str, Any]]:
    rows = []
    for pid in beam.processes():
        info = beam.process_info(pid)
        if info is None:
            continue
        rows.append(
            {
                "id": pid.id,
                "pid": str(pid),
                "name": info.registered_name or "",
                "call": info.initial_call.rsplit(".", 2)[-2:][-1] if info.initial_call else "",
                "status": info.status,
                "queue": info.message_queue_len,
                "handled": info.messages_handled,
                "links": len(info.links),
            }
        )
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
        self._refresh(socket)
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
            self._refresh(socket)

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        if message == "refresh":
            self._refresh(socket)
            beam.send_after(beam.self(), "refresh", REFRESH_SECONDS)

    def _refresh(self, socket: web.LiveSocket) -> None:
        socket.assign(rows=_rows(), stats=beam.current_node().statistics())
