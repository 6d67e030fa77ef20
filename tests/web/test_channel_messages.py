"""Issue 14, "no shared mutable state between processes", for web.http and web.channels.

* No module of either package touches another object's private names: an attribute
  ``x._name`` is read or written only on ``self`` or ``cls`` (or on an imported module).
* The transport and its channels talk by frozen messages (:class:`JoinAnswered`,
  :class:`PushesHandled`); the transport never sees a :class:`~web.ChannelSocket`, and its own
  bookkeeping answers a dead channel's join or pushes exactly once, even when the channel is
  killed with pushes handled but not yet acknowledged.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import trio

import beam
import web
from beam._codec import dispatcher_name, lookup_dispatcher
from tests.support import phx, wsclient
from web.channels import _channel

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("web/http", "web/channels")


def _module_of(path: Path) -> ModuleType:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return importlib.import_module(name)


def private_reaches(path: Path) -> list[str]:
    """``file:line x._name`` for every private attribute ``._name`` (dunders do not count)
    read or written on anything but ``self``, ``cls`` or a module the file imported: another
    object (``socket._reply``), or one that ``self`` holds (``self.socket._route``)."""
    module = _module_of(path)
    modules = {name for name, value in vars(module).items() if isinstance(value, ModuleType)}
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or owner.id in modules):
            continue
        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    return sorted(found, key=lambda reach: int(reach.split(":")[1].split()[0]))


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_touches_another_objects_private_names(package: str) -> None:
    files = sorted((ROOT / package).glob("*.py"))
    assert files
    reaches = [reach for path in files for reach in private_reaches(path)]
    assert not reaches, "private names touched from outside their object:\n" + "\n".join(reaches)


def test_the_transport_never_holds_a_channel_socket() -> None:
    source = (ROOT / "web/channels/_transport.py").read_text(encoding="utf-8")
    names = {
        node.id if isinstance(node, ast.Name) else node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Name | ast.Attribute)
    }
    assert "ChannelSocket" not in names


@pytest.mark.parametrize(
    "kind", [_channel.JoinAnswered, _channel.PushesHandled, _channel.ChannelStart, _channel.Wire]
)
def test_what_crosses_between_transport_and_channel_is_frozen(kind: type) -> None:
    assert dataclasses.is_dataclass(kind)
    params = getattr(kind, "__dataclass_params__")  # noqa: B009 - dataclasses' own record
    assert params.frozen


# -- the bookkeeping, through a real socket ---------------------------------------------------


class Hold(web.Channel):
    """``echo`` answers; ``hold`` tells the test its pid and waits forever (to be killed);
    ``quiet`` answers nothing; ``boom`` crashes."""

    async def handle_in(
        self, event: str, payload: Any, socket: web.ChannelSocket
    ) -> web.ChannelReply | None:
        if event == "echo":
            return web.ok({"echo": payload})
        if event == "hold":
            beam.send("observer", ("holding", beam.self()))
            await trio.sleep_forever()
        if event == "boom":
            raise RuntimeError("handle_in went wrong")
        if event == "leave_all":
            socket.close_connection("asked to")
        return None


class HoldSocket(web.Socket):
    channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Hold}
    rate_limit = None


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    async with beam.open_node():
        beam.register("observer", beam.self())
        endpoint = web.Endpoint()
        endpoint.socket("/socket", HoldSocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            yield port
            nursery.cancel_scope.cancel()


def replies_to(client: phx.Phx, ref: str) -> list[dict[str, Any]]:
    return [f[4] for f in client.pending if f[3] == "phx_reply" and f[1] == ref]


async def settle(client: phx.Phx, topic: str) -> None:
    """Wait until the server has sent everything about *topic*'s channel: a heartbeat's
    reply comes after it (one connection, one transport, frames in order)."""
    ref = await client.send(None, "phoenix", "heartbeat", {})
    await client.expect(lambda f: f[1] == ref and f[2] == "phoenix")


async def test_a_killed_channel_answers_only_the_pushes_it_had_not_handled() -> None:
    async with serving() as port, phx.connect(port) as client:
        join_ref, _ = await client.join("room:a")
        # More handled pushes than one acknowledgement carries, some of them answered,
        # some answered with nothing (handle_in returned None).
        handled = []
        for i in range(40):
            ref = await client.send(join_ref, "room:a", "echo" if i % 2 else "quiet", i)
            handled.append(ref)
        hold = await client.send(join_ref, "room:a", "hold", {})
        queued = await client.send(join_ref, "room:a", "echo", "never handled")
        _, pid = await beam.receive(lambda m: isinstance(m, tuple) and m[0] == "holding")
        beam.exit(pid, beam.KILL)
        assert await client.reply(hold) == {
            "status": "error",
            "response": {"reason": "channel crashed"},
        }
        assert await client.reply(queued) == {
            "status": "error",
            "response": {"reason": "channel crashed"},
        }
        await client.event("room:a", "phx_error")
        await settle(client, "room:a")
        for i, ref in enumerate(handled):
            expected = [{"status": "ok", "response": {"echo": i}}] if i % 2 else []
            assert replies_to(client, ref) == expected, f"push {i} (ref {ref})"


async def test_a_crash_after_many_pushes_answers_only_the_crashing_one() -> None:
    async with serving() as port, phx.connect(port) as client:
        join_ref, _ = await client.join("room:b")
        refs = [await client.send(join_ref, "room:b", "quiet", i) for i in range(100)]
        boom = await client.send(join_ref, "room:b", "boom", {})
        assert (await client.reply(boom))["response"] == {"reason": "channel crashed"}
        await client.event("room:b", "phx_error")
        await settle(client, "room:b")
        assert not [ref for ref in refs if replies_to(client, ref)]
        # The socket goes on: a rejoin works and is answered once.
        again, reply = await client.join("room:b")
        assert reply["status"] == "ok"
        await settle(client, "room:b")
        assert not replies_to(client, again)


async def test_refused_and_crashed_joins_are_answered_once() -> None:
    class Picky(web.Channel):
        async def join(
            self, topic: str, params: Mapping[str, Any], socket: web.ChannelSocket
        ) -> web.ChannelReply | None:
            if topic == "room:no":
                return web.error({"reason": "no"})
            raise RuntimeError("join went wrong")

    class PickySocket(web.Socket):
        channels: ClassVar[Mapping[str, type[web.Channel]]] = {"room:*": Picky}

    async with beam.open_node():
        endpoint = web.Endpoint()
        endpoint.socket("/socket", PickySocket())
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            async with phx.connect(port) as client:
                refused, reply = await client.join("room:no")
                assert reply["response"] == {"reason": "no"}
                crashed, reply = await client.join("room:crash")
                assert reply["response"] == {"reason": "join crashed"}
                await settle(client, "room:crash")
                assert replies_to(client, refused) == replies_to(client, crashed) == []
                assert not [f for f in client.pending if f[3] == "phx_error"]
            nursery.cancel_scope.cancel()


async def test_a_channel_can_close_its_connection() -> None:
    async with serving() as port, phx.connect(port) as client:
        join_ref, _ = await client.join("room:c")
        await client.join("room:d")
        await client.send(join_ref, "room:c", "leave_all", {})
        with pytest.raises(wsclient.Closed) as closed:
            await client.expect(lambda frame: False)
        assert closed.value.code == 1001


def test_channel_broadcasts_can_cross_nodes() -> None:
    """On a cluster a broadcast is encoded in the sender: its message and its dispatcher must
    be known to the codec, or every channel's broadcast would raise there."""
    message = web.Broadcast("room:lobby", "new_msg", {"body": "hi", "n": [1, 2]})
    assert beam.cluster.decode(beam.cluster.encode(message)) == message
    assert dispatcher_name(_channel._dispatch) == "web.fastlane"
    assert lookup_dispatcher("web.fastlane") is _channel._dispatch
    envelope = beam.cluster.Envelope("except", "a", "room:lobby", message, "web.fastlane")
    decoded = beam.cluster.decode_envelope(beam.cluster.encode_envelope(envelope), for_node="b")
    assert decoded == envelope
