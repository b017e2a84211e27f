"""Helpers of the hostile-input tests: error envelopes and the field they name."""

from __future__ import annotations

from typing import Any

import httpx


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error of `response`, asserting its status and the envelope's shape."""
    assert response.status_code == status, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, error
    return error


def fields(error: dict[str, Any]) -> set[str]:
    """Every field an error names, as validation errors and rdev's own errors spell it."""
    named = {p["field"] for p in error["details"].get("errors", [])}
    if "field" in error["details"]:
        named.add(error["details"]["field"])
    return named


def rejects(response: httpx.Response, field: str, status: int = 422) -> dict[str, Any]:
    """A `status` error that names `field` (header names in any case) in its details and
    its message."""
    error = problem(response, status)
    assert field.lower() in {f.lower() for f in fields(error)}, (field, error)
    assert field.lower() in error["message"].lower(), error
    return error
