"""The servers of the ``api`` suite, each run in its own interpreter.

``python -m bench._api_server KIND URL SCHEMA`` where KIND is:

* ``ours``: :mod:`web.api` over a domain resource (:class:`BenchEntry`), on our server
  (``web.serve``), the domain on PostgreSQL (its trio-native pool, 10 connections);
* ``fastapi``: the same two endpoints written by hand in FastAPI on uvicorn (uvloop and
  httptools, uvicorn[standard]), reading the same table through psycopg 3's asyncio
  connections (a pool of 10, as ours), the statements written by hand.

Both answer ``GET /api/entries/<id>`` (one row by primary key) and ``GET
/api/entries?filter[grp]=<n>&page[limit]=20`` (a filtered list of 20 rows, ordered by id,
with the keyset cursor of the next page), as the same JSON:API documents. The server prints
``PORT <n>`` once listening and runs until killed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import sqlalchemy as sa
import trio
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

import beam
import web
from domain import Domain, Resource, attribute, create_timestamp, read, uuid_primary_key
from web import api

POOL = 10


class BenchEntry(Resource):
    __tablename__ = "bench_api_entries"
    id: uuid.UUID = uuid_primary_key()
    grp: int = attribute()
    title: str = attribute(max_length=100)
    n: int = attribute()
    inserted_at: dt.datetime = create_timestamp()
    actions = (read("read"),)


class BenchApi(Domain):
    resources = (BenchEntry,)


TABLE = BenchEntry.__table__


def say(*words: object) -> None:
    print(*words, flush=True)


def ours(url: str, schema: str) -> None:
    async def main() -> None:
        await BenchApi.start_link(url, schema=schema)
        json_api = api.JsonApi(BenchApi, prefix="/api")
        json_api.resource(BenchEntry, "entries", api.index(max_limit=100), api.get())
        endpoint = web.Endpoint()
        json_api.mount(endpoint, docs=False)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(web.serve, endpoint, "127.0.0.1", 0)
            say("PORT", port)

    beam.run(main)


# -- the baseline: written by hand -----------------------------------------------------------

_COLUMNS = "id, grp, title, n, inserted_at"
_GET = f"SELECT {_COLUMNS} FROM bench_api_entries WHERE id = %s"
_LIST = f"SELECT {_COLUMNS} FROM bench_api_entries WHERE grp = %s ORDER BY id LIMIT %s"
_MEDIA = "application/vnd.api+json"


def _resource(row: tuple[Any, ...]) -> dict[str, Any]:
    key, grp, title, n, inserted_at = row
    return {
        "type": "entries",
        "id": str(key),
        "attributes": {"grp": grp, "title": title, "n": n, "inserted_at": inserted_at.isoformat()},
        "links": {"self": f"/api/entries/{key}"},
    }


def fastapi_app(conninfo: str) -> FastAPI:
    pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for _ in range(POOL):
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            await pool.put(conn)
        yield

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    async def fetch(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = await pool.get()
        try:
            cur = await conn.execute(sql, params, prepare=True)
            return await cur.fetchall()
        finally:
            pool.put_nowait(conn)

    def answer(document: dict[str, Any], status: int = 200) -> Response:
        return Response(json.dumps(document, separators=(",", ":")), status, media_type=_MEDIA)

    @app.get("/api/entries/{entry_id}")
    async def get_entry(entry_id: str) -> Response:
        try:
            key = uuid.UUID(entry_id)
        except ValueError:
            raise HTTPException(404) from None
        rows = await fetch(_GET, (key,))
        if not rows:
            raise HTTPException(404)
        data = _resource(rows[0])
        return answer({"data": data, "links": {"self": data["links"]["self"]}})

    @app.get("/api/entries")
    async def list_entries(request: Request) -> Response:
        try:
            grp = int(request.query_params["filter[grp]"])
            limit = int(request.query_params.get("page[limit]", "20"))
        except (KeyError, ValueError):
            raise HTTPException(400) from None
        if not 1 <= limit <= 100:
            raise HTTPException(400)
        rows = await fetch(_LIST, (grp, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        after = (
            base64.urlsafe_b64encode(json.dumps([{"u": str(rows[-1][0])}]).encode()).decode()
            if rows
            else None
        )
        self_link = str(request.url.path) + "?" + str(request.url.query)
        return answer(
            {
                "data": [_resource(r) for r in rows],
                "links": {
                    "self": self_link,
                    "next": f"/api/entries?page[after]={after}" if more else None,
                },
                "meta": {"page": {"limit": limit, "after": after, "more": more}},
            }
        )

    return app


def fastapi(url: str, schema: str) -> None:
    parsed = sa.engine.make_url(url)
    conninfo = psycopg.conninfo.make_conninfo(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password or "",
        dbname=parsed.database or "postgres",
        options=f"-csearch_path={schema}",
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    say("PORT", sock.getsockname()[1])
    config = uvicorn.Config(
        fastapi_app(conninfo),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    kind, url, schema = sys.argv[1:4]
    {"ours": ours, "fastapi": fastapi}[kind](url, schema)
