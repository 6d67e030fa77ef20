"""The admin page shows the endpoint's supervision tree (issue 18): ``web.endpoint`` with
the Channels pools (``web.socket_sup``) and then the listener (``web.listener``) under it,
in start order; the listener stops first, so it is shown last."""

from __future__ import annotations

import re
from pathlib import Path

import beam
import web
from web.channels._pools import TREE
from web.http._listener import ENDPOINT, LISTENER

from ..support.chat import chat_server


async def test_the_admin_page_shows_the_listener_under_the_endpoint_tree(tmp_path: Path) -> None:
    from examples.chat.admin import AdminLive
    from examples.chat.model import Chat, User

    async with chat_server(tmp_path):
        users = {u.username: str(u.id) for u in await Chat.read(User)}
        view = await web.testing.live(AdminLive, session={"user_id": users["alice"], "admin": True})
        rows = re.findall(r'<tr id="p(\d+)">(.*?)</tr>', view.html, re.DOTALL)
        order = [int(pid) for pid, _ in rows]
        depth = {
            int(pid): int(re.search(r"padding-left: (\d+)px", row).group(1))  # type: ignore[union-attr]
            for pid, row in rows
        }
        named = {}
        for name in (ENDPOINT, TREE, LISTENER):
            pid = beam.whereis(name)
            assert pid is not None, name
            assert f"</td><td>{name}</td>" in dict(rows)[str(pid.id)]
            named[name] = pid.id
        endpoint, pools, listener = named[ENDPOINT], named[TREE], named[LISTENER]
        assert depth[pools] == depth[listener] == depth[endpoint] + 16
        # Shown under the tree in start order: the pools (and all below them), then the
        # listener, which the tree stops first.
        assert order.index(endpoint) < order.index(pools) < order.index(listener)
        below_pools = order[order.index(pools) + 1 : order.index(listener)]
        assert below_pools
        assert all(depth[p] > depth[pools] for p in below_pools)
