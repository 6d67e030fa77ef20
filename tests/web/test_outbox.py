"""The outbox: immediate writes while the kernel takes them, a bounded backlog otherwise."""

from __future__ import annotations

import trio

from web.http import Outbox, frame


def test_frame_is_a_server_frame() -> None:
    assert frame("hi") == b"\x81\x02hi"
    assert frame(b"\x00\x01") == b"\x82\x02\x00\x01"
    long = frame("x" * 300)
    assert long[:4] == b"\x81\x7e\x01\x2c"
    assert long[4:] == b"x" * 300


async def test_writes_go_straight_to_the_kernel_then_queue_and_drain() -> None:
    a, b = trio.socket.socketpair()
    with a, b:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(a, nursery, max_backlog=64 * 1024 * 1024)
            outbox.write_nowait(b"hello")
            assert outbox.backlog == 0
            assert await b.recv(100) == b"hello"

            chunk = b"z" * 65_536
            while outbox.backlog == 0:  # fill the kernel buffer: the rest is queued, in order
                outbox.write_nowait(chunk)
            total = outbox.written + outbox.backlog - len(b"hello")
            received = 0
            outbox.write_nowait(b"end")
            total += 3
            data = b""
            while received < total:
                data = await b.recv(1_048_576)
                received += len(data)
            assert data.endswith(b"zend")
            await outbox.drain()
            assert outbox.backlog == 0
            assert outbox.failed is None
            outbox.close()


async def test_a_peer_that_does_not_read_is_cut_off_at_the_limit() -> None:
    a, b = trio.socket.socketpair()
    with a, b:
        failures: list[str] = []
        async with trio.open_nursery() as nursery:
            outbox = Outbox(
                a, nursery, max_backlog=100_000, on_failure=lambda: failures.append("called")
            )
            chunk = b"z" * 65_536
            for _ in range(10_000):
                outbox.write_nowait(chunk)
                if outbox.failed:
                    break
        assert failures == ["called"]
        assert outbox.failed is not None
        assert "slow consumer" in outbox.failed
        assert outbox.backlog == 0  # the backlog is dropped, not kept
        outbox.write_nowait(chunk)  # later writes are ignored
        assert outbox.backlog == 0


async def test_nothing_is_written_after_close() -> None:
    a, b = trio.socket.socketpair()
    with a, b:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(a, nursery)
            outbox.close()
            outbox.write_nowait(b"late")
        assert outbox.written == 0
