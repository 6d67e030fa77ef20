"""Plain HTTP/1.1 against a server under test: send a raw request, read the whole answer.

A request should say ``connection: close``: the answer is read until the server closes.

>>> raw = b"GET / HTTP/1.1\\r\\nhost: x\\r\\nconnection: close\\r\\n\\r\\n"
>>> status, headers, body = await http(port, raw)
"""

from __future__ import annotations

import trio


async def fetch(port: int, raw: bytes) -> tuple[int, dict[str, str], list[str], bytes]:
    """Send one HTTP/1.1 request; its status, headers, every ``Set-Cookie`` and body."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65_536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    pairs = [line.split(": ", 1) for line in lines[1:]]
    headers = {name.lower(): value for name, value in pairs}
    cookies = [value for name, value in pairs if name.lower() == "set-cookie"]
    return int(lines[0].split()[1]), headers, cookies, body


def jar(*cookies: str) -> str:
    """A ``Cookie`` header of *cookies* (``name=value``, attributes ignored; a later one of a
    name wins; empty values, as cleared cookies have, are dropped)."""
    pairs = (c.split(";")[0].strip() for c in cookies)
    found = dict(p.split("=", 1) for p in pairs if "=" in p)
    return "; ".join(f"{k}={v}" for k, v in found.items() if v)


async def http(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """:func:`fetch` without the cookies: (status, headers with lower-case names, body)."""
    status, headers, _, body = await fetch(port, raw)
    return status, headers, body
