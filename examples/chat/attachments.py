"""Files in messages: what the composer accepts, how a finished upload becomes an attachment,
and how attachments are served.

The composer's upload (``files``, :func:`allow`) takes images (PNG, JPEG, GIF, WebP) and a few
other kinds of file (PDF, plain text, CSV, ZIP): at most :data:`MAX_ATTACHMENTS` per message,
each at most :data:`MAX_FILE_SIZE` bytes. The server holds to these whatever the client says:
the upload refuses an entry whose name or declared type is not accepted, or that is too large
(and stops writing at the limit, whatever size was declared), or one too many. When the
message is sent, :func:`store` moves each finished file into the chat's directory through
``web.store_in`` (the default local-directory sink: a fresh random name, never the client's)
and looks inside it: an image must be one (Pillow opens it; its thumbnail, at most
:data:`THUMB` pixels a side, is written beside it), a PDF or ZIP must start as one, text must
be UTF-8. A file that is not what its name says is refused, and nothing of it is kept.

``GET /attachment?message=<id>&file=<key>`` (``&size=thumb`` for the thumbnail) serves one
to the room's members only (the message must be readable by the signed-in user, as the
domain's policy says), with its checked type: images inline, any other file as a download.

A deleted message's files go with it: the page deletes them at once (:func:`forget`), and
the nightly pruning (:mod:`examples.chat.background`) runs :func:`sweep` for the rest (a
message deleted through the API or a channel, a file stored for a message that was never
written), once no message refers to them and they are a day old.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import trio
from PIL import Image, ImageOps, UnidentifiedImageError

import domain
import web

from . import sessions
from .accounts import SESSION_COOKIE
from .model import MAX_ATTACHMENTS, Chat, Message

__all__ = [
    "ACCEPT",
    "MAX_ATTACHMENTS",
    "MAX_FILE_SIZE",
    "Refused",
    "allow",
    "discard",
    "entries_waiting",
    "forget",
    "inspect_file",
    "serve",
    "shown",
    "store",
    "sweep",
]

UPLOAD: Final = "files"
IMAGES: Final = (".png", ".jpg", ".jpeg", ".gif", ".webp")
FILES: Final = (".pdf", ".txt", ".csv", ".zip")
ACCEPT: Final = (*IMAGES, *FILES)
#: The largest file a message carries (bytes).
MAX_FILE_SIZE: Final = 5_000_000
#: The longest side of a thumbnail (pixels).
THUMB: Final = 320
#: A bigger picture than this many pixels is refused (a small file can decode to a huge one).
MAX_PIXELS: Final = 40_000_000
_FORMATS: Final = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
_MAGIC: Final = {".pdf": b"%PDF-", ".zip": b"PK"}
_TEXT_TYPES: Final = {".txt": "text/plain", ".csv": "text/csv"}
_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{8,40}(\.[a-z0-9]{1,10})?$")
#: An image's thumbnail is stored beside it, named ``<key>.thumb.webp``.
_THUMB_SUFFIX: Final = ".thumb.webp"


class Refused(Exception):
    """A file was not what its name said; ``str(exc)`` says which, in plain words."""


def allow(socket: web.LiveSocket) -> None:
    """Allow the composer's upload: picked files start uploading at once.

    >>> allow(socket)   # in mount; the template reads uploads.files
    """
    socket.allow_upload(
        UPLOAD,
        accept=ACCEPT,
        max_entries=MAX_ATTACHMENTS,
        max_file_size=MAX_FILE_SIZE,
        auto_upload=True,
    )


async def store(socket: web.LiveSocket, directory: Path) -> list[dict[str, Any]]:
    """Move the upload's finished files into *directory* (``web.store_in``), check each and
    make the thumbnails of images (on a worker thread): what the message keeps of them.
    Raises :class:`Refused`, keeping nothing, when one is not what its name says.

    >>> files = await store(socket, Path(".chat-data/attachments"))
    """
    sink = web.store_in(directory)

    def keep(path: str, entry: web.UploadEntry) -> tuple[str, web.UploadEntry]:
        stored = sink(path, entry)
        os.utime(stored)  # stored now (the move keeps the upload's time): see sweep()
        return stored, entry

    moved: list[tuple[str, web.UploadEntry]] = socket.consume_uploaded_entries(UPLOAD, keep)
    try:
        return [await trio.to_thread.run_sync(inspect_file, path, entry) for path, entry in moved]
    except Refused:
        for path, _ in moved:
            _discard(path)
        raise


def inspect_file(path: str, entry: web.UploadEntry) -> dict[str, Any]:
    """What a message keeps of the uploaded file at *path* (blocking: a worker thread runs
    it); raises :class:`Refused` when it is not what its name says.

    >>> inspect_file("/data/attachments/Xy3k....png", entry)["kind"]
    'image'
    """
    extension = os.path.splitext(entry.name)[1].lower()
    found: dict[str, Any] = {
        "key": os.path.basename(path),
        "name": entry.name[:200],
        "size": os.path.getsize(path),
        "kind": "file",
        "type": _TEXT_TYPES.get(extension) or mimetypes.guess_type(entry.name)[0] or "",
        "width": None,
        "height": None,
    }
    if extension in IMAGES:
        return {**found, **_thumbnail(path, entry.name)}
    with open(path, "rb") as file:
        head = file.read(65_536)
    magic = _MAGIC.get(extension)
    if magic is not None and not head.startswith(magic):
        raise Refused(f"{entry.name} is not a {extension[1:].upper()} file")
    if extension in _TEXT_TYPES:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the end
                raise Refused(f"{entry.name} is not plain text") from None
    return found


def _thumbnail(path: str, name: str) -> dict[str, Any]:
    """Check that *path* is an image; write its thumbnail beside it (``<key>.thumb.webp``)."""
    try:
        with Image.open(path) as image:
            kind = _FORMATS.get(image.format or "")
            if kind is None or image.width * image.height > MAX_PIXELS:
                raise Refused(f"{name} is not a picture the chat can show")
            image.seek(0)
            upright = ImageOps.exif_transpose(image)  # a phone's photo, turned as it was taken
            alpha = "A" in upright.getbands() or upright.mode == "P"
            small = upright.convert("RGBA" if alpha else "RGB")
            small.thumbnail((THUMB, THUMB))
            small.save(path + _THUMB_SUFFIX, "WEBP", quality=80)
            return {"kind": "image", "type": kind, "width": small.width, "height": small.height}
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise Refused(f"{name} is not a picture") from None


def _discard(path: str) -> None:
    for each in (path, path + _THUMB_SUFFIX):
        with contextlib.suppress(OSError):
            os.remove(each)


def discard(directory: Path, attachment: Mapping[str, Any]) -> None:
    """Delete one stored file (and its thumbnail).

    >>> discard(Path(".chat-data/attachments"), files[0])
    """
    key = str(attachment.get("key", ""))
    if _KEY.fullmatch(key):
        _discard(str(directory / key))


def forget(directory: Path, record: Message) -> None:
    """Delete the files of a deleted message (blocking: a few unlinks).

    >>> await trio.to_thread.run_sync(forget, directory, deleted)
    """
    for attachment in record.attachments or ():
        discard(directory, attachment)


def sweep(directory: Path, keep: Collection[str], before: float) -> list[str]:
    """Delete the stored files no message refers to (blocking: a worker thread runs it):
    each file of *directory* named by a key that is not in *keep*, with its thumbnail, when
    neither was modified after *before* (a POSIX time: a file being sent is not referred to
    yet). Anything not named like a key (or a key's thumbnail) is left alone. The names of
    the files deleted, sorted.

    >>> await trio.to_thread.run_sync(sweep, media, {"kept1234abcd.png"}, time.time() - 86400)
    ['gone5678efgh.png', 'gone5678efgh.png.thumb.webp']
    """
    found: dict[str, list[str]] = {}
    newest: dict[str, float] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                key = entry.name.removesuffix(_THUMB_SUFFIX)
                if key in keep or not _KEY.fullmatch(key):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except OSError:  # gone meanwhile
                    continue
                found.setdefault(key, []).append(entry.name)
                newest[key] = max(newest.get(key, modified), modified)
    except FileNotFoundError:  # nothing was ever stored
        return []
    swept = []
    for key, names in found.items():
        if newest[key] >= before:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                os.remove(directory / name)
                swept.append(name)
    return sorted(swept)


def shown(record: Message) -> list[dict[str, Any]]:
    """The message's attachments as the page shows them: links, thumbnails, sizes.

    >>> [a["name"] for a in shown(record)]
    ['cat.png']
    """
    found = []
    for attachment in record.attachments or ():
        query = {"message": str(record.id), "file": str(attachment["key"])}
        url = "/attachment?" + urlencode(query)
        image = attachment["kind"] == "image"
        found.append(
            {
                "name": attachment["name"],
                "url": url,
                "thumb": url + "&size=thumb" if image else "",
                "image": image,
                "width": attachment["width"],
                "height": attachment["height"],
                "size": _size(int(attachment["size"])),
            }
        )
    return found


def _size(count: int) -> str:
    """``1234567`` -> ``'1.2 MB'``."""
    if count < 1000:
        return f"{count} B"
    if count < 1_000_000:
        return f"{count / 1000:.0f} kB"
    return f"{count / 1_000_000:.1f} MB"


def serve(directory: Path) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``GET /attachment`` for the files under *directory* (see the module
    documentation): 404 for anyone the message is hidden from, as for a file nobody has.

    >>> endpoint.get("/attachment", serve(Path(".chat-data/attachments")))
    """

    async def attachment(request: web.Request) -> web.Response:
        record = await sessions.lookup(request.cookie(SESSION_COOKIE))
        if record is None or record.user is None:
            return _plain(401, "sign in to see attachments")
        message_id = request.query.get("message", [""])[-1]
        key = request.query.get("file", [""])[-1]
        thumb = request.query.get("size", [""])[-1] == "thumb"
        try:
            wanted = uuid.UUID(message_id)
        except ValueError:
            return _plain(404, "no such attachment")
        try:
            message = await Chat.get(Message, wanted, actor=record.user)
        except domain.NotFound:  # not there, or not a member of its room: the same answer
            return _plain(404, "no such attachment")
        found = next((a for a in message.attachments or () if a.get("key") == key), None)
        if found is None or not _KEY.fullmatch(key) or (thumb and found["kind"] != "image"):
            return _plain(404, "no such attachment")
        path = directory / (key + _THUMB_SUFFIX if thumb else key)
        try:
            body = await trio.to_thread.run_sync(path.read_bytes)
        except OSError:
            return _plain(404, "that file is gone")
        kind = "image/webp" if thumb else str(found["type"] or "application/octet-stream")
        headers: list[tuple[str, str]] = [
            ("content-type", kind),
            ("cache-control", "private, max-age=86400"),
            ("x-content-type-options", "nosniff"),
            ("content-security-policy", "default-src 'none'; sandbox"),
        ]
        if found["kind"] != "image":  # only checked pictures show in the page
            name = quote(str(found["name"]))
            headers.append(("content-disposition", f"attachment; filename*=UTF-8''{name}"))
        return web.Response(200, body, tuple(headers))

    return attachment


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status, text.encode(), (("content-type", "text/plain; charset=utf-8"),))


def entries_waiting(upload: web.UploadConfig) -> Sequence[web.UploadEntry]:
    """The entries that are neither refused nor finished yet (a send waits for them).

    >>> entries_waiting(socket.upload("files"))
    [UploadEntry(ref='0', name='cat.png', ..., progress=40, ...)]
    """
    return [e for e in upload.entries if e.valid and not e.done]
