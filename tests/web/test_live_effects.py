"""LiveSocket hands a callback's effects to the channel as one immutable value.

A view's callbacks push events and ask to patch, navigate or redirect; the channel running the
view takes all of that at once with ``socket.take_effects()`` (an :class:`Effects`), which
leaves the socket with nothing pending, instead of reading and resetting the socket's fields.
Renders are marked with ``socket.rendered(...)``, async work with ``finished``/``loaded``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import beam
import web
from web.live._view import NO_EFFECTS, Effects, Loaded, Navigation


class Shop(web.LiveView):
    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        if event == "buy":
            socket.push_event("bought", value)
            socket.push_event("confetti", {})
            socket.push_patch("/cart", replace=True)
        elif event == "checkout":
            socket.push_navigate("/checkout")
            socket.redirect("https://pay.example.com/")
        elif event == "count":
            socket.assign(count=1)


async def test_take_effects_returns_what_a_callback_did_and_leaves_the_socket_empty() -> None:
    socket = web.LiveSocket(connected=False)
    item = {"sku": "a1"}
    await Shop().handle_event("buy", item, socket)
    item["sku"] = "changed later"  # the effect keeps the payload as it was pushed

    effects = socket.take_effects()

    assert effects == Effects(
        events=(("bought", {"sku": "a1"}), ("confetti", {})),
        patch=Navigation("/cart", replace=True),
    )
    assert socket.take_effects() is NO_EFFECTS
    assert socket.pending_effects is NO_EFFECTS

    await Shop().handle_event("checkout", {}, socket)
    assert socket.take_effects() == Effects(
        navigate=Navigation("/checkout"), redirect="https://pay.example.com/"
    )
    assert socket.take_effects() is NO_EFFECTS


async def test_no_effects_is_the_shared_empty_value() -> None:
    socket = web.LiveSocket(connected=False)
    await Shop().handle_event("count", {}, socket)  # assigns are not effects
    assert socket.take_effects() is NO_EFFECTS
    assert Effects() == NO_EFFECTS
    assert not NO_EFFECTS.events
    assert NO_EFFECTS.redirect is None


def test_pending_effects_peeks_without_taking() -> None:
    socket = web.LiveSocket(connected=False)
    socket.redirect("/login")
    assert socket.pending_effects == Effects(redirect="/login")
    assert socket.pending_effects.redirect == "/login"
    assert socket.take_effects() == Effects(redirect="/login")
    assert socket.pending_effects is NO_EFFECTS


def test_effects_are_immutable() -> None:
    socket = web.LiveSocket(connected=False)
    socket.push_patch("/a")
    effects = socket.take_effects()
    with pytest.raises(dataclasses.FrozenInstanceError):
        effects.patch = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_EFFECTS.redirect = "/x"  # type: ignore[misc]
    socket.push_event("later", {})  # the taken value does not see later effects
    assert effects.events == ()


def test_rendered_forgets_sent_stream_operations_and_resets_temporary_assigns() -> None:
    socket = web.LiveSocket(connected=False)
    socket.stream("messages", [{"id": 1}, {"id": 2}])
    socket.assign(notes=["a", "b"], count=1)
    stream = socket.assigns["messages"]
    assert stream.pending

    changed = socket.rendered({"notes": []})

    assert changed == {"messages", "notes", "count"}
    assert socket.changed == set()
    assert not stream.pending
    assert socket.assigns["notes"] == []
    assert socket.assigns["count"] == 1
    assert socket.rendered({}) == set()


async def test_finished_names_start_async_work_once() -> None:
    async with beam.open_node():
        socket = web.LiveSocket(connected=True)
        socket.start_async("older", lambda: _value([1, 2]))
        message = await beam.receive(Loaded, timeout=1)
        assert message.values == ([1, 2],)
        assert socket.finished(message.ref) == "older"
        assert socket.finished(message.ref) is None  # taken


async def test_a_newer_start_async_of_the_same_name_supersedes_the_first() -> None:
    async with beam.open_node():
        socket = web.LiveSocket(connected=True)
        socket.start_async("older", lambda: _value("first"))
        socket.start_async("older", lambda: _value("second"))
        results = {}
        for _ in range(2):
            message = await beam.receive(Loaded, timeout=1)
            results[message.values] = socket.finished(message.ref)
        assert results == {("first",): None, ("second",): "older"}


async def test_loaded_assigns_what_assign_async_loaded() -> None:
    async with beam.open_node():
        socket = web.LiveSocket(connected=True)
        socket.assign_async("rooms", lambda: _value(["lobby"]))
        assert socket.assigns["rooms"] == web.AsyncResult.pending()
        socket.changed.clear()
        message = await beam.receive(Loaded, timeout=1)
        assert socket.finished(message.ref) is None  # not start_async work
        socket.loaded(message)
        assert socket.assigns["rooms"] == web.AsyncResult(ok=True, result=["lobby"])
        assert socket.changed == {"rooms"}
        socket.changed.clear()
        socket.loaded(message)  # already loaded: dropped
        assert socket.changed == set()


async def test_loaded_assigns_a_failure_to_every_name() -> None:
    async with beam.open_node():
        socket = web.LiveSocket(connected=True)
        socket.assign_async(["a", "b"], lambda: _value({"a": 1}))  # "b" is missing
        message = await beam.receive(Loaded, timeout=1)
        socket.loaded(message)
        failed = socket.assigns["a"]
        assert failed.failed is not None
        assert "must return a mapping" in failed.failed
        assert socket.assigns["b"] == failed


async def _value(value: Any) -> Any:
    return value


class Pager(web.LiveView):
    """A page number in the URL: handle_params reads it, events patch it."""

    template = '<p id="page">{{ page }}</p><p id="url">{{ url }}</p>'

    async def mount(self, params: Any, session: Any, socket: web.LiveSocket) -> None:
        socket.assign(calls=0)

    async def handle_params(self, params: Any, url: str, socket: web.LiveSocket) -> None:
        page = int(params.get("page", "1"))
        socket.assign(page=page, url=url, calls=socket.assigns["calls"] + 1)
        if page > 5:  # handle_params may patch again: the channel follows it too
            socket.push_patch("/pages?page=5", replace=True)

    async def handle_event(self, event: str, value: Any, socket: web.LiveSocket) -> None:
        socket.push_patch(f"?page={value['page']}")

    async def handle_info(self, message: Any, socket: web.LiveSocket) -> None:
        socket.push_patch(f"/pages?page={message}")


async def test_push_patch_runs_handle_params_before_the_reply_as_phoenix_does() -> None:
    async with beam.open_node():
        view = await web.testing.live(Pager, "http://localhost/pages?page=1")
        assert '<p id="page">1</p>' in view.html

        await view.click("go", {"page": "3"})
        assert '<p id="page">3</p>' in view.html  # rendered in the event's own reply
        assert '<p id="url">http://localhost/pages?page=3</p>' in view.html
        assert view.navigation == ("live_patch", {"to": "?page=3", "kind": "push"})

        await view.click("go", {"page": "9"})  # patched on to page 5 by handle_params
        assert '<p id="page">5</p>' in view.html
        assert view.navigation == ("live_patch", {"to": "/pages?page=5", "kind": "replace"})

        beam.send(view.pid, 2)
        await view.sync()
        assert '<p id="page">2</p>' in view.html
