"""beam.lowlevel: spawning on behalf of the layers above (detached, linked, with an initial
call), send hooks, and knowing whether code runs in a node."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import beam
from beam import lowlevel


class Worker:
    """Stands in for a behaviour's callback class, reported as the initial call."""


async def wait_for(message: Any) -> None:
    await beam.receive(lambda m: m == message)


async def test_a_detached_process_is_spawned_from_a_plain_task() -> None:
    async with beam.open_node():
        spawned: list[beam.Pid] = []

        async def plain_task() -> None:  # a trio task of the node, as a server's connection
            spawned.append(lowlevel.spawn_opt(wait_for, "go", detached=True, initial_call=Worker))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(plain_task)
        (pid,) = spawned
        info = beam.process_info(pid)
        assert info is not None
        assert info.links == ()
        assert info.initial_call.endswith("Worker")
        ref = beam.monitor(pid)
        beam.send(pid, "go")
        assert (await beam.receive(beam.Down)).ref == ref


async def test_a_linked_process_takes_its_parent_down_with_it() -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    async def parent() -> None:
        lowlevel.spawn_opt(crash, link=True, initial_call=Worker)
        await beam.receive()

    async with beam.open_node():
        pid, ref = beam.spawn_monitor(parent)
        down = await beam.receive(beam.Down)
        assert down.ref == ref
        assert down.pid == pid
        assert isinstance(down.reason, RuntimeError)


async def test_spawn_opt_refuses_what_cannot_be() -> None:
    async with beam.open_node():
        with pytest.raises(ValueError, match="detached process has no parent to link to"):
            lowlevel.spawn_opt(wait_for, "x", detached=True, link=True)
    with pytest.raises(beam.NotInNode, match=r"beam\.lowlevel\.spawn_opt"):
        lowlevel.spawn_opt(wait_for, "x", detached=True)


async def test_in_node_and_send_hooks() -> None:
    assert not lowlevel.in_node()
    async with beam.open_node():
        assert lowlevel.in_node()
        seen: list[tuple[beam.Pid, Any]] = []
        remove = lowlevel.add_send_hook(lambda pid, message: seen.append((pid, message)))
        beam.send(beam.self(), "hello")
        remove()
        beam.send(beam.self(), "unseen")
        assert seen == [(beam.self(), "hello")]
        assert await beam.receive() == "hello"


def test_node_keeps_its_internals_private() -> None:
    public = {name for name in vars(beam.Node) if not name.startswith("_")}
    assert public == {"statistics"}


async def test_a_pid_of_another_node_never_names_a_local_process() -> None:
    async with beam.open_node():
        beam.trap_exit(True)
        local = beam.spawn(wait_for, "never")
        # The same number on another node, and this node is in no cluster.
        remote = beam.Pid(local.id, beam.NodeId("elsewhere", 7))
        beam.send(remote, "dropped: no cluster")  # never raises, as Erlang's send
        beam.exit(remote, "kill")  # dropped too
        # Linking or monitoring a process of a node that cannot be reached: noconnection.
        beam.link(remote)
        assert await beam.receive(beam.Exit, timeout=1) == beam.Exit(remote, "noconnection")
        ref = beam.monitor(remote)
        down = await beam.receive(beam.Down, timeout=1)
        assert down == beam.Down(ref, remote, "noconnection")
        beam.unlink(remote)
        assert beam.demonitor(ref, info=True) is False
        refused = [  # local-only, as Erlang's is_alive/1, process_info/1, send_after, register
            lambda: beam.is_alive(remote),
            lambda: beam.process_info(remote),
            lambda: beam.send_after(remote, "later", 10),
            lambda: beam.register("alias", remote),
        ]
        for attempt in refused:
            with pytest.raises(ValueError, match="a process on node 'elsewhere'"):
                attempt()
        info = beam.process_info(local)
        assert info is not None
        assert info.links == ()
        assert info.message_queue_len == 0
        assert beam.is_alive(local)
