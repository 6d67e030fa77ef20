"""Test channels and LiveViews in-process, without a server or a browser.

:func:`join` starts a channel as a connection would (Phoenix's ChannelTest) and :func:`live`
mounts a LiveView (Phoenix's LiveViewTest); see :mod:`web.channels.testing` and
:mod:`web.live.testing`::

    async def test_counter():
        async with beam.open_node():
            view = await web.testing.live(Counter)
            await view.click("inc")
            assert "<h1>1</h1>" in view.html
"""

from .channels.testing import ChannelClient as ChannelClient
from .channels.testing import JoinRefused as JoinRefused
from .channels.testing import join as join
from .live.testing import LiveViewClient as LiveViewClient
from .live.testing import live as live

__all__ = ["ChannelClient", "JoinRefused", "LiveViewClient", "join", "live"]
