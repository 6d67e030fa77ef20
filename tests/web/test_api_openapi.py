"""web.api's OpenAPI 3.1 document, against a live server: it is served, it is a valid
OpenAPI 3.1 document (checked by openapi-spec-validator), and every operation it lists,
called with inputs made from its own schemas (valid ones, then seeded random mutations of
them), answers a status it documents with a body that conforms to the documented schema,
and never a 500."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from web.api import swagger_ui

from ..support.browser import in_browser
from .api_app import running
from .api_client import call, new, sign_in

openapi_spec_validator = pytest.importorskip("openapi_spec_validator")
jsonschema = pytest.importorskip("jsonschema")  # openapi-spec-validator's own dependency


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def conforms(document: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """Validate *value* against *schema*, whose refs point into *document*'s components."""
    root = {"allOf": [schema], "components": document["components"]}
    jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(value)


def example(
    schema: dict[str, Any],
    document: dict[str, Any],
    rng: random.Random,
    ids: dict[str, str],
    hint: str = "",
) -> Any:
    """A value of *schema* (enough of JSON Schema for our documents)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return example(document["components"]["schemas"][name], document, rng, ids, hint)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "oneOf" in schema:
        return example(schema["oneOf"][0], document, rng, ids)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        props = schema.get("properties", {})
        skip = ("id", "relationships")
        return {k: example(v, document, rng, ids, k) for k, v in props.items() if k not in skip}
    if kind == "array":
        return [example(schema["items"], document, rng, ids)]
    if kind == "integer":
        return rng.randint(schema.get("minimum", 0), schema.get("maximum", 3))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "string":
        if schema.get("format") == "uuid":
            return ids.get(hint.removesuffix("_id") + "s") or rng.choice(list(ids.values()))
        if schema.get("format") == "date-time":
            return "2026-12-03T10:00:00+00:00"
        low, high = schema.get("minLength", 1), min(schema.get("maxLength", 12), 12)
        return "".join(
            rng.choice("abcdefgh") for _ in range(rng.randint(max(low, 3), max(high, 3)))
        )
    return None


def mutate(value: Any, rng: random.Random) -> Any:
    """*value* with one random part replaced by junk (or dropped)."""
    junk: list[Any] = [None, "", -1, 10**12, "x" * 3000, [], {}, True, "\u0000", "' OR 1=1 --"]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        out = dict(value)
        if rng.random() < 0.2:
            del out[key]
        else:
            out[key] = mutate(value[key], rng)
        if rng.random() < 0.1:
            out[rng.choice(["zz", "type", "id"])] = rng.choice(junk)
        return out
    return rng.choice(junk)


async def test_the_document_is_served_and_valid(tmp_path: Path) -> None:
    async with running(url(tmp_path)) as r:
        answer = await call(r.port, "GET", "/api/openapi.json")
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/json"
        document = answer.json
        openapi_spec_validator.validate(document)
        assert document["openapi"] == "3.1.0"
        assert document["security"] == [{"bearer": []}]
        paths = document["paths"]
        assert set(paths) == {
            "/api/people",
            "/api/people/{id}",
            "/api/boards",
            "/api/boards/{id}",
            "/api/seats",
            "/api/seats/{id}",
            "/api/notes",
            "/api/notes/{id}",
            "/api/notes/search",
            "/api/notes/{id}/pin",
            "/api/notes/{id}/rate",
            "/api/notes/pin_all",
            "/api/session",
        }
        assert set(paths["/api/notes"]) == {"get", "post"}
        assert "secret" not in document["components"]["schemas"]["people_attributes"]["properties"]
        content = document["components"]["schemas"]["notes_attributes"]["properties"]["body"]
        assert content == {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$",  # not blank, no NUL
        }
        notes_post = paths["/api/notes"]["post"]["requestBody"]["content"]
        data = notes_post["application/vnd.api+json"]["schema"]["properties"]["data"]
        assert data["properties"]["attributes"]["required"] == ["body", "board_id"]
        sort = next(p for p in paths["/api/notes"]["get"]["parameters"] if p["name"] == "sort")
        assert sort["schema"]["pattern"].startswith("^(-?(id|body|")
        names = [p["name"] for p in paths["/api/notes/search"]["get"]["parameters"]]
        assert "word" in names
        assert "page[limit]" in names
        assert paths["/api/session"]["post"]["security"] == []
        ops = [op["operationId"] for item in paths.values() for op in item.values()]
        assert len(ops) == len(set(ops))


@pytest.mark.parametrize("plain", [False, True])
async def test_every_operation_answers_as_documented(tmp_path: Path, plain: bool) -> None:
    rng = random.Random(3 + plain)
    async with running(url(tmp_path), plain=plain) as r:
        media = "application/json" if plain else "application/vnd.api+json"
        document = (await call(r.port, "GET", "/api/openapi.json")).json
        openapi_spec_validator.validate(document)
        if plain:
            signed = await call(
                r.port,
                "POST",
                "/api/session",
                {"username": "alice", "password": "alice-secret"},
                content_type=media,
            )
            token = signed.json["token"]
            board = await call(
                r.port, "POST", "/api/boards", {"name": "root"}, token=token, content_type=media
            )
            board_id = board.json["data"]["id"]
            note = await call(
                r.port,
                "POST",
                "/api/notes",
                {"body": "n", "board_id": board_id},
                token=token,
                content_type=media,
            )
        else:
            token = await sign_in(r.port, "alice")
            board = await call(
                r.port, "POST", "/api/boards", new("boards", {"name": "root"}), token=token
            )
            board_id = board.json["data"]["id"]
            note = await call(
                r.port,
                "POST",
                "/api/notes",
                new("notes", {"body": "n", "board_id": board_id}),
                token=token,
            )
        assert note.status == 201, note
        ids = {
            "people": str(r.alice.id),
            "boards": board_id,
            "notes": note.json["data"]["id"],
            "seats": str(uuid.uuid4()),
        }
        statuses: dict[str, set[int]] = {}
        operations = [(p, m, op) for p, item in document["paths"].items() for m, op in item.items()]
        # deletes last: the records they remove are the ones the other operations use
        for path, method, op in sorted(operations, key=lambda o: o[1] == "delete"):
            if True:
                if op["operationId"] == "sign_out":
                    continue  # it would end the session the rest uses (tested in test_api_auth)
                body_schema = (
                    (op.get("requestBody") or {}).get("content", {}).get(media, {}).get("schema")
                )
                for attempt in range(12):
                    target = path
                    if "{id}" in path:
                        kind = path.split("/")[2]
                        target = path.replace(
                            "{id}", ids[kind] if attempt % 4 else str(uuid.uuid4())
                        )
                    query = []
                    for param in op.get("parameters", []):
                        if param["in"] == "query" and (
                            param.get("required") or (attempt > 2 and rng.random() < 0.15)
                        ):
                            value = example(param["schema"], document, rng, ids)
                            if attempt > 5 and rng.random() < 0.5:
                                value = rng.choice(["", "x", "-1", "nope", "99999999"])
                            query.append(f"{param['name']}={value}")
                    if query:
                        target += "?" + "&".join(query).replace(" ", "%20")
                    body = None
                    if body_schema is not None and method != "get":
                        body = example(body_schema, document, rng, ids)
                        if attempt > 5:
                            body = mutate(body, rng)
                    answer = await call(
                        r.port, method.upper(), target, body, token=token, content_type=media
                    )
                    where = f"{method.upper()} {target} {body!r:.300} -> {answer!r}"
                    assert answer.status < 500, where
                    documented = op["responses"].get(str(answer.status))
                    assert documented is not None, f"undocumented status: {where}"
                    statuses.setdefault(op["operationId"], set()).add(answer.status)
                    if "content" not in documented:
                        assert answer.raw == b"", where
                        continue
                    [(content_type, spec)] = documented["content"].items()
                    assert answer.headers["content-type"] == content_type, where
                    conforms(document, spec["schema"], answer.json)
        # the valid inputs got through on every operation that can succeed with them
        succeeded = {op for op, seen in statuses.items() if any(s < 300 for s in seen)}
        missing = {
            "list_notes",
            "get_notes",
            "create_boards_open",
            "create_notes_post",
            "update_notes_edit",
            "notes_search",
            "notes_rate",
            "notes_pin",
        } - succeeded
        assert not missing, {op: statuses.get(op) for op in missing}


async def test_the_docs_page_serves_swagger_ui_from_npm(tmp_path: Path) -> None:
    assets = swagger_ui()
    async with running(url(tmp_path)) as r:
        page = await call(r.port, "GET", "/api/docs")
        assert page.status == 200
        assert page.headers["content-type"].startswith("text/html")
        if assets is None:  # npm ci not run: the page says what to do
            assert b"npm ci" in page.raw
            return
        assert b"/api/docs/assets/swagger-ui-bundle.js" in page.raw
        bundle = await call(r.port, "GET", "/api/docs/assets/swagger-ui-bundle.js")
        assert bundle.status == 200
        assert bundle.raw == (assets / "swagger-ui-bundle.js").read_bytes()
        init = await call(r.port, "GET", "/api/docs/init.js")
        assert b'"/api/openapi.json"' in init.raw
        base = f"http://127.0.0.1:{r.port}"

        def steps(browser: Any) -> list[str]:
            tab = browser.new_page()
            tab.goto(f"{base}/api/docs")
            tab.wait_for_selector(".opblock-summary-path", timeout=15_000)
            paths: list[str] = tab.eval_on_selector_all(
                ".opblock-summary-path", "els => els.map(e => e.getAttribute('data-path'))"
            )
            return paths

        shown = await in_browser(steps)
        assert "/api/notes" in shown
        assert "/api/notes/{id}/rate" in shown
