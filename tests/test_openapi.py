"""GET /openapi.json: open without a key, and it names every route the app registers."""

from __future__ import annotations

import re

import jsonschema

from llmux.openapi import document

from .conftest import AUTH


async def test_openapi_json_covers_every_registered_route(demo_client):
    resp = await demo_client.get("/openapi.json")  # no key needed
    assert resp.status == 200
    assert resp.content_type == "application/json"
    doc = await resp.json()
    assert doc == document()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "llmux"
    registered = {
        (route.resource.canonical, route.method.lower())
        for route in demo_client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert registered == described


def test_every_schema_is_valid_json_schema_and_every_ref_resolves():
    doc = document()
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    text = repr(doc)
    for ref in re.findall(r"'#/components/schemas/(\w+)'", text):
        assert ref in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        params = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            assert {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"} == params
            assert "200" in op["responses"]
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}


async def test_real_errors_validate_against_the_error_schema(demo_client):
    schema = document()["components"]["schemas"]["Error"]
    for path, headers in (("/v1/models", {}), ("/v1/models/nope", AUTH)):
        resp = await demo_client.get(path, headers=headers)
        assert resp.status in (401, 404)
        jsonschema.validate(await resp.json(), schema)


def test_chat_schema_accepts_a_valid_request_and_rejects_a_bad_one():
    validator = jsonschema.Draft202012Validator(document()["components"]["schemas"]["ChatRequest"])
    good = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    assert validator.is_valid(good)
    assert not validator.is_valid({"messages": []})
    assert not validator.is_valid({**good, "temperature": 3})
