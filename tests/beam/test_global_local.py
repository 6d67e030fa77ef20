"""Global names on a node alone (no cluster, no Redis): they are node-wide, with OTP's rules.

Checked against OTP 25's ``global`` where in doubt: ``register_name`` answers ``no`` for a
name in use and for a process that already has a global name; a dead pid gets ``yes`` and
no name; ``unregister_name`` of an unknown name is fine; ``send`` to an unknown name fails
naming it (``badarg``); ``send`` returns the pid.
"""

from __future__ import annotations

import pytest

import beam

from .conftest import idle, settle, waiter


async def test_register_whereis_send_and_registered() -> None:
    async with beam.open_node():
        pid = beam.spawn(waiter)
        assert beam.whereis_global("boss") is None
        assert await beam.register_global("boss", pid)
        assert beam.whereis_global("boss") == pid
        assert beam.registered_global() == ["boss"]
        assert beam.send_global("boss", "hello") == pid
        # The node's global name server is a process registered under its name.
        assert beam.whereis("beam.global") is not None


async def test_a_taken_name_and_a_second_name_are_refused() -> None:
    async with beam.open_node():
        first, second = beam.spawn(waiter), beam.spawn(waiter)
        assert await beam.register_global("boss", first)
        assert not await beam.register_global("boss", second)
        assert not await beam.register_global("boss", first)  # even by its holder
        assert not await beam.register_global("other", first)  # one name per process
        assert beam.whereis_global("boss") == first
        assert beam.whereis_global("other") is None


async def test_the_name_is_freed_when_its_owner_exits() -> None:
    async with beam.open_node():
        owner = beam.spawn(waiter)
        assert await beam.register_global("boss", owner)
        beam.exit(owner, "kill")
        await settle()
        assert beam.whereis_global("boss") is None
        assert beam.registered_global() == []
        successor = beam.spawn(waiter)
        assert await beam.register_global("boss", successor)
        assert beam.whereis_global("boss") == successor


async def test_a_new_owner_may_register_right_after_the_old_one_died() -> None:
    async with beam.open_node():
        owner = beam.spawn(waiter)
        assert await beam.register_global("boss", owner)
        ref = beam.monitor(owner)
        beam.exit(owner, "kill")
        await beam.receive(lambda m: isinstance(m, beam.Down) and m.ref == ref, timeout=5)
        # Dead, so no longer the holder, whatever its server has handled so far.
        assert beam.whereis_global("boss") is None
        successor = beam.spawn(waiter)
        assert await beam.register_global("boss", successor)
        await settle()
        assert beam.whereis_global("boss") == successor


async def test_unregister_frees_the_name_and_unknown_names_are_fine() -> None:
    async with beam.open_node():
        pid = beam.spawn(waiter)
        await beam.unregister_global("nobody")
        assert await beam.register_global("boss", pid)
        await beam.unregister_global("boss")
        assert beam.whereis_global("boss") is None
        assert beam.registered_global() == []
        # The process is not killed, and may take a name again.
        assert beam.is_alive(pid)
        assert await beam.register_global("boss2", pid)


async def test_a_dead_pid_gets_true_and_no_name() -> None:
    async with beam.open_node():
        pid = beam.spawn(idle)
        beam.exit(pid, "kill")
        await settle()
        assert await beam.register_global("ghost", pid)
        assert beam.whereis_global("ghost") is None
        await settle()
        assert beam.registered_global() == []


async def test_send_global_to_an_unknown_name_raises_naming_it() -> None:
    async with beam.open_node():
        with pytest.raises(beam.UnknownName, match="'nobody'"):
            beam.send_global("nobody", "hi")


async def test_send_global_delivers_to_the_owner() -> None:
    async with beam.open_node():
        assert await beam.register_global("me", beam.self())
        beam.send_global("me", ("ping", 1))
        assert await beam.receive(timeout=5) == ("ping", 1)


async def test_concurrent_registrations_have_one_winner() -> None:
    async with beam.open_node():
        me = beam.self()

        async def contender() -> None:
            won = await beam.register_global("leader", beam.self())
            beam.send(me, ("result", beam.self(), won))
            await beam.receive(lambda _m: False)

        pids = [beam.spawn(contender) for _ in range(20)]
        results = [await beam.receive(timeout=5) for _ in pids]
        winners = [pid for _, pid, won in results if won]
        assert len(winners) == 1
        assert beam.whereis_global("leader") == winners[0]


async def test_bad_arguments_are_refused_clearly() -> None:
    async with beam.open_node():
        pid = beam.spawn(waiter)
        with pytest.raises(TypeError, match="non-empty str"):
            await beam.register_global("", pid)
        with pytest.raises(TypeError, match="non-empty str"):
            await beam.register_global(("a", 1), pid)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"beam\.Pid"):
            await beam.register_global("boss", "worker")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="resolve"):
            await beam.register_global("boss", pid, resolve="random")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="non-empty str"):
            beam.whereis_global(3)  # type: ignore[arg-type]
        assert beam.registered_global() == []


async def test_each_node_has_its_own_names() -> None:
    async with beam.open_node():
        assert await beam.register_global("boss", beam.spawn(waiter))
    async with beam.open_node():
        assert beam.whereis_global("boss") is None
        assert beam.registered_global() == []


async def test_the_server_survives_a_garbage_message() -> None:
    async with beam.open_node():
        pid = beam.spawn(waiter)
        assert await beam.register_global("boss", pid)
        server = beam.whereis("beam.global")
        assert server is not None
        beam.send(server, ("what", "is", "this"))
        await settle()
        assert beam.is_alive(server)
        assert beam.whereis_global("boss") == pid


async def test_a_restarted_server_keeps_the_names_and_watches_their_owners() -> None:
    async with beam.open_node():
        owner, other = beam.spawn(waiter), beam.spawn(waiter)
        assert await beam.register_global("boss", owner)
        server = beam.whereis("beam.global")
        assert server is not None
        beam.exit(server, "kill")
        await settle()
        assert beam.whereis_global("boss") == owner
        # The next registration starts a new server, which takes over the names.
        assert not await beam.register_global("boss", other)
        assert beam.whereis("beam.global") not in (None, server)
        beam.exit(owner, "kill")
        await settle()
        assert beam.registered_global() == []
        assert await beam.register_global("boss", other)
