"""The OpenAPI document says what the server does (docs/api.md, "Errors").

FastAPI documents a 422 `HTTPValidationError` that the server never sends, and none
of the statuses rdev's own errors produce. Here every operation gets the statuses it
can answer, each with the one error envelope `{"error": {code, message, details}}`,
and text responses (logs, metrics, exports, event streams) are declared with their
media types, so a generated client is right.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
        "additionalProperties": False,
        "example": {
            "error": {
                "code": "validation_error",
                "message": "timeout_s: Input should be greater than or equal to 1",
                "details": {
                    "errors": [
                        {
                            "field": "timeout_s",
                            "message": "Input should be greater than or equal to 1",
                        }
                    ]
                },
            }
        },
    },
    "ErrorDetail": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "description": "stable, machine-readable"},
            "message": {"type": "string", "description": "for people; names the field"},
            "details": {
                "type": "object",
                "description": "`field`, or `errors`: [{field, message}], and the like",
            },
        },
    },
}
WHY = {
    400: "Malformed request (the body is not valid JSON)",
    401: "No valid API key or session",
    403: "The key lacks a scope, a project or the client's IP; or a cookie request "
    "from another origin",
    404: "No such resource (or not visible to this key)",
    405: "Method not allowed (the Allow header lists the path's methods)",
    409: "Conflicts with the resource's state",
    413: "Request body too large",
    415: "The body is not JSON (send Content-Type: application/json)",
    422: "Invalid input; the message and `details` name the field",
    429: "Rate limited (see Retry-After and the RateLimit headers)",
    503: "A dependency (database, broker) is unavailable; retry after Retry-After",
}
# One server-sent event (SSE_CLIENTS.md lists the events and their data).
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "description": "JSON"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
PUBLIC = {"/healthz", "/readyz", "/metrics", "/session"}
CONFLICTS = {
    ("post", "/projects"),
    ("delete", "/projects/{project_id}"),
    ("post", "/commands/{command_id}/cancel"),
    ("post", "/commands/{command_id}/resize"),
    ("post", "/commands/{command_id}/signal"),
}
# A run's stdin: a raw body streamed through (not JSON), bounded per run.
STREAMED_BODIES = {("put", "/commands/{command_id}/stdin")}
TEXT_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/metrics"): {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
    ("get", "/commands/{command_id}/output"): {
        "text/plain": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
    ("get", "/audit/export"): {
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    },
    ("get", "/projects/{project_id}/events"): {"text/event-stream": {"schema": SSE_EVENT}},
}


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    statuses = {405, 503}
    params = operation.get("parameters", [])
    if "requestBody" in operation:
        statuses |= {400, 413, 415, 422}
    if params:
        statuses.add(422)
    if path not in PUBLIC or (path == "/session" and method == "post"):
        statuses |= {401, 403, 429}
    if any(p["in"] == "path" for p in params):
        statuses.add(404)
    if (method, path) in CONFLICTS:
        statuses.add(409)
    if (method, path) in STREAMED_BODIES:
        statuses |= {409, 413}
    return statuses


def _not_nullable(parameter: dict[str, Any]) -> None:
    """An optional query or header parameter is absent, never null: `anyOf [X, null]`
    is X (a client sending the text `null` would be refused)."""
    schema = parameter.get("schema", {})
    options = schema.get("anyOf")
    if options and len(options) == 2 and {"type": "null"} in options:
        (kept,) = [o for o in options if o != {"type": "null"}]
        schema.pop("anyOf")
        schema.update(kept)


def document(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(ERROR_SCHEMAS)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                _not_nullable(parameter)
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(method, path, operation)):
                responses[str(status)] = {
                    "description": WHY[status],
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
            if (method, path) in TEXT_RESPONSES:
                ok = responses.setdefault("200", {"description": "Successful Response"})
                ok.setdefault("content", {}).update(TEXT_RESPONSES[(method, path)])
                if path != "/projects/{project_id}/events":
                    ok["content"].pop("application/json", None)
            if path == "/projects/{project_id}/events":
                responses["204"] = {"description": "The client has seen `complete` already"}
            if path == "/readyz":
                responses["503"] = {"description": "Not ready: a check failed"}
    return spec


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
