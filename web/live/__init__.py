"""web.live: LiveView, server-rendered pages whose state lives in a process.

A :class:`LiveView` holds a template (Jinja2 syntax, compiled to rendered trees with change
tracking) and callbacks; a :class:`LiveRouter` puts views on an endpoint, from outside, as
Phoenix LiveView extends Phoenix's router. The page renders over HTTP first; the official
``phoenix_live_view`` client then joins over the ``/live`` socket (a Channels socket) and the
view runs in its own process, sending back only what changed::

    class Counter(web.LiveView):
        template = '<button phx-click="inc">{{ count }}</button>'

        async def mount(self, params, session, socket):
            socket.assign(count=0)

        async def handle_event(self, event, value, socket):
            socket.assign(count=socket.assigns["count"] + 1)

    web.LiveRouter(endpoint).live("/counter", Counter)

This layer builds on :mod:`web.channels` and :mod:`web.http`; :mod:`web.live.testing` mounts
views without a browser. Everything here is also exported by :mod:`web` itself.
"""

from ._component import LiveComponent as LiveComponent
from ._form import FormData as FormData
from ._form import FormField as FormField
from ._form import form_errors as form_errors
from ._form import form_field as form_field
from ._form import form_input as form_input
from ._page import DEFAULT_LAYOUT as DEFAULT_LAYOUT
from ._page import LiveRouter as LiveRouter
from ._upload import UploadConfig as UploadConfig
from ._upload import UploadEntry as UploadEntry
from ._upload import live_file_input as live_file_input
from ._upload import store_in as store_in
from ._upload import upload_errors as upload_errors
from ._view import LIVEVIEW_VERSION as LIVEVIEW_VERSION
from ._view import AsyncResult as AsyncResult
from ._view import LiveSocket as LiveSocket
from ._view import LiveView as LiveView

__all__ = (
    "DEFAULT_LAYOUT",
    "LIVEVIEW_VERSION",
    "AsyncResult",
    "FormData",
    "FormField",
    "LiveComponent",
    "LiveRouter",
    "LiveSocket",
    "LiveView",
    "UploadConfig",
    "UploadEntry",
    "form_errors",
    "form_field",
    "form_input",
    "live_file_input",
    "store_in",
    "upload_errors",
)
