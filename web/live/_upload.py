"""File uploads, as the official LiveView client speaks them (``allow_upload``).

A view allows an upload in ``mount``; its template renders the input with
``live_file_input(uploads.avatar)``. When the user picks files, the form's ``phx-change``
event carries their names, sizes and types: the server lists them as *entries* and checks
each against the upload's limits (accepted types, size, count), so the page can show errors
per entry before anything is sent. On submit (or at once, with ``auto_upload``) the client
asks to upload them (``allow_upload``): each valid entry gets a signed token, joins the
channel ``lvu:<entry ref>`` with it and pushes the file in binary chunks, which the
:class:`UploadChannel` writes to a file of the view's, refusing any byte past the upload's
size limit whatever the client declared; the client reports progress to the view as it
goes. The view's ``consume_uploaded_entries`` then hands each finished file to a function
(a *sink*: store it where it belongs) and forgets it::

    class Profile(web.LiveView):
        template = '''<form phx-change="validate" phx-submit="save">
            {{ live_file_input(uploads.avatar) }}
            {% for entry in uploads.avatar.entries %}
              {{ entry.name }} {{ entry.progress }}%
              {% for error in upload_errors(uploads.avatar, entry) %}{{ error }}{% endfor %}
              <button type="button" phx-click="cancel" phx-value-ref="{{ entry.ref }}">x</button>
            {% endfor %}<button>Save</button></form>'''

        async def mount(self, params, session, socket):
            socket.allow_upload("avatar", accept=(".png", ".jpg"), max_file_size=2_000_000)

        async def handle_event(self, event, value, socket):
            if event == "cancel":
                socket.cancel_upload("avatar", value["ref"])
            elif event == "save":
                socket.consume_uploaded_entries("avatar", store_avatar)
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final

from markupsafe import Markup, escape

from ..channels import Channel, ChannelReply, ChannelSocket, InvalidToken, Stop, Token, error, ok

__all__ = [
    "UPLOAD_HELPERS",
    "UploadChannel",
    "UploadConfig",
    "UploadEntry",
    "live_file_input",
    "store_in",
    "upload_errors",
]

logger = logging.getLogger("web.live")

#: The salt of upload tokens (one per entry: where its file goes and how big it may be).
UPLOAD_SALT: Final = "live upload"
#: How long an entry's token lets its client start uploading.
TOKEN_MAX_AGE: Final = 600.0
#: What the client is told to wait at most for a chunk's answer, in milliseconds.
CHUNK_TIMEOUT_MS: Final = 10_000

#: The errors of entries and uploads, as a person reads them.
MESSAGES: Final = {
    "too_large": "the file is too large",
    "not_accepted": "this type of file is not accepted",
    "too_many_files": "too many files",
    "external_client_failure": "the upload failed",
    "file_size_limit_exceeded": "the file is too large",
}


@dataclass(frozen=True, slots=True)
class UploadEntry:
    """One file the user picked: what the client said of it, its progress and its errors.

    >>> entry.name, entry.progress, entry.done, entry.errors
    ('cat.png', 100, True, ())
    """

    ref: str
    name: str
    size: int
    type: str
    progress: int = 0
    done: bool = False
    preflighted: bool = False
    errors: tuple[str, ...] = ()
    #: Where its bytes go (set when it is allowed to upload).
    path: str = ""

    @property
    def valid(self) -> bool:
        """Whether the entry has no error."""
        return not self.errors


@dataclass(frozen=True, slots=True)
class UploadConfig:
    """One upload a view allows (``socket.allow_upload``), with its entries; a template reads
    it as ``uploads.<name>``."""

    name: str
    ref: str
    accept: tuple[str, ...]
    max_entries: int
    max_file_size: int
    chunk_size: int
    auto_upload: bool
    entries: tuple[UploadEntry, ...] = ()
    #: Errors of the upload as a whole (``too_many_files``).
    errors: tuple[str, ...] = ()
    #: Called as ``progress(name, entry, socket)`` (sync or async) when an entry progresses,
    #: instead of the view's ``handle_progress`` (Phoenix's ``allow_upload(progress: ...)``).
    progress: Callable[..., Any] | None = None

    @classmethod
    def new(
        cls,
        name: str,
        *,
        accept: Sequence[str] | str,
        max_entries: int,
        max_file_size: int,
        chunk_size: int,
        auto_upload: bool,
        progress: Callable[..., Any] | None = None,
    ) -> UploadConfig:
        """A fresh upload named *name* (see :meth:`~web.LiveSocket.allow_upload`)."""
        kinds = (accept,) if isinstance(accept, str) else tuple(accept)
        if not kinds:
            raise ValueError(f"allow_upload({name!r}): accept lists no type (use '*' for any)")
        ref = f"phx-{secrets.token_urlsafe(9)}"
        return cls(
            name, ref, kinds, max_entries, max_file_size, chunk_size, auto_upload, progress=progress
        )

    def accepts(self, name: str, kind: str) -> bool:
        """Whether a file called *name*, of MIME type *kind*, is of an accepted type."""
        if "*" in self.accept:
            return True
        extension = os.path.splitext(name)[1].lower()
        guessed = mimetypes.guess_type(name)[0] or ""
        for accepted in self.accept:
            accepted = accepted.lower()
            if accepted.startswith("."):
                if extension == accepted:
                    return True
            elif accepted.endswith("/*"):
                prefix = accepted[:-1]
                if kind.startswith(prefix) and guessed.startswith(prefix):
                    return True
            elif kind == accepted and guessed == accepted:
                return True
        return False

    def listed(self, entries: Sequence[Any]) -> UploadConfig:
        """The upload with the client's list of picked files (a form event's ``uploads``):
        each checked against the limits; entries already known keep their state."""
        known = {entry.ref: entry for entry in self.entries}
        listed = []
        for raw in entries:
            if not isinstance(raw, Mapping) or not isinstance(raw.get("ref"), str):
                continue
            ref = raw["ref"]
            if ref in known:
                listed.append(known[ref])
                continue
            size = raw.get("size")
            size = size if isinstance(size, int) and not isinstance(size, bool) else -1
            name = str(raw.get("name") or ref)[:255]
            kind = str(raw.get("type") or "")[:255]
            errors = []
            if size < 0 or size > self.max_file_size:
                errors.append("too_large")
            if not self.accepts(name, kind):
                errors.append("not_accepted")
            listed.append(UploadEntry(ref, name, size, kind, errors=tuple(errors)))
        too_many = ("too_many_files",) if len(listed) > self.max_entries else ()
        return replace(self, entries=tuple(listed), errors=too_many)

    def entry(self, ref: str) -> UploadEntry | None:
        """The entry *ref*, if listed."""
        return next((entry for entry in self.entries if entry.ref == ref), None)

    def with_entry(self, entry: UploadEntry) -> UploadConfig:
        """The upload with *entry* replacing the entry of the same ref."""
        return replace(
            self, entries=tuple(entry if e.ref == entry.ref else e for e in self.entries)
        )

    def without(self, ref: str) -> UploadConfig:
        """The upload without the entry *ref* (its file, if any, is deleted)."""
        entry = self.entry(ref)
        if entry is not None and entry.path:
            _remove(entry.path)
        kept = tuple(e for e in self.entries if e.ref != ref)
        too_many = ("too_many_files",) if len(kept) > self.max_entries else ()
        return replace(self, entries=kept, errors=too_many)


def sign_entry(secret_key: str, path: str, entry: UploadEntry, limit: int) -> str:
    """The token an entry's client joins ``lvu:<ref>`` with: where its bytes go, its limit."""
    return Token.sign(secret_key, UPLOAD_SALT, {"path": path, "ref": entry.ref, "max": limit})


