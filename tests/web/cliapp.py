"""An app for the CLI test: a factory that builds the endpoint inside the node."""

from __future__ import annotations

import web


async def make() -> web.Endpoint:
    endpoint = web.Endpoint()
    endpoint.get("/hello", lambda request: web.Response(200, b"hello from the cli"))
    return endpoint
