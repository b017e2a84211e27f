"""The API's contract, fuzzed: every operation of the OpenAPI document with generated
valid and invalid requests, against a live `rdev up` and an admin key.

No server error, no status the document does not list, no response that breaks its
schema or content type, none slower than 2 s. Bounded (a fixed seed, a dozen examples
per operation) to stay within a minute or two; docs/security.md gives the long run.

The fuzzed project may only run `echo` with letters: generated command lines are
refused by its policy, never run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rdev_api.entrypoints.http.app import build_app
from tests.support import RdevSystem, start_system

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("fuzz.toml")
SAFE_POLICY = {"allow": ["re:^echo [a-z ]*$"], "deny": []}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_RESPONSE_S = 2.0


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    """A system of its own: what the fuzzer creates and deletes stays here."""
    yield from start_system(tmp_path_factory.mktemp("fuzz"))


def seed_data(rdev: RdevSystem) -> None:
    """The document's examples name project `demo`: make it real, and safe to run in."""
    workdir = rdev.data_dir / "workspaces" / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    with rdev.client() as c:
        r = c.post(
            "/projects", json={"id": "demo", "workdir": str(workdir), "command_policy": SAFE_POLICY}
        )
        assert r.status_code == 201, r.text
        assert c.post("/projects/demo/shell", json={"command": "echo seeded"}).status_code == 202


def _document() -> schemathesis.BaseSchema:
    """The document the api serves (checked against the live one below), loaded at
    collection: one test per operation."""
    config = schemathesis.Config.from_path(CONFIG)
    loaded = schemathesis.openapi.from_dict(build_app().openapi(), config=config)
    # An event stream without a stream id never ends: tests/hostile and tests/e2e cover it.
    return loaded.exclude(path="/projects/{project_id}/events")


schema = _document()


@pytest.fixture(scope="module")
def live(fuzzed: RdevSystem) -> RdevSystem:
    seed_data(fuzzed)
    served = httpx.get(f"{fuzzed.base_url}/openapi.json", timeout=30).json()
    assert served == build_app().openapi(), "the live api serves another document"
    return fuzzed


@schema.parametrize()
@settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_the_api_keeps_its_contract(case: schemathesis.Case, live: RdevSystem) -> None:
    response = case.call(base_url=live.base_url, headers=live.headers, timeout=30)
    case.validate_response(response, checks=CHECKS)
    assert response.elapsed < MAX_RESPONSE_S, (
        f"{case.method} {case.formatted_path} took {response.elapsed:.2f} s"
    )
