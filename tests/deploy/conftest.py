"""Fixtures for the deployment tests: each overlay rendered once per session."""

from __future__ import annotations

import pytest

from .support import OVERLAYS, Manifests, render

_rendered: dict[str, Manifests] = {}


def _render_once(overlay: str) -> Manifests:
    if overlay not in _rendered:
        _rendered[overlay] = render(overlay)
    return _rendered[overlay]


@pytest.fixture(scope="session", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> Manifests:
    return _render_once(request.param)


@pytest.fixture(scope="session")
def dev() -> Manifests:
    return _render_once("dev")


@pytest.fixture(scope="session")
def prod() -> Manifests:
    return _render_once("prod")
