"""Attachments in the chat, in two headless Chromium contexts with the official LiveView
client: a picture uploads with its progress shown, goes with a message, and bob sees its
thumbnail live and after a reload, and can open the original; files refused for their size
and their type say why and are removed; a file dropped on the composer and cancelled is not
sent; a file that is not the
picture its name says is refused on the server. Serving is for the room's members only."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from examples.chat.model import Chat, Message, Room, User

from ..support.chat import TIMEOUT_MS, chat_server, load_page, sign_in
from ..support.http import fetch
from .browser_steps import open_as, with_browser

PICKER = "#composer input[type=file]"

#: Watches the composer's progress bars: each value shown, with its file's name, in order.
WATCH_PROGRESS = """() => {
  window.seenProgress = [];
  new MutationObserver(() => {
    for (const bar of document.querySelectorAll("#uploads progress")) {
      window.seenProgress.push([bar.closest('.upload').dataset.name, bar.value]);
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


#: Drops a text file named args[0] holding args[1] on the composer, as a drag from the desktop.
DROP = """([name, text]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, {type: 'text/plain'}));
  const target = document.querySelector('#composer');
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    const init = {bubbles: true, cancelable: true, dataTransfer: data};
    target.dispatchEvent(new DragEvent(kind, init));
  }
}"""


def picture(width: int = 700, height: int = 500) -> bytes:
    """A PNG of noise (it does not compress: about 1 MB, many chunks)."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def entry_error(page: Any, name: str) -> str:
    entry = f"#uploads .upload[data-name='{name}']"
    page.wait_for_selector(f"{entry} .upload-error", timeout=TIMEOUT_MS)
    text: str = page.inner_text(f"{entry} .upload-error")
    page.click(f"{entry} .cancel")
    page.wait_for_selector(entry, state="detached", timeout=TIMEOUT_MS)
    return text


async def test_a_picture_reaches_the_other_user_and_bad_files_are_refused(tmp_path: Path) -> None:
    photo = picture()

    def steps(browser: Any, base: str) -> dict[str, Any]:
        alice = open_as(browser, base, "alice")
        bob = open_as(browser, base, "bob")
        facts: dict[str, Any] = {}

        big = {"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * 5_000_001}
        alice.set_input_files(PICKER, files=[big])
        facts["too_large"] = entry_error(alice, "huge.png")
        exe = {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}
        alice.set_input_files(PICKER, files=[exe])
        facts["not_accepted"] = entry_error(alice, "tool.exe")

        alice.evaluate(DROP, ["notes.txt", "cancel me"])  # dropped on the composer
        cancelled = "#uploads .upload[data-name='notes.txt']"
        alice.wait_for_selector(cancelled, timeout=TIMEOUT_MS)
        alice.click(f"{cancelled} .cancel")
        alice.wait_for_selector(cancelled, state="detached", timeout=TIMEOUT_MS)

        alice.evaluate(WATCH_PROGRESS)
        cat = {"name": "cat.png", "mimeType": "image/png", "buffer": photo}
        report = {"name": "report.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 x"}
        alice.set_input_files(PICKER, files=[cat, report])
        alice.wait_for_function(
            "(bars => bars.length === 2 && bars.every(p => p.getAttribute('value') === '100'))"
            "([...document.querySelectorAll('#uploads progress')])",
            timeout=TIMEOUT_MS,
        )
        facts["progress"] = alice.evaluate("window.seenProgress")
        alice.fill("#content", "look at this")
        alice.press("#content", "Enter")
        shown = ".message:has-text('look at this')"
        bob.wait_for_selector(f"{shown} .files img", timeout=TIMEOUT_MS)
        bob.wait_for_function(
            "document.querySelector('.files img').naturalWidth > 0", timeout=TIMEOUT_MS
        )
        facts["thumb"] = bob.evaluate(
            "(() => { const i = document.querySelector('.files img');"
            " return [i.naturalWidth, i.naturalHeight]; })()"
        )
        facts["file"] = bob.inner_text(f"{shown} .files a.file")
        facts["uploads_left"] = alice.query_selector("#uploads") is not None
        original = bob.get_attribute(f"{shown} .files a.picture", "href")
        answer = bob.request.get(base + original)
        facts["original"] = (answer.status, answer.headers["content-type"], answer.body())
        pdf = bob.request.get(base + bob.get_attribute(f"{shown} .files a.file", "href"))
        facts["pdf"] = (pdf.headers["content-type"], pdf.headers["content-disposition"])
        bob.screenshot(path=os.environ.get("BEAM_UPLOAD_SCREENSHOT", str(tmp_path / "bob.png")))

        bob.reload()  # the history has them too
        bob.wait_for_selector(f"{shown} .files img", timeout=TIMEOUT_MS)

        fake = {"name": "fake.png", "mimeType": "image/png", "buffer": b"not a picture at all"}
        alice.set_input_files(PICKER, files=[fake])
        alice.wait_for_selector("#uploads progress[value='100']", timeout=TIMEOUT_MS)
        alice.fill("#content", "a fake")
        alice.press("#content", "Enter")
        alice.wait_for_selector("#error", timeout=TIMEOUT_MS)
        facts["fake"] = alice.inner_text("#error")
        facts["fake_kept"] = alice.input_value("#content")
        facts["errors"] = alice.errors + bob.errors
        return facts

    facts = await with_browser(tmp_path, steps)
    assert facts["too_large"] == "too large (at most 5 MB)"
    assert facts["not_accepted"].startswith("only pictures")
    progress = [value for name, value in facts["progress"] if name == "cat.png"]
    assert progress == sorted(progress)
    assert progress[-1] == 100, facts["progress"]
    assert any(0 < value < 100 for value in progress), progress
    assert facts["thumb"] == [320, 229]  # 700x500 scaled to fit 320
    assert facts["file"].startswith("report.pdf")
    assert not facts["uploads_left"]
    assert facts["original"] == (200, "image/png", photo)
    assert facts["pdf"] == ("application/pdf", "attachment; filename*=UTF-8''report.pdf")
    assert facts["fake"] == "fake.png is not a picture, so nothing was sent."
    assert facts["fake_kept"] == "a fake"
    assert facts["errors"] == []
    files = sorted(os.listdir(tmp_path / "attachments"))
    assert len(files) == 3  # the picture, its thumbnail, the PDF: nothing of the rest
    assert sum(name.endswith(".thumb.webp") for name in files) == 1


async def test_attachments_are_served_to_the_rooms_members_only(tmp_path: Path) -> None:
    async with chat_server(tmp_path) as port:
        users = {u.username: u for u in await Chat.read(User)}
        lobby = (await Chat.read(Room, filter={"name": "lobby"}, authorize=False))[0]
        media = tmp_path / "attachments"
        media.mkdir()
        key = uuid.uuid4().hex + ".txt"
        (media / key).write_bytes(b"members only")
        stored = {
            "key": key, "name": "secret.txt", "type": "text/plain", "size": 12, "kind": "file",
            "width": None, "height": None,
        }
        record: Message = await Chat.share_message(
            content="", client_id="c1", room_id=lobby.id, files=[stored], actor=users["alice"]
        )
        await Chat.register("carol", "x" * 40)
        url = f"/attachment?message={record.id}&file={key}"

        async def get(cookie: str, path: str = url) -> tuple[int, dict[str, str], bytes]:
            extra = f"cookie: {cookie}\r\n" if cookie else ""
            request = f"GET {path} HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n"
            status, headers, _, body = await fetch(port, request.encode())
            return status, headers, body

        bob = await sign_in(port, "bob")
        status, headers, body = await get(bob)
        assert (status, body) == (200, b"members only")
        assert headers["content-type"] == "text/plain"
        assert headers["content-disposition"].startswith("attachment;")
        assert headers["x-content-type-options"] == "nosniff"
        assert (await get(""))[0] == 401
        assert (await get(bob, url.replace(key, "../secret_key")))[0] == 404
        assert (await get(bob, url + "&size=thumb"))[0] == 404  # a file has no thumbnail

        from examples.chat.accounts import hash_off_loop
        from examples.chat.app import DEMO_PASSWORD

        carol = next(u for u in await Chat.read(User) if u.username == "carol")
        await Chat.set_password(carol, await hash_off_loop(DEMO_PASSWORD), authorize=False)
        outsider = await sign_in(port, "carol")  # not in the lobby: as if there were no file
        assert (await get(outsider))[:1] == (404,)
        assert (await load_page(port, outsider))[0] == 200


def test_each_kind_of_file_is_checked_for_what_its_name_says(tmp_path: Path) -> None:
    import pytest

    import web
    from examples.chat.attachments import Refused, inspect_file

    def stored(name: str, data: bytes) -> tuple[str, web.UploadEntry]:
        path = tmp_path / (uuid.uuid4().hex + os.path.splitext(name)[1])
        path.write_bytes(data)
        return str(path), web.UploadEntry("0", name, len(data), "")

    # A phone's photo: 400x200 as stored, turned a quarter by its EXIF: shown upright.
    turned = Image.new("RGB", (400, 200), "red")
    exif = turned.getexif()
    exif[0x0112] = 6  # orientation: rotate 90
    out = io.BytesIO()
    turned.save(out, "JPEG", exif=exif)
    photo = inspect_file(*stored("photo.jpg", out.getvalue()))
    assert (photo["kind"], photo["type"], photo["width"], photo["height"]) == (
        "image", "image/jpeg", 160, 320,
    )
    assert os.path.exists(tmp_path / (photo["key"] + ".thumb.webp"))
    text = inspect_file(*stored("notes.txt", "héllo".encode()))
    assert (text["kind"], text["type"]) == ("file", "text/plain")
    for name, data, why in (
        ("fake.pdf", b"<html>", "fake.pdf is not a PDF file"),
        ("fake.zip", b"MZ", "fake.zip is not a ZIP file"),
        ("latin.txt", "h\xe9llo, world".encode("latin-1"), "latin.txt is not plain text"),
        ("fake.gif", b"GIF89a nothing more", "fake.gif is not a picture"),
    ):
        with pytest.raises(Refused) as refused:
            inspect_file(*stored(name, data))
        assert str(refused.value) == why
