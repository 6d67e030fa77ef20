"""A tiny HTTP/1.1 client for the API tests: one request per connection, on loopback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import trio

JSONAPI = "application/vnd.api+json"


@dataclass
class Answer:
    """A response: status, headers (lowercase names) and the body, decoded when JSON."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.json["errors"]
        return found

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.raw[:500]!r})"


async def call(
    port: int,
    method: str,
    target: str,
    body: Any = None,
    *,
    token: str | None = None,
    content_type: str | None = JSONAPI,
    headers: tuple[tuple[str, str], ...] = (),
    raw: bytes | None = None,
) -> Answer:
    """Send one request (*body* as JSON, or *raw* bytes) and read the whole answer."""
    payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    lines = [f"{method} {target} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
    if payload or method in ("POST", "PATCH", "PUT"):
        lines.append(f"content-length: {len(payload)}")
        if content_type is not None:
            lines.append(f"content-type: {content_type}")
    if token is not None:
        lines.append(f"authorization: Bearer {token}")
    lines += [f"{k}: {v}" for k, v in headers]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        received = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65_536):
                received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if "content-length" in parsed:
        content = content[: int(parsed["content-length"])]
    return Answer(int(status_line.split()[1]), parsed, content)


async def sign_in(port: int, name: str, secret: str | None = None) -> str:
    """A bearer token for *name* (whose secret is ``<name>-secret`` unless given)."""
    answer = await call(
        port,
        "POST",
        "/api/session",
        {
            "data": {
                "type": "session",
                "attributes": {"username": name, "password": secret or f"{name}-secret"},
            }
        },
    )
    assert answer.status == 201, answer
    token: str = answer.json["data"]["attributes"]["token"]
    return token


def new(type_: str, attributes: dict[str, Any], **relationships: tuple[str, str]) -> Any:
    """A JSON:API create document."""
    data: dict[str, Any] = {"type": type_, "attributes": attributes}
    if relationships:
        data["relationships"] = {
            name: {"data": {"type": t, "id": i}} for name, (t, i) in relationships.items()
        }
    return {"data": data}
