"""Where web.api plugs in, without a server: ``Endpoint.forward`` (a prefix handed to one
handler, exact routes and static directories still first), and the declaration checks that
refuse a misdeclared API at start-up rather than on a request."""

from __future__ import annotations

from pathlib import Path

import pytest

import domain
import web
from web import _api_errors as api_errors
from web import api

from .api_app import Board, Boards, Note, Person, make_api


def handler(request: web.Request) -> web.Response:
    return web.Response(200, b"forwarded")


def test_forward_takes_the_prefix_and_below_after_routes_and_static(tmp_path: Path) -> None:
    (tmp_path / "a.css").write_text("x")
    endpoint = web.Endpoint()
    endpoint.forward("/api", handler)
    exact = lambda request: web.Response(200, b"exact")  # noqa: E731
    endpoint.route("POST", "/api/token", exact)
    endpoint.static("/api/docs/assets", tmp_path)
    assert endpoint.resolve("GET", "/api") is handler
    assert endpoint.resolve("DELETE", "/api/notes/1/pin") is handler
    assert endpoint.resolve("POST", "/api/token") is exact
    assert endpoint.resolve("GET", "/api/token") is handler  # only POST is routed exactly
    assert endpoint.resolve("GET", "/api/docs/assets/a.css") is not handler
    assert endpoint.resolve("GET", "/apix") is None
    assert endpoint.resolve("GET", "/") is None
    for bad in ("api", "/api/"):
        with pytest.raises(ValueError, match="forward prefix"):
            endpoint.forward(bad, handler)


def test_misdeclared_routes_are_refused_at_start_up() -> None:
    json_api = api.JsonApi(Boards)
    with pytest.raises(ValueError, match="not an action"):
        json_api.resource(Note, "notes", api.post("nope"))
    with pytest.raises(ValueError, match="needs a create action"):
        json_api.resource(Note, "notes", api.post("edit"))
    with pytest.raises(ValueError, match="its path needs"):
        json_api.resource(Note, "notes", api.route("POST", "/pin", "pin"))
    with pytest.raises(ValueError, match="two routes"):
        json_api.resource(Note, "notes", api.index(), api.route("GET", "", "search"))
    with pytest.raises(ValueError, match="hide names unknown"):
        json_api.resource(Person, "people", api.index(), hide=("password",))
    with pytest.raises(ValueError, match="type name"):
        json_api.resource(Board, "Boards", api.index())
    json_api.resource(Board, "boards", api.index())
    with pytest.raises(ValueError, match="exposed twice"):
        json_api.resource(Board, "boards2", api.index())
    with pytest.raises(ValueError, match="route path"):
        api.route("GET", "notes", "search")
    with pytest.raises(ValueError, match="method"):
        api.route("TRACE", "/x", "search")
    with pytest.raises(ValueError, match="page sizes"):
        api.index(default_limit=50, max_limit=10)
    with pytest.raises(ValueError, match="sign_in needs"):
        json_api.sign_in(lambda attributes, request: None)  # type: ignore[arg-type,return-value]


def test_the_document_names_only_what_is_declared() -> None:
    document = make_api().openapi()
    schemas = document["components"]["schemas"]
    # the hidden secret and a relationship to an unexposed type are nowhere
    assert "secret" not in schemas["people_attributes"]["properties"]
    assert set(schemas["boards"]["properties"]["relationships"]["properties"]) == {
        "members",
        "notes",
    }
    post = document["paths"]["/api/notes"]["post"]
    body = post["requestBody"]["content"]["application/vnd.api+json"]["schema"]
    attributes = body["properties"]["data"]["properties"]["attributes"]["properties"]
    assert set(attributes) == {"body", "board_id", "stars"}
    assert attributes["stars"] == {"type": "integer", "minimum": 0, "maximum": 5}
    assert post["responses"]["201"]["content"]["application/vnd.api+json"]["schema"] == {
        "$ref": "#/components/schemas/notes_document"
    }


def test_the_domain_errors_map_to_statuses_by_their_kind() -> None:
    def pointer(field: str) -> str:
        return f"/data/attributes/{field}"

    invalid = api_errors.from_exception(
        domain.Invalid({"content": ["is required"], "room_id": ["is not a valid UUID"]}),
        pointer=pointer,
    )
    assert invalid is not None
    assert invalid.status == 422
    assert [e["source"]["pointer"] for e in invalid.errors] == [
        "/data/attributes/content",
        "/data/attributes/room_id",
    ]
    reading = api_errors.from_exception(
        domain.Invalid({"after": ["does not match this sort"]}),
        pointer=pointer,
        parameter=lambda f: "page[after]" if f == "after" else f,
        reading=True,
    )
    assert reading is not None
    assert (reading.status, reading.errors[0]["source"]) == (400, {"parameter": "page[after]"})
    missing = api_errors.from_exception(domain.NotFound("Message 1"), pointer=pointer)
    assert missing is not None
    assert missing.status == 404  # a kind of Invalid, but its own status
    forbidden = api_errors.from_exception(domain.Forbidden("policy failed"), pointer=pointer)
    assert forbidden is not None
    assert forbidden.status == 403
    lost = api_errors.from_exception(domain.DatabaseTimeout("slow"), pointer=pointer)
    assert lost is not None
    assert (lost.status, dict(lost.headers)["retry-after"]) == (503, "1")
    assert api_errors.from_exception(KeyError("bug"), pointer=pointer) is None
