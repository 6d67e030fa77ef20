"""The chat's admin page with two nodes: it shows both trees and kills on either node.

The test process is one node of the cluster (it renders the page); the other is a separate
OS process running the chat's application supervisor with its admin agent.
"""

from __future__ import annotations

import re

import trio

import beam
import web
from examples.chat.admin import AGENT, AdminAgent, AdminLive
from supervisors import Application, child_spec
from tests.support.nodes import redis_server, start_node

STEPS = "tests.examples.admin_steps"


async def test_the_admin_page_shows_every_node_and_kills_on_another() -> None:
    with redis_server() as redis:
        async with start_node(redis.url, "far", heartbeat=0.2, timeout=1.0) as far:
            worker = (await far.call("run", fn=f"{STEPS}:start_chat_tree"))["result"]
            async with beam.open_node(name="here", cluster=redis.url):
                app = Application("chat.sup", [child_spec(AdminAgent, name=AGENT)])
                await app.start()
                view = await web.testing.live(AdminLive, session={"admin": True})
                assert '<section class="node" id="node-here">' in view.html
                assert '<section class="node" id="node-far">' in view.html
                row = re.search(rf'<tr id="p{worker}@far">(.*?)</tr>', view.html, re.DOTALL)
                assert row is not None
                assert "</td><td>worker</td>" in row.group(1)

                await view.click("kill", {"id": str(worker), "node": "far"})
                assert re.search(r"killed &lt;\d+\.\d+\.0&gt; on far", view.html), view.html
                with trio.fail_after(5):
                    while True:  # the supervisor on far restarts it under a new pid
                        now = (await far.call("run", fn=f"{STEPS}:worker"))["result"]
                        if now not in (None, worker):
                            break
                        await trio.sleep(0.05)
                # The rules hold on the other node too: its application supervisor is refused.
                await view.click("kill", {"id": "1", "node": "far"})
                assert "refused" in view.html
                await view.click("kill", {"id": "1", "node": "nowhere"})
                assert "is not a node of this cluster" in view.html
                # A node that goes away is shown as unreachable, not as an error.
                far.process.kill()
                with trio.fail_after(8):  # this node's default timeout is 5 s
                    while "far" in beam.nodes():  # noqa: ASYNC110 - heartbeats time out
                        await trio.sleep(0.05)
                with trio.fail_after(5):  # the next refresh shows this node alone
                    while 'id="node-far"' in view.html:
                        beam.send(view.pid, "refresh")
                        await view.sync()
                        await trio.sleep(0.05)
                await app.stop()
