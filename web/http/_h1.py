"""HTTP/1.1 for a server, sans I/O: bytes in, request events out; a response in, bytes out.

``httptools`` (llhttp, in C) does the parsing; :class:`H1Connection` adds what a server needs
around it and what llhttp leaves to its user: the limits (head bytes, header count, body
bytes), the checks RFC 9112 asks of a server (one ``Host`` in HTTP/1.1, versions 1.0 and 1.1
only, ``Transfer-Encoding: chunked`` only, never both framings: a request smuggling pattern),
keep-alive, pipelining (requests parsed ahead wait in order, a later request's error too), the
bytes that follow an upgrade request, and the response's head. No socket, no clock::

    conn = H1Connection(max_head_bytes=16_384, max_headers=100, max_body_bytes=1_048_576)
    conn.receive_data(b"GET /hello?name=ann HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    head = conn.next_event()          # RequestHead(method='GET', target='/hello?name=ann', ...)
    conn.next_event() is END          # True: no body
    wire = conn.response(200, [encode_header("content-type", "text/plain")], b"hi",
                         keep_alive=head.keep_alive)

Events, in order for each request: one :class:`RequestHead`, body chunks (``bytes``), then
:data:`END`; :data:`NEED_DATA` when more bytes are needed; a :class:`ProtocolError` (the
status to answer with and why) for bad input, after which nothing more is parsed.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserInvalidMethodError,
    HttpParserInvalidURLError,
    HttpParserUpgrade,
    HttpRequestParser,
)

__all__ = [
    "END",
    "NEED_DATA",
    "H1Connection",
    "ProtocolError",
    "RequestHead",
    "encode_header",
    "informational",
]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: The request's body is complete (its events are over).
END: Final = _Sentinel("END")
#: No event until more bytes arrive (:meth:`H1Connection.receive_data`).
NEED_DATA: Final = _Sentinel("NEED_DATA")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request's line and headers: names lowercased, values without surrounding blanks,
    both decoded as latin-1 (what HTTP's octets are).

    >>> RequestHead("GET", "/", "1.1", (("host", "x"),), keep_alive=True)
    """

    method: str
    target: str
    #: ``"1.1"`` or ``"1.0"``.
    http_version: str
    headers: tuple[tuple[str, str], ...]
    #: Whether the connection may carry another request after this one's response.
    keep_alive: bool = True
    #: The client sent ``Expect: 100-continue`` and waits for a 100 before the body.
    expects_continue: bool = False


