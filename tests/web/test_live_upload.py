"""Uploads on the server: the limits hold whatever the client says (tests/web/
test_browser_upload.py drives the official client)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import trio

import beam
import web
from web.channels.testing import JoinRefused, join
from web.live._upload import UploadChannel, UploadConfig, UploadEntry, sign_entry

from ..support.uploadapp import Attach

SECRET = "s" * 32


def config(**limits: int) -> UploadConfig:
    return UploadConfig.new(
        "photo",
        accept=(".png", "text/*"),
        max_entries=limits.get("max_entries", 2),
        max_file_size=limits.get("max_file_size", 1_000),
        chunk_size=100,
        auto_upload=False,
    )


def picked(ref: str, name: str, size: int, kind: str) -> dict[str, object]:
    return {"ref": ref, "name": name, "size": size, "type": kind}


def test_picked_files_are_checked_against_the_limits() -> None:
    upload = config().listed(
        [
            picked("0", "a.png", 10, "image/png"),
            picked("1", "b.png", 5_000, "image/png"),
            picked("2", "c.exe", 10, "application/x-msdownload"),
            picked("3", "d.txt", 10, "text/plain"),
            picked("4", "e.txt", 10, "image/png"),  # the type it claims is not its name's
            {"ref": 5},  # not an entry: ignored
        ]
    )
    assert [(e.ref, e.errors) for e in upload.entries] == [
        ("0", ()),
        ("1", ("too_large",)),
        ("2", ("not_accepted",)),
        ("3", ()),
        ("4", ("not_accepted",)),
    ]
    assert upload.errors == ("too_many_files",)
    assert web.upload_errors(upload) == ["too many files"]
    assert upload.without("1").without("2").without("4").errors == ()


def test_the_file_input_carries_the_entries_state() -> None:
    upload = config(max_entries=1).listed([picked("0", "a.png", 10, "image/png")])
    html = str(web.live_file_input(upload, class_="picker"))
    assert f'id="{upload.ref}"' in html
    assert 'data-phx-active-refs="0"' in html
    assert 'data-phx-done-refs=""' in html
    assert 'accept=".png,text/*"' in html
    assert "multiple" not in html
    assert 'class="picker"' in html


async def test_the_upload_channel_refuses_bad_tokens_and_bytes_past_the_limit(
    tmp_path: Path,
) -> None:
    channel = type("Uploads", (UploadChannel,), {"secret_key": SECRET})
    entry = UploadEntry("7", "a.png", 150, "image/png")
    path = str(tmp_path / "a")
    token = sign_entry(SECRET, path, entry, 250)
    async with beam.open_node():
        with pytest.raises(JoinRefused):
            await join(channel, "lvu:7", {"token": sign_entry("x" * 32, path, entry, 250)})
        with pytest.raises(JoinRefused):
            await join(channel, "lvu:8", {"token": token})  # another entry's token
        client = await join(channel, "lvu:7", {"token": token})
        await client.assert_reply(client.push("chunk", b"a" * 100), "ok")
        await client.assert_reply(client.push("chunk", b"b" * 100), "ok")
        assert contents(path) == b"a" * 100 + b"b" * 100
        # The client said 150 bytes; the upload allows 250: the 300th byte is refused.
        reply = await client.assert_reply(client.push("chunk", b"c" * 100), "error")
        assert reply == {"reason": "file_size_limit_exceeded"}
        assert contents(path) is None


def contents(path: str) -> bytes | None:
    """The bytes of the file at *path*, ``None`` if there is none."""
    file = Path(path)
    return file.read_bytes() if file.exists() else None


def test_consume_drops_a_file_that_is_not_the_size_declared(tmp_path: Path) -> None:
    socket = web.LiveSocket(connected=True)
    socket.allow_upload("photo", accept="*", max_entries=2)
    upload = socket.upload("photo").listed(
        [picked("0", "a.bin", 3, "x/y"), picked("1", "b.bin", 3, "x/y")]
    )
    for ref, data in (("0", b"abc"), ("1", b"abcdef")):
        path = tmp_path / ref
        path.write_bytes(data)
        entry = upload.entry(ref)
        assert entry is not None
        upload = upload.with_entry(
            UploadEntry(ref, entry.name, 3, "x/y", 100, True, True, (), str(path))
        )
    socket.put_upload(upload)
    got = socket.consume_uploaded_entries("photo", lambda path, e: (e.name, contents(path)))
    assert got == [("a.bin", b"abc")]
    assert socket.upload("photo").entries == ()
    assert list(tmp_path.iterdir()) == []


def test_the_directory_sink_stores_under_a_name_of_its_own(tmp_path: Path) -> None:
    upload = tmp_path / "incoming"
    upload.write_bytes(b"png")
    store = web.store_in(tmp_path / "media")
    stored = Path(store(str(upload), UploadEntry("0", "../../etc/passwd.PNG", 3, "image/png")))
    assert stored.parent == tmp_path / "media"
    assert stored.suffix == ".png"
    assert stored.read_bytes() == b"png"
    assert not upload.exists()
    odd = tmp_path / "odd"
    odd.write_bytes(b"x")
    assert Path(store(str(odd), UploadEntry("1", "a.p/ng", 1, "x/y"))).suffix == ""


async def test_a_views_upload_files_go_with_it_even_when_it_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    async with beam.open_node():
        beam.trap_exit(True)  # the view is linked to the test: its kill comes as a message
        view = await web.testing.live(Attach)
        ref = re.search(r'data-phx-upload-ref="([^"]+)"', view.html)
        assert ref is not None
        entry = picked("0", "a.png", 10, "image/png")
        await view.change("validate", {}, target="photo")
        answer = await view.push("allow_upload", {"ref": ref.group(1), "entries": [entry]})
        assert list(answer["entries"]) == ["0"]
        assert 'data-phx-preflighted-refs="0"' in view.html
        assert count(tmp_path) == 1  # the view's upload directory
        beam.exit(view.pid, "kill")
        await beam.receive(lambda m: type(m) is beam.Exit and m.pid == view.pid, timeout=1)
        with trio.fail_after(2):
            while count(tmp_path):  # noqa: ASYNC110 - a directory offers no event to wait on
                await trio.sleep(0.01)


def count(directory: Path) -> int:
    """How many entries *directory* has."""
    return len(list(directory.iterdir()))


class AutoTwo(web.LiveView):
    """Two files at most, each at most 1,000 bytes, sent as soon as they are picked."""

    template = '<form phx-change="validate">{{ live_file_input(uploads.doc) }}</form>'

    async def mount(self, params: object, session: object, socket: web.LiveSocket) -> None:
        socket.allow_upload("doc", accept="*", max_entries=2, max_file_size=1_000, auto_upload=True)

    async def handle_event(self, event: str, value: object, socket: web.LiveSocket) -> None:
        pass


async def test_an_auto_uploads_preflight_sends_what_passed_and_leaves_out_the_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    async with beam.open_node():
        for view_class, partial in ((AutoTwo, True), (Attach, False)):
            view = await web.testing.live(view_class)
            ref = re.search(r'data-phx-upload-ref="([^"]+)"', view.html)
            assert ref is not None
            good = picked("0", "a.png", 10, "image/png")
            bad = picked("1", "b.png", 300_000, "image/png")  # past both views' limits
            answer = await view.push("allow_upload", {"ref": ref.group(1), "entries": [good, bad]})
            if partial:  # the client cancels the entry without a token; the page says why
                assert list(answer["entries"]) == ["0"]
                assert "error" not in answer
                assert 'data-phx-error-refs="1"' in view.html
                assert 'data-phx-preflighted-refs="0"' in view.html
            else:  # one refused entry stops them all (the client cancels every entry)
                assert answer["error"] == [["1", "too_large"]]
                assert 'data-phx-preflighted-refs=""' in view.html


class OwnProgress(web.LiveView):
    """An upload with its own progress callback (``allow_upload(progress=...)``)."""

    template = (
        '<form phx-change="validate">{{ live_file_input(uploads.doc) }}</form><p>{{ seen }}</p>'
    )

    async def mount(self, params: object, session: object, socket: web.LiveSocket) -> None:
        socket.allow_upload("doc", accept="*", progress=self.progressed)
        socket.assign(seen="")

    async def progressed(self, name: str, entry: UploadEntry, socket: web.LiveSocket) -> None:
        socket.assign(seen=f"{socket.assigns['seen']}{name}:{entry.progress};")

    async def handle_progress(self, name: str, entry: UploadEntry, socket: web.LiveSocket) -> None:
        raise AssertionError("the upload's own callback is called instead")

    async def handle_event(self, event: str, value: object, socket: web.LiveSocket) -> None:
        pass


async def test_an_upload_with_its_own_progress_callback() -> None:
    async with beam.open_node():
        view = await web.testing.live(OwnProgress)
        ref = re.search(r'data-phx-upload-ref="([^"]+)"', view.html)
        assert ref is not None
        entry = picked("0", "a.txt", 10, "text/plain")
        answer = await view.push("allow_upload", {"ref": ref.group(1), "entries": [entry]})
        assert list(answer["entries"]) == ["0"]
        for progress in (40, 100):
            report = {"ref": ref.group(1), "entry_ref": "0", "progress": progress}
            await view.push("progress", report)
        assert "doc:40;doc:100;" in view.html
