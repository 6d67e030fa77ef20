"""The API's interactive docs page: Swagger UI (npm's ``swagger-ui-dist``, from
``node_modules``, no CDN) showing the API's own OpenAPI document::

    serve_docs(endpoint, "/api", "Boards")     # GET /api/docs, /api/docs/init.js, assets
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from .http import Endpoint, Response

__all__ = ["serve_docs", "swagger_ui"]

_HTML = (("content-type", "text/html; charset=utf-8"),)
_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}: API docs</title>
<link rel="stylesheet" href="{prefix}/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{prefix}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{prefix}/docs/init.js"></script>
</body>
</html>
"""
_DOCS_JS = "window.ui = SwaggerUIBundle({{url: {spec}, dom_id: '#swagger-ui'}});\n"
_NO_DOCS = (
    "<!doctype html><title>API docs</title><p>Swagger UI is not installed: run <code>npm ci"
    "</code> (scripts/_setup.sh does) so that node_modules/swagger-ui-dist exists.</p>"
)


def swagger_ui() -> Path | None:
    """The directory of npm's ``swagger-ui-dist`` (in ``$WEB_NODE_MODULES``,
    ``./node_modules`` or beside the web package), or ``None`` when it is not installed.

    >>> swagger_ui()
    PosixPath('/srv/app/node_modules/swagger-ui-dist')
    """
    candidates = [os.environ.get("WEB_NODE_MODULES"), Path.cwd() / "node_modules"]
    candidates.append(Path(__file__).resolve().parents[1] / "node_modules")
    for candidate in candidates:
        if candidate and (Path(candidate) / "swagger-ui-dist" / "swagger-ui-bundle.js").is_file():
            return Path(candidate) / "swagger-ui-dist"
    return None


def serve_docs(endpoint: Endpoint, prefix: str, title: str) -> None:
    """Serve ``GET <prefix>/docs`` (the page), ``<prefix>/docs/init.js`` (what starts Swagger
    UI on ``<prefix>/openapi.json``; no inline script) and ``<prefix>/docs/assets/`` (the
    package's files); without the package the page says how to install it.

    >>> serve_docs(endpoint, "/api", "Chat")
    """
    assets = swagger_ui()
    page = _DOCS_PAGE.format(prefix=prefix, title=html.escape(title)).encode()
    script = _DOCS_JS.format(spec=json.dumps(f"{prefix}/openapi.json")).encode()
    if assets is None:
        page = _NO_DOCS.encode()
    else:
        endpoint.static(f"{prefix}/docs/assets", assets)
    endpoint.get(f"{prefix}/docs", lambda _: Response(200, page, _HTML))
    endpoint.get(
        f"{prefix}/docs/init.js",
        lambda _: Response(200, script, (("content-type", "text/javascript"),)),
    )
