"""beam._resp, the Redis client under the cluster transport, against real Redis servers.

Round trips run on the Redis at 127.0.0.1:6379 (keys and channels named per test); what
needs a server of its own (a password, TLS, killing it) uses a test-owned ``redis-server``
on a free port, and what needs a misbehaving server (silent, or not speaking RESP) a trio
listener in the test. URL parsing is table-driven; every error message is checked for the
password it must not show.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from beam._resp import (
    DEFAULT_PORT,
    RedisAddress,
    RedisConnection,
    RedisConnectionError,
    RedisError,
    Subscription,
    connect,
    parse_url,
    subscribe,
)

from ..support.nodes import free_port, redis_server

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")

URL = "redis://127.0.0.1:6379/0"
SECRET = "s3cret-Pa55"  # the password of the test-owned servers; no message may show it
#: The hard limit of each test.
LIMIT = 10.0


def unique(prefix: str) -> str:
    """A key or channel name no other test (or test run) uses."""
    return f"test_resp:{prefix}:{secrets.token_hex(4)}"


# -- servers the tests own ----------------------------------------------------------------------


@contextlib.contextmanager
def own_redis(*args: str, tls: bool = False) -> Iterator[int]:
    """A ``redis-server`` on a free port with extra *args* (TLS only: ``tls=True``); its port."""
    port = free_port()
    ports = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
    process = subprocess.Popen(
        ["redis-server", *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.02)
        yield port
    finally:
        process.kill()
        process.wait(timeout=5)


@contextlib.asynccontextmanager
async def fake_server(answer: bytes | None) -> AsyncIterator[int]:
    """A TCP server that reads what it is sent and answers *answer* once (None: never); its port."""

    async def serve(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            if answer is not None:
                await stream.send_all(answer)
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, host="127.0.0.1"), serve, 0
        )
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


# -- URLs -----------------------------------------------------------------------------------------

GOOD_URLS = [
    ("redis://127.0.0.1:6379/0", RedisAddress("127.0.0.1", 6379, 0)),
    ("redis://127.0.0.1", RedisAddress("127.0.0.1", DEFAULT_PORT, 0)),
    ("redis://cache.local/", RedisAddress("cache.local", DEFAULT_PORT, 0)),
    ("redis://cache.local:6380/15", RedisAddress("cache.local", 6380, 15)),
    ("REDIS://Cache.Local:1/2", RedisAddress("cache.local", 1, 2)),
    ("redis://:pw@h/3", RedisAddress("h", DEFAULT_PORT, 3, None, "pw")),
    ("redis://ann:pw@h:7000", RedisAddress("h", 7000, 0, "ann", "pw")),
    ("redis://ann:p%40ss%3Aw%2Fd@h", RedisAddress("h", DEFAULT_PORT, 0, "ann", "p@ss:w/d")),
    ("redis://:@h", RedisAddress("h", DEFAULT_PORT, 0)),
    ("redis://[::1]:6390/1", RedisAddress("::1", 6390, 1)),
    ("rediss://h", RedisAddress("h", DEFAULT_PORT, 0, tls=True)),
    ("rediss://:pw@h:6390/4", RedisAddress("h", 6390, 4, None, "pw", tls=True)),
]


@pytest.mark.parametrize(("url", "expected"), GOOD_URLS)
def test_parse_url_reads_good_urls(url: str, expected: RedisAddress) -> None:
    assert parse_url(url) == expected


BAD_URLS = [
    ("http://127.0.0.1:6379", "is not a Redis URL: write redis://"),
    ("127.0.0.1:6379", "is not a Redis URL"),
    ("unix:///tmp/redis.sock", "is not a Redis URL"),
    ("redis:127.0.0.1", "is not a Redis URL"),
    ("redis://", "names no host"),
    ("redis://:pw@/0", "names no host"),
    ("redis://h:port/0", "has a bad port: a port is a number from 1 to 65535"),
    ("redis://h:0/0", "has a bad port"),
    ("redis://h:70000/0", "has a bad port"),
    ("redis://h/db1", "has a bad database 'db1': the path is the database number"),
    ("redis://h/-1", "has a bad database"),
    ("redis://h/0/1", "has a bad database"),
    ("redis://ann@h/0", "names a user but no password: write redis://user:password@host"),
    ("redis://:a/b@h/0", "write the login percent-encoded (%2F for '/'"),
    ("redis://h/0?db=1", "options after '?' or '#' are not supported"),
    ("redis://h/0?", "options after '?' or '#' are not supported"),
    ("redis://h/0#x", "options after '?' or '#' are not supported"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_parse_url_refuses_bad_urls_naming_the_url_and_the_fix(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_url(url)
    assert str(caught.value).startswith(url.partition("?")[0].partition("#")[0][:8])


SECRET_URLS = [
    (f"http://ann:{SECRET}@h", "http://ann:***@h"),
    (f"redis://:{SECRET}@h:port", "redis://:***@h:port"),
    (f"redis://{SECRET}@h/0", "redis://***@h/0"),  # a user alone (a password misplaced?)
    (f"redis://:{SECRET}@/0", "redis://:***@/0"),
    (f"redis://:{SECRET}@h/x", "redis://:***@h/x"),
    (f"redis://:ab/{SECRET}@h/0", "redis://:***@h/0"),  # an unescaped '/' in the password
    (f"redis://h/0?password={SECRET}", "redis://h/0?..."),
]


@pytest.mark.parametrize(("url", "shown"), SECRET_URLS)
def test_a_bad_url_error_never_shows_the_password(url: str, shown: str) -> None:
    with pytest.raises(ValueError, match=re.escape(shown)) as caught:
        parse_url(url)
    assert SECRET not in str(caught.value)
    assert str(caught.value).startswith((shown + " ", shown + ":"))


def test_parse_url_wants_a_str() -> None:
    with pytest.raises(TypeError, match="a Redis URL is a str"):
        parse_url(b"redis://h")  # type: ignore[arg-type]


def test_an_address_shows_no_password() -> None:
    address = parse_url(f"redis://ann:{SECRET}@cache.local:6380/2")
    assert str(address) == "redis://ann:***@cache.local:6380/2"
    assert SECRET not in repr(address)
    assert repr(address) == (
        "RedisAddress(host='cache.local', port=6380, db=2, username='ann', tls=False)"
    )
    assert str(parse_url(f"rediss://:{SECRET}@[::1]")) == "rediss://:***@[::1]:6379/0"
    assert str(parse_url("redis://h")) == "redis://h:6379/0"


async def test_an_ssl_context_needs_a_rediss_url() -> None:
    with pytest.raises(ValueError, match=r"does not use TLS: write rediss://"):
        await connect(URL, ssl_context=ssl.create_default_context())


# -- commands -------------------------------------------------------------------------------------


async def test_execute_and_pipeline_round_trips() -> None:
    key, channel = unique("k"), unique("c")
    with trio.fail_after(LIMIT):
        async with await connect(URL) as redis:
            assert isinstance(redis, RedisConnection)
            assert repr(redis) == "<RedisConnection redis://127.0.0.1:6379/0 open>"
            assert await redis.execute("PING") == b"PONG"
            assert await redis.execute("SET", key, "1", "PX", 60000) == b"OK"
            assert await redis.execute("INCRBY", key, 41) == 42
            assert await redis.execute("GET", key) == b"42"
            assert await redis.execute("GET", unique("missing")) is None
            assert await redis.execute("INCRBYFLOAT", key, 0.5) == b"42.5"
            replies = await redis.pipeline(
                [
                    ("SET", key, b"v", "PX", 60000),
                    ("GET", key),
                    ["PUBLISH", channel, b"nobody listens"],
                    ("DEL", key),
                    ("MGET", key, key),
                ]
            )
            assert replies == [b"OK", b"v", 0, 1, [None, None]]
            assert await redis.pipeline([]) == []
        assert redis.closed


async def test_a_pipeline_of_many_commands_is_answered_in_order() -> None:
    key = unique("list")
    with trio.fail_after(LIMIT):
        async with await connect(URL) as redis:
            replies = await redis.pipeline([("RPUSH", key, i) for i in range(5000)])
            assert replies == list(range(1, 5001))
            assert await redis.execute("LRANGE", key, 4998, -1) == [b"4998", b"4999"]
            await redis.execute("DEL", key)


async def test_error_replies_raise_and_leave_the_connection_usable() -> None:
    key = unique("k")
    with trio.fail_after(LIMIT):
        async with await connect(URL) as redis:
            await redis.execute("SET", key, "text", "PX", 60000)
            with pytest.raises(RedisError, match=r"^ERR value is not an integer") as caught:
                await redis.execute("INCR", key)
            assert caught.value.code == "ERR"
            assert caught.value.__notes__ == ["(the reply to INCR)"]
            with pytest.raises(RedisError) as wrongtype:
                await redis.execute("LPUSH", key, "x")
            assert wrongtype.value.code == "WRONGTYPE"
            with pytest.raises(RedisError, match="unknown command"):
                await redis.execute("NO-SUCH-COMMAND")
            # A pipeline raises its first error once every reply is read...
            with pytest.raises(RedisError, match="not an integer") as first:
                await redis.pipeline([("GET", key), ("INCR", key), ("LPUSH", key, "x")])
            assert first.value.__notes__ == ["(the reply to INCR)"]
            # ... or returns each in its place.
            replies = await redis.pipeline(
                [("INCR", key), ("GET", key), ("LPUSH", key, "x")], raise_on_error=False
            )
            assert [type(reply) for reply in replies] == [RedisError, bytes, RedisError]
            assert replies[1] == b"text"
            assert replies[2].code == "WRONGTYPE"
            assert await redis.execute("GET", key) == b"text"
            await redis.execute("DEL", key)


async def test_bad_commands_are_refused_before_anything_is_sent() -> None:
    with trio.fail_after(LIMIT):
        async with await connect(URL) as redis:
            with pytest.raises(ValueError, match="needs a command"):
                await redis.execute()
            with pytest.raises(ValueError, match="at least its name"):
                await redis.pipeline([("PING",), ()])
            with pytest.raises(TypeError, match=r"not \(str, str, NoneType\) in SET"):
                await redis.execute("SET", "k", None)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"in PUBLISH"):
                await redis.pipeline([("PUBLISH", "c", True)])  # bool: not a Redis value
            assert await redis.execute("PING") == b"PONG"


async def test_binary_and_large_values_round_trip() -> None:
    key = unique("bin")
    values = [
        b"",
        b"\r\n",
        b"\x00",
        b"a\r\nb\x00c\r\n\r\n$5\r\n*2\r\n",
        bytes(range(256)) * 4,
        b"\xff" * 1_000_000,
        b"\r\n" * 500_000 + b"\x00",
    ]
    with trio.fail_after(LIMIT):
        async with await connect(URL) as redis:
            for value in values:
                assert await redis.execute("SET", key, value, "PX", 60000) == b"OK"
                assert await redis.execute("GET", key) == value
            assert await redis.execute("SET", key, "naïve ☃") == b"OK"  # str goes as UTF-8
            assert await redis.execute("GET", key) == "naïve ☃".encode()
            await redis.execute("DEL", key)


async def test_a_connection_is_used_by_one_task_at_a_time() -> None:
    with trio.fail_after(LIMIT):
        async with (
            fake_server(None) as port,
            await connect(f"redis://127.0.0.1:{port}") as redis,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(redis.execute, "PING")
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError, match="another task is using"):
                await redis.execute("PING")
            nursery.cancel_scope.cancel()


async def test_a_cancelled_exchange_closes_the_connection() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server(None) as port, await connect(f"redis://127.0.0.1:{port}") as redis:
            with trio.move_on_after(0.05):
                await redis.execute("PING")
            assert redis.closed
            with pytest.raises(RedisConnectionError, match=r"was closed after a failure .*cancel"):
                await redis.execute("PING")


async def test_a_closed_connection_refuses_commands() -> None:
    with trio.fail_after(LIMIT):
        redis = await connect(URL)
        await redis.aclose()
        await redis.aclose()
        with pytest.raises(trio.ClosedResourceError, match="is closed"):
            await redis.execute("PING")


async def test_a_server_that_does_not_speak_resp_breaks_the_connection() -> None:
    with trio.fail_after(LIMIT):
        async with (
            fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port,
            await connect(f"redis://127.0.0.1:{port}") as redis,
        ):
            with pytest.raises(RedisConnectionError, match="not RESP"):
                await redis.execute("PING")
            with pytest.raises(RedisConnectionError, match="closed after a failure"):
                await redis.execute("PING")


async def test_a_server_closing_the_connection_is_a_connection_error() -> None:
    with trio.fail_after(LIMIT):
        async with await connect(URL) as redis, await connect(URL) as killer:
            ident = await redis.execute("CLIENT", "ID")
            assert await killer.execute("CLIENT", "KILL", "ID", ident) == 1
            with pytest.raises(RedisConnectionError, match="lost the connection"):
                await redis.execute("PING")


# -- connecting -----------------------------------------------------------------------------------


async def test_connecting_to_nothing_raises_a_connection_error() -> None:
    port = free_port()
    with trio.fail_after(LIMIT), pytest.raises(RedisConnectionError) as caught:
        await connect(f"redis://:{SECRET}@127.0.0.1:{port}/0")
    assert str(caught.value).startswith(
        f"could not connect to Redis at redis://:***@127.0.0.1:{port}/0"
    )
    assert isinstance(caught.value, OSError)
    assert SECRET not in str(caught.value)


async def test_connecting_gives_up_after_the_connect_timeout() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server(None) as port:  # accepts, never answers AUTH
            with pytest.raises(RedisConnectionError, match=r"within 0.2 s$") as caught:
                await connect(f"redis://:{SECRET}@127.0.0.1:{port}/0", connect_timeout=0.2)
            assert SECRET not in str(caught.value)
            with pytest.raises(RedisConnectionError, match=r"could not subscribe .* within 0.2 s"):
                await subscribe(f"redis://127.0.0.1:{port}/0", ["c"], connect_timeout=0.2)


async def test_a_password_and_a_database_log_in() -> None:
    key = unique("k")
    with own_redis("--requirepass", SECRET) as port, trio.fail_after(LIMIT):
        async with await connect(f"redis://:{SECRET}@127.0.0.1:{port}/3") as redis:
            assert SECRET not in repr(redis)
            await redis.execute("SET", key, "in db 3")
            assert await redis.execute("CLIENT", "ID") == await redis.execute("CLIENT", "ID")
            assert b" db=3 " in await redis.execute("CLIENT", "INFO")
            # An ACL user logs in with its name and password.
            assert (
                await redis.execute("ACL", "SETUSER", "ann", "on", ">ann-pw", "~*", "&*", "+@all")
                == b"OK"
            )
        async with await connect(f"redis://ann:ann-pw@127.0.0.1:{port}/3") as ann:
            assert await ann.execute("ACL", "WHOAMI") == b"ann"
            assert await ann.execute("GET", key) == b"in db 3"
        async with await subscribe(f"redis://:{SECRET}@127.0.0.1:{port}/3", ["c"]) as sub:
            assert sub.channels == (b"c",)


async def test_a_wrong_password_is_refused_without_showing_it() -> None:
    with own_redis("--requirepass", "the-right-one") as port, trio.fail_after(LIMIT):
        for url in (
            f"redis://:{SECRET}@127.0.0.1:{port}/0",
            f"redis://default:{SECRET}@127.0.0.1:{port}/2",
        ):
            with pytest.raises(RedisError) as caught:
                await connect(url)
            text = str(caught.value)
            assert caught.value.code == "WRONGPASS"
            assert "refused the login: check the user and password in the URL" in text
            assert SECRET not in text
            assert SECRET not in repr(caught.value)
            assert "***@127.0.0.1" in text


async def test_no_password_where_one_is_needed_says_how_to_give_it() -> None:
    with own_redis("--requirepass", SECRET) as port, trio.fail_after(LIMIT):
        async with await connect(f"redis://127.0.0.1:{port}") as redis:
            with pytest.raises(RedisError, match=r"^NOAUTH") as caught:
                await redis.execute("GET", "k")
            assert "put it in the URL, redis://:password@host:port/db" in caught.value.__notes__[1]
        with pytest.raises(RedisError, match=r"^NOAUTH"):
            await subscribe(f"redis://127.0.0.1:{port}", ["c"])
        with pytest.raises(RedisError, match=r"^NOAUTH .*refused database 1"):
            await connect(f"redis://127.0.0.1:{port}/1")


async def test_a_database_out_of_range_is_refused_naming_it() -> None:
    with trio.fail_after(LIMIT), pytest.raises(RedisError, match="refused database 999") as caught:
        await connect("redis://127.0.0.1:6379/999")
    assert caught.value.code == "ERR"


async def test_rediss_connects_with_tls(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = self_signed_certificate(tmp_path)
    tls_args = ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    with own_redis(*tls_args, "--tls-auth-clients", "no", tls=True) as port:
        with trio.fail_after(LIMIT):
            context = ssl.create_default_context(cafile=str(cert))
            url = f"rediss://127.0.0.1:{port}/1"
            async with await connect(url, ssl_context=context) as redis:
                assert await redis.execute("SET", "k", b"\r\n\x00" * 100_000) == b"OK"
                assert await redis.execute("GET", "k") == b"\r\n\x00" * 100_000
                async with await subscribe(url, ["c"], ssl_context=context) as sub:
                    assert await redis.execute("PUBLISH", "c", b"over tls") == 1
                    assert await sub.next_batch() == [(b"c", b"over tls")]
            # The default context does not trust a self-signed certificate.
            with pytest.raises(
                RedisConnectionError, match=r"TLS handshake .* failed: .*CERTIFICATE"
            ):
                await connect(url)


# -- subscriptions --------------------------------------------------------------------------------


async def test_messages_arrive_in_order_one_at_a_time() -> None:
    a, b = unique("a"), unique("b")
    sent = [(a if i % 3 else b, f"message {i}".encode()) for i in range(2000)]
    with trio.fail_after(LIMIT):
        async with await subscribe(URL, [a, b.encode()]) as sub, await connect(URL) as redis:
            assert sub.channels == (a.encode(), b.encode())
            assert await redis.pipeline([("PUBLISH", c, d) for c, d in sent]) == [1] * 2000
            got = []
            async for channel, data in sub:
                got.append((channel.decode(), data))
                if len(got) == len(sent):
                    break
            assert got == sent


async def test_messages_arrive_in_order_in_batches() -> None:
    channel = unique("c")
    sent = [i.to_bytes(4, "big") * 25 for i in range(20_000)]
    with trio.fail_after(LIMIT):
        async with await subscribe(URL, [channel]) as sub, await connect(URL) as redis:
            for start in range(0, len(sent), 1000):
                await redis.pipeline([("PUBLISH", channel, d) for d in sent[start : start + 1000]])
            got: list[bytes] = []
            async for batch in sub.batches():
                assert batch
                got.extend(data for _, data in batch)
                if len(got) >= len(sent):
                    break
            assert got == sent


async def test_one_at_a_time_and_batches_share_the_stream() -> None:
    channel = unique("c")
    with trio.fail_after(LIMIT):
        async with await subscribe(URL, [channel]) as sub, await connect(URL) as redis:
            await redis.pipeline([("PUBLISH", channel, str(i)) for i in range(3)])
            first = await anext(sub)
            rest: list[tuple[bytes, bytes]] = []
            while len(rest) < 2:
                rest += await sub.next_batch()
            assert [first, *rest] == [(channel.encode(), str(i).encode()) for i in range(3)]


async def test_binary_and_large_messages_arrive_whole() -> None:
    channel = unique("c")
    payloads = [
        b"",
        b"\r\n",
        b"\x00\r\n\x00",
        b"*3\r\n$7\r\nmessage\r\n",
        bytes(range(256)),
        b"\x00" * 1_000_000,
        b"\r\n" * 600_000,
        b"after the big ones",
    ]
    with trio.fail_after(LIMIT):
        async with await subscribe(URL, [channel]) as sub, await connect(URL) as redis:
            await redis.pipeline([("PUBLISH", channel, data) for data in payloads])
            got: list[bytes] = []
            while len(got) < len(payloads):
                got += [data for _, data in await sub.next_batch()]
            assert got == payloads


async def test_a_cancelled_wait_for_messages_loses_nothing() -> None:
    channel = unique("c")
    with trio.fail_after(LIMIT):
        async with await subscribe(URL, [channel]) as sub, await connect(URL) as redis:
            with trio.move_on_after(0.05) as waited:
                await sub.next_batch()
            assert waited.cancelled_caught
            await redis.execute("PUBLISH", channel, b"still here")
            assert await anext(sub) == (channel.encode(), b"still here")


async def test_a_subscribed_connection_takes_no_commands() -> None:
    with trio.fail_after(LIMIT):
        redis = await connect(URL)
        sub = await redis.subscribe([unique("c")])
        assert isinstance(sub, Subscription)
        assert "subscribed" in repr(redis)
        with pytest.raises(RuntimeError, match=r"is subscribed .* use another connection"):
            await redis.execute("PING")
        await sub.aclose()
        assert redis.closed
        async with await connect(URL) as other:
            with pytest.raises(ValueError, match="a list of channel names"):
                await other.subscribe("chat")


async def test_losing_the_server_while_subscribed_raises_a_connection_error() -> None:
    with redis_server() as server, trio.fail_after(LIMIT):
        async with await subscribe(server.url, ["c"]) as sub:

            async def read() -> None:
                with pytest.raises(RedisConnectionError, match="Redis closed the connection"):
                    async for _ in sub:
                        pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()
                server.kill()
            # Later reads say why the subscription is closed.
            with pytest.raises(RedisConnectionError, match="closed after a failure"):
                await sub.next_batch()


async def test_closing_a_subscription_stops_its_reader() -> None:
    with trio.fail_after(LIMIT):
        sub = await subscribe(URL, [unique("c")])

        async def read() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await sub.next_batch()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            await sub.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await anext(sub)


async def test_a_subscription_is_read_by_one_task_at_a_time() -> None:
    with trio.fail_after(LIMIT):
        async with await subscribe(URL, [unique("c")]) as sub, trio.open_nursery() as nursery:
            nursery.start_soon(sub.next_batch)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await sub.next_batch()
            nursery.cancel_scope.cancel()


def test_the_connection_types_are_what_the_module_promises() -> None:
    assert issubclass(RedisConnectionError, OSError)
    assert not issubclass(RedisError, OSError)
    assert RedisError("WRONGPASS invalid").code == "WRONGPASS"
    assert RedisError("something else").code == ""
