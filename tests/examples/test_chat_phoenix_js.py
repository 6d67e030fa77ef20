"""The chat's channels driven by the official ``phoenix`` JavaScript client from Node.

``js/chat_user_channel.cjs`` joins ``user:<id>`` (``initial_state``) and a room as alice,
mentions her as bob, and follows the notification and the unread counter through
``mark_all_notifications_read``; this test serves the chat and checks every step's facts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..support.chat import chat_server, socket_token
from ..support.jsclient import require_node_package, run_node_script

SCRIPT = Path(__file__).resolve().parent / "js" / "chat_user_channel.cjs"


async def test_phoenix_js_user_channel_and_room(tmp_path: Path) -> None:
    node = require_node_package("phoenix")
    steps: dict[str, dict[str, Any]] = {}
    async with chat_server(tmp_path) as port:
        alice = await socket_token(port, "alice")
        bob = await socket_token(port, "bob")
        argv = [node, str(SCRIPT), str(port), alice["token"], alice["user_id"], bob["token"]]

        async def on_fact(fact: dict[str, Any]) -> None:
            steps[fact.pop("step")] = fact

        await run_node_script(argv, on_fact)

    assert steps["initial_state"] == {
        "user": "alice",
        "counters": {"unread_notifications": 0},
        "notifications": 0,
        "hasLobby": True,
    }
    mention = steps["mention"]
    assert mention["sent"] == "ok"
    assert mention["message"] == {"author": "bob", "content": "hi @alice", "client_id": "js-1"}
    assert mention["notification"] == {
        "kind": "mention",
        "title": "bob mentioned you",
        "read": False,
    }
    assert mention["counter"] == {"counter": "unread_notifications", "value": 1}
    marked = steps["mark_all_read"]
    assert marked["refreshed"] == {"unread_notifications": 1}
    assert marked["marked"] == {"status": "ok", "response": {"count": 1}}
    assert marked["allRead"] == {"count": 1}
    assert marked["counter"] == {"counter": "unread_notifications", "value": 0}
    assert steps["foreign_user_channel"] == {"refused": {"reason": "unauthorized"}}
