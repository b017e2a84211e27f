"""/docs and /redoc work without the internet: every asset they load comes from the api."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support import RdevSystem

pytestmark = pytest.mark.e2e

ASSET = re.compile(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']""")


@pytest.mark.parametrize(
    ("page", "needs"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_docs_pages_load_only_assets_of_the_api(rdev: RdevSystem, page: str, needs: str) -> None:
    with httpx.Client(base_url=rdev.base_url, timeout=30) as client:
        html = client.get(page)
        assert html.status_code == 200, html.text
        assets = ASSET.findall(html.text)
        assert any(a.endswith(needs) for a in assets), assets
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), (
                f"{page} loads {asset} from elsewhere"
            )
            fetched = client.get(asset)
            assert fetched.status_code == 200, asset
            assert len(fetched.content) > 1000 or asset.endswith("openapi.json"), asset
        assert "googleapis" not in html.text and "cdn." not in html.text