class UploadChannel(Channel):
    """``lvu:<entry ref>``: receives one entry's file in chunks and writes it where its
    token says, refusing every byte past the upload's size limit."""

    secret_key: ClassVar[str] = ""

    def __init__(self) -> None:
        self.path = ""
        self.limit = 0
        self.written = 0

    async def join(
        self, topic: str, params: Mapping[str, Any], socket: ChannelSocket
    ) -> ChannelReply | None:
        token = params.get("token")
        try:
            data = Token.verify(
                self.secret_key, UPLOAD_SALT, str(token), max_age=TOKEN_MAX_AGE
            )
        except InvalidToken:
            return error({"reason": "invalid_token"})
        if not isinstance(data, dict) or topic != f"lvu:{data.get('ref')}":
            return error({"reason": "invalid_token"})
        self.path, self.limit = str(data["path"]), int(data["max"])
        _write(self.path, b"", "wb")  # a rejoin starts the file afresh
        return ok()

    async def handle_in(
        self, event: str, payload: Any, socket: ChannelSocket
    ) -> ChannelReply | Stop | None:
        if event != "chunk" or not isinstance(payload, bytes):
            return error({"reason": "expected binary chunks"})
        if self.written + len(payload) > self.limit:
            _remove(self.path)
            return Stop("normal", error({"reason": "file_size_limit_exceeded"}))
        _write(self.path, payload, "ab")  # one chunk (64 KB by default): a short, bounded write
        self.written += len(payload)
        return ok()


