"""A LiveView with an upload (``allow_upload``), for the upload tests: pick files, see each
one's progress and errors, cancel one, save (``consume_uploaded_entries``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import web


class Attach(web.LiveView):
    template = (
        '<form id="up" phx-change="validate" phx-submit="save">'
        "{{ live_file_input(uploads.photo) }}"
        "{% for entry in uploads.photo.entries %}"
        '<div class="entry" data-name="{{ entry.name }}"><span class="name">{{ entry.name }}</span>'
        '<span class="progress">{{ entry.progress }}</span>'
        "{% for problem in upload_errors(uploads.photo, entry) %}"
        '<p class="upload-error">{{ problem }}</p>{% endfor %}'
        '<button type="button" class="cancel" phx-click="cancel" phx-value-ref="{{ entry.ref }}">'
        "cancel</button></div>{% endfor %}"
        "{% for problem in upload_errors(uploads.photo) %}"
        '<p class="upload-error">{{ problem }}</p>{% endfor %}'
        '<div id="drop" phx-drop-target="{{ uploads.photo.ref }}">or drop files here</div>'
        '<button id="save">Save</button></form>'
        '<ul id="saved">{% for line in saved %}<li>{{ line }}</li>{% endfor %}</ul>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.allow_upload(
            "photo", accept=(".png", ".txt"), max_entries=2, max_file_size=200_000,
            chunk_size=16_000,
        )
        socket.assign(saved=())

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "cancel":
            socket.cancel_upload("photo", value["ref"])
        elif event == "save":

            def store(path: str, entry: Any) -> str:
                with open(path, "rb") as file:
                    digest = hashlib.sha256(file.read()).hexdigest()[:12]
                return f"{entry.name} {entry.size} {digest}"

            saved = socket.consume_uploaded_entries("photo", store)
            socket.assign(saved=(*socket.assigns["saved"], *saved))


class AutoAttach(web.LiveView):
    """An upload that starts as soon as a file is picked, consumed when it is done."""

    template = (
        '<form id="auto" phx-change="validate">{{ live_file_input(uploads.doc) }}</form>'
        '<ul id="saved">{% for line in saved %}<li>{{ line }}</li>{% endfor %}</ul>'
    )

    async def mount(
        self, params: Mapping[str, Any], session: Mapping[str, Any], socket: web.LiveSocket
    ) -> None:
        socket.allow_upload("doc", accept="*", auto_upload=True, chunk_size=10_000)
        socket.assign(saved=())

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        pass  # validate: the entries are listed and checked by the server itself

    async def handle_progress(self, name: str, entry: Any, socket: web.LiveSocket) -> None:
        if entry.done:
            saved = socket.consume_uploaded_entries(name, lambda path, e: f"{e.name} {e.size}")
            socket.assign(saved=(*socket.assigns["saved"], *saved))