class ProtocolError(Exception):
    """Bad input: answer *status* with *message*, then close the connection.

    >>> ProtocolError(431, "the request has 101 header fields").status
    431
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class _Stop(Exception):
    """Raised in a parser callback to stop llhttp at once (the error is queued already)."""


_TOKEN: Final = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
#: A field value: visible characters, obs-text, spaces and tabs inside (no CR, LF, NUL...).
_VALUE: Final = re.compile(r"(?:[^\x00-\x20\x7f](?:[ \t]*[^\x00-\x20\x7f])*)?")
_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"an HTTP status is a 3-digit number, got {status!r}")
        line = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n".encode("latin-1")
        _STATUS_LINES[status] = line
    return line


def encode_header(name: str, value: str) -> bytes:
    """One header line of a response (``b"name: value\\r\\n"``); raises :class:`ValueError`
    for a name that is not a token or a value with control characters (CR, LF: header
    injection) or surrounding blanks, :class:`UnicodeError` for one that is not latin-1.

    >>> encode_header("content-type", "text/plain")
    b'content-type: text/plain\\r\\n'
    """
    if _TOKEN.fullmatch(name) is None:
        raise ValueError(f"the header name {name!r:.100} is not an HTTP token")
    if _VALUE.fullmatch(value) is None:
        raise ValueError(
            f"the value of header {name!r:.100} ({value!r:.100}) holds control characters "
            "(CR, LF, NUL...) or surrounding blanks"
        )
    return b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))


def informational(status: int, headers: list[bytes]) -> bytes:
    """A 1xx response (the 101 of a WebSocket handshake): its status line and *headers*
    (lines from :func:`encode_header`).

    >>> informational(101, [encode_header("upgrade", "websocket")])
    b'HTTP/1.1 101 Switching Protocols\\r\\nupgrade: websocket\\r\\n\\r\\n'
    """
    if not 100 <= status <= 199:
        raise ValueError(f"an informational status is 1xx, got {status}")
    return b"".join((_status_line(status), *headers, b"\r\n"))


class H1Connection:
    """The server side of one HTTP/1.1 connection (see the module docstring).

    >>> conn = H1Connection()
    >>> conn.receive_data(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    >>> conn.next_event().target
    '/'
    """

    __slots__ = (
        "_body_bytes",
        "_continued",
        "_events",
        "_failed",
        "_head_bytes",
        "_headers",
        "_in_body",
        "_in_head",
        "_moved",
        "_parser",
        "_paused",
        "_streak",
        "_url",
        "keep_alive",
        "max_body_bytes",
        "max_head_bytes",
        "max_headers",
    )

    def __init__(
        self,
        *,
        max_head_bytes: int = 16_384,
        max_headers: int = 100,
        max_body_bytes: int = 1_048_576,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.max_body_bytes = max_body_bytes
        #: Whether the connection goes on after the last response (set by :meth:`response`).
        self.keep_alive = True
        self._events: deque[object] = deque()
        self._parser: HttpRequestParser | None = HttpRequestParser(self)
        self._failed = False
        #: The bytes after an upgrade request (or CONNECT) once llhttp paused there.
        self._paused: bytes | None = None
        self._in_head = False
        #: Between a head and its message's end; ``_moved``: llhttp got through a piece of
        #: the body (data, a chunk line, a trailer field) in the current read.
        self._in_body = False
        self._moved = False
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        #: Bytes of whole reads that went by while one head stayed incomplete, or while a
        #: body made no progress (a chunk line or trailer field that never ends).
        self._streak = 0
        self._body_bytes = 0
        self._continued = False

    # -- bytes in ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Parse *data* (the next bytes from the peer; not ``b""``: the caller handles the
        end of the stream). Events queue up until :meth:`next_event` takes them."""
        if self._failed:
            return
        if self._paused is not None:
            self._paused += data
            return
        was_in_head = self._in_head
        was_in_body = self._in_body
        self._moved = False
        assert self._parser is not None  # not failed: not closed
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as paused:
            self._paused = bytes(data[paused.args[0] :])
        except HttpParserCallbackError:
            if not self._failed:  # not ours: a bug of the callbacks
                raise
        except HttpParserError as exc:
            self._queue_error(_parser_error(exc))
        if self._in_head and not self._failed:
            # A head still incomplete: the whole reads it spanned since its first, and its
            # complete fields, are each at most its size so far (a complete head is
            # measured exactly, in on_headers_complete).
            if was_in_head:
                self._streak += len(data)
            if max(self._streak, self._head_bytes) > self.max_head_bytes:
                self._queue_error(self._too_big())
        elif was_in_body and self._in_body and not self._failed:
            # llhttp keeps no chunk line, but httptools gathers a trailer field until it
            # ends: a read that got through none of the body counts, as one of a head does.
            self._streak = 0 if self._moved else self._streak + len(data)
            if self._streak > self.max_head_bytes:
                self._queue_error(
                    ProtocolError(
                        431,
                        "a chunk line or the trailer fields of the request body are over "
                        f"{self.max_head_bytes} bytes (Endpoint.max_head_bytes)",
                    )
                )

    def next_event(self) -> object:
        """The next event: a :class:`RequestHead`, a body chunk (``bytes``), :data:`END`, a
        :class:`ProtocolError`, or :data:`NEED_DATA`."""
        events = self._events
        if events:
            return events.popleft()
        if self._paused is not None and not self._failed:
            # The upgrade was not taken (a normal response went out): go on with a new
            # parser over the bytes that came after it.
            data, self._paused = self._paused, None
            self._parser = HttpRequestParser(self)
            if data:
                self.receive_data(data)
            if events:
                return events.popleft()
        return NEED_DATA

    @property
    def started(self) -> bool:
        """Whether bytes of a request not yet taken arrived (a head timeout applies, not the
        idle one)."""
        return bool(self._events) or self._in_head or bool(self._paused)

    @property
    def trailing_data(self) -> bytes:
        """The bytes after an upgrade request's head (WebSocket frames that came with the
        handshake), once it was parsed."""
        return self._paused or b""

    def continue_once(self) -> bytes:
        """``100 Continue`` if the current request asked for it and its body has not begun
        (send it before waiting for the body), else ``b""``; once per request."""
        if self._continued:
            return b""
        self._continued = True
        return _CONTINUE

    def close(self) -> None:
        """Let go of the parser (it holds this connection's callbacks: a reference cycle the
        cyclic GC would have to find); nothing more is parsed."""
        self._failed = True
        self._parser = None

    # -- bytes out --------------------------------------------------------------------------

    def response(
        self,
        status: int,
        headers: list[bytes],
        body: bytes,
        *,
        keep_alive: bool,
        head: bool = False,
    ) -> bytes:
        """The whole response: status line, *headers* (from :func:`encode_header`, without
        framing ones), ``content-length`` and, unless the connection goes on after it
        (*keep_alive*: the request's :attr:`RequestHead.keep_alive` and the response's own
        wish), ``connection: close``; the body unless *head* (a ``HEAD`` request: the length
        is the body's all the same) or the status has none. Sets :attr:`keep_alive`.

        >>> conn.response(404, [], b"no route\\n", keep_alive=True)[:22]
        b'HTTP/1.1 404 Not Found'
        """
        self.keep_alive = keep_alive
        parts = [_status_line(status), *headers]
        bodiless = status < 200 or status in (204, 304)
        if status != 204 and status >= 200:
            parts.append(b"content-length: %d\r\n" % len(body))
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if body and not head and not bodiless:
            parts.append(body)
        return b"".join(parts)

    # -- llhttp's callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = []
        self._headers = []
        self._head_bytes = 12  # the request line's spaces, version and CRLF, the final CRLF
        self._streak = 0
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:  # a trailer field of a chunked body: nothing reads them
            self._moved = True
            return
        headers = self._headers
        headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if len(headers) > self.max_headers:
            raise self._stop(
                ProtocolError(
                    431,
                    f"the request has {len(headers)} header fields or more, over the limit "
                    f"of {self.max_headers} (Endpoint.max_headers)",
                )
            )
        if self._head_bytes > self.max_head_bytes:
            raise self._stop(self._too_big())

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        assert parser is not None  # llhttp calls back
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise self._stop(
                ProtocolError(505, f"HTTP/{version} is not supported: send HTTP/1.1 or HTTP/1.0")
            )
        method = parser.get_method()
        if self._head_bytes + len(method) > self.max_head_bytes:
            raise self._stop(self._too_big())
        headers = tuple(
            [(n.decode("latin-1").lower(), v.decode("latin-1").strip()) for n, v in self._headers]
        )
        hosts = 0
        # HTTP/1.0 keep-alive is not spoken here; what follows a CONNECT is a tunnel's bytes.
        close = version == "1.0" or method == b"CONNECT"
        expects = False
        length = None
        chunked = False
        for name, value in headers:
            if name == "host":
                hosts += 1
            elif name == "connection":
                if "close" in value.lower():
                    close = close or "close" in [t.strip() for t in value.lower().split(",")]
            elif name == "transfer-encoding":
                if value.lower() != "chunked":
                    raise self._stop(
                        ProtocolError(
                            501,
                            f"Transfer-Encoding {value[:100]!r} is not supported: send "
                            "'chunked' or a Content-Length",
                        )
                    )
                chunked = True
            elif name == "content-length":
                length = value
            elif name == "expect":  # an HTTP/1.0 client knows no 100 (RFC 9110, 10.1.1)
                expects = value.lower() == "100-continue" and version == "1.1"
        if hosts != 1 and (version == "1.1" or hosts > 1):
            raise self._stop(
                ProtocolError(
                    400,
                    "the request has no Host header (HTTP/1.1 needs one)"
                    if hosts == 0
                    else f"the request has {hosts} Host headers: send one",
                )
            )
        declared = int(length) if length is not None and length.isdigit() else 0
        if declared > self.max_body_bytes:
            raise self._stop(self._body_too_big())
        if parser.should_upgrade() and method != b"CONNECT" and (chunked or declared):
            # llhttp passes the body of an upgrade request on as bytes of the new protocol:
            # parsed as HTTP once the upgrade is not taken, it would be a request of its own.
            raise self._stop(
                ProtocolError(
                    400,
                    "the request asks for a protocol upgrade (Connection: Upgrade) and has a "
                    "body: send the upgrade without a body, or the body without the upgrade",
                )
            )
        self._continued = not expects
        self._in_body = True
        self._events.append(
            RequestHead(
                method.decode("ascii"),
                b"".join(self._url).decode("latin-1"),
                version,
                headers,
                not close,
                expects,
            )
        )

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.max_body_bytes:
            raise self._stop(self._body_too_big())
        self._continued = True
        self._moved = True
        self._events.append(body)

    def on_chunk_header(self) -> None:
        self._moved = True

    def on_chunk_complete(self) -> None:
        self._moved = True

    def on_message_complete(self) -> None:
        self._in_body = False
        self._events.append(END)

    # -- errors -----------------------------------------------------------------------------

    def _too_big(self) -> ProtocolError:
        return ProtocolError(
            431, f"the request head is over {self.max_head_bytes} bytes (Endpoint.max_head_bytes)"
        )

    def _body_too_big(self) -> ProtocolError:
        return ProtocolError(
            413, f"request body over {self.max_body_bytes} bytes (Endpoint.max_request_bytes)"
        )

    def _queue_error(self, error: ProtocolError) -> None:
        """Queue *error* after the events before it; nothing more is parsed."""
        if not self._failed:
            self._failed = True
            self._in_head = False
            self._in_body = False
            self._events.append(error)

    def _stop(self, error: ProtocolError) -> _Stop:
        """Queue *error*; the exception a callback raises to stop llhttp at once."""
        self._queue_error(error)
        return _Stop()


def _parser_error(exc: HttpParserError) -> ProtocolError:
    """What llhttp refused, said for the client (*headers*: those of the head so far)."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, HttpParserInvalidMethodError):
        return ProtocolError(400, f"the request line does not start with a method ({reason})")
    if isinstance(exc, HttpParserInvalidURLError):
        return ProtocolError(
            400, f"the request target is not a path (a path starts with '/'): {reason}"
        )
    if "Transfer-Encoding" in reason and "Content-Length" in reason:
        return ProtocolError(
            400,
            "the request has both Content-Length and Transfer-Encoding (a request smuggling "
            "pattern): send one of them",
        )
    if "Transfer-Encoding" in reason:
        return ProtocolError(
            501, "this Transfer-Encoding is not supported: send 'chunked' or a Content-Length"
        )
    if reason.startswith("Invalid HTTP version"):
        return ProtocolError(505, f"{reason}: send HTTP/1.1 or HTTP/1.0")
    return ProtocolError(400, f"malformed request: {reason}")