def live_file_input(upload: UploadConfig, **attrs: Any) -> Markup:
    """The file input of *upload*, as the client's upload hook expects it (the entries'
    state in ``data-phx-*`` attributes). Keyword arguments become attributes.

    >>> live_file_input(uploads.avatar, class_="picker")
    Markup('<input id="phx-..." type="file" name="avatar" accept=".png,.jpg" ...')
    """
    entries = upload.entries

    def refs(selected: Sequence[UploadEntry]) -> str:
        return ",".join(entry.ref for entry in selected)

    accept = "" if "*" in upload.accept else ",".join(upload.accept)
    parts = [
        f'id="{escape(upload.ref)}"',
        'type="file"',
        f'name="{escape(upload.name)}"',
        f'accept="{escape(accept)}"' if accept else "",
        'data-phx-hook="Phoenix.LiveFileUpload"',
        'data-phx-update="ignore"',
        f'data-phx-upload-ref="{escape(upload.ref)}"',
        f'data-phx-active-refs="{escape(refs(entries))}"',
        f'data-phx-done-refs="{escape(refs([e for e in entries if e.done]))}"',
        f'data-phx-preflighted-refs="{escape(refs([e for e in entries if e.preflighted]))}"',
        f'data-phx-error-refs="{escape(refs([e for e in entries if e.errors]))}"',
        "data-phx-auto-upload" if upload.auto_upload else "",
        "multiple" if upload.max_entries > 1 else "",
    ]
    for key, value in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        if value is True:
            parts.append(str(escape(name)))
        elif value is not None and value is not False:
            parts.append(f'{escape(name)}="{escape(value)}"')
    return Markup(f"<input {' '.join(part for part in parts if part)}>")


def upload_errors(upload: UploadConfig, entry: UploadEntry | None = None) -> list[str]:
    """The errors of *entry* (or of the upload as a whole), as a person reads them.

    >>> upload_errors(uploads.avatar, entry)
    ['the file is too large']
    """
    codes = upload.errors if entry is None else entry.errors
    return [MESSAGES.get(code, code) for code in codes]


def store_in(directory: str | os.PathLike[str]) -> Callable[[str, UploadEntry], str]:
    """The default sink of :meth:`~web.LiveSocket.consume_uploaded_entries`: move each file
    into *directory* under a fresh random name that keeps the file's extension (never the
    name the client gave: it could be anything), and return that path.

    >>> paths = socket.consume_uploaded_entries("photo", web.store_in("media"))
    """
    target = os.fspath(directory)

    def store(path: str, entry: UploadEntry) -> str:
        os.makedirs(target, exist_ok=True)
        extension = os.path.splitext(entry.name)[1].lower()
        if not extension[1:].isalnum() or len(extension) > 10:
            extension = ""
        stored = os.path.join(target, secrets.token_urlsafe(12) + extension)
        shutil.move(path, stored)
        return stored

    return store


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _write(path: str, data: bytes, mode: str) -> None:
    with open(path, mode) as file:
        file.write(data)


#: Template globals for uploads (with the form helpers in every LiveView template).
UPLOAD_HELPERS: Final[dict[str, Any]] = {
    "live_file_input": live_file_input,
    "upload_errors": upload_errors,
}
