"""The OpenAPI document says what the server does; errors are said in words."""

from __future__ import annotations

from typing import Any

import pytest

from rdev_api.entrypoints.http.app import build_app
from tests.hostile.support import problem
from tests.support import RdevSystem

PUBLIC = {"/healthz", "/readyz", "/metrics", "/session"}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def test_the_document_has_the_key_scheme_the_error_envelope_and_examples() -> None:
    spec = build_app().openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert "HTTPValidationError" not in str(spec)
    for method, path, op in _operations(spec):
        where = f"{method.upper()} {path}"
        responses = op["responses"]
        for status, response in responses.items():
            if status.startswith(("4", "5")) and (path, status) != ("/readyz", "503"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, where
        if path not in PUBLIC:
            assert {"ApiKey": []} in op["security"], where
            assert {"401", "403", "429"} <= set(responses), where
        if "{" in path:
            assert "404" in responses and "422" in responses, where
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= set(responses), where
            ref = op["requestBody"]["content"]["application/json"]["schema"]
            ref = ref.get("$ref") or next(o["$ref"] for o in ref["anyOf"] if "$ref" in o)
            body = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
            assert body.get("examples"), f"{where}: no example body"
    output = spec["paths"]["/commands/{command_id}/output"]["get"]["responses"]["200"]
    assert set(output["content"]) == {"text/plain", "application/x-ndjson"}
    assert (
        "text/plain; version=0.0.4"
        in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    )


@pytest.mark.e2e
def test_405_lists_every_method_of_the_path(rdev: RdevSystem) -> None:
    rdev.create_project("contract")
    with rdev.client() as c:
        for path, allowed in (
            ("/projects/contract", "DELETE, GET, HEAD, PATCH"),
            ("/projects", "GET, HEAD, POST"),
            ("/api-keys/k1", "DELETE, GET, HEAD, PATCH"),
            ("/session", "DELETE, POST"),
        ):
            r = c.put(path, json={})
            problem(r, 405)
            assert r.headers["allow"] == allowed, (path, r.headers["allow"])


@pytest.mark.e2e
def test_malformed_json_and_a_missing_content_type_are_said_in_words(rdev: RdevSystem) -> None:
    rdev.create_project("contract")
    with rdev.client() as c:
        r = c.post(
            "/projects/contract/shell",
            content=b'{"command": "true",}',
            headers={"Content-Type": "application/json"},
        )
        error = problem(r, 400)
        assert error["code"] == "malformed_json" and error["details"] == {"field": "body"}
        assert error["message"].startswith("the request body is not valid JSON"), error
        r = c.post(
            "/projects/contract/shell",
            content=b"command=true",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        error = problem(r, 415)
        assert "Content-Type: application/json" in error["message"], error
        assert error["details"] == {"field": "Content-Type"}
        r = c.post("/projects/contract/shell", content=b'{"command": "true"}')
        assert "(got 'none')" in problem(r, 415)["message"]  # no Content-Type at all
