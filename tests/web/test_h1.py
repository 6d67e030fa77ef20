"""The sans-I/O HTTP/1.1 layer (web/http/_h1.py): bytes in, events out, no socket.

Table-driven cases for what a server must accept, refuse (with which status) and how it
frames; properties: a stream of requests parses to the same events however it is split
into reads, and no input (random bytes, or valid requests mutated) makes the layer raise,
queue anything after an error, or answer with a status outside the refusals it knows."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web.http._h1 import (
    END,
    NEED_DATA,
    H1Connection,
    ProtocolError,
    RequestHead,
    encode_header,
    informational,
)

Summary = list[Any]


def events(conn: H1Connection) -> Summary:
    """Every event queued, bodies joined: ``("head", method, target)``, ``b"body"``,
    ``"end"``, ``("error", status)``."""
    out: Summary = []
    while (event := conn.next_event()) is not NEED_DATA:
        if isinstance(event, RequestHead):
            out.append(("head", event.method, event.target))
        elif isinstance(event, bytes):
            if out and isinstance(out[-1], bytes):
                out[-1] += event
            else:
                out.append(event)
        elif event is END:
            out.append("end")
        elif isinstance(event, ProtocolError):
            out.append(("error", event.status))
        else:
            raise AssertionError(f"unexpected event {event!r}")
    return out


def parse(*reads: bytes, **limits: int) -> Summary:
    conn = H1Connection(**limits)
    for data in reads:
        conn.receive_data(data)
    return events(conn)


def head_of(raw: bytes) -> RequestHead:
    conn = H1Connection()
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, RequestHead), event
    return event


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

# (what, the bytes, the events)
CASES: list[tuple[str, bytes, Summary]] = [
    ("a GET", GET, [("head", "GET", "/"), "end"]),
    ("a query", b"GET /a?b=1&c HTTP/1.1\r\nHost: x\r\n\r\n", [("head", "GET", "/a?b=1&c"), "end"]),
    (
        "content-length body",
        b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab=cd",
        [("head", "POST", "/f"), b"ab=cd", "end"],
    ),
    (
        "chunked body with a trailer",
        b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nab=\r\n2\r\ncd\r\n0\r\nX-T: 1\r\n\r\n",
        [("head", "POST", "/f"), b"ab=cd", "end"],
    ),
    ("three pipelined", GET * 3, [("head", "GET", "/"), "end"] * 3),
    ("leading blank lines", b"\r\n\r\n" + GET, [("head", "GET", "/"), "end"]),
    ("HTTP/1.0 without a Host", b"GET / HTTP/1.0\r\n\r\n", [("head", "GET", "/"), "end"]),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", [("head", "OPTIONS", "*"), "end"]),
    (
        "absolute form",
        b"GET http://x/y?z HTTP/1.1\r\nHost: x\r\n\r\n",
        [("head", "GET", "http://x/y?z"), "end"],
    ),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", [("error", 400)]),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", [("error", 400)]),
    ("not HTTP", b"NOT HTTP\r\n\r\n", [("error", 400)]),
    ("a lowercase method", b"get / HTTP/1.1\r\nHost: x\r\n\r\n", [("error", 400)]),
    ("a target that is not a path", b"GET x/y HTTP/1.1\r\nHost: x\r\n\r\n", [("error", 400)]),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", [("error", 505)]),
    ("HTTP/0.9", b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", [("error", 505)]),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", [("error", 505)]),
    ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n", [("error", 400)]),
    ("LF in a value", b"GET / HTTP/1.1\r\nHost: x\r\nA: b\nc\r\n\r\n", [("error", 400)]),
    ("NUL in a value", b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x00c\r\n\r\n", [("error", 400)]),
    ("space in a name", b"GET / HTTP/1.1\r\nHost: x\r\nA b: c\r\n\r\n", [("error", 400)]),
    ("obsolete folding", b"GET / HTTP/1.1\r\nHost: x\r\n c\r\n\r\n", [("error", 400)]),
    (
        "Content-Length and Transfer-Encoding",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        [("error", 400)],
    ),
    (
        "Transfer-Encoding and Content-Length",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        [("error", 400)],
    ),
    (
        "two Content-Lengths",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab",
        [("error", 400)],
    ),
    (
        "a negative Content-Length",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        [("error", 400)],
    ),
    (
        "gzip transfer coding",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        [("error", 501)],
    ),
    (
        "gzip then chunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        [("error", 501)],
    ),
    (
        "bad chunk size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        [("head", "POST", "/"), ("error", 400)],
    ),
    (
        # llhttp hands an upgrade request's body over as bytes of the new protocol: parsed
        # as HTTP once the upgrade is not taken, the body would be a request of its own.
        "an upgrade with a Content-Length body",
        b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 32\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
        [("error", 400)],
    ),
    (
        "an upgrade with a chunked body",
        b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        [("error", 400)],
    ),
    (
        "an upgrade with Content-Length: 0, then a request",
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 0\r\n\r\n" + GET,
        [("head", "GET", "/a"), "end", ("head", "GET", "/"), "end"],
    ),
    (
        "a good request, then a bad one: in order",
        GET + b"GET / HTTP/1.1\r\n\r\n",
        [("head", "GET", "/"), "end", ("error", 400)],
    ),
]


@pytest.mark.parametrize(("what", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_requests_parse_to_these_events(what: str, raw: bytes, expected: Summary) -> None:
    assert parse(raw) == expected, what


@pytest.mark.parametrize(("what", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_byte_by_byte_gives_the_same_events(what: str, raw: bytes, expected: Summary) -> None:
    assert parse(*(raw[i : i + 1] for i in range(len(raw)))) == expected, what


def test_the_head_as_handlers_see_it() -> None:
    head = head_of(b"GET /p HTTP/1.1\r\nHOST: x\r\nX-Two:  a  b \t\r\nCookie: c=1\r\n\r\n")
    assert head == RequestHead(
        "GET", "/p", "1.1", (("host", "x"), ("x-two", "a  b"), ("cookie", "c=1")), True, False
    )
    assert head_of(b"GET / HTTP/1.1\r\nHost: \xe9\r\n\r\n").headers == (("host", "\xe9"),)


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (GET, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
        # What follows a CONNECT is a tunnel's bytes, never a request.
        (b"CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ],
)
def test_keep_alive(raw: bytes, keep_alive: bool) -> None:
    assert head_of(raw).keep_alive is keep_alive


def test_each_pipelined_request_keeps_its_own_keep_alive() -> None:
    conn = H1Connection()
    conn.receive_data(GET + b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + GET)
    first = conn.next_event()
    assert isinstance(first, RequestHead)
    assert conn.next_event() is END
    second = conn.next_event()
    assert isinstance(second, RequestHead)
    assert (first.keep_alive, second.keep_alive) == (True, False)
    # Nothing may follow a request that closes the connection (the server closes it).
    assert events(conn) == ["end", ("error", 400)]


def test_limits_on_a_head_complete_in_one_read() -> None:
    assert parse(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", max_head_bytes=200) == [
        ("error", 431)
    ]
    many = b"".join(b"X-%d: v\r\n" % i for i in range(4))
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", max_headers=4) == [
        ("error", 431)
    ]
    within = b"".join(b"X-%d: v\r\n" % i for i in range(3))
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\n" + within + b"\r\n", max_headers=4)[0] == (
        "head",
        "GET",
        "/",
    )


def test_a_head_that_never_ends_is_refused_before_it_is_whole() -> None:
    conn = H1Connection(max_head_bytes=1_000)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: ")
    for _ in range(10):
        conn.receive_data(b"a" * 200)
    assert events(conn) == [("error", 431)]


def test_a_head_within_the_limit_passes_however_it_is_split() -> None:
    fields = b"".join(b"X-Field-%02d: vvvvvvvvv\r\n" % i for i in range(40))
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    assert 900 < len(head) < 1_000
    for cuts in ([10, 800], [30, 500, 900], list(range(1, len(head), 97))):
        points = [0, *cuts, len(head)]
        pieces = [head[a:b] for a, b in itertools.pairwise(points)]
        assert parse(*pieces, max_head_bytes=1_000) == [("head", "GET", "/"), "end"], cuts


def test_body_limit_by_content_length_and_by_chunks() -> None:
    big = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
    assert parse(big, max_body_bytes=10) == [("error", 413)]
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    got = parse(chunked + b"6\r\nabcdef\r\n6\r\nghijkl\r\n", max_body_bytes=10)
    assert got == [("head", "POST", "/"), b"abcdef", ("error", 413)]
    exact = parse(chunked + b"5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n", max_body_bytes=10)
    assert exact == [("head", "POST", "/"), b"abcdefghij", "end"]


def test_trailer_fields_or_a_chunk_line_that_never_end_are_refused() -> None:
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for start in (b"1\r\na\r\n0\r\nX-Trailer: ", b"1;ext=", b"1\r\na\r\n0;ext="):
        conn = H1Connection(max_head_bytes=1_000)
        conn.receive_data(chunked + start)
        for _ in range(10):
            conn.receive_data(b"a" * 200)
        got = events(conn)
        assert got[0] == ("head", "POST", "/"), start
        assert got[-1] == ("error", 431), start
    # A body, trailers and chunk lines within the limit pass however they are split.
    stream = chunked + b"3;e=1\r\nabc\r\n" * 100 + b"0\r\n" + b"X-T: vvvvvvvvvvvv\r\n" * 40
    stream += b"\r\n"
    for size in (1, 7, 200, 5_000):
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert parse(*pieces, max_head_bytes=1_000) == [
            ("head", "POST", "/"),
            b"abc" * 100,
            "end",
        ], size


def test_nothing_is_parsed_after_an_error() -> None:
    conn = H1Connection()
    conn.receive_data(b"BAD\r\n\r\n")
    conn.receive_data(GET)
    assert events(conn) == [("error", 400)]


def test_expect_100_continue_is_answered_once_before_the_body() -> None:
    conn = H1Connection()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    head = conn.next_event()
    assert isinstance(head, RequestHead)
    assert head.expects_continue
    assert conn.next_event() is NEED_DATA
    assert conn.continue_once() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.continue_once() == b""
    conn.receive_data(b"ok")
    assert events(conn) == [b"ok", "end"]
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
    assert conn.next_event() is not NEED_DATA
    assert conn.continue_once() == b""  # not asked for


@pytest.mark.parametrize(
    ("raw", "expects"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n", True),
        # RFC 9110 (10.1.1): an HTTP/1.0 client knows no 100; its expectation is ignored.
        (b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", False),
        (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n", False),
    ],
)
def test_who_gets_a_100_continue(raw: bytes, expects: bool) -> None:
    conn = H1Connection()
    conn.receive_data(raw)
    head = conn.next_event()
    assert isinstance(head, RequestHead)
    assert head.expects_continue is expects
    assert conn.next_event() is NEED_DATA
    assert bool(conn.continue_once()) is expects


def test_an_upgrade_keeps_the_bytes_after_its_head() -> None:
    conn = H1Connection()
    conn.receive_data(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x82"
    )
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.next_event() is END
    assert conn.trailing_data == b"\x81\x82"
    conn.receive_data(b"more")
    assert conn.trailing_data == b"\x81\x82more"


def test_an_upgrade_not_taken_goes_on_with_the_next_request() -> None:
    conn = H1Connection()
    upgrade = b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    conn.receive_data(upgrade + GET[:10])
    assert events(conn) == [("head", "GET", "/a"), "end"]
    assert conn.started
    conn.receive_data(GET[10:])
    assert events(conn) == [("head", "GET", "/"), "end"]


def test_started_says_whether_a_request_has_begun() -> None:
    conn = H1Connection()
    assert not conn.started
    conn.receive_data(b"GE")
    assert conn.started
    conn.receive_data(GET[2:])
    events(conn)
    assert not conn.started


def test_responses() -> None:
    conn = H1Connection()
    lines = [encode_header("content-type", "text/plain")]
    assert conn.response(200, lines, b"hi", keep_alive=True) == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
    )
    assert conn.keep_alive
    assert conn.response(200, [], b"hi", keep_alive=True, head=True) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
    )
    assert conn.response(204, [], b"", keep_alive=True) == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert conn.response(304, [], b"x", keep_alive=True) == (
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 1\r\n\r\n"
    )
    assert conn.response(599, [], b"", keep_alive=False) == (
        b"HTTP/1.1 599 \r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert not conn.keep_alive
    with pytest.raises(ValueError, match="3-digit"):
        conn.response(1000, [], b"", keep_alive=True)
    assert informational(101, [encode_header("upgrade", "websocket")]) == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("x-a", "b\r\nset-cookie: x=1", ValueError),
        ("x-a", "b\nc", ValueError),
        ("x-a", "b\x00", ValueError),
        ("x-a", " b", ValueError),
        ("x a", "b", ValueError),
        ("x:a", "b", ValueError),
        ("", "b", ValueError),
        ("x-snow", "\u2603", UnicodeError),
    ],
)
def test_header_lines_refuse_what_cannot_be_sent(name: str, value: str, error: type) -> None:
    with pytest.raises(error):
        encode_header(name, value)


def test_header_lines() -> None:
    assert encode_header("X-A", "b  c\td") == b"X-A: b  c\td\r\n"
    assert encode_header("x-a", "") == b"x-a: \r\n"
    assert encode_header("x-a", "caf\xe9") == b"x-a: caf\xe9\r\n"


# -- properties -------------------------------------------------------------------------------

VALID = [
    GET,
    b"GET /a?b=%20 HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nAccept: */*\r\n\r\n",
    b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab=cd",
    b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab=cd\r\n0\r\n\r\n",
    b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n",
]


@settings(max_examples=300, deadline=None)
@given(
    stream=st.lists(st.sampled_from(VALID), min_size=1, max_size=6).map(b"".join),
    cuts=st.lists(st.integers(0, 2_000), max_size=12),
)
def test_any_split_of_a_stream_gives_the_same_events(stream: bytes, cuts: list[int]) -> None:
    whole = parse(stream)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert parse(*(p for p in pieces if p)) == whole
    assert whole.count("end") == stream.count(b" HTTP/1.")


def _mutate(data: bytes, at: int, op: int, piece: bytes) -> bytes:
    at %= len(data) + 1
    if op == 0:
        return data[:at] + piece + data[at:]
    if op == 1:
        return data[:at] + data[at + len(piece) :]
    return data[:at] + piece + data[at + len(piece) :]


inputs = st.one_of(
    st.binary(max_size=600),
    st.builds(
        _mutate,
        st.lists(st.sampled_from(VALID), min_size=1, max_size=3).map(b"".join),
        st.integers(0, 1_000),
        st.integers(0, 2),
        st.one_of(
            st.sampled_from([b"\r\n", b"\n", b"\r", b"\x00", b" ", b":", b"\xff", b"0\r\n"]),
            st.binary(min_size=1, max_size=8),
        ),
    ),
)


@settings(max_examples=500, deadline=None)
@given(data=inputs, size=st.integers(1, 64), head_limit=st.sampled_from([64, 300, 16_384]))
def test_no_input_breaks_the_layer(data: bytes, size: int, head_limit: int) -> None:
    conn = H1Connection(max_head_bytes=head_limit, max_headers=5, max_body_bytes=10)
    got: Summary = []
    for i in range(0, len(data), size):
        conn.receive_data(data[i : i + size])
        got.extend(events(conn))
    errors = [e for e in got if isinstance(e, tuple) and e[0] == "error"]
    assert len(errors) <= 1
    if errors:
        assert got[-1] == errors[0]  # nothing after an error
        assert errors[0][1] in (400, 413, 431, 501, 505)
    # Each body belongs to a head, each end closes one.
    open_ = False
    for event in got:
        if isinstance(event, tuple) and event[0] == "head":
            assert not open_
            open_ = True
        elif event == "end":
            assert open_
            open_ = False
        elif isinstance(event, bytes):
            assert open_
